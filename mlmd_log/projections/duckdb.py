"""DuckDB analytics projection: a SQLite staging projection, mirrored into DuckDB in batches.

DuckDB has no SAVEPOINT and a failed statement aborts the whole transaction, so the
MLMD state machine (which rejects one record by rolling back to its savepoint and
learns of duplicates from unique-constraint errors) cannot write DuckDB directly.
Instead the ordinary projector applies the log to a private SQLite *staging*
projection, and each applied batch is mirrored into DuckDB in ONE DuckDB transaction
that also writes DuckDB's own checkpoint: the mirror of staged.py, with DuckDB's side
of it here (``DuckDbMirrorTarget``). DuckDB's checkpoint table holds the ParentContext
high-water mark beside the offset.

Rows move through DuckDB's bulk path: a newline-delimited JSON temp file read by
``read_json`` (``executemany`` costs ~0.5 ms a row in DuckDB); tiny sets use one
multi-row ``INSERT ... VALUES``. No pandas or pyarrow needed.

For SQL, beside MLMD's tables:

* ``{artifact,execution,context}_properties_flat`` (views): one row per node and
  property, with a ``value_type`` and typed value columns;
* one table per type, ``artifacts_<Type>[_<version>]`` (``executions_``, ``contexts_``),
  the node's columns and one column per declared property. Tables, not views: a view
  pivots every property row again at each query (most of a 200k-artifact query's time);
  the mirror rewrites the rows of the nodes each batch copied, and rebuilds a type's
  table when its declaration changes;
* ``lineage_edges`` (view): execution -> artifact for outputs, artifact -> execution for
  inputs, with the event's time;
* ``context_members`` (view): one row per (context, node kind, node id), artifacts from
  Attribution and executions from Association, one view for both kinds so "what is in
  this pipeline" is one query: ``context_id, context_name, context_type, node_kind,
  node_id, node_type``. It reads ``mlmdlog_context_member``, the links with their node's
  type (which never changes), kept by the mirror, so a query joins only contexts and
  types; the node's name, which may change, is in its type's table;
* ``history`` (view): who changed what, when: one row per (record, entity it touched)
  from the history index staging keeps (projections/history.py; its two tables are
  mirrored like the other append-only ones, by log offset): ``time`` (a TIMESTAMP, UTC),
  ``log_offset``, ``record_id``, ``producer`` ("user@host pid N (client)") and its parts,
  ``rpc``, ``outcome`` ("ok" or the MLMD error's class name), ``error_code``,
  ``error_message``, ``kind`` (artifact, execution, context, artifact_type, ...) and
  ``entity_id``. A rejected put that named no existing entity has one row, kind NULL.

A file an earlier version wrote (per-type views, no membership rows) gets its tables when
next opened for writing. Reads: ``Reader(projection.connection, dialects.DUCKDB)``.

    python -m mlmd_log.projections.duckdb --log ./mlmd-data/log --into analytics.duckdb [--follow]
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

from mlmd_log import errors
from mlmd_log.consumer.follower import Follower, FollowStatus, applied_through
from mlmd_log.dialects import DUCKDB
from mlmd_log.projections import bookkeeping, history
from mlmd_log.projections.staged import (APPEND_BY_KEY, COLUMNS, HISTORY_APPENDS, HISTORY_TABLES, TABLES, ApplyStats,
                                         MirrorMark, StagedProjection)
from mlmd_log.projections.values import STRUCT_PREFIX
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.schema import ARTIFACT, EXECUTION, NODE_KINDS, NodeKind
from mlmd_log.urls import parse_projection_url, without_password

LOG = logging.getLogger("mlmd_log.duckdb")

# -- schema ------------------------------------------------------------------
# MLMD v10 tables with the same names and columns (in the same order) as ddl.SQLITE_MLMD,
# in DuckDB types. No PRIMARY KEY / UNIQUE: the staging SQLite enforces them, and DuckDB's
# constraint indexes slow bulk loads and dislike delete + re-insert of a key in one transaction.

# The per-type tables this module made (so a refresh drops exactly those), each with the
# SELECT that fills it: a type whose SELECT is unchanged keeps its table. (Files of an
# earlier version hold views here, with no definition: they are replaced by tables.)
TYPE_VIEWS_DDL = ('CREATE TABLE IF NOT EXISTS "mlmdlog_type_view" ("view_name" VARCHAR NOT NULL, '
                  '"type_id" INTEGER NOT NULL)')
TYPE_VIEWS_DEFINITION = 'ALTER TABLE "mlmdlog_type_view" ADD COLUMN IF NOT EXISTS "definition" VARCHAR'
# The SCHEMA_DIGEST of the version that last opened the file for writing.
DIGEST_DDL = 'CREATE TABLE IF NOT EXISTS "mlmdlog_duckdb_schema" ("digest" VARCHAR NOT NULL)'
# Who belongs to which context, with the member's type (which never changes): the links
# (Attribution, Association) past ``link_id`` are added at each mirror.
MEMBERS_DDL = ('CREATE TABLE IF NOT EXISTS "mlmdlog_context_member" ("link_id" INTEGER NOT NULL, '
               '"context_id" INTEGER NOT NULL, "node_kind" VARCHAR NOT NULL, "node_id" INTEGER NOT NULL, '
               '"node_type_id" INTEGER)')


def schema() -> list[str]:
    """DDL of the MLMD tables and our bookkeeping in DuckDB."""
    out = []
    for table, columns in COLUMNS.items():
        cols = ", ".join(f'"{c}" {t}' for c, t in columns)
        out.append(f'CREATE TABLE IF NOT EXISTS "{table}" ({cols})')
    return out + [bookkeeping.DUCKDB_CHECKPOINT_DDL, TYPE_VIEWS_DDL, TYPE_VIEWS_DEFINITION, MEMBERS_DDL, DIGEST_DDL]


# -- moving rows into DuckDB -----------------------------------------------------


def _param(duck_type: str, value: Any) -> Any:
    """A staging (sqlite3) value as the Python value DuckDB should bind for this column."""
    if value is None:
        return None
    if duck_type == "BLOB":
        return value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if duck_type == "BOOLEAN":
        return bool(value)
    if duck_type == "DOUBLE":
        return float(value)
    if duck_type == "VARCHAR":
        return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else str(value)
    return int(value)


def _json_value(duck_type: str, value: Any) -> Any:
    """A staging value as JSON that ``_json_select`` turns back into the exact DuckDB value."""
    value = _param(duck_type, value)
    if value is None:
        return None
    if duck_type == "BLOB":
        return base64.b64encode(value).decode("ascii")
    if duck_type == "DOUBLE":
        return repr(value)  # text: exact round trip, and nan/inf survive (JSON has no spelling for them)
    return value


def _json_select(columns: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """(read_json columns struct, SELECT list) for a JSON temp file of ``columns``."""
    spec, select = [], []
    for i, (_, duck_type) in enumerate(columns):
        json_type = "VARCHAR" if duck_type in ("BLOB", "DOUBLE") else duck_type
        spec.append(f"'c{i}': '{json_type}'")
        if duck_type == "BLOB":
            select.append(f"from_base64(c{i})")
        elif duck_type == "DOUBLE":
            select.append(f"CAST(c{i} AS DOUBLE)")
        else:
            select.append(f"c{i}")
    return "{" + ", ".join(spec) + "}", ", ".join(select)


def _ndjson_lines(columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]) -> Iterable[str]:
    """One JSON object per row (keys c0.., plus seq); only BLOB/DOUBLE/BOOLEAN values need converting
    (sqlite3 already returns int and str for the other columns)."""
    keys = [f"c{i}" for i in range(len(columns))]
    convert = [(i, t) for i, (_, t) in enumerate(columns) if t in ("BLOB", "DOUBLE", "BOOLEAN")]
    dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, check_circular=False).encode
    for seq, row in enumerate(rows):
        values = list(row)
        for i, duck_type in convert:
            if values[i] is not None:
                values[i] = _json_value(duck_type, values[i])
        record = dict(zip(keys, values))
        record["seq"] = seq
        yield dumps(record) + "\n"


class _Loader:
    """Inserts rows into a DuckDB table: bulk through a JSON file, small sets by VALUES."""

    def __init__(self, con: Any, small_rows: int, tmp_dir: Optional[str]):
        self.con = con
        self.small_rows = small_rows
        self.tmp_dir = tmp_dir

    def insert(self, table: str, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        names = ", ".join(f'"{c}"' for c, _ in columns)
        if len(rows) <= self.small_rows:
            marks = "(" + ", ".join("?" for _ in columns) + ")"
            params = [_param(t, v) for row in rows for (_, t), v in zip(columns, row)]
            self.con.execute(f'INSERT INTO "{table}" ({names}) VALUES ' + ", ".join([marks] * len(rows)), params)
            return len(rows)
        fd, path = tempfile.mkstemp(prefix="mlmdlog-mirror-", suffix=".ndjson", dir=self.tmp_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.writelines(_ndjson_lines(columns, rows))
            spec, select = _json_select(columns)
            spec = spec[:-1] + ", 'seq': 'BIGINT'}"
            quoted = path.replace("'", "''")
            # ORDER BY seq: rows land in staging order, so DuckDB's rowid order (which the
            # EventPath and ParentContext reads use) is the staging rowid order.
            self.con.execute(f'INSERT INTO "{table}" ({names}) SELECT {select} FROM read_json('
                             f"'{quoted}', format = 'newline_delimited', columns = {spec}) ORDER BY seq")
        finally:
            os.unlink(path)
        return len(rows)


# -- views ---------------------------------------------------------------------
_BASE_VIEW_COLUMNS = {
    "artifact": ("id", "name", "uri", "state", "external_id", "create_time_since_epoch",
                 "last_update_time_since_epoch"),
    "execution": ("id", "name", "last_known_state", "external_id", "create_time_since_epoch",
                  "last_update_time_since_epoch"),
    "context": ("id", "name", "external_id", "create_time_since_epoch", "last_update_time_since_epoch"),
}
# Which value column holds a declared property of each PropertyType.
_VALUE_COLUMN = {pb.INT: "int_value", pb.DOUBLE: "double_value", pb.STRING: "string_value",
                 pb.STRUCT: "string_value", pb.PROTO: "proto_value", pb.BOOLEAN: "bool_value"}


def one_line(exc: BaseException) -> str:
    """A DuckDB error's message on one line: without the quoted SQL and caret lines it
    adds below, which a one-line CLI error or log line cannot show."""
    lines = [line.strip() for line in str(exc).splitlines()]
    kept = [line for line in lines if line and not line.startswith("LINE ") and set(line) != {"^"}]
    return " ".join(kept)


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sanitize(name: str) -> str:
    """A name reduced to [A-Za-z0-9_] (runs of anything else become one underscore)."""
    return re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_") or "x"


def _unique(candidate: str, taken: set[str], fallback: str) -> str:
    """``candidate`` unless taken (case-insensitively: DuckDB identifiers are), else ``fallback``[_n]."""
    for name in (candidate, fallback):
        if name.lower() not in taken:
            taken.add(name.lower())
            return name
    n = 2
    while f"{fallback}_{n}".lower() in taken:
        n += 1
    taken.add(f"{fallback}_{n}".lower())
    return f"{fallback}_{n}"


def _flat_view(node: NodeKind) -> str:
    p = "P"  # the property table's alias
    struct = f'starts_with({p}."string_value", {_sql_text(STRUCT_PREFIX)})'
    return f"""CREATE OR REPLACE VIEW "{node.name}_properties_flat" AS
