"""What the projector needs from a SQL database, and the SQLite implementation.

The state machine (``engine.py``) speaks one SQL text with ``?`` parameters and
back-quoted names; a dialect rewrites it for its driver. A backend adds the
transaction primitives the projector relies on: one transaction per batch,
savepoints, and the checkpoint row written in the same transaction.
"""
from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import Any, Iterable, Optional, Sequence

from mlmd_log.dialects import SQLITE, Dialect
from mlmd_log.projections import bookkeeping, ddl, history


class SqlBackend:
    """A DB-API connection plus the dialect and transaction primitives."""

    dialect: Dialect = SQLITE
    integrity_errors: tuple[type, ...] = ()
    # Errors of the database itself (I/O, locks, lost connection): never a record's outcome.
    infrastructure_errors: tuple[type, ...] = ()
    # A database server that cannot be reached, or a connection it dropped: ``reconnect``
    # may cure them (none for an embedded database).
    connection_errors: tuple[type, ...] = ()

    def __init__(self, conn: Any):
        self.conn = conn
        self._sql_cache: dict[str, str] = {}
        self._cursor: Any = None

    def sql(self, text: str) -> str:
        out = self._sql_cache.get(text)
        if out is None:
            out = self._sql_cache[text] = self.dialect.render_qmark(text)
        return out

    def execute(self, text: str, params: Sequence[Any] = ()) -> Any:
        """Runs one statement on the backend's own cursor. Callers consume the result (rows,
        rowcount) before the next statement, so one cursor serves them all."""
        cur = self._cursor
        if cur is None:
            cur = self._cursor = self.conn.cursor()
        cur.execute(self.sql(text), params if type(params) is tuple else tuple(params))
        return cur

    def executemany(self, text: str, rows: Iterable[Sequence[Any]]) -> None:
        self.conn.cursor().executemany(self.sql(text), list(rows))

    def rows(self, text: str, params: Sequence[Any] = ()) -> list[tuple]:
        return list(self.execute(text, params).fetchall())

    def one(self, text: str, params: Sequence[Any] = ()) -> tuple | None:
        return self.execute(text, params).fetchone()

    # -- schema -------------------------------------------------------------
    def schema(self) -> list[str]:
        """DDL of MLMD's v10 tables and our bookkeeping tables, for this dialect."""
        raise NotImplementedError

    def create_schema(self) -> None:
        """Creates MLMD's v10 tables, the simple types and our bookkeeping, once.

        Safe when several processes open a new database at the same moment: whoever loses
        the race to seed the tables rolls back and finds them seeded on the next attempt."""
        for attempt in range(5):
            self.begin()
            try:
                for stmt in self.schema():
                    self.execute(stmt)
                if self.one("SELECT COUNT(*) FROM `MLMDEnv`")[0] == 0:
                    self.execute("INSERT INTO `MLMDEnv` (`schema_version`) VALUES (?)", (ddl.SCHEMA_VERSION,))
                    for name in self.derived_tables:  # a new projection: nothing to fill in
                        self._mark(name)
                if self.one("SELECT COUNT(*) FROM `Type`")[0] == 0:
                    for type_id, (name, kind) in enumerate(ddl.SIMPLE_TYPES, start=1):
                        self.execute("INSERT INTO `Type` (`id`, `name`, `type_kind`) VALUES (?, ?, ?)",
                                     (type_id, name, kind))
                self.commit()
                return
            except self.integrity_errors:
                self.rollback()  # another process seeded them first
                if attempt == 4:
                    raise
            except BaseException:
                self.rollback()
                raise

    @property
    def derived_tables(self) -> tuple[str, ...]:
        """Tables derived from MLMD's that the engine keeps complete (see has_complete)."""
        return ("read_forms", "reversed_uris") if self.dialect.reversed_uris else ("read_forms",)

    def has_complete(self, name: str) -> bool:
        """Whether derived table ``name`` is marked complete (a projection built before it
        existed is not, until filled)."""
        return self.one("SELECT `value` FROM `mlmdlog_meta` WHERE `name` = ?", (f"complete:{name}",)) is not None

    def mark_complete(self, name: str) -> None:
        self.begin()
        try:
            self._mark(name)
            self.commit()
        except BaseException:
            self.rollback()
            raise

    def _mark(self, name: str) -> None:
        self.execute(f"{self.dialect.insert_ignore} INTO `mlmdlog_meta` (`name`, `value`) VALUES (?, ?)",
                     (f"complete:{name}", "1"))

    #: Whether the projector writes the history index (projections/history.py) here.
    keeps_history = False

    def open_versions(self) -> Any:
        """The row versions this projection keeps (history.Versions), made ready for the
        engine, or None where it keeps none."""
        return None

    def maintain(self, rows_before: int, rows_after: int) -> None:
        """Called after a batch commits, with how many rows the projection had created at the
        previous call and now: housekeeping such as refreshing the query planner's
        statistics. Changes plans, never results."""

    # -- transactions -------------------------------------------------------
    def begin(self) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def rollback(self) -> None:
        raise NotImplementedError

    def savepoint(self, name: str) -> None:
        self.execute(f"SAVEPOINT {name}")

    def rollback_to(self, name: str) -> None:
        self.execute(f"ROLLBACK TO SAVEPOINT {name}")

    def release(self, name: str) -> None:
        self.execute(f"RELEASE SAVEPOINT {name}")

    def reconnect(self) -> None:
        """After a lost connection, connect again (a no-op for an embedded database)."""

    def close(self) -> None:
        self.conn.close()


