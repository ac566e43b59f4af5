"""MLMD's read API answered from the schema-v10 tables.

``Reader(conn)`` takes a DB-API connection to a projection (or to a store written by
the official library: the tables are the same) and returns our protobuf messages with
official MLMD's semantics: the same rows, fields, order, page boundaries, page tokens
and errors as MLMD 1.17 on SQLite, request for request (the service layer, not the
Python wrapper's reshaping). Tests compare every method against the official library.

Nodes are always fetched in batches: one ``IN (...)`` query for the nodes (joined
with their types) and one for their properties per chunk of ids, assembled here.
"""
from __future__ import annotations

import base64
import collections.abc
from typing import Any, Iterable, Optional, Sequence

from google.protobuf import json_format, struct_pb2

from mlmd_log import errors
from mlmd_log.dialects import SQLITE, Dialect
from mlmd_log.projections.values import STRUCT_PREFIX
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.query import filter_sql, paging
from mlmd_log.query.sql import BASE_QUERIES, NODE_COLUMNS, TYPE_COLUMNS
from mlmd_log.schema import ARTIFACT, BY_NAME, BY_TYPE_MESSAGE, CONTEXT, EXECUTION, NodeKind
from mlmd_log.schemas import runtime

SIMPLE_TYPE_NAMES = frozenset({
    "mlmd.Dataset", "mlmd.Model", "mlmd.Metrics", "mlmd.Statistics", "mlmd.Train",
    "mlmd.Transform", "mlmd.Process", "mlmd.Evaluate", "mlmd.Deploy",
})



class Page:
    """Nodes of a list read and the response's next_page_token exactly as MLMD sets it.

    ``next_page_token`` is None where MLMD leaves the response field unset (no
    options, or the last page of Get{Artifacts,Executions,Contexts}[ByContext]), and
    "" where it sets it empty (the last page of Get*ByType with options, when the type
    has nodes). A server copies it when not None.

    A page answered from stored read forms keeps them as ``raw`` (serialized nodes in
    page order): a response is then filled by one parse, and ``items`` are parsed only
    when asked for.
    """

    __slots__ = ("_items", "next_page_token", "raw", "_parse")

    def __init__(self, items: Optional[list], next_page_token: Optional[str],
                 raw: Optional[list] = None, parse: Any = None):
        self._items = items
        self.next_page_token = next_page_token
        self.raw = raw
        self._parse = parse

    @property
    def items(self) -> list:
        if self._items is None:
            self._items = [self._parse(data) for data in self.raw]
        return self._items

    def without_token(self) -> "Page":
        return Page(self._items, None, self.raw, self._parse)


class _LazyNodes(collections.abc.Sequence):
    """Serialized nodes that parse on access (a page token looks at the last few only)."""

    def __init__(self, raw: list, parse: Any):
        self._raw, self._parse = raw, parse

    def __len__(self) -> int:
        return len(self._raw)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return _LazyNodes(self._raw[index], self._parse)
        return self._parse(self._raw[index])


# Which Type columns each MLMD query selects (and so which fields it returns).
_ALL_COLUMNS = frozenset(TYPE_COLUMNS)  # by id, by name (+version)
_LIST_COLUMNS = _ALL_COLUMNS - {"external_id"}  # Get*Types: no external_id
_EXTERNAL_ID_COLUMNS = _ALL_COLUMNS - {"input_type", "output_type"}  # by external ids


def _base_type_enum(type_message: type) -> dict[str, int]:
    """System type name (e.g. "mlmd.Dataset") -> SystemDefinedBaseType value."""
    enum = type_message.DESCRIPTOR.enum_types_by_name["SystemDefinedBaseType"]
    out = {}
    for value in enum.values:
        ext = runtime.option_extension(value.GetOptions(), pb.system_type_extension)
        out[ext.type_name] = value.number
    return out


_BASE_TYPES = {t: _base_type_enum(t) for t in (pb.ArtifactType, pb.ExecutionType)}


def _external_ids_asked(external_ids: Iterable[str]) -> list[str]:
    """The ids of a by-external-id read; InvalidArgumentError for an empty one, as MLMD."""
    wanted = list(external_ids)
    if any(e == "" for e in wanted):
        raise errors.InvalidArgumentError("Invalid argument because at least one empty external_id exists.")
    return wanted