SELECT {p}."{node.owner}", N."type_id", T."name" AS "type_name", {p}."name" AS "property_name",
    {p}."is_custom_property" <> 0 AS "is_custom_property",
    CASE WHEN {p}."int_value" IS NOT NULL THEN 'int'
         WHEN {p}."double_value" IS NOT NULL THEN 'double'
         WHEN {p}."string_value" IS NOT NULL AND {struct} THEN 'struct'
         WHEN {p}."string_value" IS NOT NULL THEN 'string'
         WHEN {p}."proto_value" IS NOT NULL THEN 'proto'
         WHEN {p}."bool_value" IS NOT NULL THEN 'bool'
         WHEN {p}."byte_value" IS NOT NULL THEN 'bytes' END AS "value_type",
    {p}."int_value", {p}."double_value",
    CASE WHEN NOT {struct} THEN {p}."string_value" END AS "string_value",
    {p}."bool_value",
    CASE WHEN {struct} THEN {p}."string_value" END AS "struct_value",
    {p}."proto_value",
    COALESCE(CAST({p}."int_value" AS VARCHAR), CAST({p}."double_value" AS VARCHAR),
             {p}."string_value", CAST({p}."bool_value" AS VARCHAR),
             CAST({p}."proto_value" AS VARCHAR)) AS "value"
