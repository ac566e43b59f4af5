"""History answers from a SQLite projection's history tables (projections/history.py).

- ``entity_history``: every record that touched one node or type, oldest first, with who,
  when, the outcome and what changed (old and new value of each column and property,
  and the links the record added).
- ``as_of_connection``: a read-only connection on which MLMD's tables are views of the
  versions valid at offset N: temporary views shadow the tables of the same name, so the
  whole read API (filters, lineage) runs unchanged and answers as a replay of ``[0, N)``.
- ``changes_between``: what changed from offset A to offset B, read off the same versions.
"""
from __future__ import annotations

import base64
import datetime
import sqlite3
from dataclasses import replace
from typing import Any, Callable, Optional

from mlmd_log import errors
from mlmd_log.dialects import SQLITE
from mlmd_log.projections import bookkeeping
from mlmd_log.projections.history import (BY_TABLE, ENTITY_KINDS, HISTORY_FROM, RECORD_TABLE, TOUCH_TABLE,
                                          VERSIONED, table_columns)
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.schema import BY_NAME

#: Reads on an as-of connection: MLMD's tables only (the derived tables hold today's rows).
AS_OF_DIALECT = replace(SQLITE, read_forms=False, reversed_uris=False)

_TYPE_KIND_OF = {"artifact_type": "artifact", "execution_type": "execution", "context_type": "context"}
_EVENT_TYPES = {0: "UNKNOWN", 1: "DECLARED_OUTPUT", 2: "DECLARED_INPUT", 3: "INPUT", 4: "OUTPUT",
                5: "INTERNAL_INPUT", 6: "INTERNAL_OUTPUT", 7: "PENDING_OUTPUT"}
_VALUE_COLUMNS = ("int_value", "double_value", "string_value", "byte_value", "proto_value", "bool_value")


def _check_kind(kind: str) -> None:
    if kind not in ENTITY_KINDS:
        raise errors.InvalidArgumentError(f"Unknown kind {kind!r}: one of {', '.join(ENTITY_KINDS)}")


def whole_number(value: Any, what: str) -> int:
    """``value`` as an int (an offset, an id, a limit); InvalidArgumentError for anything
    else: a string, NaN, a float with a fraction, a bool, a number past SQLite's 64 bits."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise errors.InvalidArgumentError(f"{what} must be a whole number, not {value!r}")
    if not -2 ** 63 <= value < 2 ** 63:
        raise errors.InvalidArgumentError(f"{what} {value} is out of range")
    return value


def history_from(conn: Any) -> int:
    """The first offset this projection's history knows (0 unless it was added to an older one)."""
    row = conn.execute("SELECT `value` FROM `mlmdlog_meta` WHERE `name` = ?", (HISTORY_FROM,)).fetchone()
    if row is None:
        raise errors.FailedPreconditionError(
            "This projection keeps no history (a staging or MySQL projection): replay the log into a SQLite "
            "projection (mlmd-log replay --into sqlite:///history.db) to ask it")
    return int(row[0])


def applied_offset(conn: Any) -> int:
    return bookkeeping.next_offset(_Rows(conn))


