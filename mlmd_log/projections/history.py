"""The history a SQLite projection keeps beside MLMD's tables: the only module that names them.

- ``mlmdlog_history_record``: one row per applied record: offset, record id, the record's
  time and the time it was applied at (``applied_ms``: the projector's running maximum of
  record times, which the rows' timestamps carry; what as-of by time cuts on), the producer, the RPC (PutExecution, ...) and the outcome (rejected attempts are history too).
- ``mlmdlog_history_touch``: (kind, entity id, offset) for every node, type and link end a
  record named or created: the index ``history(kind, id)`` reads.
- ``mlmdlog_v_<Table>``: every version of every row of MLMD's tables, with the offsets it
  is valid for: ``v_from`` (the record that wrote it) and ``v_to`` (the record that
  replaced or removed it, NULL while current). A view over them that keeps the versions
  with ``v_from < N <= v_to`` is MLMD's table as a replay of ``[0, N)`` would have left it,
  which is how as-of views and diffs are answered without a replay.

Versions are written beside the rows: the engine's statements go through ``VersionedWrites``
(each write also writes its version, stamped with the offset ``Versions.at`` was told); the
step writer, which writes the rows of many records in one statement per table, queues each
row's version with its own record's offset.
All of it is written in the same transaction as the rows, so replay rebuilds it exactly.
A projection that existed before its history starts it at its offset then: its rows become
versions from there (``history_from``), and earlier points in time need a replay.
"""
from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

from mlmd_log.producer.records import RPC_OF_FIELD
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.proto import metadata_store_service_pb2 as svc
from mlmd_log.schemas.runtime import is_repeated

RECORD_TABLE = "mlmdlog_history_record"
TOUCH_TABLE = "mlmdlog_history_touch"
VERSION_PREFIX = "mlmdlog_v_"
HISTORY_FROM = "history_from"  # (mlmdlog_meta: the first offset the versions know)

ENTITY_KINDS = ("artifact", "execution", "context", "artifact_type", "execution_type", "context_type")


@dataclass(frozen=True)
class Versioned:
    """One of MLMD's tables as its versions keep it: the columns that identify a row across
    versions (empty: rows are only ever inserted) and the columns reads look versions up by."""

    table: str
    key: tuple[str, ...]
    lookups: tuple[tuple[str, ...], ...] = ()

    @property
    def versions(self) -> str:
        return VERSION_PREFIX + self.table


VERSIONED: tuple[Versioned, ...] = (
    Versioned("Type", ("id",), (("name",),)),
    Versioned("TypeProperty", ("type_id", "name")),
    Versioned("ParentType", ("type_id", "parent_type_id"), (("parent_type_id",),)),
    Versioned("Artifact", ("id",), (("type_id", "name"),)),
    Versioned("ArtifactProperty", ("artifact_id", "name", "is_custom_property")),
    Versioned("Execution", ("id",), (("type_id", "name"),)),
    Versioned("ExecutionProperty", ("execution_id", "name", "is_custom_property")),
    Versioned("Context", ("id",), (("type_id", "name"),)),
    Versioned("ContextProperty", ("context_id", "name", "is_custom_property")),
    Versioned("Event", ("id",), (("artifact_id",), ("execution_id",))),
    Versioned("EventPath", (), (("event_id",),)),
    Versioned("Attribution", ("id",), (("context_id",), ("artifact_id",))),
    Versioned("Association", ("id",), (("context_id",), ("execution_id",))),
    Versioned("ParentContext", ("context_id", "parent_context_id"), (("parent_context_id",),)),
)
BY_TABLE = {v.table: v for v in VERSIONED}