FROM "{node.prop_table}" AS {p}
JOIN "{node.table}" AS N ON N."id" = {p}."{node.owner}"
LEFT JOIN "Type" AS T ON T."id" = N."type_id"
"""


def _lineage_view() -> str:
    names = [(v.number, v.name) for v in pb.Event.Type.DESCRIPTOR.values]
    outputs = ", ".join(str(n) for n, name in names if name.endswith("OUTPUT"))
    type_names = " ".join(f"WHEN {n} THEN {_sql_text(name)}" for n, name in names)
    is_output = f'E."type" IN ({outputs})'
    return f"""CREATE OR REPLACE VIEW "lineage_edges" AS
SELECT E."id" AS "event_id",
    CASE WHEN {is_output} THEN 'execution' ELSE 'artifact' END AS "source_kind",
    CASE WHEN {is_output} THEN E."execution_id" ELSE E."artifact_id" END AS "source_id",
    CASE WHEN {is_output} THEN 'artifact' ELSE 'execution' END AS "target_kind",
    CASE WHEN {is_output} THEN E."artifact_id" ELSE E."execution_id" END AS "target_id",
    E."artifact_id", E."execution_id", E."type" AS "event_type",
    CASE E."type" {type_names} END AS "event_type_name",
    E."milliseconds_since_epoch" AS "time_ms",
    make_timestamp(E."milliseconds_since_epoch" * 1000) AS "event_time"