def iso(time_ms: int) -> str:
    return datetime.datetime.fromtimestamp(time_ms / 1000, tz=datetime.timezone.utc).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def offset_at_time(conn: Any, when: datetime.datetime) -> int:
    """N such that ``[0, N)`` are the records applied by ``when`` (their running time <= it)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    time_ms = int(when.timestamp() * 1000)
    row = conn.execute(f"SELECT `log_offset` FROM `{RECORD_TABLE}` WHERE `applied_ms` > ? "
                       "ORDER BY `applied_ms`, `log_offset` LIMIT 1", (time_ms,)).fetchone()
    return row[0] if row else applied_offset(conn)


# -- as of --------------------------------------------------------------------------
def check_as_of(conn: Any, offset: int) -> None:
    offset = whole_number(offset, "An offset")
    start, end = history_from(conn), applied_offset(conn)
    if offset < 0 or offset > end:
        raise errors.OutOfRangeError(f"Offset {offset} is outside the applied log [0, {end}]")
    if offset < start:
        raise errors.FailedPreconditionError(
            f"This projection's history starts at offset {start} (it was made before it kept history); "
            f"replay the log into a new projection to see offset {offset}")


def add_as_of_views(conn: sqlite3.Connection, offset: int) -> None:
    """Shadows each of MLMD's versioned tables with a temporary view of the versions valid
    at ``offset`` (EventPath keeps its insertion order as ``rowid``)."""
    for v in VERSIONED:
        cols = table_columns(_Rows(conn), v.table)
        listed = ", ".join(f"`{c}`" for c in cols)
        order = ", rowid AS rowid" if not v.key else ""
        conn.execute(f"CREATE TEMP VIEW `{v.table}` AS SELECT {listed}{order} FROM main.`{v.versions}` "
                     f"WHERE `v_from` < {int(offset)} AND (`v_to` IS NULL OR `v_to` >= {int(offset)})")


class _Rows:
    """The one method table_columns needs, on a bare sqlite3 connection."""

    def __init__(self, conn: Any):
        self.conn = conn

    def rows(self, text: str, params: tuple = ()) -> list:
        return self.conn.execute(text, params).fetchall()

    def one(self, text: str, params: tuple = ()) -> Optional[tuple]:
        return self.conn.execute(text, params).fetchone()


def as_of_connection(open_readonly: Callable[[], sqlite3.Connection], offset: int) -> sqlite3.Connection:
    """A new read-only connection answering every read as of ``offset``."""
    conn = open_readonly()
    try:
        check_as_of(conn, offset)
        add_as_of_views(conn, offset)
    except BaseException:
        conn.close()
        raise
    return conn


# -- one entity's history -----------------------------------------------------------
def _value(row: dict) -> Any:
    for column in _VALUE_COLUMNS:
        value = row.get(column)
        if value is not None:
            if isinstance(value, bytes):
                return {"bytes_base64": base64.b64encode(value).decode("ascii")}
            return bool(value) if column == "bool_value" else value
    return None


def _data_type(row: dict) -> str:
    """A type property's data type by its name (DOUBLE), as MLMD's protos spell it."""
    try:
        return pb.PropertyType.Name(row["data_type"])
    except ValueError:
        return str(row["data_type"])


def _dicts(cursor: Any) -> list[dict]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


class _Versions:
    """Reads versions of one entity's rows written or ended by one record."""

    def __init__(self, conn: Any):
        self.conn = conn

    def written(self, table: str, where: str, params: tuple, offset: int) -> list[dict]:
        v = BY_TABLE[table]
        return _dicts(self.conn.execute(f'SELECT * FROM "{v.versions}" WHERE {where} AND "v_from" = ?',
                                        (*params, offset)))

    def ended(self, table: str, where: str, params: tuple, offset: int) -> list[dict]:
        v = BY_TABLE[table]
        if v.key == ("id",):  # (one row: its version before this record, if this record ended it)
            rows = _dicts(self.conn.execute(f'SELECT * FROM "{v.versions}" WHERE {where} AND "v_from" < ? '
                                            'ORDER BY "v_from" DESC LIMIT 1', (*params, offset)))
            return [r for r in rows if r["v_to"] == offset]
        return _dicts(self.conn.execute(f'SELECT * FROM "{v.versions}" WHERE {where} AND "v_to" = ? '
                                        'AND "v_from" < ?', (*params, offset, offset)))


def _strip(row: Optional[dict]) -> Optional[dict]:
    if row is None:
        return None
    return {k: v for k, v in row.items() if k not in ("v_from", "v_to")}


def _field_changes(old: Optional[dict], new: Optional[dict], skip: tuple = ()) -> dict:
    old, new = _strip(old) or {}, _strip(new) or {}
    out = {}
    for column in sorted(set(old) | set(new)):
        if column in skip:
            continue
        if old.get(column) != new.get(column):
            out[column] = [old.get(column), new.get(column)]
    return out