class SqliteBackend(SqlBackend):
    """SQLite projection. Needs no fsync of its own: the log is the source of truth."""

    dialect = SQLITE
    integrity_errors = (sqlite3.IntegrityError,)
    infrastructure_errors = (sqlite3.Error,)  # checked after integrity_errors

    keeps_history = True

    def __init__(self, path: str, readonly: bool = False, durable: bool = False, staging: bool = False):
        """``staging``: a staging projection (mirrored or DuckDB), whose reads the target
        serves: it skips the reversed uris only SQLite's uri suffix filters use, the
        indexes only reads use (``ddl.READ_ONLY_INDEXES``) and the row versions only as-of
        views read (its history records are kept: the DuckDB mirror copies them)."""
        self.staging = staging
        self.readonly = readonly
        self.path = path
        if staging:
            self.dialect = replace(SQLITE, reversed_uris=False)
        uri = path.startswith("file:")
        if readonly and not uri and path != ":memory:":
            path, uri = f"file:{path}?mode=ro", True
        conn = sqlite3.connect(path, uri=uri, isolation_level=None, check_same_thread=False, timeout=30,
                               cached_statements=1024)  # (the writes fire triggers: preparing one compiles them)
        super().__init__(conn)
        if not readonly and path != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
            conn.execute("PRAGMA cache_size=-32768")  # 32 MiB: hot index pages stay cached, memory bounded
            conn.execute("PRAGMA temp_store=FILE")

    def schema(self) -> list[str]:
        statements = ddl.SQLITE_MLMD + ddl.SQLITE_LOG + history.HISTORY_DDL
        if self.staging:
            statements = [s for s in statements if ddl.index_name(s) not in ddl.READ_ONLY_INDEXES]
        return statements

    def create_schema(self) -> None:
        super().create_schema()
        if self.staging:
            # (opened for writing without them: the reversed uris are no longer complete,
            # and the read indexes of a file that was a projection of its own would only
            # slow the writes down; the schema gives them back when it is one again)
            self.execute("DELETE FROM `mlmdlog_meta` WHERE `name` = ?", ("complete:reversed_uris",))
            for name in sorted(ddl.READ_ONLY_INDEXES):
                self.execute(f"DROP INDEX IF EXISTS `{name}`")
        if self.one("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'") is None:
            self.analyze()  # a projection built before statistics were kept

    def open_versions(self) -> Any:
        """Row versions for as-of views and diffs; on a projection from before them (or one
        that was a staging), they start at its applied offset (``history_from``)."""
        if self.staging or self.readonly:
            return None
        if self.one("SELECT `value` FROM `mlmdlog_meta` WHERE `name` = ?", (history.HISTORY_FROM,)) is None:
            self.begin()
            try:
                for statement in history.version_ddl(ddl.SQLITE_MLMD):
                    self.execute(statement)
                checkpoint = bookkeeping.read_checkpoint(self)
                start = checkpoint[0] if checkpoint and checkpoint[0] > 0 else 0
                versions = history.Versions(self)
                versions.start(start - 1)  # (what [0, start) left: visible from as-of start on)
                self.execute("INSERT INTO `mlmdlog_meta` (`name`, `value`) VALUES (?, ?)",
                             (history.HISTORY_FROM, str(start)))
                self.commit()
            except BaseException:
                self.rollback()
                raise
            return versions
        return history.Versions(self)

    def analyze(self) -> None:
        """Statistics for the planner: without them a multi-join filter can scan every node."""
        self.conn.execute("PRAGMA analysis_limit=1000")
        self.conn.execute("ANALYZE")

    def maintain(self, rows_before: int, rows_after: int) -> None:
        # Re-analyze as the projection doubles (1k, 2k, 4k ... rows): cheap, and plans stay
        # good. Rows, not log records: one put_lineage_subgraph can create thousands.
        if rows_after >= 1024 and (rows_after.bit_length() > max(rows_before, 1).bit_length()):
            self.analyze()

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