FROM "Event" AS E"""


def _history_view() -> str:
    """Who changed what, when: one row per (record, entity it touched); a record that
    touched nothing (a rejected put of new nodes) has one row with no entity."""
    names = " ".join(f"WHEN {code} THEN {_sql_text(errors.exception_type_from_error_code(code).__name__)}"
                     for code in range(1, 17))
    return f"""CREATE OR REPLACE VIEW "history" AS
SELECT make_timestamp(R."time_ms" * 1000) AS "time", R."log_offset", R."record_id",
    concat_ws(' ', concat_ws('@', R."user_name", R."host"), 'pid ' || R."pid", '(' || R."client_name" || ')')
        AS "producer",
    R."user_name", R."host", R."pid", R."client_name", R."rpc",
    CASE WHEN R."error_code" = 0 THEN 'ok' ELSE CASE R."error_code" {names} ELSE 'UnknownError' END END AS "outcome",
    R."error_code", R."error_message", T."kind", T."entity_id"
FROM "{history.RECORD_TABLE}" AS R
LEFT JOIN "{history.TOUCH_TABLE}" AS T ON T."log_offset" = R."log_offset"
"""


# The link table that makes each node kind a member of a context.
_MEMBERSHIP_LINKS = ((ARTIFACT, "Attribution"), (EXECUTION, "Association"))
# Tables whose rows a mirror notes by id (first column), for the tables kept from them.
_TRACKED = frozenset([n.table for n in NODE_KINDS] + [link for _, link in _MEMBERSHIP_LINKS])


def _membership_view() -> str:
    """Over the membership table: only small tables (contexts, types) are joined at query
    time, where joining the links to the node tables cost a 200k-row join per query."""
    return """CREATE OR REPLACE VIEW "context_members" AS
SELECT M."context_id", C."name" AS "context_name", CT."name" AS "context_type", M."node_kind", M."node_id",
    NT."name" AS "node_type"
FROM "mlmdlog_context_member" AS M
JOIN "Context" AS C ON C."id" = M."context_id"
LEFT JOIN "Type" AS CT ON CT."id" = C."type_id"
LEFT JOIN "Type" AS NT ON NT."id" = M."node_type_id\""""


def _new_members(node: NodeKind, link: str) -> str:
    """INSERT of the membership rows of ``link`` rows not yet in the membership table."""
    kind = _sql_text(node.name)
    return (f'INSERT INTO "mlmdlog_context_member" SELECT L."id", L."context_id", {kind}, L."{node.owner}", '
            f'N."type_id" FROM "{link}" AS L LEFT JOIN "{node.table}" AS N ON N."id" = L."{node.owner}" '
            f'WHERE L."id" > (SELECT coalesce(max("link_id"), 0) FROM "mlmdlog_context_member" '
            f'WHERE "node_kind" = {kind}) ORDER BY L."id"')