def _property_changes(ended: list[dict], written: list[dict], value: Callable[[dict], Any]) -> tuple[dict, dict]:
    """(properties, custom_properties): name -> [old, new] for each property that changed."""
    before = {(r["name"], bool(r.get("is_custom_property"))): value(r) for r in ended}
    after = {(r["name"], bool(r.get("is_custom_property"))): value(r) for r in written}
    plain: dict = {}
    custom: dict = {}
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            (custom if key[1] else plain)[key[0]] = [before.get(key), after.get(key)]
    return plain, custom


def _links_added(versions: _Versions, kind: str, entity_id: int, offset: int) -> list[dict]:
    out = []
    if kind in ("artifact", "execution"):
        for event in versions.written("Event", f'"{kind}_id" = ?', (entity_id,), offset):
            path = versions.written("EventPath", '"event_id" = ?', (event["id"],), offset)
            out.append({"link": "event", "id": event["id"], "artifact_id": event["artifact_id"],
                        "execution_id": event["execution_id"],
                        "type": _EVENT_TYPES.get(event["type"], str(event["type"])),
                        "path": [p["step_index"] if p["is_index_step"] else p["step_key"] for p in path]})
    for table, column in (("Attribution", "artifact_id"), ("Association", "execution_id")):
        if kind in ("context", column[:-3]):
            where = '"context_id" = ?' if kind == "context" else f'"{column}" = ?'
            for link in versions.written(table, where, (entity_id,), offset):
                out.append({"link": table.lower(), "id": link["id"], "context_id": link["context_id"],
                            column: link[column]})
    if kind == "context":
        for link in versions.written("ParentContext", '("context_id" = ? OR "parent_context_id" = ?)',
                                     (entity_id, entity_id), offset):
            out.append({"link": "parent_context", "child_id": link["context_id"],
                        "parent_id": link["parent_context_id"]})
    if kind.endswith("_type"):
        for link in versions.written("ParentType", '"type_id" = ?', (entity_id,), offset):
            out.append({"link": "parent_type", "type_id": link["type_id"], "parent_type_id": link["parent_type_id"]})
    return out


def _changes(versions: _Versions, kind: str, entity_id: int, offset: int) -> dict:
    if kind.endswith("_type"):
        old = versions.ended("Type", '"id" = ?', (entity_id,), offset)
        new = versions.written("Type", '"id" = ?', (entity_id,), offset)
        props = _property_changes(versions.ended("TypeProperty", '"type_id" = ?', (entity_id,), offset),
                                  versions.written("TypeProperty", '"type_id" = ?', (entity_id,), offset),
                                  _data_type)[0]
        custom: dict = {}
    else:
        node = BY_NAME[kind]
        old = versions.ended(node.table, '"id" = ?', (entity_id,), offset)
        new = versions.written(node.table, '"id" = ?', (entity_id,), offset)
        owner = f'"{node.owner}" = ?'
        props, custom = _property_changes(versions.ended(node.prop_table, owner, (entity_id,), offset),
                                          versions.written(node.prop_table, owner, (entity_id,), offset), _value)
    out: dict = {"created": not old and bool(new), "fields": _field_changes(old[0] if old else None,
                                                                           new[0] if new else None)}
    if props:
        out["properties"] = props
    if custom:
        out["custom_properties"] = custom
    links = _links_added(versions, kind, entity_id, offset)
    if links:
        out["links_added"] = links
    return out


def _record_entry(row: dict) -> dict:
    code = row["error_code"]
    outcome: Any = "ok" if not code else {
        "error": errors.exception_type_from_error_code(code).__name__, "message": row["error_message"]}
    return {"offset": row["log_offset"], "time_ms": row["time_ms"], "time": iso(row["time_ms"]),
            "record_id": row["record_id"],
            "producer": {"host": row["host"], "pid": row["pid"], "user": row["user_name"],
                         "client_name": row["client_name"]},
            "rpc": row["rpc"], "outcome": outcome}


