"""Our own tables beside MLMD's: where a projection stands in the log, what each record
returned, and what a mirror last copied. The only module that names them.

- ``mlmdlog_checkpoint`` (one row, id 0): ``applied_offset`` is the *next* log offset to
  apply (records ``[0, applied_offset)`` are in), ``last_time_ms`` the latest record
  time applied (timestamps never run backwards). Written in the same transaction as the
  rows it covers.
- ``mlmdlog_outcome``: per applied record, its record id and the response or the MLMD
  error it got, so a writer, a retry or a replay reads back what its put returned.
- ``mlmdlog_mirror_state`` (MySQL mirror targets): the checkpoint as the mirror wrote it,
  with the one high-water mark that cannot be read back from the target's rows
  (ParentContext has no id: the staging rowid). A checkpoint that differs from it was
  written by someone else, and the next mirror is a full copy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

from mlmd_log import errors

SQLITE_DDL: list[str] = [
    """CREATE TABLE IF NOT EXISTS `mlmdlog_checkpoint` (
    `id` INTEGER PRIMARY KEY CHECK (`id` = 0),
    `applied_offset` INTEGER NOT NULL,
    `last_time_ms` INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS `mlmdlog_outcome` (
    `log_offset` INTEGER PRIMARY KEY,
    `record_id` VARCHAR(64) NOT NULL,
    `error_code` INTEGER NOT NULL,
    `error_message` TEXT,
    `response` BLOB)""",
    "CREATE INDEX IF NOT EXISTS `idx_mlmdlog_outcome_record_id` ON `mlmdlog_outcome`(`record_id`)",
]

# (without their closing parenthesis and table options: ddl.py ends them as MLMD's tables)
MYSQL_DDL: list[str] = [
    """CREATE TABLE IF NOT EXISTS `mlmdlog_checkpoint` (
    `id` INT NOT NULL,
    `applied_offset` BIGINT NOT NULL,
    `last_time_ms` BIGINT NOT NULL,
    PRIMARY KEY (`id`)
""",
    """CREATE TABLE IF NOT EXISTS `mlmdlog_outcome` (
    `log_offset` BIGINT NOT NULL,
    `record_id` VARCHAR(64) NOT NULL,
    `error_code` INT NOT NULL,
    `error_message` MEDIUMTEXT,
    `response` MEDIUMBLOB,
    PRIMARY KEY (`log_offset`),
    KEY `idx_mlmdlog_outcome_record_id` (`record_id`)
""",
]

MIRROR_STATE_DDL = """CREATE TABLE IF NOT EXISTS `mlmdlog_mirror_state` (
    `id` INT NOT NULL,
    `applied_offset` BIGINT NOT NULL,
    `parent_context_rowid` BIGINT NOT NULL,
    PRIMARY KEY (`id`)
) ENGINE=InnoDB"""

# DuckDB keeps the mirror's high-water mark in its checkpoint row: it has no other writer.
DUCKDB_CHECKPOINT_DDL = ('CREATE TABLE IF NOT EXISTS "mlmdlog_checkpoint" ("id" INTEGER NOT NULL CHECK ("id" = 0), '
                         '"applied_offset" BIGINT NOT NULL, "last_time_ms" BIGINT NOT NULL, '
                         '"parent_context_rowid" BIGINT NOT NULL DEFAULT 0)')

#: Tables a mirror appends to by key (never rewrites), with that key.
OUTCOME_TABLE, OUTCOME_KEY = "mlmdlog_outcome", "log_offset"
OUTCOME_COLUMNS = (("log_offset", "BIGINT"), ("record_id", "VARCHAR"), ("error_code", "INTEGER"),
                   ("error_message", "VARCHAR"), ("response", "BLOB"))


@dataclass(frozen=True)
class Outcome:
    """What applying one record produced: a serialized response or an MLMD error."""

    offset: int
    record_id: str
    error_code: int = 0
    error_message: str = ""
    response: bytes = b""

    def raise_if_error(self) -> None:
        if self.error_code:
            raise errors.make_exception(self.error_message, self.error_code)


# -- the checkpoint ------------------------------------------------------------------
_READ_CHECKPOINT = "SELECT `applied_offset`, `last_time_ms` FROM `mlmdlog_checkpoint` WHERE `id` = 0"


def read_checkpoint(db: Any, lock: bool = False) -> Optional[tuple[int, int]]:
    """(next offset to apply, last record time) of a SQLite/MySQL projection; None before
    its first commit. ``lock``: FOR UPDATE (MySQL, inside a transaction)."""
    row = db.one(_READ_CHECKPOINT + (" FOR UPDATE" if lock else ""))
    return (int(row[0]), int(row[1])) if row else None


def next_offset(db: Any) -> int:
    """The next log offset the projection ``db`` lacks (0 before anything was applied)."""
    checkpoint = read_checkpoint(db)
    return checkpoint[0] if checkpoint else 0


def checkpoint_upsert_sql(next_offset: int, last_time_ms: int) -> str:
    """MySQL's checkpoint write as one statement, values inline (it may be queued with
    others). One upsert: MySQL's UPDATE reports rows *changed*, so an unchanged
    checkpoint would look absent to an update-then-insert."""
    return ("INSERT INTO `mlmdlog_checkpoint` (`id`, `applied_offset`, `last_time_ms`) "
            f"VALUES (0, {int(next_offset)}, {int(last_time_ms)}) "
            "ON DUPLICATE KEY UPDATE `applied_offset` = VALUES(`applied_offset`), "
            "`last_time_ms` = VALUES(`last_time_ms`)")


def write_checkpoint(db: Any, next_offset: int, last_time_ms: int) -> None:
    """Records the projection's position, inside the caller's transaction."""
    if db.dialect.name == "mysql":
        db.conn.cursor().execute(checkpoint_upsert_sql(next_offset, last_time_ms))
        return
    if db.execute("UPDATE `mlmdlog_checkpoint` SET `applied_offset` = ?, `last_time_ms` = ? WHERE `id` = 0",
                  (next_offset, last_time_ms)).rowcount == 0:
        db.execute("INSERT INTO `mlmdlog_checkpoint` (`id`, `applied_offset`, `last_time_ms`) VALUES (0, ?, ?)",
                   (next_offset, last_time_ms))


# -- outcomes ------------------------------------------------------------------------
_OUTCOME_SELECT = "SELECT `log_offset`, `record_id`, `error_code`, `error_message`, `response` FROM `mlmdlog_outcome` "
OUTCOME_INSERT = ("INSERT INTO `mlmdlog_outcome` (`log_offset`, `record_id`, `error_code`, `error_message`, "
                  "`response`) VALUES (?, ?, ?, ?, ?)")


def read_outcomes(db: Any, where: str, params: Sequence) -> list[Outcome]:
    """Stored outcomes matching ``where`` (SQL after WHERE, on ``log_offset``/``record_id``), in log order."""
    return [Outcome(offset, record_id, code, message or "", bytes(response or b""))
            for offset, record_id, code, message, response in
            db.rows(_OUTCOME_SELECT + f"WHERE {where} ORDER BY `log_offset`", params)]


def outcome_rows(outcomes: Iterable[Outcome]) -> list[tuple]:
    """Rows for OUTCOME_INSERT."""
    return [(o.offset, o.record_id, o.error_code, o.error_message or None, o.response or None) for o in outcomes]


def write_outcomes(db: Any, outcomes: Iterable[Outcome]) -> None:
    db.executemany(OUTCOME_INSERT, outcome_rows(outcomes))


# -- a MySQL mirror target's state ----------------------------------------------------
def read_mirror_state(db: Any, lock: bool = False) -> Optional[tuple[int, int]]:
    """(offset the mirror wrote, ParentContext staging rowid) or None."""
    row = db.one("SELECT `applied_offset`, `parent_context_rowid` FROM `mlmdlog_mirror_state` WHERE `id` = 0"
                 + (" FOR UPDATE" if lock else ""))
    return (int(row[0]), int(row[1])) if row else None


def mirror_state_upsert_sql(offset: int, parent_context_rowid: int) -> str:
    return ("INSERT INTO `mlmdlog_mirror_state` (`id`, `applied_offset`, `parent_context_rowid`) "
            f"VALUES (0, {int(offset)}, {int(parent_context_rowid)}) ON DUPLICATE KEY UPDATE "
            "`applied_offset` = VALUES(`applied_offset`), "
            "`parent_context_rowid` = VALUES(`parent_context_rowid`)")


# -- DuckDB's checkpoint (a connection, not a SqlBackend) ------------------------------------
def read_duckdb_checkpoint(con: Any) -> Optional[tuple[int, int, int]]:
    """(next offset, last record time, ParentContext staging rowid) or None."""
    row = con.execute('SELECT "applied_offset", "last_time_ms", "parent_context_rowid" '
                      'FROM "mlmdlog_checkpoint" WHERE "id" = 0').fetchone()
    return (int(row[0]), int(row[1]), int(row[2])) if row else None


def write_duckdb_checkpoint(con: Any, offset: int, last_time_ms: int, parent_context_rowid: int) -> None:
    con.execute('DELETE FROM "mlmdlog_checkpoint"')
    con.execute('INSERT INTO "mlmdlog_checkpoint" ("id", "applied_offset", "last_time_ms", '
                '"parent_context_rowid") VALUES (0, ?, ?, ?)', (offset, last_time_ms, parent_context_rowid))