@dataclass(frozen=True)
class TypeTable:
    """The table of one type's nodes, a column per declared property, and how it is filled."""

    name: str
    type_id: int
    node: NodeKind
    definition: str  # the SELECT of all its rows
    changed: str  # the SELECT of the rows of the nodes in "mlmdlog_changed_ids"


_CHANGED = 'SELECT "id" FROM "mlmdlog_changed_ids"'


def _type_select(node: NodeKind, type_id: int, props: Sequence[tuple[str, int, str]], only_changed: bool) -> str:
    """The rows of a type's table: its nodes, with each declared property ((name, data type,
    column)) pivoted out of the property table first (grouped by node id alone)."""
    base = ", ".join(f'N."{c}"' for c in _BASE_VIEW_COLUMNS[node.name])
    nodes = f'SELECT "id" FROM "{node.table}" WHERE "type_id" = {int(type_id)}'
    where = f'N."type_id" = {int(type_id)}'
    if only_changed:
        nodes += f' AND "id" IN ({_CHANGED})'
        where += f' AND N."id" IN ({_CHANGED})'
    if not props:
        return f'SELECT {base} FROM "{node.table}" AS N WHERE {where} ORDER BY N."id"'
    pivot = ", ".join(f'max("{_VALUE_COLUMN.get(data_type, "string_value")}") FILTER (WHERE "name" = '
                      f'{_sql_text(prop)}) AS "p{i}"' for i, (prop, data_type, _) in enumerate(props))
    columns = ", ".join(f'P."p{i}" AS "{column}"' for i, (_, _, column) in enumerate(props))
    return (f'SELECT {base}, {columns} FROM "{node.table}" AS N LEFT JOIN (SELECT "{node.owner}", {pivot} '
            f'FROM "{node.prop_table}" WHERE "is_custom_property" = 0 AND "{node.owner}" IN ({nodes}) '
            f'GROUP BY "{node.owner}") AS P ON P."{node.owner}" = N."id" WHERE {where} ORDER BY N."id"')


def type_tables(types: Sequence[tuple], properties: Sequence[tuple]) -> list[TypeTable]:
    """A TypeTable for every type (rows of Type: id, name, version, type_kind; of
    TypeProperty: type_id, name, data_type)."""
    props_of: dict[int, list[tuple[str, int]]] = {}
    for type_id, name, data_type in sorted(properties, key=lambda r: (r[0], r[1])):
        props_of.setdefault(type_id, []).append((name, data_type))
    by_kind = {n.type_kind: n for n in NODE_KINDS}
    taken: set[str] = set()
    out = []
    for type_id, name, version, type_kind in sorted(types, key=lambda r: r[0]):
        node = by_kind.get(type_kind)
        if node is None:
            continue
        base = f"{node.plural}_{sanitize(name)}" + (f"_{sanitize(version)}" if version else "")
        table = _unique(base, taken, f"{base}_{type_id}")
        col_taken = {c.lower() for c in _BASE_VIEW_COLUMNS[node.name]}
        props = [(prop, data_type, _unique(sanitize(prop), col_taken, f"property_{sanitize(prop)}"))
                 for prop, data_type in props_of.get(type_id, [])]
        out.append(TypeTable(table, type_id, node, _type_select(node, type_id, props, False),
                             _type_select(node, type_id, props, True)))
    return out


def _views() -> list[str]:
    return [*(_flat_view(node) for node in NODE_KINDS), _lineage_view(), _membership_view(), _history_view()]


# What this version's schema and views are (kept in the file by create_schema): a reader
# that finds another knows the file must be opened for writing once to be brought up to it.
SCHEMA_DIGEST = hashlib.sha256("\n".join(schema() + _views()).encode()).hexdigest()[:16]


def schema_is_current(con: Any) -> bool:
    """Whether the file was last opened for writing by a version with this schema and these views."""
    import duckdb

    try:
        row = con.execute('SELECT "digest" FROM "mlmdlog_duckdb_schema"').fetchone()
    except duckdb.CatalogException:  # (a file from before the digest, or no analytics file)
        return False
    return row is not None and row[0] == SCHEMA_DIGEST