HISTORY_DDL: list[str] = [
    f"""CREATE TABLE IF NOT EXISTS `{RECORD_TABLE}` (
    `log_offset` INTEGER PRIMARY KEY,
    `record_id` TEXT NOT NULL,
    `time_ms` INTEGER NOT NULL,
    `applied_ms` INTEGER NOT NULL,
    `host` TEXT,
    `pid` INTEGER,
    `user_name` TEXT,
    `client_name` TEXT,
    `rpc` TEXT,
    `error_code` INTEGER NOT NULL,
    `error_message` TEXT)""",
    f"CREATE INDEX IF NOT EXISTS `idx_mlmdlog_history_record_applied_ms` ON `{RECORD_TABLE}`(`applied_ms`)",
    f"""CREATE TABLE IF NOT EXISTS `{TOUCH_TABLE}` (
    `kind` TEXT NOT NULL,
    `entity_id` INTEGER NOT NULL,
    `log_offset` INTEGER NOT NULL,
    PRIMARY KEY (`kind`, `entity_id`, `log_offset`)) WITHOUT ROWID""",
    f"CREATE INDEX IF NOT EXISTS `idx_mlmdlog_history_touch_offset` ON `{TOUCH_TABLE}`(`log_offset`)",
]


def _columns(mlmd_ddl: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """(name, declared type) of each versioned table's columns, read from MLMD's DDL itself."""
    scratch = sqlite3.connect(":memory:")
    try:
        for statement in mlmd_ddl:
            scratch.execute(statement)
        return {v.table: [(row[1], row[2]) for row in scratch.execute(f"PRAGMA table_info(`{v.table}`)")]
                for v in VERSIONED}
    finally:
        scratch.close()


def version_ddl(mlmd_ddl: Sequence[str]) -> list[str]:
    """Version tables and their indexes."""
    out = []
    for table, columns in _columns(mlmd_ddl).items():
        v = BY_TABLE[table]
        body = ", ".join(f"`{name}` {kind}" for name, kind in columns)
        out.append(f"CREATE TABLE IF NOT EXISTS `{v.versions}` ({body}, `v_from` INTEGER NOT NULL, `v_to` INTEGER)")
        # Each index ends in v_from: a row's current version is its latest (a seek, however
        # many versions a much-used input has), and a record's versions are found by offset.
        for n, cols in enumerate(((*v.key,),) + v.lookups if v.key else v.lookups):
            out.append(f"CREATE INDEX IF NOT EXISTS `idx_{v.versions}_{n}` ON `{v.versions}`"
                       f"({', '.join(f'`{c}`' for c in (*cols, 'v_from'))})")
    return out


def table_columns(db: Any, table: str) -> list[str]:
    return [row[1] for row in db.rows(f"PRAGMA table_info(`{table}`)")]


class Versions:
    """The versions of one writable SQLite projection: which record is being applied, and
    the version rows of what the engine (``VersionedWrites``) and the step writer write.

    Written by the code that writes the rows, not by triggers: a statement that may fire a
    trigger needs a statement journal in SQLite, and inside the projector's savepoints that
    made every insert several times slower, even with the trigger's condition false."""

    def __init__(self, db: Any):
        self.db = db
        self.offset = -1
        self._insert_sql: dict[str, str] = {}
        self._columns: dict[str, list[str]] = {}  # (MLMD's tables: their columns never change)

    def at(self, offset: int) -> None:
        """The record at ``offset`` is being applied: its writes are stamped with it."""
        self.offset = offset

    def insert_sql(self, insert: str) -> Optional[str]:
        """The version insert beside one of the step writer's ``INSERT INTO `T` (cols) VALUES``
        statements (one more parameter: the offset); None for a table without versions."""
        cached = self._insert_sql.get(insert)
        if cached is None:
            found = re.match(r"INSERT INTO `(\w+)` \((.*)\) VALUES \((.*)\)$", insert)
            if found is None or found.group(1) not in BY_TABLE:
                cached = ""
            else:
                table, cols, marks = found.groups()
                cached = (f"INSERT INTO `{VERSION_PREFIX}{table}` ({cols}, `v_from`) VALUES ({marks}, ?)")
            self._insert_sql[insert] = cached
        return cached or None

    def write_updated(self, table: str, column: str, updates: Sequence[tuple[int, int, Any]]) -> None:
        """Versions of rows the step writer updated in place, in log order: (row id, offset,
        the value ``column`` took then) each, after the rows were written. Each version ends
        where the next update of its row begins; the one current before them ends at the first."""
        if not updates:
            return
        v = BY_TABLE[table]
        names = self._columns.get(table)
        if names is None:  # (read once: the step writer calls this at every flush)
            names = self._columns[table] = table_columns(self.db, table)
        cols = ", ".join(f"`{c}`" for c in names)
        picked = ", ".join("?" if c == column else f"`{c}`" for c in names)
        first: dict[int, int] = {}
        ends: list[Optional[int]] = [None] * len(updates)
        latest: dict[int, int] = {}
        for index, (row_id, offset, _) in enumerate(updates):
            first.setdefault(row_id, offset)
            if row_id in latest:
                ends[latest[row_id]] = offset
            latest[row_id] = index
        self.db.executemany(f"UPDATE `{v.versions}` SET `v_to` = ? WHERE `id` = ? AND `v_from` = (SELECT MAX(`v_from`) "
                            f"FROM `{v.versions}` WHERE `id` = ?) AND `v_to` IS NULL",
                            [(offset, row_id, row_id) for row_id, offset in first.items()])
        self.db.executemany(f"INSERT INTO `{v.versions}` ({cols}, `v_from`, `v_to`) SELECT {picked}, ?, ? "
                            f"FROM `{table}` WHERE `id` = ?",
                            [(value, offset, end, row_id) for (row_id, offset, value), end in zip(updates, ends)])

    def start(self, from_offset: int) -> None:
        """Versions of the rows already there, stamped ``from_offset``: the offset before the
        first one the history knows (-1 for a new projection's seeded types)."""
        for v in VERSIONED:
            cols = ", ".join(f"`{c}`" for c in table_columns(self.db, v.table))
            self.db.execute(f"DELETE FROM `{v.versions}`")
            self.db.execute(f"INSERT INTO `{v.versions}` ({cols}, `v_from`) SELECT {cols}, ? FROM `{v.table}`",
                            (from_offset,))


_INSERT = re.compile(r"(INSERT|INSERT OR IGNORE) INTO `(\w+)` \((.*)\) VALUES \((.*)\)", re.S)
_UPDATE = re.compile(r"UPDATE `(\w+)` SET (.*) WHERE (.*)", re.S)
_DELETE = re.compile(r"DELETE FROM `(\w+)` WHERE (.*)", re.S)


@dataclass(frozen=True)
class _Plan:
    """How one of the engine's statements is versioned."""

    kind: str  # "insert" | "insert-ignore" | "update" | "delete"
    version_sql: tuple[str, ...]  # (statements, in order; see VersionedWrites)
    where_params: int = 0  # (update, delete: how many trailing parameters the WHERE takes)


class VersionedWrites:
    """The engine's database, writing each versioned row's version beside it.

    An insert adds a version from the current record; an update or delete of a row ends
    its current version there (or drops a version the same record wrote) and an update
    adds the new one, copied from the row. Everything else passes through untouched."""

    def __init__(self, db: Any, versions: Versions):
        self._db, self._versions = db, versions
        self._plans: dict[str, Optional[_Plan]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def execute(self, text: str, params: Sequence[Any] = ()) -> Any:
        plan = self._plan(text)
        if plan is None:
            return self._db.execute(text, params)
        at = self._versions.offset
        if plan.kind in ("update", "delete"):
            where = tuple(params[len(params) - plan.where_params:])
            drop, close = plan.version_sql[0], plan.version_sql[1]
            self._db.execute(drop, (*where, at))
            self._db.execute(close, (at, *where, *where) if "MAX(" in close else (at, *where))
        cur = self._db.execute(text, params)
        if plan.kind == "update":
            rowcount = cur.rowcount
            self._db.execute(plan.version_sql[2], (at, *where))
            return _Done(rowcount)
        if plan.kind == "insert" or cur.rowcount == 1:
            rowcount = cur.rowcount
            self._db.execute(plan.version_sql[0], (*params, at))
            return _Done(rowcount)
        return cur

    def executemany(self, text: str, rows: Iterable[Sequence[Any]]) -> None:
        plan = self._plan(text)
        rows = list(rows)
        if plan is None or plan.kind != "insert":
            if plan is None:
                return self._db.executemany(text, rows)
            for row in rows:
                self.execute(text, row)
            return None
        self._db.executemany(text, rows)
        offset = (self._versions.offset,)
        self._db.executemany(plan.version_sql[0], [(*row, *offset) for row in rows])
        return None

    def _plan(self, text: str) -> Optional[_Plan]:
        if text in self._plans:
            return self._plans[text]
        plan = None
        found = _INSERT.fullmatch(text.strip())
        if found and found.group(2) in BY_TABLE:
            version_sql = self._versions.insert_sql(f"INSERT INTO `{found.group(2)}` ({found.group(3)}) "
                                                    f"VALUES ({found.group(4)})")
            plan = _Plan("insert" if found.group(1) == "INSERT" else "insert-ignore", (version_sql,))
        for kind, pattern in (("update", _UPDATE), ("delete", _DELETE)):
            found = pattern.fullmatch(text.strip())
            if found and found.group(1) in BY_TABLE:
                plan = _Plan(kind, self._ending_sql(found.group(1), found.groups()[-1], kind == "update"),
                             found.groups()[-1].count("?"))
        self._plans[text] = plan
        return plan

    def _ending_sql(self, table: str, where: str, copy: bool) -> tuple[str, ...]:
        """(drop the same record's version, end the current one[, copy the updated row]).
        On a row's key, the current version is found as its latest: a seek, where ``v_to IS
        NULL`` alone would read every version of a much-used input."""
        v = BY_TABLE[table]
        keyed = set(re.findall(r"`(\w+)` = \?", where)) == set(v.key) and where.count("?") == len(v.key)
        latest = f" AND `v_from` = (SELECT MAX(`v_from`) FROM `{v.versions}` WHERE {where})" if keyed else ""
        out = (f"DELETE FROM `{v.versions}` WHERE ({where}) AND `v_to` IS NULL AND `v_from` = ?",
               f"UPDATE `{v.versions}` SET `v_to` = ? WHERE ({where}) AND `v_to` IS NULL{latest}")
        if copy:
            cols = ", ".join(f"`{c}`" for c in table_columns(self._db, table))
            out += (f"INSERT INTO `{v.versions}` ({cols}, `v_from`) SELECT {cols}, ? FROM `{table}` WHERE {where}",)
        return out


class _Done:
    """What an execute of a versioned write returns: its rowcount (the cursor moved on)."""

    def __init__(self, rowcount: int):
        self.rowcount = rowcount


# -- what a record touched ---------------------------------------------------------
_NODE_KIND = {pb.Artifact: "artifact", pb.Execution: "execution", pb.Context: "context",
              pb.ArtifactType: "artifact_type", pb.ExecutionType: "execution_type", pb.ContextType: "context_type"}
# Link messages: field -> the kind of the entity it names.
_LINK_FIELDS = {
    pb.Event: (("artifact_id", "artifact"), ("execution_id", "execution")),
    pb.Attribution: (("artifact_id", "artifact"), ("context_id", "context")),
    pb.Association: (("execution_id", "execution"), ("context_id", "context")),
    pb.ParentContext: (("child_id", "context"), ("parent_id", "context")),
}
# Response fields -> kind; a single type put's ``type_id`` takes its kind from the RPC.
_RESPONSE_FIELDS = {"artifact_ids": "artifact", "execution_ids": "execution", "execution_id": "execution",
                    "context_ids": "context", "artifact_type_ids": "artifact_type",
                    "execution_type_ids": "execution_type", "context_type_ids": "context_type"}
_TYPE_RPC_KIND = {"put_artifact_type": "artifact_type", "put_execution_type": "execution_type",
                  "put_context_type": "context_type"}
_TYPE_KIND_NUMBER = {"execution_type": 0, "artifact_type": 1, "context_type": 2}
_RESPONSES = {"put_artifact_type": svc.PutArtifactTypeResponse, "put_execution_type": svc.PutExecutionTypeResponse,
              "put_context_type": svc.PutContextTypeResponse, "put_types": svc.PutTypesResponse,
              "put_artifacts": svc.PutArtifactsResponse, "put_executions": svc.PutExecutionsResponse,
              "put_contexts": svc.PutContextsResponse, "put_execution": svc.PutExecutionResponse,
              "put_lineage_subgraph": svc.PutLineageSubgraphResponse}


_CHILDREN: dict[type, tuple[tuple[str, bool], ...]] = {}


def _children(message_type: type) -> tuple[tuple[str, bool], ...]:
    """(field name, repeated) of the message fields of ``message_type`` that can hold MLMD
    messages naming entities: ml_metadata messages, not maps, values or options."""
    found = _CHILDREN.get(message_type)
    if found is None:
        found = tuple(
            (field.name, is_repeated(field)) for field in message_type.DESCRIPTOR.fields
            if field.message_type is not None and not field.message_type.GetOptions().map_entry
            and field.message_type.full_name.startswith("ml_metadata.")
            and not field.message_type.full_name.endswith(("Value", "Struct", "Options")))
        _CHILDREN[message_type] = found
    return found


def _named_in(message: Any, out: set, types_by_name: list) -> None:
    """Entities a request names by id (nodes, types, link ends), walking every message in it;
    types given by name only are noted in ``types_by_name`` to be looked up."""
    message_type = type(message)
    kind = _NODE_KIND.get(message_type)
    if kind is not None:
        if message.HasField("id"):
            out.add((kind, message.id))
        elif kind.endswith("_type") and message.HasField("name"):
            types_by_name.append((kind, message.name, message.version if message.HasField("version") else None))
    for field_name, kind in _LINK_FIELDS.get(message_type, ()):
        if message.HasField(field_name):
            out.add((kind, getattr(message, field_name)))
    for field_name, repeated in _children(message_type):
        if repeated:
            for item in getattr(message, field_name):
                _named_in(item, out, types_by_name)
        elif message.HasField(field_name):
            _named_in(getattr(message, field_name), out, types_by_name)


def touched(db: Any, rpc: str, request: Any, response: bytes) -> list[tuple[str, int]]:
    """(kind, id) of every entity the record named or created, in a fixed order."""
    out: set = set()
    by_name: list = []
    _named_in(request, out, by_name)
    response_type = _RESPONSES.get(rpc)
    if response and response_type is not None:
        answer = response_type.FromString(response)
        for field, value in answer.ListFields():
            kind = _RESPONSE_FIELDS.get(field.name) or (_TYPE_RPC_KIND.get(rpc) if field.name == "type_id" else None)
            if kind is None:
                continue
            for entity_id in (value if is_repeated(field) else (value,)):
                if entity_id > 0:
                    out.add((kind, entity_id))
    for kind, name, version in by_name:  # (a rejected type put names its type by name)
        found = db.one("SELECT `id` FROM `Type` WHERE `type_kind` = ? AND `name` = ? AND `version` IS ?",
                       (_TYPE_KIND_NUMBER[kind], name, version))
        if found is not None:
            out.add((kind, found[0]))
    return sorted(out)


def write_records(db: Any, pending: Iterable[tuple[int, Any]], outcomes: Sequence[Any],
                  applied_ms: Sequence[int]) -> None:
    """History rows of a batch of applied records (decoded ``pending``, their ``outcomes``,
    and the time each was applied at: the projector's, which its rows' timestamps carry)."""
    records, touches = [], []
    for (offset, record), outcome, applied in zip(pending, outcomes, applied_ms):
        rpc = record.WhichOneof("request")
        producer = record.producer
        records.append((offset, record.record_id, record.timestamp_ms, applied,
                        producer.host if producer.HasField("host") else None,
                        producer.pid if producer.HasField("pid") else None,
                        producer.user if producer.HasField("user") else None,
                        producer.client_name if producer.HasField("client_name") else None,
                        RPC_OF_FIELD.get(rpc, rpc), outcome.error_code, outcome.error_message or None))
        if rpc is not None:
            touches += [(kind, entity_id, offset)
                        for kind, entity_id in touched(db, rpc, getattr(record, rpc), outcome.response)]
    db.executemany(f"INSERT INTO `{RECORD_TABLE}` (`log_offset`, `record_id`, `time_ms`, `applied_ms`, `host`, "
                   "`pid`, `user_name`, `client_name`, `rpc`, `error_code`, `error_message`) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", records)
    if touches:
        db.executemany(f"INSERT OR IGNORE INTO `{TOUCH_TABLE}` (`kind`, `entity_id`, `log_offset`) VALUES (?, ?, ?)",
                       touches)