def entity_history(conn: Any, kind: str, entity_id: int, limit: Optional[int] = None) -> list[dict]:
    """Every record that touched ``kind`` ``entity_id``, oldest first (see the module doc)."""
    _check_kind(kind)
    entity_id = whole_number(entity_id, "An entity id")
    limit = None if limit is None else whole_number(limit, "A limit")
    history_from(conn)
    sql = (f'SELECT r.* FROM "{TOUCH_TABLE}" AS t JOIN "{RECORD_TABLE}" AS r ON r."log_offset" = t."log_offset" '
           'WHERE t."kind" = ? AND t."entity_id" = ? ORDER BY t."log_offset"')
    params: tuple = (kind, int(entity_id))
    if limit is not None:
        sql += " LIMIT ?"
        params += (int(limit),)
    versions = _Versions(conn)
    out = []
    for row in _dicts(conn.execute(sql, params)):
        entry = _record_entry(row)
        if not row["error_code"]:
            entry["changes"] = _changes(versions, kind, int(entity_id), row["log_offset"])
        out.append(entry)
    return out


# -- between two points -------------------------------------------------------------
# Each link table by the end its versions are looked up by, and that end's kind.
_LINK_ENDS = (("Event", "artifact_id", "artifact"), ("Attribution", "artifact_id", "artifact"),
              ("Association", "execution_id", "execution"), ("ParentContext", "context_id", "context"),
              ("ParentType", "type_id", "type"))
def _visible(offset: int) -> str:
    return f'"v_from" < {int(offset)} AND ("v_to" IS NULL OR "v_to" >= {int(offset)})'


def _state(conn: Any, kind: str, entity_id: int, offset: int) -> Optional[dict]:
    """The entity's columns and properties as of ``offset`` (None: it did not exist)."""
    if kind.endswith("_type"):
        table, prop_table, owner = "Type", "TypeProperty", "type_id"
    else:
        node = BY_NAME[kind]
        table, prop_table, owner = node.table, node.prop_table, node.owner
    # (its latest version before ``offset``, by a seek: a much-used input has a version per use)
    rows = _dicts(conn.execute(f'SELECT * FROM "{BY_TABLE[table].versions}" WHERE "id" = ? AND "v_from" < ? '
                               'ORDER BY "v_from" DESC LIMIT 1', (entity_id, offset)))
    if not rows or (rows[0]["v_to"] is not None and rows[0]["v_to"] < offset):
        return None
    props = _dicts(conn.execute(f'SELECT * FROM "{BY_TABLE[prop_table].versions}" WHERE "{owner}" = ? '
                                f'AND {_visible(offset)}', (entity_id,)))
    return {"row": _strip(rows[0]), "props": props}