# -- the projection ----------------------------------------------------------------
class DuckDbMirrorTarget:
    """The target side of the mirror in DuckDB: rows through ``_Loader``, then the per-type
    and membership tables brought up to them (``after_copy``). One process writes a DuckDB
    file (DuckDB locks it), so ``mark`` needs no row lock."""

    name = "DuckDB"
    tables = tuple(TABLES) + tuple(HISTORY_TABLES)
    appends = APPEND_BY_KEY + HISTORY_APPENDS
    read_forms = False  # (reads on DuckDB build nodes from the MLMD tables)
    infrastructure_errors: tuple = ()

    def __init__(self, con: Any, small_rows: int, tmp_dir: Optional[str]):
        self.con = con
        self._loader = _Loader(con, small_rows, tmp_dir)
        self._changed: dict[str, list[int]] = {}  # node or link table -> ids written in this transaction

    def create_schema(self) -> None:
        self.con.begin()
        try:
            for stmt in schema():
                self.con.execute(stmt)
            upgraded = not schema_is_current(self.con)
            for stmt in _views():
                self.con.execute(stmt)
            if self._derived_tables_missing():
                self._rebuild_derived_tables()
            elif upgraded:  # (per-type tables another version built are rebuilt if it built them otherwise)
                self._refresh_type_tables()
            self.con.execute('DELETE FROM "mlmdlog_duckdb_schema"')
            self.con.execute('INSERT INTO "mlmdlog_duckdb_schema" VALUES (?)', (SCHEMA_DIGEST,))
            self.con.commit()
        except BaseException:
            self.con.rollback()
            raise

    def reconnect(self) -> None:
        pass  # (an embedded database)

    def close(self) -> None:
        self.con.close()

    def begin(self) -> None:
        self._changed = {}
        self.con.begin()

    def commit(self) -> None:
        self.con.commit()

    def rollback(self) -> None:
        self.con.rollback()

    def applied_offset(self) -> int:
        checkpoint = bookkeeping.read_duckdb_checkpoint(self.con)
        return checkpoint[0] if checkpoint else 0

    def mark(self, lock: bool = False) -> tuple[Optional[int], Optional[MirrorMark]]:
        checkpoint = bookkeeping.read_duckdb_checkpoint(self.con)
        if checkpoint is None:
            return None, None
        return checkpoint[0], MirrorMark(*checkpoint)

    def max_key(self, table: str, column: str) -> int:
        row = self.con.execute(f'SELECT max("{column}") FROM "{table}"').fetchone()
        return int(row[0]) if row and row[0] is not None else -1

    def rows(self, table: str, columns: Sequence[str]) -> list[tuple]:
        names = ", ".join(f'"{c}"' for c in columns)
        return self.con.execute(f'SELECT {names} FROM "{table}"').fetchall()

    def clear(self, table: str) -> None:
        self.con.execute(f'DELETE FROM "{table}"')

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        if table in _TRACKED:  # (their id is the first column)
            self._changed.setdefault(table, []).extend(row[0] for row in rows)
        types = dict(COLUMNS[table])
        return self._loader.insert(table, [(c, types[c]) for c in columns], rows)

    def delete_nodes(self, node: NodeKind, ids: Sequence[int]) -> None:
        """Deletes these nodes and their property rows (ids in a temp table: any number of them)."""
        self.con.execute('CREATE OR REPLACE TEMP TABLE "mlmdlog_mirror_ids" ("id" INTEGER)')
        self._loader.insert("mlmdlog_mirror_ids", (("id", "INTEGER"),), [(i,) for i in ids])
        self.con.execute(f'DELETE FROM "{node.table}" WHERE "id" IN (SELECT "id" FROM "mlmdlog_mirror_ids")')
        self.con.execute(f'DELETE FROM "{node.prop_table}" WHERE "{node.owner}" IN '
                         '(SELECT "id" FROM "mlmdlog_mirror_ids")')
        self.con.execute('DROP TABLE "mlmdlog_mirror_ids"')

    def write_mark(self, offset: int, last_time_ms: int, parent_context_rowid: int) -> None:
        bookkeeping.write_duckdb_checkpoint(self.con, offset, last_time_ms, parent_context_rowid)

    def after_copy(self, rewritten: set[str], full: bool) -> None:
        """Brings the per-type tables and the membership table up to the rows just copied."""
        if full:
            self._rebuild_derived_tables()
        else:
            self._update_type_tables(self._refresh_type_tables() if rewritten - {"MLMDEnv"} else {})
            for node, link in _MEMBERSHIP_LINKS:
                if self._changed.get(link):
                    self.con.execute(_new_members(node, link))
        self._changed = {}

    def _derived_tables_missing(self) -> bool:
        """A file an earlier version wrote: per-type views (no definition kept), no membership rows."""
        stale = self.con.execute('SELECT count(*) FROM "mlmdlog_type_view" WHERE "definition" IS NULL').fetchone()[0]
        links = self.con.execute('SELECT (SELECT count(*) FROM "Attribution") + (SELECT count(*) FROM "Association")'
                                 ).fetchone()[0]
        members = self.con.execute('SELECT count(*) FROM "mlmdlog_context_member"').fetchone()[0]
        return bool(stale) or (links > 0 and members == 0)

    def _rebuild_derived_tables(self) -> None:
        """The per-type tables and the membership table anew from the MLMD tables."""
        self._refresh_type_tables(full=True)
        self.con.execute('DELETE FROM "mlmdlog_context_member"')
        for node, link in _MEMBERSHIP_LINKS:
            self.con.execute(_new_members(node, link))

    def _type_tables(self) -> list[TypeTable]:
        types = self.con.execute('SELECT "id", "name", "version", "type_kind" FROM "Type"').fetchall()
        props = self.con.execute('SELECT "type_id", "name", "data_type" FROM "TypeProperty"').fetchall()
        return type_tables(types, props)

    def _refresh_type_tables(self, full: bool = False) -> dict[int, TypeTable]:
        """Rebuilds the tables of new or changed types (all of them when ``full``) and drops
        those of types gone; returns the tables it built, by type id."""
        held = {type_id: (name, definition) for name, type_id, definition in self.con.execute(
            'SELECT "view_name", "type_id", "definition" FROM "mlmdlog_type_view"').fetchall()}
        wanted = self._type_tables()
        keep = set() if full else {t.type_id for t in wanted if held.get(t.type_id) == (t.name, t.definition)}
        for type_id, (name, _) in held.items():
            if type_id not in keep:
                self._drop(name)
        self.con.execute('DELETE FROM "mlmdlog_type_view"')
        for table in wanted:
            if table.type_id not in keep:
                self.con.execute(f'CREATE TABLE "{table.name}" AS {table.definition}')
            self.con.execute('INSERT INTO "mlmdlog_type_view" VALUES (?, ?, ?)',
                             (table.name, table.type_id, table.definition))
        return {t.type_id: t for t in wanted if t.type_id not in keep}

    def _drop(self, name: str) -> None:
        """Drops our table or view ``name`` (DuckDB refuses DROP VIEW of a table, even IF EXISTS)."""
        row = self.con.execute("SELECT table_type FROM information_schema.tables WHERE table_catalog = "
                               "current_database() AND table_schema = 'main' AND table_name = ?", (name,)).fetchone()
        if row is not None:
            self.con.execute(f'DROP {"VIEW" if row[0] == "VIEW" else "TABLE"} "{name}"')

    def _update_type_tables(self, rebuilt: dict[int, TypeTable]) -> None:
        """Rewrites the rows of the nodes copied in this transaction in their type's table
        (tables ``rebuilt`` just now already hold them)."""
        tables = None
        for node in NODE_KINDS:
            ids = self._changed.get(node.table)
            if not ids:
                continue
            self.con.execute('CREATE OR REPLACE TEMP TABLE "mlmdlog_changed_ids" ("id" INTEGER)')
            self._loader.insert("mlmdlog_changed_ids", (("id", "INTEGER"),), [(i,) for i in ids])
            touched = {r[0] for r in self.con.execute(
                f'SELECT DISTINCT "type_id" FROM "{node.table}" WHERE "id" IN ({_CHANGED})').fetchall()}
            tables = self._type_tables() if tables is None else tables
            for table in tables:
                if table.node is node and table.type_id in touched and table.type_id not in rebuilt:
                    self.con.execute(f'DELETE FROM "{table.name}" WHERE "id" IN ({_CHANGED})')
                    self.con.execute(f'INSERT INTO "{table.name}" {table.changed}')
            self.con.execute('DROP TABLE "mlmdlog_changed_ids"')