class Reader:
    """MLMD reads over a DB-API connection (sqlite3 by default dialect)."""

    def __init__(self, conn, dialect: Dialect = SQLITE):
        self._conn = conn
        self._d = dialect
        self._tables: dict[str, bool] = {}

    @property
    def dialect(self) -> Dialect:
        return self._d

    # ------------------------------------------------------------------ SQL helpers
    def _rows(self, name: str, params: Sequence = (), n_ids: int = 0) -> list:
        cur = self._conn.cursor()
        try:
            cur.execute(self._d.sql(name, n_ids), tuple(params))
            return cur.fetchall()
        finally:
            cur.close()

    def _rows_in(self, name: str, ids: Sequence, extra: Sequence = ()) -> list:
        """Runs ``name`` once per chunk of ``ids`` (its ``{ids}`` list), then ``extra``."""
        out: list = []
        size = self._d.max_in_params
        for start in range(0, len(ids), size):
            chunk = list(ids[start:start + size])
            out.extend(self._rows(name, chunk + list(extra), len(chunk)))
        return out

    def _ids(self, name: str, params: Sequence = ()) -> list[int]:
        return [row[0] for row in self._rows(name, params)]

    def _exists(self, name: str, params: Sequence) -> bool:
        return bool(self._rows(name, params))

    # ------------------------------------------------------------------ values
    def _fill_value(self, value: pb.Value, row: Sequence) -> None:
        """Sets the stored value of one property row on ``value`` (in place: no copies)."""
        int_v, double_v, string_v, proto_v, bool_v = row
        if int_v is not None:
            value.int_value = int(int_v)
        elif double_v is not None:
            value.double_value = self._d.read_double(double_v)
        elif string_v is not None:
            text = string_v.decode("utf-8") if isinstance(string_v, bytes) else string_v
            if text.startswith(STRUCT_PREFIX):
                value.struct_value.CopyFrom(_parse_struct(text))
            else:
                value.string_value = text
        elif proto_v is not None:
            encoded = proto_v.encode("ascii") if isinstance(proto_v, str) else bytes(proto_v)
            try:
                value.proto_value.ParseFromString(base64.b64decode(encoded, validate=True))
            except Exception as exc:  # noqa: BLE001 - any decoding failure is corruption
                raise errors.InternalError(f"Failed to Base64Unescape value '{proto_v}'") from exc
            if not value.proto_value.type_url:
                raise errors.InternalError(
                    "Retrieved proto_value should have a nonempty type_url. Got: "
                    f"{value.proto_value}")
        elif bool_v is not None:
            value.bool_value = bool(int(bool_v))
        else:
            raise errors.InternalError(
                "Attempt to populate property with null value in every known *_value column.")

    # ------------------------------------------------------------------ types
    def _type_from_row(self, type_message: type, row: Sequence, columns: frozenset):
        """A type from a Type row, keeping only ``columns`` (MLMD's queries differ in
        which columns they select, and what is not selected is not returned)."""
        t = type_message()
        for column, value in zip(TYPE_COLUMNS, row):
            if value is None or column not in columns:
                continue
            if column in ("input_type", "output_type"):
                if type_message is pb.ExecutionType and value != "":
                    sub = getattr(t, column)
                    sub.SetInParent()
                    json_format.Parse(value, sub)
                continue
            setattr(t, column, value)
        return t

    def _populate_type_properties(self, types: list) -> None:
        if not types:
            return
        by_id: dict[int, list] = {}
        for t in types:
            by_id.setdefault(t.id, []).append(t)
        for type_id, name, data_type in self._rows_in("type_properties", list(by_id)):
            for t in by_id.get(type_id, ()):
                t.properties[name] = data_type if data_type is not None else 0

    def _set_base_types(self, types: list) -> None:
        if not types:
            return
        names = _BASE_TYPES[type(types[0])]
        parent_of: dict[int, str] = {}
        for type_id, parent_name in self._rows_in("parent_type_names", sorted({t.id for t in types})):
            parent_of.setdefault(type_id, parent_name)
        for t in types:
            name = parent_of.get(t.id)
            if name is not None and name in names:
                t.base_type = names[name]

    def _types(self, type_message: type, rows: Iterable, columns: frozenset,
               base_type: bool) -> list:
        types = [self._type_from_row(type_message, row, columns) for row in rows]
        self._populate_type_properties(types)
        if base_type and type_message in _BASE_TYPES:
            self._set_base_types(types)
        return types

    def _type_by_name(self, type_message: type, type_name: str, type_version: Optional[str]):
        kind = BY_TYPE_MESSAGE[type_message].type_kind
        if type_version:
            rows = self._rows("type_by_name_and_version", (type_name, type_version, kind))
        else:
            rows = self._rows("type_by_name", (type_name, kind))
        if not rows:
            raise errors.NotFoundError(
                f"No type found for query, name: `{type_name}`, version: "
                f"`{type_version if type_version else 'nullopt'}`")
        return rows[0]

    def _get_type(self, type_message: type, type_name: str, type_version: Optional[str]):
        row = self._type_by_name(type_message, type_name, type_version)
        return self._types(type_message, [row], columns=_ALL_COLUMNS, base_type=True)[0]

    def _get_types(self, type_message: type) -> list:
        rows = self._rows("all_types", (BY_TYPE_MESSAGE[type_message].type_kind,))
        if type_message is not pb.ContextType:
            # Simple (system) types are hidden from Get*Types; they are matched by name.
            rows = [row for row in rows if row[1] not in SIMPLE_TYPE_NAMES]
        return self._types(type_message, rows, columns=_LIST_COLUMNS, base_type=True)

    def get_types_by_id(self, type_message: type, type_ids: Iterable[int]) -> list:
        """Types of one kind (``pb.ArtifactType`` ...): one per found id in request order
        (repeats kept, unknown ids skipped)."""
        kind = BY_TYPE_MESSAGE[type_message].type_kind
        wanted = list(type_ids)
        found: dict[int, Sequence] = {}
        for row in self._rows_in("type_by_id_in", sorted(set(wanted)), (kind,)):
            found[row[0]] = row
        # One answer per requested id, in request order, repeats kept, misses skipped.
        rows = [found[i] for i in wanted if i in found]
        return self._types(type_message, rows, columns=_ALL_COLUMNS,
                           base_type=type_message is not pb.ContextType)

    def get_types_by_external_ids(self, type_message: type, external_ids: Iterable[str]) -> list:
        """Types of one kind ordered by external_id; no base_type; NotFoundError when none match."""
        wanted = _external_ids_asked(external_ids)
        if not wanted:
            return []
        kind = BY_TYPE_MESSAGE[type_message].type_kind
        rows = self._rows_in("types_by_external_ids", sorted(set(wanted)), (kind,))
        rows.sort(key=lambda row: row[4].encode("utf-8"))
        if not rows:
            raise errors.NotFoundError("No types found for external_ids.")
        return self._types(type_message, rows, columns=_EXTERNAL_ID_COLUMNS, base_type=False)

    def _type_id(self, kind: NodeKind, type_name: str, type_version: Optional[str]) -> Optional[int]:
        try:
            return self._type_by_name(kind.type_message, type_name, type_version)[0]
        except errors.NotFoundError:
            return None

    # ------------------------------------------------------------------ nodes
    def _node_rows(self, kind: NodeKind, ids: Sequence[int]) -> list:
        unique = sorted(set(ids))
        rows = self._rows_in(f"{kind.name}s_by_ids", unique)
        if len(unique) > self._d.max_in_params:  # chunks each come back ordered; merge them
            rows.sort(key=lambda row: row[0])
        return rows

    def _nodes_from_rows(self, kind: NodeKind, rows: list) -> list:
        columns = NODE_COLUMNS[kind.name]
        nodes = []
        n_columns = len(columns)
        for row in rows:
            fields = {column: value for column, value in zip(columns, row) if value is not None}
            type_name = row[n_columns]  # T.name follows the node columns
            if type_name is not None:
                fields["type"] = type_name
            nodes.append(kind.message(**fields))
        by_id = {node.id: node for node in nodes}
        fill, read_double = self._fill_value, self._d.read_double
        for row in self._rows_in(f"{kind.name}_properties", list(by_id)):
            node = by_id[row[0]]
            value = (node.custom_properties if row[2] else node.properties)[row[1]]
            # The common kinds inline (this loop dominates batched reads); the rest in _fill_value.
            if row[3] is not None:
                value.int_value = int(row[3])
            elif row[4] is not None:
                value.double_value = read_double(row[4])
            elif type(row[5]) is str and not row[5].startswith(STRUCT_PREFIX):
                value.string_value = row[5]
            else:
                fill(value, row[3:])
        return nodes

    def _nodes(self, kind: NodeKind, ids: Sequence[int]) -> list:
        """Nodes with these ids, ascending by id, each once; missing ids are skipped."""
        if not ids:
            return []
        if not self._has_read_forms():
            return self._nodes_from_rows(kind, self._node_rows(kind, ids))
        parse = kind.message.FromString
        data = self._node_bytes(kind, sorted(set(ids)))
        return [parse(data[node_id]) for node_id in sorted(data)]

    def _node_bytes(self, kind: NodeKind, ids: Sequence[int]) -> dict:
        """{id: serialized node} for those of ``ids`` that exist: the stored read form
        where there is one, the node built from the tables for the rest."""
        data = {node_id: form for node_id, form in self._rows_in(f"{kind.name}_read_forms", ids)}
        if len(data) < len(ids):
            missing = [node_id for node_id in ids if node_id not in data]
            for node in self._nodes_from_rows(kind, self._node_rows(kind, missing)):
                data[node.id] = node.SerializeToString()
        return data

    def serialized_nodes_by_id(self, kind: str, ids: Iterable[int]) -> Optional[list]:
        """``get_<kind>s_by_id``'s answer as serialized nodes, where the projection keeps
        read forms (a response is then filled by one parse); None where it does not."""
        if not self._has_read_forms():
            return None
        unique = sorted(set(ids))
        data = self._node_bytes(BY_NAME[kind], unique)
        return [data[node_id] for node_id in unique if node_id in data]

    def _has_read_forms(self) -> bool:
        return self._d.read_forms and self._has_table(ARTIFACT.read_form_table)

    def _reversed_uris(self) -> bool:
        """Whether uri suffix filters may use mlmdlog_artifact_ruri (SQLite projections):
        the table is there and has the newest artifact (a writer that does not keep it,
        e.g. an older mlmd-log, has not added artifacts since; older ones are backfilled
        when a projection is opened for writing)."""
        if not self._d.reversed_uris or not self._has_table("mlmdlog_artifact_ruri"):
            return False
        newest = self._rows("newest_artifact_and_reversed_uri")
        return newest[0][0] == newest[0][1]

    def _has_table(self, table: str) -> bool:
        """Whether the projection has one of our optional tables (a store written by the
        official library, or by an older mlmd-log, does not). Asked once per table."""
        known = self._tables.get(table)
        if known is None:
            try:
                cur = self._conn.cursor()
                try:
                    cur.execute(self._d.render(f"SELECT `id` FROM `{table}` WHERE `id` = -1"))
                    cur.fetchall()
                finally:
                    cur.close()
                known = True
            except Exception:  # noqa: BLE001 - any driver's "no such table"
                known = False
            self._tables[table] = known
        return known

    def nodes(self, kind: str, ids: Sequence[int]) -> list:
        """``kind`` ("artifact" | "execution" | "context") nodes by id, ascending."""
        return self._nodes(BY_NAME[kind], list(ids))

    def nodes_from_tables(self, kind: str, ids: Sequence[int]) -> list:
        """As ``nodes``, always built from MLMD's tables (the source of the read forms)."""
        return self._nodes_from_rows(BY_NAME[kind], self._node_rows(BY_NAME[kind], list(ids))) if ids else []

    def _types_of_node_rows(self, kind: NodeKind, rows: list) -> list:
        """Node types as MLMD derives them from a node query: deduped in node order,
        with properties, without base_type or input/output types."""
        width = len(NODE_COLUMNS[kind.name])
        seen: set[int] = set()
        types = []
        for row in rows:
            type_id = row[1]
            if type_id in seen:
                continue
            seen.add(type_id)
            t = kind.type_message(id=type_id)
            for field, value in zip(("name", "version", "description", "external_id"),
                                    row[width:width + 4]):
                if value is not None:
                    setattr(t, field, value)
            types.append(t)
        self._populate_type_properties(types)
        return types

    def _list(self, kind: NodeKind, options: pb.ListOperationOptions,
              candidates: Optional[tuple[str, tuple]] = None) -> Page:
        """One page of nodes; ``candidates`` is a (query name, params) id subquery."""
        paging.validate_size(options)
        compiled = paging.compile_filter(options, kind.name, self._d, self._reversed_uris)
        q = paging.build_list_query(options)
        table = {"artifact": "Artifact", "execution": "Execution", "context": "Context"}[kind.name]
        where, params = q.where, list(q.params)
        if compiled is not None:
            where = f"{compiled.where} AND {where}"
            params = list(compiled.params) + params
        if candidates is not None:
            sub_name, sub_params = candidates
            sub = self._d.queries.get(sub_name) or BASE_QUERIES[sub_name]
            where = f"`id` IN ({sub}) AND {where}"
            params = list(sub_params) + params
        text = (f"SELECT `id` FROM `{table}` AS t0 WHERE {where} ORDER BY {q.order_by} "
                f"LIMIT {{p}}")
        cur = self._conn.cursor()
        try:
            cur.execute(self._d.render(text, q.n_ids), tuple(params) + (q.limit,))
            ids = [row[0] for row in cur.fetchall()]
        finally:
            cur.close()
        if not ids:
            return Page([], "")
        if self._has_read_forms():
            data, parse = self._node_bytes(kind, ids), kind.message.FromString
            raw = [data[node_id] for node_id in ids]
            if len(raw) > options.max_result_size:
                raw.pop()
                return Page(None, paging.next_page_token(_LazyNodes(raw, parse), options), raw, parse)
            return Page(None, "", raw, parse)
        position = {node_id: i for i, node_id in enumerate(ids)}
        nodes = sorted(self._nodes(kind, ids), key=lambda n: position[n.id])
        if len(nodes) > options.max_result_size:
            nodes.pop()
            return Page(nodes, paging.next_page_token(nodes, options))
        return Page(nodes, "")

    def _by_type(self, kind: NodeKind, type_name: str, type_version: Optional[str],
                 options: Optional[pb.ListOperationOptions]) -> Page:
        type_id = self._type_id(kind, type_name, type_version)
        if type_id is None:
            return Page([], None)
        if options is None:
            return Page(self._nodes(kind, self._ids(f"{kind.name}_ids_by_type", (type_id,))), None)
        if not self._exists(f"any_{kind.name}_of_type", (type_id,)):
            return Page([], None)
        return self._list(kind, options, (f"candidates_{kind.name}_of_type", (type_id,)))

    def _by_type_and_name(self, kind: NodeKind, type_name: str, node_name: str,
                          type_version: Optional[str]):
        type_id = self._type_id(kind, type_name, type_version)
        if type_id is None:
            return None
        ids = self._ids(f"{kind.name}_ids_by_type_and_name", (type_id, node_name))
        nodes = self._nodes(kind, ids)
        return nodes[0] if nodes else None

    def _by_external_ids(self, kind: NodeKind, external_ids: Iterable[str]) -> list:
        wanted = _external_ids_asked(external_ids)
        if not wanted:
            return []
        ids = [row[0] for row in self._rows_in(f"{kind.name}_ids_by_external_ids",
                                               sorted(set(wanted)))]
        if not ids:
            raise errors.NotFoundError(f"No {kind.name}s found for external_ids.")
        return self._nodes(kind, ids)

    def _in_context(self, kind: NodeKind, context_id: int,
                    options: Optional[pb.ListOperationOptions]) -> Page:
        if options is None:
            return Page(self._nodes(kind, self._ids(f"{kind.name}_ids_by_context", (context_id,))), None)
        if not self._exists(f"any_{kind.name}_in_context", (context_id,)):
            return Page([], None)
        return _unset_if_empty(
            self._list(kind, options, (f"candidates_{kind.name}_in_context", (context_id,))))

    # ================================================================== public API
    # ---- types
    def get_artifact_type(self, type_name: str, type_version: Optional[str] = None) -> pb.ArtifactType:
        """NotFoundError if missing; an empty ``type_version`` means "no version"."""
        return self._get_type(pb.ArtifactType, type_name, type_version)

    def get_execution_type(self, type_name: str, type_version: Optional[str] = None) -> pb.ExecutionType:
        return self._get_type(pb.ExecutionType, type_name, type_version)

    def get_context_type(self, type_name: str, type_version: Optional[str] = None) -> pb.ContextType:
        """Like MLMD, context types never carry base_type."""
        row = self._type_by_name(pb.ContextType, type_name, type_version)
        return self._types(pb.ContextType, [row], columns=_ALL_COLUMNS, base_type=False)[0]

    def get_artifact_types(self) -> list[pb.ArtifactType]:
        """All user artifact types by id; the simple mlmd.* types are left out."""
        return self._get_types(pb.ArtifactType)

    def get_execution_types(self) -> list[pb.ExecutionType]:
        return self._get_types(pb.ExecutionType)

    def get_context_types(self) -> list[pb.ContextType]:
        return self._get_types(pb.ContextType)

    # ---- nodes by id
    def get_artifacts_by_id(self, artifact_ids: Iterable[int]) -> list[pb.Artifact]:
        """Found artifacts ascending by id, each once; unknown ids are skipped."""
        return self._nodes(ARTIFACT, list(artifact_ids))

    def get_artifacts_and_types_by_artifact_ids(
            self, artifact_ids: Iterable[int]) -> tuple[list[pb.Artifact], list[pb.ArtifactType]]:
        """Artifacts as get_artifacts_by_id plus their types (deduped, in artifact order,
        with properties but without base_type)."""
        ids = list(artifact_ids)
        if not ids:
            return [], []
        rows = self._node_rows(ARTIFACT, ids)
        return self._nodes_from_rows(ARTIFACT, rows), self._types_of_node_rows(ARTIFACT, rows)

    def get_executions_by_id(self, execution_ids: Iterable[int]) -> list[pb.Execution]:
        return self._nodes(EXECUTION, list(execution_ids))

    def get_contexts_by_id(self, context_ids: Iterable[int]) -> list[pb.Context]:
        return self._nodes(CONTEXT, list(context_ids))

    # ---- whole collections (options=None: everything by id; else one page)
    def get_artifacts(self, options: Optional[pb.ListOperationOptions] = None) -> Page:
        if options is None:
            return Page(self._nodes(ARTIFACT, self._ids("all_artifact_ids")), None)
        return _unset_if_empty(self._list(ARTIFACT, options))

    def get_executions(self, options: Optional[pb.ListOperationOptions] = None) -> Page:
        if options is None:
            return Page(self._nodes(EXECUTION, self._ids("all_execution_ids")), None)
        return _unset_if_empty(self._list(EXECUTION, options))

    def get_contexts(self, options: Optional[pb.ListOperationOptions] = None) -> Page:
        if options is None:
            return Page(self._nodes(CONTEXT, self._ids("all_context_ids")), None)
        return _unset_if_empty(self._list(CONTEXT, options))

    # ---- by type
    def get_artifacts_by_type(self, type_name: str, type_version: Optional[str] = None,
                              options: Optional[pb.ListOperationOptions] = None) -> Page:
        """Empty page when the type does not exist or has no artifacts (options are then
        not validated, as in MLMD)."""
        return self._by_type(ARTIFACT, type_name, type_version, options)

    def get_executions_by_type(self, type_name: str, type_version: Optional[str] = None,
                               options: Optional[pb.ListOperationOptions] = None) -> Page:
        return self._by_type(EXECUTION, type_name, type_version, options)

    def get_contexts_by_type(self, type_name: str, type_version: Optional[str] = None,
                             options: Optional[pb.ListOperationOptions] = None) -> Page:
        return self._by_type(CONTEXT, type_name, type_version, options)

    def get_artifact_by_type_and_name(self, type_name: str, artifact_name: str,
                                      type_version: Optional[str] = None) -> Optional[pb.Artifact]:
        """None when the type or the artifact does not exist."""
        return self._by_type_and_name(ARTIFACT, type_name, artifact_name, type_version)

    def get_execution_by_type_and_name(self, type_name: str, execution_name: str,
                                       type_version: Optional[str] = None) -> Optional[pb.Execution]:
        return self._by_type_and_name(EXECUTION, type_name, execution_name, type_version)

    def get_context_by_type_and_name(self, type_name: str, context_name: str,
                                     type_version: Optional[str] = None) -> Optional[pb.Context]:
        return self._by_type_and_name(CONTEXT, type_name, context_name, type_version)

    # ---- by uri / external id
    def get_artifacts_by_uri(self, uris: Iterable[str]) -> list[pb.Artifact]:
        """Per distinct uri (first-seen order), its artifacts ascending by id. (MLMD
        walks a hash set of the uris, so its order across uris is arbitrary.)"""
        out: list = []
        for uri in dict.fromkeys(uris):
            out.extend(self._nodes(ARTIFACT, self._ids("artifact_ids_by_uri", (uri,))))
        return out

    def get_artifacts_by_external_ids(self, external_ids: Iterable[str]) -> list[pb.Artifact]:
        """Ascending by id; NotFoundError when none match, InvalidArgumentError on ""."""
        return self._by_external_ids(ARTIFACT, external_ids)

    def get_executions_by_external_ids(self, external_ids: Iterable[str]) -> list[pb.Execution]:
        return self._by_external_ids(EXECUTION, external_ids)

    def get_contexts_by_external_ids(self, external_ids: Iterable[str]) -> list[pb.Context]:
        return self._by_external_ids(CONTEXT, external_ids)

    # ---- neighbourhoods
    def get_contexts_by_artifact(self, artifact_id: int) -> list[pb.Context]:
        """Ascending by id. NotFoundError when the artifact is in no context (MLMD's
        service returns that error, it is not an empty answer)."""
        ids = self._ids("context_ids_by_artifact", (artifact_id,))
        if not ids:
            raise errors.NotFoundError(f"No contexts found for artifact_id: {artifact_id}")
        return self._nodes(CONTEXT, ids)

    def get_contexts_by_execution(self, execution_id: int) -> list[pb.Context]:
        ids = self._ids("context_ids_by_execution", (execution_id,))
        if not ids:
            raise errors.NotFoundError(f"No contexts found for execution_id: {execution_id}")
        return self._nodes(CONTEXT, ids)

    def get_artifacts_by_context(self, context_id: int,
                                 options: Optional[pb.ListOperationOptions] = None) -> Page:
        return self._in_context(ARTIFACT, context_id, options)

    def get_executions_by_context(self, context_id: int,
                                  options: Optional[pb.ListOperationOptions] = None) -> Page:
        return self._in_context(EXECUTION, context_id, options)

    def get_parent_contexts_by_context(self, context_id: int) -> list[pb.Context]:
        return self._nodes(CONTEXT, self._ids("parent_ids_by_context", (context_id,)))

    def get_children_contexts_by_context(self, context_id: int) -> list[pb.Context]:
        return self._nodes(CONTEXT, self._ids("child_ids_by_context", (context_id,)))

    def get_parent_contexts_by_contexts(self, context_ids: Iterable[int]) -> dict[int, list[pb.Context]]:
        """{child id: its parents ascending by id}; contexts without parents are absent."""
        return self._linked_contexts(list(context_ids), "parent_links_by_children", parents=True)

    def get_children_contexts_by_contexts(self, context_ids: Iterable[int]) -> dict[int, list[pb.Context]]:
        """{parent id: its children in link order}; contexts without children are absent."""
        return self._linked_contexts(list(context_ids), "child_links_by_parents", parents=False)

    def _linked_contexts(self, context_ids: list[int], query: str, parents: bool) -> dict:
        if not context_ids:
            raise errors.InvalidArgumentError("Given context_ids is empty.")
        links: dict[int, list[int]] = {}
        for child, parent in self._rows_in(query, sorted(set(context_ids))):
            key, other = (child, parent) if parents else (parent, child)
            links.setdefault(key, []).append(other)
        if not links:
            return {}
        linked = {c.id: c for c in self._nodes(CONTEXT, sorted({i for v in links.values() for i in v}))}
        return {key: [linked[i] for i in ids if i in linked] for key, ids in links.items()}

    # ---- query layer: filtered ids, edges and types for lineage
    def filter_node_ids(self, kind: str, filter_query: str,
                        candidate_ids: Optional[Sequence[int]] = None,
                        limit: Optional[int] = None) -> list[int]:
        """Ids of ``kind`` nodes ("artifact" | ...) matching ``filter_query``, ascending,
        at most ``limit``; restricted to ``candidate_ids`` when given (batched)."""
        table = sql_table(kind)
        compiled = (filter_sql.compile_text(filter_query, kind, self._d, self._reversed_uris)
                    if filter_query else None)
        where, params = ("1 = 1", []) if compiled is None else (compiled.where, list(compiled.params))
        tail = " ORDER BY `id`" + (f" LIMIT {int(limit)}" if limit is not None else "")
        if candidate_ids is None:
            return [row[0] for row in self._query(f"SELECT `id` FROM `{table}` AS t0 WHERE {where}{tail}",
                                                  params)]
        ids = sorted(set(candidate_ids))
        out: list[int] = []
        size = self._d.max_in_params
        for start in range(0, len(ids), size):
            chunk = ids[start:start + size]
            text = f"SELECT `id` FROM `{table}` AS t0 WHERE `id` IN ({{ids}}) AND {where}{tail}"
            out.extend(row[0] for row in self._query(text, chunk + params, len(chunk)))
        return sorted(out)[:limit] if limit is not None else sorted(out)

    def _query(self, text: str, params: Sequence, n_ids: int = 0) -> list:
        cur = self._conn.cursor()
        try:
            cur.execute(self._d.render(text, n_ids), tuple(params))
            return cur.fetchall()
        finally:
            cur.close()

    def attributions_by_artifact_ids(self, artifact_ids: Iterable[int]) -> list[pb.Attribution]:
        return [pb.Attribution(context_id=c, artifact_id=a)
                for c, a in self._rows_in("attributions_by_artifact_ids", sorted(set(artifact_ids)))]

    def associations_by_execution_ids(self, execution_ids: Iterable[int]) -> list[pb.Association]:
        return [pb.Association(context_id=c, execution_id=e)
                for c, e in self._rows_in("associations_by_execution_ids", sorted(set(execution_ids)))]

    def all_types(self, type_message: type) -> list:
        """Every type of a kind, simple mlmd.* types included, as MLMD's FindTypes reads
        them for lineage: without external_id and base_type."""
        rows = self._rows("all_types", (BY_TYPE_MESSAGE[type_message].type_kind,))
        return self._types(type_message, rows, columns=_LIST_COLUMNS, base_type=False)

    # ---- events
    def get_events_by_execution_ids(self, execution_ids: Iterable[int]) -> list[pb.Event]:
        return self._events("events_by_execution_ids", list(execution_ids))

    def get_events_by_artifact_ids(self, artifact_ids: Iterable[int]) -> list[pb.Event]:
        return self._events("events_by_artifact_ids", list(artifact_ids))

    def get_events_by_ids(self, event_ids: Iterable[int]) -> list[pb.Event]:
        """Events by their row ids, ascending (ids no read of MLMD's returns: the order an
        import recreates them in)."""
        return self._events("events_by_ids", list(event_ids))

    def _events(self, query: str, ids: list[int]) -> list[pb.Event]:
        if not ids:
            return []
        rows = self._rows_in(query, sorted(set(ids)))
        if len(ids) > self._d.max_in_params:  # chunks come back chunk by chunk
            rows = self._resort_events(query, rows)
        events: list[pb.Event] = []
        by_id: dict[int, pb.Event] = {}
        for event_id, artifact_id, execution_id, event_type, millis in rows:
            event = pb.Event(artifact_id=artifact_id, execution_id=execution_id, type=event_type)
            if millis is not None:
                event.milliseconds_since_epoch = millis
            events.append(event)
            by_id[event_id] = event
        for event_id, is_index_step, step_index, step_key in self._rows_in("event_paths", sorted(by_id)):
            step = by_id[event_id].path.steps.add()
            if int(is_index_step):
                step.index = step_index
            else:
                step.key = step_key if step_key is not None else ""
        return events

    @staticmethod
    def _resort_events(query: str, rows: list) -> list:
        if query == "events_by_artifact_ids":
            return sorted(rows, key=lambda r: (r[1], r[2], r[3]))
        if query == "events_by_ids":
            return sorted(rows, key=lambda r: r[0])
        return sorted(rows, key=lambda r: (r[2], r[0]))


def sql_table(kind: str) -> str:
    return {"artifact": "Artifact", "execution": "Execution", "context": "Context"}[kind]


def _unset_if_empty(page: Page) -> Page:
    return page if page.next_page_token else page.without_token()


def _parse_struct(text: str) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    try:
        out.ParseFromString(base64.b64decode(text[len(STRUCT_PREFIX):], validate=True))
    except Exception as exc:  # noqa: BLE001
        raise errors.InvalidArgumentError(
            f"Unable to parse serialized `google.protobuf.Struct` value: {text}") from exc
    return out
