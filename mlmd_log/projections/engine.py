"""The MLMD state machine: applies one logged put request to the projection tables.

Deterministic by construction: ids come from counters advanced in log order (and
restored when a record is rejected), times come from the record envelope, and
nothing iterates a hash-ordered container where the order reaches the tables.
Validation follows ml-metadata 1.17 (metadata_store.cc and the RDBMS access
object): the same checks in the same order, raising the same error classes.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable, Iterable, Optional, Sequence

from google.protobuf import descriptor_pool
from google.protobuf import message as pb_message

from mlmd_log import errors
from mlmd_log.errors import (
    AbortedError, AlreadyExistsError, FailedPreconditionError, InvalidArgumentError,
    NotFoundError, OutOfRangeError, UnimplementedError,
)
from mlmd_log.projections import read_forms, values
from mlmd_log.projections.backend import SqlBackend
from mlmd_log.projections.history import VersionedWrites
from mlmd_log.projections.memory import EngineMemory
from mlmd_log.projections.nodes import (
    ARTIFACT, ARTIFACT_KIND, CONTEXT, CONTEXT_KIND, EXECUTION, EXECUTION_KIND, NodeKind, event_path_rows,
    same_attributes,
)
from mlmd_log.projections.steps import StepWriter
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.proto import metadata_store_service_pb2 as svc
from mlmd_log.schemas import runtime

_SYSTEM_TYPE_EXT = pb.system_type_extension


@dataclass
class StoredType:
    """A row of `Type` with its properties and base type (the type registry entry)."""

    id: int
    kind: int
    name: str
    version: Optional[str]
    description: Optional[str]
    external_id: Optional[str]
    input_type: Optional[str] = None
    output_type: Optional[str] = None
    properties: dict[str, int] = field(default_factory=dict)
    parent_id: Optional[int] = None


def system_type_name(type_message: type, enum_number: int) -> str:
    """The simple type name ('mlmd.Dataset' ...) behind a base_type enum value."""
    enum_desc = type_message.DESCRIPTOR.enum_types_by_name["SystemDefinedBaseType"]
    return runtime.option_extension(enum_desc.values_by_number[enum_number].GetOptions(), _SYSTEM_TYPE_EXT).type_name


class TypeRegistry:
    """All types in memory: there are few, and validation reads them on every put."""

    def __init__(self, db: SqlBackend):
        self.db = db
        self._by_id: dict[int, StoredType] | None = None

    def invalidate(self) -> None:
        self._by_id = None

    @property
    def loaded(self) -> bool:
        """Whether the types are in memory (reading them does not touch the projection)."""
        return self._by_id is not None

    def _load(self) -> dict[int, StoredType]:
        if self._by_id is None:
            types: dict[int, StoredType] = {}
            for row in self.db.rows("SELECT `id`, `type_kind`, `name`, `version`, `description`, `external_id`, "
                                    "`input_type`, `output_type` FROM `Type` ORDER BY `id`"):
                types[row[0]] = StoredType(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7])
            for type_id, name, data_type in self.db.rows(
                    "SELECT `type_id`, `name`, `data_type` FROM `TypeProperty` ORDER BY `type_id`, `name`"):
                if type_id in types:
                    types[type_id].properties[name] = data_type
            for type_id, parent_id in self.db.rows("SELECT `type_id`, `parent_type_id` FROM `ParentType`"):
                if type_id in types:
                    types[type_id].parent_id = parent_id
            self._by_id = types
        return self._by_id

    def by_id(self, type_id: int, kind: Optional[int] = None) -> Optional[StoredType]:
        found = self._load().get(type_id)
        if found is None or (kind is not None and found.kind != kind):
            return None
        return found

    def by_name(self, kind: int, name: str, version: Optional[str]) -> Optional[StoredType]:
        for stored in self._load().values():
            if stored.kind == kind and stored.name == name and stored.version == version:
                return stored
        return None

    def add(self, stored: StoredType) -> None:
        self._load()[stored.id] = stored


def _version(type_msg: Any) -> Optional[str]:
    return type_msg.version if type_msg.HasField("version") and type_msg.version else None


def _short(msg: pb_message.Message) -> str:
    """``msg`` for an error message, as MLMD prints it: an Any as its type_url and bytes,
    never unpacked (its bytes may not parse as the type it names)."""
    from google.protobuf import text_format
    return text_format.MessageToString(msg, as_one_line=True, descriptor_pool=_NO_TYPES)


_NO_TYPES = descriptor_pool.DescriptorPool()  # (so text_format finds no type to unpack an Any as)


class Engine:
    """Applies put requests in log order. One instance per projection writer."""

    def __init__(self, db: SqlBackend):
        self.db = db
        self.types = TypeRegistry(db)
        self._reader: Any = None
        self.read_double: Callable[[float], float] = db.dialect.read_double
        self._insert_sql: dict[tuple, str] = {}
        self.memory = EngineMemory()  # (shared with the step writer)
        self.memory.reload_counters(db)
        self.versions = db.open_versions()  # (history.Versions, or None: this projection keeps none)
        self.steps = StepWriter(self, db, self.memory, self.versions)  # (it writes its rows' versions itself)
        if self.versions is not None:
            self.db = VersionedWrites(db, self.versions)
        self.now_ms = 0

    # -- undo ---------------------------------------------------------------
    def snapshot(self) -> dict[str, int]:
        """What ``restore`` needs to undo what is applied after this call."""
        return self.memory.snapshot()

    def restore(self, snapshot: dict[str, int]) -> None:
        """Back to ``snapshot`` once its transaction (or savepoint) is rolled back: counters
        restored, caches and queued step rows forgotten, types read again."""
        self.memory.restore(snapshot)
        self.types.invalidate()
        self.steps.discard()

    def _insert_with_id(self, table: str, columns: Sequence[str], params: Sequence[Any]) -> int:
        next_id = self.memory.next_id
        new_id = next_id[table]
        key = (table, tuple(columns))
        sql = self._insert_sql.get(key)
        if sql is None:
            cols = ", ".join(f"`{c}`" for c in ("id", *columns))
            marks = ", ".join("?" for _ in range(len(columns) + 1))
            sql = self._insert_sql[key] = f"INSERT INTO `{table}` ({cols}) VALUES ({marks})"
        self.db.execute(sql, (new_id, *params))
        next_id[table] = new_id + 1
        return new_id

    # -- dispatch -----------------------------------------------------------
    def apply(self, kind: str, request: pb_message.Message, time_ms: int, offset: int = -1) -> pb_message.Message:
        """Applies one request (the record at ``offset``) at log time ``time_ms``; returns its
        response or raises StatusError."""
        self.steps.flush()  # (rows of steps queued before this record: it may read them)
        if self.versions is not None:
            self.versions.at(offset)
        self.now_ms = time_ms
        handler = getattr(self, "_apply_" + kind, None)
        if handler is None:
            raise UnimplementedError(f"Unknown log request kind: {kind}")
        request.DiscardUnknownFields()  # (fields of a newer client: never stored, never read back)
        return handler(request)

    def apply_step(self, kind: str, request: pb_message.Message, time_ms: int,
                   offset: int = -1) -> Optional[pb_message.Message]:
        """The response of a record applied as a pipeline step (``steps``: rows queued until
        ``flush_steps``), or None when the record needs ``apply``."""
        if kind != "put_execution":
            return None
        self.now_ms = time_ms
        return self.steps.put_execution(request, time_ms, offset)

    def flush_steps(self) -> None:
        """Writes the rows of the steps applied since the last flush (StepsFailed if they clash)."""
        self.steps.flush()

    # -- types --------------------------------------------------------------
    def _apply_put_artifact_type(self, req: svc.PutArtifactTypeRequest) -> svc.PutArtifactTypeResponse:
        return svc.PutArtifactTypeResponse(type_id=self._upsert_single_type(req, req.artifact_type, ARTIFACT_KIND))

    def _apply_put_execution_type(self, req: svc.PutExecutionTypeRequest) -> svc.PutExecutionTypeResponse:
        return svc.PutExecutionTypeResponse(type_id=self._upsert_single_type(req, req.execution_type, EXECUTION_KIND))

    def _apply_put_context_type(self, req: svc.PutContextTypeRequest) -> svc.PutContextTypeResponse:
        return svc.PutContextTypeResponse(type_id=self._upsert_single_type(req, req.context_type, CONTEXT_KIND))

    def _upsert_single_type(self, req: Any, type_msg: Any, kind: int) -> int:
        if not req.all_fields_match:
            raise UnimplementedError("Must match all fields.")
        return self._upsert_types([type_msg], kind, req.can_add_fields, req.can_omit_fields)[0]

    def _apply_put_types(self, req: svc.PutTypesRequest) -> svc.PutTypesResponse:
        if not req.all_fields_match:
            raise UnimplementedError("Must match all fields.")
        resp = svc.PutTypesResponse()
        for types, kind, out in ((req.artifact_types, ARTIFACT_KIND, resp.artifact_type_ids),
                                 (req.execution_types, EXECUTION_KIND, resp.execution_type_ids),
                                 (req.context_types, CONTEXT_KIND, resp.context_type_ids)):
            out.extend(self._upsert_types(list(types), kind, req.can_add_fields, req.can_omit_fields))
        return resp

    def _upsert_types(self, types: list, kind: int, can_add: bool, can_omit: bool) -> list[int]:
        ids = []
        for type_msg in types:
            stored = self.types.by_name(kind, type_msg.name, _version(type_msg))
            if stored is None:
                type_id = self._create_type(type_msg, kind)
            else:
                type_id = stored.id
                self._merge_type(stored, type_msg, can_add, can_omit)
            self._upsert_type_inheritance(type_msg, type_id, kind)
            ids.append(type_id)
        return ids

    def _create_type(self, type_msg: Any, kind: int) -> int:
        if not type_msg.name:
            raise InvalidArgumentError("No type name is specified.")
        input_type = output_type = None
        if kind == EXECUTION_KIND:
            if type_msg.HasField("input_type"):
                input_type = values.struct_type_to_json(type_msg.input_type)
            if type_msg.HasField("output_type"):
                output_type = values.struct_type_to_json(type_msg.output_type)
        description = type_msg.description if type_msg.HasField("description") else None
        external_id = type_msg.external_id if type_msg.HasField("external_id") else None
        try:
            type_id = self._insert_with_id(
                "Type", ("name", "version", "type_kind", "description", "input_type", "output_type", "external_id"),
                (type_msg.name, _version(type_msg), kind, description, input_type, output_type, external_id))
        except self.db.integrity_errors as exc:
            raise AlreadyExistsError(f"Given type already exists (external_id must be unique): "
                                     f"{_short(type_msg)}") from exc
        stored = StoredType(type_id, kind, type_msg.name, _version(type_msg), description, external_id,
                            input_type, output_type)
        self.types.add(stored)
        for prop_name in sorted(type_msg.properties):
            data_type = type_msg.properties[prop_name]
            if data_type == pb.UNKNOWN:
                raise InvalidArgumentError(f"Property {prop_name} is UNKNOWN.")
            self._insert_type_property(stored, prop_name, data_type)
        return type_id

    def _insert_type_property(self, stored: StoredType, name: str, data_type: int) -> None:
        self.db.execute("INSERT INTO `TypeProperty` (`type_id`, `name`, `data_type`) VALUES (?, ?, ?)",
                        (stored.id, name, data_type))
        stored.properties[name] = data_type

    def _merge_type(self, stored: StoredType, given: Any, can_add: bool, can_omit: bool) -> None:
        """MLMD's CheckFieldsConsistent + UpdateType: only adds properties and sets external_id."""
        def conflict(why: str) -> AlreadyExistsError:
            return AlreadyExistsError(f"Type already exists with different properties: {why}: "
                                      f"stored type: {stored.name}; given type: {_short(given)}")
        omitted = 0
        for name in sorted(stored.properties):
            if name not in given.properties:
                omitted += 1
            elif given.properties[name] != stored.properties[name]:
                raise conflict("Conflicting property value type found in stored and given types")
        if omitted and not can_omit:
            raise conflict("can_omit_fields is false while stored type has more properties")
        new_props = sorted(n for n in given.properties if n not in stored.properties)
        if new_props and not can_add:
            raise conflict("can_add_fields is false while the given type has more properties")
        for name in new_props:
            if given.properties[name] == pb.UNKNOWN:
                raise InvalidArgumentError(f"Property:{name} type should not be UNKNOWN.")
            self._insert_type_property(stored, name, given.properties[name])
        # ml-metadata 1.17 moves a type to a new, non-empty external_id; an absent or empty one
        # keeps the stored id. A clash surfaces as INTERNAL there (an unmapped UPDATE failure).
        given_external = given.external_id
        if given_external and given_external != stored.external_id:
            try:
                self.db.execute("UPDATE `Type` SET `external_id` = ? WHERE `id` = ?", (given_external, stored.id))
            except self.db.integrity_errors as exc:
                raise errors.InternalError(f"Cannot move type {stored.name} to external_id {given_external!r}: "
                                           "another type has it") from exc
            stored.external_id = given_external

    def _upsert_type_inheritance(self, type_msg: Any, type_id: int, kind: int) -> None:
        if not type_msg.HasField("base_type"):
            return
        if type_msg.base_type == 0:
            raise UnimplementedError("base_type deletion is not supported yet")
        simple_name = system_type_name(type(type_msg), type_msg.base_type)
        stored = self.types.by_id(type_id)
        if stored.parent_id is None:
            parent = self.types.by_name(kind, simple_name, None)
            if parent is None:
                raise NotFoundError(f"No type found for query, name: `{simple_name}`")
            self.db.execute("INSERT INTO `ParentType` (`type_id`, `parent_type_id`) VALUES (?, ?)",
                            (type_id, parent.id))
            stored.parent_id = parent.id
            return
        parent = self.types.by_id(stored.parent_id)
        if parent is None or parent.name != simple_name:
            raise UnimplementedError("base_type update is not supported yet")

    # -- nodes --------------------------------------------------------------
    def _type_of(self, kind: NodeKind, node: Any) -> StoredType:
        if not node.HasField("type_id"):
            raise InvalidArgumentError("Type id is missing.")
        stored = self.types.by_id(node.type_id, kind.type_kind)
        if stored is None:
            raise NotFoundError(f"Cannot find type for {_short(node)}: "
                                f"No type found for query, type_id: {node.type_id}")
        return stored

    @staticmethod
    def _validate_properties(node: Any, stored: StoredType, masked: Optional[set[str]] = None) -> None:
        expected = values.VALUE_FIELD
        for name in sorted(node.properties):
            if masked is not None and name not in masked:
                continue
            if name not in stored.properties:
                raise InvalidArgumentError(f"Found unknown property: {name}")
            if node.properties[name].WhichOneof("value") != expected.get(stored.properties[name]):
                raise InvalidArgumentError(f"Found unmatched property type: {name}")

    def _create_node(self, kind: NodeKind, node: Any, validate: bool = True) -> int:
        if validate:
            stored = self._type_of(kind, node)
            try:
                self._validate_properties(node, stored)
            except InvalidArgumentError as exc:
                raise InvalidArgumentError(f"Cannot validate properties of {_short(node)}: {exc.message}") from exc
        if kind is CONTEXT and not node.name:
            raise InvalidArgumentError("Context name should not be empty")
        names = [c for c, _ in kind.columns] + ["create_time_since_epoch", "last_update_time_since_epoch"]
        params = [getter(node) for _, getter in kind.columns] + [self.now_ms, self.now_ms]
        try:
            node_id = self._insert_with_id(kind.table, names, params)
        except self.db.integrity_errors as exc:
            raise AlreadyExistsError(f"Given node already exists: {_short(node)} "
                                     f"({kind.name} names are unique per type, external ids globally)") from exc
        self._write_properties(kind, node_id, node.properties, {}, False, None)
        self._write_properties(kind, node_id, node.custom_properties, {}, True, None)
        self._write_derived_rows(kind, [(node_id, node)])
        return node_id

    def _write_derived_rows(self, kind: NodeKind, created: Iterable[tuple[int, Any]]) -> None:
        """The serialized read form of new nodes (``read_forms``), beside their rows, and for
        artifacts their reversed uris (uri suffix filters)."""
        created = list(created)
        if kind is ARTIFACT and self.db.dialect.reversed_uris:
            self.db.executemany("INSERT INTO `mlmdlog_artifact_ruri` (`id`, `ruri`) VALUES (?, ?)",
                                [(node_id, node.uri[::-1]) for node_id, node in created])
        rows = []
        by_id, read_double, limit = self.types.by_id, self.read_double, self.db.dialect.int_limit
        for node_id, node in created:
            data = read_forms.encode(kind.name, kind.message, node, node_id, by_id(node.type_id).name,
                                  self.now_ms, read_double, limit)
            if data is not None:
                rows.append((node_id, data))
                self.memory.remember_form(kind.name, node_id, data)
        if rows:
            self.db.executemany(f"INSERT INTO `{read_forms.TABLES[kind.name]}` (`id`, `pb`) VALUES (?, ?)", rows)

    def complete_derived_tables(self) -> dict[str, int]:
        """Fills, once, the derived tables a projection from before them lacks (read forms,
        reversed uris), then marks them complete; returns rows written per table."""
        fill = {"read_forms": self._backfill_read_forms, "reversed_uris": self._backfill_reversed_uris}
        written = {}
        for name in self.db.derived_tables:
            if not self.db.has_complete(name):
                written[name] = fill[name]()
                self.db.mark_complete(name)
        return written

    def _missing_rows(self, table: str, derived: str, chunk: int) -> Iterable[list]:
        """Ids of ``table`` without a row in ``derived``, ascending, a chunk at a time."""
        last = -1
        while True:
            ids = [r[0] for r in self.db.rows(
                f"SELECT N.`id` FROM `{table}` AS N LEFT JOIN `{derived}` AS D ON D.`id` = N.`id` "
                "WHERE D.`id` IS NULL AND N.`id` > ? ORDER BY N.`id` LIMIT ?", (last, chunk))]
            if not ids:
                return
            last = ids[-1]
            yield ids

    def _insert_committed(self, sql: str, rows: list) -> int:
        if rows:
            self.db.begin()
            try:
                self.db.executemany(sql, rows)
                self.db.commit()
            except BaseException:
                self.db.rollback()
                raise
        return len(rows)

    def _backfill_read_forms(self, chunk: int = 2000) -> int:
        """Read forms built from the tables (exactly what a read gives), for every node a
        read accepts."""
        written = 0
        for kind in (ARTIFACT, EXECUTION, CONTEXT):
            table = read_forms.TABLES[kind.name]
            for ids in self._missing_rows(kind.table, table, chunk):
                written += self._insert_committed(
                    f"INSERT INTO `{table}` (`id`, `pb`) VALUES (?, ?)",
                    [(node.id, node.SerializeToString(deterministic=True)) for node in self._readable_nodes(kind, ids)])
        return written

    def _backfill_reversed_uris(self, chunk: int = 10000) -> int:
        """Every artifact's reversed uri: uri suffix filters see only artifacts that have one."""
        written = 0
        for ids in self._missing_rows("Artifact", "mlmdlog_artifact_ruri", chunk):
            marks = ", ".join("?" for _ in ids)
            rows = self.db.rows(f"SELECT `id`, `uri` FROM `Artifact` WHERE `id` IN ({marks})", ids)
            written += self._insert_committed("INSERT INTO `mlmdlog_artifact_ruri` (`id`, `ruri`) VALUES (?, ?)",
                                              [(node_id, (uri or "")[::-1]) for node_id, uri in rows])
        return written

    def _readable_nodes(self, kind: NodeKind, ids: list[int]) -> list:
        """The nodes a read returns, leaving out those whose stored values a read rejects."""
        try:
            return self.reader.nodes_from_tables(kind.name, ids)
        except errors.StatusError:
            if len(ids) == 1:
                return []
            middle = len(ids) // 2
            return self._readable_nodes(kind, ids[:middle]) + self._readable_nodes(kind, ids[middle:])

    def _rewrite_derived_rows(self, kind: NodeKind, stored: Any, written: Any, changes: dict[str, list],
                              previous_uri: Optional[str]) -> None:
        """After an update: an artifact's reversed uri if the uri changed, and the read
        form as the tables now give it, derived from the stored node, the attributes
        written (from ``written``) and the property ``changes`` ``_write_properties`` made,
        without reading the rows back."""
        if kind is ARTIFACT and self.db.dialect.reversed_uris and written.uri != previous_uri:
            self.db.execute("REPLACE INTO `mlmdlog_artifact_ruri` (`id`, `ruri`) VALUES (?, ?)",
                            (stored.id, written.uri[::-1]))
        new = kind.message()
        new.CopyFrom(stored)
        getters = dict(kind.columns)
        for column in kind.update_columns:
            value = getters[column](written)
            if value is None:
                new.ClearField(column)
            else:
                setattr(new, column, value)
        new.last_update_time_since_epoch = self.now_ms
        for map_name, made in changes.items():
            result = getattr(new, map_name)
            for name, value in made:
                if value is None:
                    del result[name]
                else:
                    result[name].CopyFrom(value)
        table = read_forms.TABLES[kind.name]
        if read_forms.normalise_properties(new, self.read_double, self.db.dialect.int_limit):
            data = new.SerializeToString(deterministic=True)
            self.db.execute(f"REPLACE INTO `{table}` (`id`, `pb`) VALUES (?, ?)", (new.id, data))
            self.memory.remember_form(kind.name, new.id, data)
        else:
            self.db.execute(f"DELETE FROM `{table}` WHERE `id` = ?", (new.id,))
            self.memory.forget_form(kind.name, new.id)

    def _write_properties(self, kind: NodeKind, node_id: int, current: Any, previous: dict,
                          is_custom: bool, names: Optional[set[str]]) -> list[tuple[str, Any]]:
        """MLMD's ModifyProperties: insert C\\P, update changed, delete P\\C. Returns the
        changes as (name, new value, or None when deleted)."""
        changes: list[tuple[str, Any]] = []
        for name in sorted(names if names is not None else set(current) | set(previous)):
            in_prev, in_curr = name in previous, name in current
            if in_prev and not in_curr:
                self._delete_property(kind, node_id, name, is_custom)
                changes.append((name, None))
            elif in_curr and (not in_prev or previous[name] != current[name]):
                if in_prev:
                    self._delete_property(kind, node_id, name, is_custom)
                cols = values.encode_value(current[name])
                self.db.execute(
                    f"INSERT INTO `{kind.prop_table}` (`{kind.owner}`, `name`, `is_custom_property`, "
                    "`int_value`, `double_value`, `string_value`, `byte_value`, `proto_value`, `bool_value`) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (node_id, name, 1 if is_custom else 0, *cols))
                changes.append((name, current[name]))
        return changes

    def _delete_property(self, kind: NodeKind, node_id: int, name: str, is_custom: bool) -> None:
        self.db.execute(f"DELETE FROM `{kind.prop_table}` WHERE `{kind.owner}` = ? AND `name` = ? "
                        "AND `is_custom_property` = ?", (node_id, name, 1 if is_custom else 0))

    def load_node(self, kind: NodeKind, node_id: int, read: bool = True) -> Optional[Any]:
        """The stored node exactly as MLMD's access object reads it back (type name, values);
        ``read`` False: only if its read form is remembered (a use keeps it remembered: a
        run's input that no step changes is still there after thousands of new nodes)."""
        data = self.memory.form(kind.name, node_id)
        if data is not None:
            return kind.message.FromString(data)
        if not read:
            return None
        found = self.reader.nodes(kind.name, [node_id])
        return found[0] if found else None

    @property
    def reader(self) -> Any:
        """A Reader on the projection's own connection (it sees this transaction's rows)."""
        if self._reader is None:
            from mlmd_log.query.reader import Reader
            self._reader = Reader(self.db.conn, self.db.dialect)
        return self._reader

    def _update_node(self, kind: NodeKind, node: Any, mask: Sequence[str] = (), force_time: bool = False) -> int:
        """MLMD's UpdateNodeImpl: validate against the stored node, write only what changed."""
        stored_node = self.load_node(kind, node.id)
        if stored_node is None:
            raise InvalidArgumentError(f"Cannot find the given id {node.id}")
        if node.HasField("type_id") and node.type_id != stored_node.type_id:
            raise InvalidArgumentError(f"Given type_id {node.type_id} is different from the one known before: "
                                       f"{stored_node.type_id}")
        stored_type = self.types.by_id(stored_node.type_id, kind.type_kind)
        if stored_type is None:
            raise NotFoundError(f"No type found for query, type_id: {stored_node.type_id}")
        prop_names = _mask_property_names(mask, "properties")
        custom_names = _mask_property_names(mask, "custom_properties")
        self._validate_properties(node, stored_type, None if not mask else prop_names)
        changes = {
            "properties": self._write_properties(kind, node.id, node.properties, dict(stored_node.properties),
                                                 False, prop_names if mask else None),
            "custom_properties": self._write_properties(kind, node.id, node.custom_properties,
                                                        dict(stored_node.custom_properties), True,
                                                        custom_names if mask else None)}
        if force_time or any(changes.values()) or not same_attributes(node, stored_node):
            stored_uri = stored_node.uri if kind is ARTIFACT else None  # (a mask below may overwrite it)
            getters = dict(kind.columns)
            stored_columns = {c: getters[c](stored_node) for c in kind.update_columns}
            target = kind.message()
            target.CopyFrom(node)
            if not node.HasField("type_id"):
                target.type_id = stored_node.type_id
            fields_mask = [p for p in mask if not p.startswith("properties") and not p.startswith("custom_properties")
                           and p in kind.message.DESCRIPTOR.fields_by_name]
            if mask:
                target = stored_node
                for path in fields_mask:
                    if node.HasField(path):
                        setattr(target, path, getattr(node, path))
                    else:
                        target.ClearField(path)
            if kind is CONTEXT and not target.name:
                raise InvalidArgumentError("Context name should not be empty")
            # Only the columns whose value changes: an index on a column the statement does
            # not set is left alone (an unchanged uri costs two index rewrites otherwise).
            changed = [(c, value) for c in kind.update_columns if (value := getters[c](target)) != stored_columns[c]]
            sets = "".join(f"`{c}` = ?, " for c, _ in changed)
            try:
                self.db.execute(f"UPDATE `{kind.table}` SET {sets}`last_update_time_since_epoch` = ? "
                                "WHERE `id` = ?", (*(v for _, v in changed), self.now_ms, node.id))
            except self.db.integrity_errors as exc:
                # MLMD does not translate a unique violation on update: it surfaces as INTERNAL.
                raise errors.InternalError(f"Cannot update {kind.name} {node.id}: the new name or external_id "
                                           f"is already used: {_short(node)}") from exc
            if kind is CONTEXT:
                self.memory.context_ids.clear()  # (a context's name may have changed)
            self._rewrite_derived_rows(kind, stored_node, target, changes, stored_uri)
        return node.id

    def _upsert_node(self, kind: NodeKind, node: Any, mask: Sequence[str] = (), validate: bool = True,
                     force_time: bool = False) -> int:
        if node.HasField("id"):
            return self._update_node(kind, node, mask, force_time)
        return self._create_node(kind, node, validate)

    def _create_nodes_bulk(self, kind: NodeKind, nodes: Sequence[Any]) -> Optional[list[int]]:
        """Creates many new nodes with one multi-row insert per table.

        Returns None (caller goes one by one) when any node would fail validation,
        so the error reported is exactly the one MLMD's one-by-one loop reports.
        """
        expected_by_type: dict[int, Optional[dict[str, str]]] = {}
        for node in nodes:
            if not node.HasField("type_id") or (kind is CONTEXT and not node.name):
                return None
            expected = expected_by_type.get(node.type_id, False)
            if expected is False:
                stored = self.types.by_id(node.type_id, kind.type_kind)
                expected = expected_by_type[node.type_id] = None if stored is None else {
                    name: values.VALUE_FIELD.get(data_type) for name, data_type in stored.properties.items()}
            if expected is None:
                return None
            props = node.properties
            for name in props:  # (iterating keys stays in C; .items() goes through collections.abc)
                if expected.get(name, "") != props[name].WhichOneof("value"):
                    return None
        first = self.memory.next_id[kind.table]
        ids = list(range(first, first + len(nodes)))
        names = ["id"] + [c for c, _ in kind.columns] + ["create_time_since_epoch", "last_update_time_since_epoch"]
        getters = [getter for _, getter in kind.columns]
        now = self.now_ms
        rows = [(node_id, *[getter(node) for getter in getters], now, now) for node_id, node in zip(ids, nodes)]
        prop_rows = []
        add, encode = prop_rows.append, values.encode_value
        for node_id, node in zip(ids, nodes):
            for is_custom, props in ((0, node.properties), (1, node.custom_properties)):
                for name in props:
                    add((node_id, name, is_custom, *encode(props[name])))
        cols = ", ".join(f"`{c}`" for c in names)
        try:
            self.db.executemany(f"INSERT INTO `{kind.table}` ({cols}) VALUES ({', '.join('?' for _ in names)})", rows)
        except self.db.integrity_errors as exc:
            raise AlreadyExistsError(f"Given node already exists: one of the {len(nodes)} new {kind.name}s "
                                     "reuses a name (per type) or an external id") from exc
        self.memory.next_id[kind.table] = first + len(nodes)
        self._write_derived_rows(kind, zip(ids, nodes))
        if prop_rows:
            self.db.executemany(
                f"INSERT INTO `{kind.prop_table}` (`{kind.owner}`, `name`, `is_custom_property`, `int_value`, "
                "`double_value`, `string_value`, `byte_value`, `proto_value`, `bool_value`) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", prop_rows)
        return ids

    def _upsert_many(self, kind: NodeKind, nodes: Sequence[Any], mask: Sequence[str]) -> list[int]:
        if len(nodes) > 1 and not any(n.HasField("id") for n in nodes):
            ids = self._create_nodes_bulk(kind, nodes)
            if ids is not None:
                return ids
        return [self._upsert_node(kind, node, mask) for node in nodes]

    def _apply_put_artifacts(self, req: svc.PutArtifactsRequest) -> svc.PutArtifactsResponse:
        resp = svc.PutArtifactsResponse()
        mask = list(req.update_mask.paths)
        if not req.options.abort_if_latest_updated_time_changed:
            resp.artifact_ids.extend(self._upsert_many(ARTIFACT, req.artifacts, mask))
            return resp
        for artifact in req.artifacts:
            if artifact.HasField("id") and req.options.abort_if_latest_updated_time_changed:
                stored = self.load_node(ARTIFACT, artifact.id)
                if stored is not None:
                    if artifact.last_update_time_since_epoch != stored.last_update_time_since_epoch:
                        raise FailedPreconditionError(
                            "`abort_if_latest_updated_time_changed` is set, and the stored artifact with id = "
                            f"{artifact.id} has a different last_update_time_since_epoch: "
                            f"{stored.last_update_time_since_epoch} from the one in the given artifact: "
                            f"{artifact.last_update_time_since_epoch}")
                    # MLMD sleeps 1 ms so the update time moves; log time does the same, deterministically.
                    self.now_ms = max(self.now_ms, stored.last_update_time_since_epoch + 1)
            resp.artifact_ids.append(self._upsert_node(ARTIFACT, artifact, mask))
        return resp

    def _apply_put_executions(self, req: svc.PutExecutionsRequest) -> svc.PutExecutionsResponse:
        mask = list(req.update_mask.paths)
        return svc.PutExecutionsResponse(execution_ids=self._upsert_many(EXECUTION, req.executions, mask))

    def _apply_put_contexts(self, req: svc.PutContextsRequest) -> svc.PutContextsResponse:
        mask = list(req.update_mask.paths)
        return svc.PutContextsResponse(context_ids=self._upsert_many(CONTEXT, req.contexts, mask))

    # -- events and links ---------------------------------------------------
    def _exists(self, table: str, node_id: int) -> bool:
        return self.db.one(f"SELECT 1 FROM `{table}` WHERE `id` = ?", (node_id,)) is not None

    def _create_event(self, event: pb.Event, validated: bool) -> None:
        if not event.HasField("artifact_id"):
            raise InvalidArgumentError("No artifact id is specified.")
        if not event.HasField("execution_id"):
            raise InvalidArgumentError("No execution id is specified.")
        if not event.HasField("type") or event.type == pb.Event.UNKNOWN:
            raise InvalidArgumentError("No event type is specified.")
        if not validated:
            if not self._exists("Artifact", event.artifact_id):
                raise InvalidArgumentError(f"No artifact with the given id {event.artifact_id}")
            if not self._exists("Execution", event.execution_id):
                raise InvalidArgumentError(f"No execution with the given id {event.execution_id}")
        when = event.milliseconds_since_epoch if event.HasField("milliseconds_since_epoch") else self.now_ms
        try:
            event_id = self._insert_with_id("Event", ("artifact_id", "execution_id", "type", "milliseconds_since_epoch"),
                                            (event.artifact_id, event.execution_id, event.type, when))
        except self.db.integrity_errors as exc:
            raise AlreadyExistsError(f"Given event already exists: {_short(event)}") from exc
        rows = event_path_rows(event_id, event)
        if rows:
            self.db.executemany("INSERT INTO `EventPath` (`event_id`, `is_index_step`, `step_index`, `step_key`) "
                                "VALUES (?, ?, ?, ?)", rows)

    def _apply_put_events(self, req: svc.PutEventsRequest) -> svc.PutEventsResponse:
        for event in req.events:
            self._create_event(event, validated=False)
        return svc.PutEventsResponse()

    def _link(self, table: str, node_col: str, context_id: int, node_id: int) -> None:
        """Inserts an Attribution/Association unless it is already there (one statement; the
        next id is taken only when the row went in, as with MLMD's autoincrement)."""
        new_id = self.memory.next_id[table]
        cur = self.db.execute(f"{self.db.dialect.insert_ignore} INTO `{table}` (`id`, `context_id`, `{node_col}`) "
                              "VALUES (?, ?, ?)", (new_id, context_id, node_id))
        if cur.rowcount == 1:
            self.memory.next_id[table] = new_id + 1
        self.memory.note_link((table, context_id, node_id))

    def _apply_put_attributions_and_associations(
            self, req: svc.PutAttributionsAndAssociationsRequest) -> svc.PutAttributionsAndAssociationsResponse:
        for link, table, node_col, node_table, node_word in (
                *((a, "Attribution", "artifact_id", "Artifact", "Artifact") for a in req.attributions),
                *((a, "Association", "execution_id", "Execution", "Execution") for a in req.associations)):
            if not link.HasField("context_id"):
                raise InvalidArgumentError("No context id is specified.")
            if not link.HasField(node_col):
                raise InvalidArgumentError(f"No {node_col.replace('_', ' ')} is specified")
            if not self._exists("Context", link.context_id):
                raise InvalidArgumentError("Context id not found.")
            if not self._exists(node_table, getattr(link, node_col)):
                raise InvalidArgumentError(f"{node_word} id not found.")
            self._link(table, node_col, link.context_id, getattr(link, node_col))
        return svc.PutAttributionsAndAssociationsResponse()

    def _apply_put_parent_contexts(self, req: svc.PutParentContextsRequest) -> svc.PutParentContextsResponse:
        for link in req.parent_contexts:
            if not link.HasField("parent_id") or not link.HasField("child_id"):
                raise InvalidArgumentError(f"Missing parent / child id in the parent_context: {_short(link)}")
            found = self.db.one("SELECT COUNT(*) FROM `Context` WHERE `id` IN (?, ?)", (link.parent_id, link.child_id))
            if found[0] < 2:
                raise InvalidArgumentError(
                    f"Given parent / child id in the parent_context cannot be found: {_short(link)}")
            self._check_no_cycle(link.child_id, link.parent_id)
            try:
                self.db.execute("INSERT INTO `ParentContext` (`context_id`, `parent_context_id`) VALUES (?, ?)",
                                (link.child_id, link.parent_id))
            except self.db.integrity_errors as exc:
                raise AlreadyExistsError(f"Given parent_context already exists: {_short(link)}") from exc
        return svc.PutParentContextsResponse()

    def _check_no_cycle(self, child_id: int, parent_id: int) -> None:
        """Walks the ancestors of ``parent_id`` breadth-first, one query per level."""
        frontier, seen = {parent_id}, set()
        while frontier:
            if child_id in frontier:
                raise InvalidArgumentError("There is a cycle detected of the given relationship.")
            seen |= frontier
            ids = sorted(frontier)
            marks = ", ".join("?" for _ in ids)
            rows = self.db.rows(f"SELECT `parent_context_id` FROM `ParentContext` WHERE `context_id` IN ({marks})", ids)
            frontier = {r[0] for r in rows} - seen

    # -- composite puts -----------------------------------------------------
    def _upsert_context_with_options(self, context: pb.Context, reuse: bool, validate: bool) -> int:
        if not context.HasField("type_id"):
            raise InvalidArgumentError(f"Context is missing a type_id: {_short(context)}")
        if not context.HasField("name"):
            raise InvalidArgumentError(f"Context is missing a name: {_short(context)}")
        if reuse and not context.HasField("id"):
            known = self.stored_context_id(context.type_id, context.name)
            if known is not None:
                return known
        try:
            return self._upsert_node(CONTEXT, context, validate=validate)
        except AlreadyExistsError as exc:
            if reuse:
                raise AbortedError("Concurrent creation of the same context at the first time. Retry the "
                                   f"transaction to reuse the context: {_short(context)}") from exc
            raise

    def stored_context_id(self, type_id: int, name: str, read: bool = True) -> Optional[int]:
        """The id of the context of this type and name, if it exists (remembered, bounded;
        ``read`` False: only if remembered)."""
        key = (type_id, name)
        known = self.memory.context_ids.use(key)
        if known is None and read:
            row = self.db.one("SELECT `id` FROM `Context` WHERE `type_id` = ? AND `name` = ?", key)
            if row is None:
                return None
            known = row[0]
            self.memory.remember_context_id(key, known)
        return known

    def _artifact_id_by_external_id(self, external_id: str) -> Optional[int]:
        row = self.db.one("SELECT `id` FROM `Artifact` WHERE `external_id` = ?", (external_id,))
        return row[0] if row else None

    def _apply_put_execution(self, req: svc.PutExecutionRequest) -> svc.PutExecutionResponse:
        if not req.HasField("execution"):
            raise InvalidArgumentError(f"No execution is found: {_short(req)}")
        resp = svc.PutExecutionResponse()
        pairs = [svc.PutExecutionRequest.ArtifactAndEvent() for _ in req.artifact_event_pairs]
        for pair, given in zip(pairs, req.artifact_event_pairs):
            pair.CopyFrom(given)
            if not pair.HasField("artifact"):
                continue
            artifact = pair.artifact
            if (req.options.reuse_artifact_if_already_exist_by_external_id and not artifact.HasField("id")
                    and artifact.external_id):
                existing = self._artifact_id_by_external_id(artifact.external_id)
                if existing is not None:
                    artifact.id = existing
            pair.artifact.id = self._upsert_node(ARTIFACT, artifact)
        execution_id = self._upsert_node(EXECUTION, req.execution, force_time=req.options.force_update_time)
        resp.execution_id = execution_id
        for pair in pairs:
            self._insert_pair_event(pair, execution_id)
            if pair.HasField("artifact"):
                resp.artifact_ids.append(pair.artifact.id)
            elif pair.HasField("event"):
                resp.artifact_ids.append(pair.event.artifact_id)
            else:
                resp.artifact_ids.append(-1)
        artifact_ids = sorted({a for a in resp.artifact_ids if a != -1})
        for context in req.contexts:
            if context.HasField("id") and req.options.force_reuse_context:
                if not self._exists("Context", context.id):
                    raise NotFoundError(f"Context with ID {context.id} was not found in MLMD")
                context_id = context.id
            else:
                context_id = self._upsert_context_with_options(context, req.options.reuse_context_if_already_exist,
                                                               validate=True)
            resp.context_ids.append(context_id)
            self._link("Association", "execution_id", context_id, execution_id)
            for artifact_id in artifact_ids:
                self._link("Attribution", "artifact_id", context_id, artifact_id)
        return resp

    def _insert_pair_event(self, pair: Any, execution_id: int) -> None:
        if not pair.HasField("event"):
            return
        event = pb.Event()
        event.CopyFrom(pair.event)
        if event.HasField("execution_id") and event.execution_id != execution_id:
            raise InvalidArgumentError("Request's event.execution_id does not match with the given execution: ")
        event.execution_id = execution_id
        if pair.HasField("artifact"):
            if not pair.artifact.HasField("id"):
                raise InvalidArgumentError(f"Given artifact does not have an id: {_short(pair)}")
            if event.HasField("artifact_id") and event.artifact_id != pair.artifact.id:
                raise InvalidArgumentError(f"Given event.artifact_id is not aligned with the artifact: {_short(pair)}")
            event.artifact_id = pair.artifact.id
        elif not event.HasField("artifact_id"):
            raise InvalidArgumentError(f"If no artifact is present, given event must have an artifact_id: "
                                       f"{_short(pair)}")
        self._create_event(event, validated=True)

    def _apply_put_lineage_subgraph(self, req: svc.PutLineageSubgraphRequest) -> svc.PutLineageSubgraphResponse:
        _check_event_edges(req)
        for kind, nodes in ((ARTIFACT, req.artifacts), (EXECUTION, req.executions), (CONTEXT, req.contexts)):
            self._batch_validate(kind, nodes)
        resp = svc.PutLineageSubgraphResponse()
        reuse_ctx = req.options.reuse_context_if_already_exist
        for context in req.contexts:
            resp.context_ids.append(self._upsert_context_with_options(context, reuse_ctx, validate=False))
        by_external: dict[str, int] = {}
        if req.options.reuse_artifact_if_already_exist_by_external_id:
            for artifact in req.artifacts:
                if artifact.external_id and artifact.external_id not in by_external:
                    found = self._artifact_id_by_external_id(artifact.external_id)
                    if found is not None:
                        by_external[artifact.external_id] = found
        for artifact in req.artifacts:
            copy = pb.Artifact()
            copy.CopyFrom(artifact)
            if (req.options.reuse_artifact_if_already_exist_by_external_id and artifact.external_id
                    and not artifact.HasField("id") and artifact.external_id in by_external):
                copy.id = by_external[artifact.external_id]
            resp.artifact_ids.append(self._upsert_node(ARTIFACT, copy, validate=False))
        for execution in req.executions:
            resp.execution_ids.append(self._upsert_node(EXECUTION, execution, validate=False))
        for context_id in sorted(set(resp.context_ids)):
            for execution_id in sorted(set(resp.execution_ids)):
                self._link("Association", "execution_id", context_id, execution_id)
            for artifact_id in sorted(set(resp.artifact_ids)):
                self._link("Attribution", "artifact_id", context_id, artifact_id)
        for edge in req.event_edges:
            event = pb.Event()
            event.CopyFrom(edge.event)
            if not event.HasField("execution_id"):
                event.execution_id = resp.execution_ids[edge.execution_index]
            if not event.HasField("artifact_id"):
                event.artifact_id = resp.artifact_ids[edge.artifact_index]
            self._create_event(event, validated=True)
        return resp

    def _batch_validate(self, kind: NodeKind, nodes: Iterable[Any]) -> None:
        nodes = list(nodes)
        if not nodes:
            return
        for node in nodes:
            if not node.HasField("type_id"):
                raise InvalidArgumentError("Type id is missing.")
        missing = sorted({n.type_id for n in nodes if self.types.by_id(n.type_id, kind.type_kind) is None})
        if missing:
            raise NotFoundError(f"No {kind.name} types found for ids: {missing}")
        for node in nodes:
            try:
                self._validate_properties(node, self.types.by_id(node.type_id))
            except InvalidArgumentError as exc:
                raise InvalidArgumentError(f"Cannot validate properties of {_short(node)}: {exc.message}") from exc


def _mask_property_names(mask: Sequence[str], prefix: str) -> Optional[set[str]]:
    """Property names a field mask selects; None when it names the whole map (MLMD: 'update as a whole')."""
    names = set()
    for path in mask:
        if path == prefix:
            return None
        if path.startswith(prefix):
            names.add(path[len(prefix) + 1:] if path.startswith(prefix + ".") else path)
    return names


def _check_event_edges(req: svc.PutLineageSubgraphRequest) -> None:
    """MLMD's CheckEventEdges: each edge names its execution and artifact consistently."""
    for edge in req.event_edges:
        if not edge.HasField("event"):
            raise InvalidArgumentError(f"No event found for event_edge: {_short(edge)}")
        _check_edge_end(edge, "execution", req.executions)
        _check_edge_end(edge, "artifact", req.artifacts)


def _check_edge_end(edge: Any, end: str, nodes: Sequence[Any]) -> None:
    """Checks one end of an edge: by index into the request, by id in the event, or both agreeing."""
    index_field, id_field, title = f"{end}_index", f"{end}_id", end.capitalize()
    desc, event = _short(edge), edge.event
    has_index, has_id = edge.HasField(index_field), event.HasField(id_field)
    if not has_index and not has_id:
        raise InvalidArgumentError(f"Event_edge is missing an {end}. Could not find either an {index_field} "
                                   f"or an event.{id_field}: {desc}")
    if not has_index:
        return
    index = getattr(edge, index_field)
    if not 0 <= index < len(nodes):
        raise OutOfRangeError(f"The event_edge has an {index_field} {index} that is outside the bounds of the "
                              f"request's {end}s list, [0, {len(nodes)}). Event_edge: {desc}")
    if has_id:
        node, given = nodes[index], getattr(event, id_field)
        if not node.HasField("id"):
            raise InvalidArgumentError(f"Missing {end} ID. The referenced {end} at {index_field} {index} does not "
                                       f"have an ID even though the event_edge specifies an event.{id_field} of "
                                       f"{given}.")
        if node.id != given:
            raise InvalidArgumentError(f"{title} ID mismatch. The referenced {end} at {index_field} {index} has an "
                                       f"ID of {node.id} that does not match the event_edge's event.{id_field} of "
                                       f"{given}.")