class DuckDbProjection(StagedProjection):
    """MLMD tables + analytics views in DuckDB, fed from a log through a SQLite staging projection."""

    def __init__(self, duckdb_path: str, staging_sqlite_path: Optional[str] = None,
                 small_rows: int = 64, tmp_dir: Optional[str] = None):
        try:
            import duckdb
        except ImportError as exc:  # the optional extra
            raise errors.FailedPreconditionError(
                "The DuckDB projection needs duckdb: pip install 'mlmd-log[duckdb]'") from exc
        self.path = duckdb_path
        try:
            self.con = duckdb.connect(duckdb_path)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:  # (held by another process, or read-only here)
            raise errors.FailedPreconditionError(
                f"Cannot open the DuckDB projection {duckdb_path} for writing: {one_line(exc)}") from exc
        super().__init__(DuckDbMirrorTarget(self.con, small_rows, tmp_dir),
                         staging_sqlite_path or duckdb_path + ".staging.sqlite")

    @property
    def connection(self) -> Any:
        """The DuckDB connection (reads: ``Reader(p.connection, dialects.DUCKDB)``)."""
        return self.con

    def reader(self) -> Any:
        from mlmd_log.query.reader import Reader
        return Reader(self.con, DUCKDB)

    def type_views(self) -> dict[str, int]:
        """{table name: type id} of the per-type tables."""
        return {v: t for v, t in self.con.execute(
            'SELECT "view_name", "type_id" FROM "mlmdlog_type_view" ORDER BY "type_id"').fetchall()}