def changes_between(conn: Any, start: int, end: int) -> dict:
    """Nodes and types created and changed (with field diffs), links added and rejected
    attempts in records ``[start, end)``: the difference of the as-of views at both ends."""
    start, end = whole_number(start, "A start offset"), whole_number(end, "An end offset")
    if start > end:
        raise errors.InvalidArgumentError(f"--from {start} is after --to {end}")
    check_as_of(conn, start)
    check_as_of(conn, end)
    created, changed = [], []
    # (sorted here: asked to order by kind and id, SQLite walks the whole key instead of the offset index)
    touched = sorted(set(conn.execute(f'SELECT "kind", "entity_id" FROM "{TOUCH_TABLE}" WHERE "log_offset" >= ? '
                                      'AND "log_offset" < ?', (start, end)).fetchall()))
    for kind, entity_id in touched:
        before, after = _state(conn, kind, entity_id, start), _state(conn, kind, entity_id, end)
        if after is None:
            continue
        value = _data_type if kind.endswith("_type") else _value
        plain, custom = _property_changes(before["props"] if before else [], after["props"], value)
        fields = _field_changes(before["row"] if before else None, after["row"])
        if before is not None and not (fields or plain or custom):
            continue
        entry: dict = {"kind": kind, "id": entity_id, "fields": fields}
        if plain:
            entry["properties"] = plain
        if custom:
            entry["custom_properties"] = custom
        (created if before is None else changed).append(entry)
    links = []
    ids_of: dict[str, list[int]] = {}
    for kind, entity_id in touched:
        ids_of.setdefault("type" if kind.endswith("_type") else kind, []).append(entity_id)
    # A link a record added names both its ends, so it is found from the entities touched.
    for table, column, kind in _LINK_ENDS:
        v = BY_TABLE[table]
        found = []
        ids = ids_of.get(kind, [])
        for chunk in range(0, len(ids), 500):
            part = ids[chunk:chunk + 500]
            found += _dicts(conn.execute(
                f'SELECT rowid AS "v_row", * FROM "{v.versions}" WHERE "{column}" IN ({", ".join("?" * len(part))}) '
                f'AND "v_from" >= ? AND "v_from" < ? AND {_visible(end)}', (*part, start, end)))
        for row in sorted(found, key=lambda r: r["v_row"]):
            row.pop("v_row")
            links.append({"link": table, **_strip(row)})
    rejected = [_record_entry(row) for row in _dicts(conn.execute(
        f'SELECT * FROM "{RECORD_TABLE}" WHERE "log_offset" >= ? AND "log_offset" < ? AND "error_code" != 0 '
        'ORDER BY "log_offset"', (start, end)))]
    return {"from": start, "to": end, "created": created, "changed": changed, "links_added": links,
            "rejected": rejected}


# -- for people ---------------------------------------------------------------------
def _shown(value: Any) -> str:
    return "-" if value is None else repr(value)


def entry_lines(entry: dict) -> list[str]:
    """One history entry as text: a heading line, then one line per change."""
    producer = entry["producer"]
    who = f"{producer['user'] or '?'}@{producer['host'] or '?'} pid {producer['pid'] or '?'}"
    if producer["client_name"]:
        who += f" ({producer['client_name']})"
    outcome = entry["outcome"]
    said = "ok" if outcome == "ok" else f"REJECTED {outcome['error']}: {outcome['message']}"
    lines = [f"offset {entry['offset']}  {entry['time']}  {entry['rpc']}  {said}  by {who}  "
             f"record {entry['record_id']}"]
    changes = entry.get("changes") or {}
    if changes.get("created"):
        lines.append("    created")
    for name, (old, new) in changes.get("fields", {}).items():
        lines.append(f"    {name}: {_shown(old)} -> {_shown(new)}")
    for group in ("properties", "custom_properties"):
        for name, (old, new) in changes.get(group, {}).items():
            lines.append(f"    {group}.{name}: {_shown(old)} -> {_shown(new)}")
    for link in changes.get("links_added", []):
        rest = ", ".join(f"{k} {v}" for k, v in link.items() if k != "link")
        lines.append(f"    + {link['link']}: {rest}")
    return lines


def diff_lines(diff: dict) -> list[str]:
    lines = [f"records [{diff['from']}, {diff['to']}): {len(diff['created'])} created, "
             f"{len(diff['changed'])} changed, {len(diff['links_added'])} links added, "
             f"{len(diff['rejected'])} rejected"]
    for entry in diff["created"]:
        lines.append(f"  + {entry['kind']} {entry['id']}")
    for entry in diff["changed"]:
        lines.append(f"  ~ {entry['kind']} {entry['id']}")
        for name, (old, new) in entry.get("fields", {}).items():
            lines.append(f"      {name}: {_shown(old)} -> {_shown(new)}")
        for group in ("properties", "custom_properties"):
            for name, (old, new) in entry.get(group, {}).items():
                lines.append(f"      {group}.{name}: {_shown(old)} -> {_shown(new)}")
    for link in diff["links_added"]:
        rest = ", ".join(f"{k} {v}" for k, v in link.items() if k != "link")
        lines.append(f"  + {link['link']}: {rest}")
    for entry in diff["rejected"]:
        lines.append(f"  ! offset {entry['offset']} {entry['rpc']}: {entry['outcome']['error']}: "
                     f"{entry['outcome']['message']}")
    return lines