# -- command line ----------------------------------------------------------------------
def duckdb_path(url: str) -> str:
    """``duckdb:///PATH`` (as ``sqlite:///PATH``: relative unless PATH starts with /) or a plain path."""
    where = parse_projection_url(url, bare="duckdb")
    if where.kind != "duckdb":
        raise errors.InvalidArgumentError(f"Expected duckdb:///PATH or a path, got {without_password(url)!r}")
    return where.path


def project(log: Any, projection: DuckDbProjection, batch_size: int = 20000, follow: bool = False,
            idle_sleep: float = 0.5) -> ApplyStats:
    """Follows ``log`` into ``projection`` up to the log's end (``follow``: until SIGTERM or
    SIGINT), with a line on stderr for each batch mirrored."""
    def run(follower: Follower) -> None:
        sink, shown = follower.sink, [0, 0]  # (records and rejected when last shown)

        def show(status: FollowStatus) -> None:
            if not sink.copied and status.records_applied == shown[0]:
                return
            print(f"duckdb: {applied_through(status.applied_offset)}, the log ends at {status.end_offset} "
                  f"({status.records_applied - shown[0]} records, {status.rejected - shown[1]} rejected, "
                  f"{sum(sink.copied.values())} rows mirrored, {status.last_batch_seconds:.2f}s)", file=sys.stderr)
            shown[:] = status.records_applied, status.rejected
            sink.copied = {}

        follower.idle_sleep = idle_sleep
        follower.stop_on_signals()
        follower.run(until_caught_up=not follow, report_every=0, on_report=show)

    return projection.follow(log, batch_size, run)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m mlmd_log.projections.duckdb --log LOG --into PATH [--follow]``."""
    from mlmd_log.locations import open_log

    parser = argparse.ArgumentParser(prog="python -m mlmd_log.projections.duckdb",
                                     description="Project an mlmd-log log into DuckDB (MLMD tables + "
                                                 "analytics views), through a SQLite staging projection.")
    parser.add_argument("--log", required=True, help="FileLog directory, file:///DIR or kafka://HOST:PORT/TOPIC")
    parser.add_argument("--into", required=True, help="duckdb:///PATH or a path to the DuckDB file")
    parser.add_argument("--staging", default=None, help="staging SQLite file (default: PATH.staging.sqlite)")
    parser.add_argument("--batch-size", type=int, default=20000)
    parser.add_argument("--follow", action="store_true", help="keep applying new records until SIGTERM/SIGINT")
    parser.add_argument("--idle-sleep", type=float, default=0.5, help="seconds between polls when caught up")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    log = open_log(args.log, readonly=True)
    try:
        with DuckDbProjection(duckdb_path(args.into), args.staging) as projection:
            project(log, projection, args.batch_size, args.follow, args.idle_sleep)
    finally:
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
