"""Pipeline steps applied as sets: the common put_execution without a statement per row.

Most records a projector applies are pipeline steps: a new execution, its new output
artifacts, inputs named by id, a run context that exists already. For such a record
the engine's general path costs about ten statements and a good deal of Python per
row. This module applies it from memory instead:

- it first decides, without writing anything, whether the outcome is certain: every
  type known, every property of the declared type, new nodes without a name or an
  external id (nothing unique can clash), each input's stored form in the engine's
  cache and left unchanged by the put, each context already known by name, each
  attribution of an existing artifact already known to exist. Any doubt, and the
  record goes to the general path, which gives MLMD's errors in MLMD's order;
- then it takes ids from the same counters in the same order as the general path
  (artifacts, execution, events, then per context its association and attributions),
  and queues the rows;
- the queued rows are written one executemany per statement: when the projector ends
  the batch, and before any record the general path applies (it reads the tables).

So the tables, ids, times and responses are exactly those of the general path: the
tests apply the same histories both ways and compare every table. Rows whose insert
fails at the flush mean this module's decision was wrong: it raises StepsFailed and
the projector applies the batch again without it.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional, Protocol

from mlmd_log.projections import read_forms, values
from mlmd_log.projections.memory import EngineMemory
from mlmd_log.projections.nodes import ARTIFACT, EXECUTION, NodeKind, event_path_rows, same_attributes
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.proto import metadata_store_service_pb2 as svc

_PROPERTY_COLUMNS = ("`name`, `is_custom_property`, `int_value`, `double_value`, `string_value`, `byte_value`, "
                     "`proto_value`, `bool_value`")


class StepsFailed(Exception):
    """Queued step rows could not be written: the batch must be applied again without steps."""


class _Node:
    """A node the step creates: its id and message."""

    __slots__ = ("id", "node", "type_name")

    def __init__(self, node_id: int, node: Any, type_name: str):
        self.id, self.node, self.type_name = node_id, node, type_name


def write_rows(db: Any, inserts: dict[str, list], touched: dict[int, tuple[int, bytes]]) -> None:
    """Writes queued step rows: every insert, one executemany per statement, then the inputs
    whose update time moved (``touched``: artifact id -> (time, read form); an artifact
    created in the queue is inserted before its update). StepsFailed if a row clashes with
    a stored one."""
    try:
        for sql, rows in inserts.items():
            db.executemany(sql, rows)
        if touched:
            db.executemany("UPDATE `Artifact` SET `last_update_time_since_epoch` = ? WHERE `id` = ?",
                           [(when, node_id) for node_id, (when, _) in touched.items()])
            db.executemany(f"REPLACE INTO `{read_forms.TABLES['artifact']}` (`id`, `pb`) VALUES (?, ?)",
                           [(node_id, form) for node_id, (_, form) in touched.items()])
    except db.integrity_errors as exc:
        raise StepsFailed(f"queued step rows clash with stored ones: {exc}") from exc


class StoredNodes(Protocol):
    """What the step writer asks the engine about the projection (engine.Engine)."""

    types: Any  # (engine.TypeRegistry)
    read_double: Callable[[float], float]

    def load_node(self, kind: NodeKind, node_id: int, read: bool = True) -> Optional[Any]: ...

    def stored_context_id(self, type_id: int, name: str, read: bool = True) -> Optional[int]: ...


class StepWriter:
    """Decides which put_execution records are certain, and queues their rows.

    It takes ids from, and caches in, the ``memory`` it shares with the engine; it asks
    ``stored`` (the engine) for types, stored nodes and context ids. ``reads_allowed``
    False: decide from memory alone, never reading the projection; what memory cannot
    settle goes to the general path."""

    def __init__(self, stored: StoredNodes, db: Any, memory: EngineMemory, versions: Any = None):
        """``versions`` (history.Versions): the projection keeps row versions, and each queued
        row's version is queued beside it with its record's offset."""
        self.stored, self.db, self.memory, self.versions = stored, db, memory, versions
        self.enabled = True
        self.reads_allowed = True
        self._artifact, self._execution = ARTIFACT, EXECUTION
        self._value_field = values.VALUE_FIELD
        self._event_path_rows = event_path_rows
        self._same_attributes = same_attributes
        self._inserts: dict[str, list] = {}
        self._touched: dict[int, tuple[int, bytes]] = {}  # input artifact id -> (update time, read form)
        self._version_rows: dict[str, list] = {}  # version insert -> rows (each ending with its offset)
        self._touched_at: list[tuple[int, int, int]] = []  # (input artifact id, offset, update time) in log order
        self._offset = -1  # (the record being decided)
        self._sql: dict[str, str] = {}
        for kind in (ARTIFACT, EXECUTION):
            names = ("id", *(c for c, _ in kind.columns), "create_time_since_epoch", "last_update_time_since_epoch")
            self._sql[kind.name] = (f"INSERT INTO `{kind.table}` ({', '.join(f'`{c}`' for c in names)}) "
                                    f"VALUES ({', '.join('?' for _ in names)})")
            self._sql[kind.name + ".props"] = (f"INSERT INTO `{kind.prop_table}` (`{kind.owner}`, {_PROPERTY_COLUMNS}) "
                                               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
            self._sql[kind.name + ".pb"] = f"INSERT INTO `{read_forms.TABLES[kind.name]}` (`id`, `pb`) VALUES (?, ?)"
        self._sql["event"] = ("INSERT INTO `Event` (`id`, `artifact_id`, `execution_id`, `type`, "
                              "`milliseconds_since_epoch`) VALUES (?, ?, ?, ?, ?)")
        self._sql["path"] = ("INSERT INTO `EventPath` (`event_id`, `is_index_step`, `step_index`, `step_key`) "
                             "VALUES (?, ?, ?, ?)")
        self._sql["ruri"] = "INSERT INTO `mlmdlog_artifact_ruri` (`id`, `ruri`) VALUES (?, ?)"
        # A new node's row, for the columns ARTIFACT and EXECUTION declare (name and external
        # id are absent: a step creates no node with them).
        assert [c for c, _ in ARTIFACT.columns] == ["type_id", "uri", "state", "name", "external_id"]
        assert [c for c, _ in EXECUTION.columns] == ["type_id", "last_known_state", "name", "external_id"]
        self._rows = {
            "artifact": lambda node_id, n, now: (node_id, n.type_id, n.uri, n.state if n.HasField("state") else None,
                                                 None, None, now, now),
            "execution": lambda node_id, n, now: (
                node_id, n.type_id, n.last_known_state if n.HasField("last_known_state") else None, None, None,
                now, now)}
        for table, column in (("Association", "execution_id"), ("Attribution", "artifact_id")):
            self._sql[table] = f"INSERT INTO `{table}` (`id`, `context_id`, `{column}`) VALUES (?, ?, ?)"

    # -- the queue ----------------------------------------------------------
    @property
    def pending(self) -> bool:
        return bool(self._inserts or self._touched)

    def discard(self) -> None:
        """Forgets queued rows (their transaction is being rolled back)."""
        self._inserts.clear()
        self._touched.clear()
        self._version_rows.clear()
        self._touched_at.clear()

    def flush(self) -> None:
        """Writes the queued rows (see ``write_rows``), and their versions, and forgets them."""
        if not self.pending:
            return
        try:
            if self.versions is None:
                write_rows(self.db, *self.take())
            else:
                versions, updated = self._version_rows, self._touched_at
                write_rows(self.db, *self.take())
                for sql, rows in versions.items():
                    self.db.executemany(sql, rows)
                self.versions.write_updated("Artifact", "last_update_time_since_epoch", updated)
        finally:
            self.discard()

    def take(self) -> tuple[dict[str, list], dict[int, tuple[int, bytes]]]:
        """The queued rows, handed over (to ``write_rows``, here or in another thread); the
        queue is left empty."""
        taken = (self._inserts, self._touched)
        self._inserts, self._touched = {}, {}
        # The known links are bounded, and forgotten only here: a queued link must stay
        # known, or _look_up_link would ask the table, which does not have it yet.
        self.memory.links.trim()
        return taken

    def _queue(self, key: str, rows: list) -> None:
        sql = self._sql[key]
        queued = self._inserts.get(sql)
        if queued is None:
            self._inserts[sql] = rows
        else:
            queued.extend(rows)
        if self.versions is not None:
            version_sql = self.versions.insert_sql(sql)
            if version_sql is not None:
                offset = (self._offset,)
                self._version_rows.setdefault(version_sql, []).extend(row + offset for row in rows)

    # -- deciding -------------------------------------------------------------
    def put_execution(self, req: svc.PutExecutionRequest, now: int,
                      offset: int = -1) -> Optional[svc.PutExecutionResponse]:
        """The response, with the rows queued, when the outcome is certain; else None and
        nothing is queued or counted. ``offset``: the record's, for the rows' versions."""
        if not self.enabled:
            return None
        self._offset = offset
        req.DiscardUnknownFields()  # (as the general path: fields of a newer client are never stored)
        try:
            plan = self._plan(req, now)
        except Exception:  # noqa: BLE001  (anything odd: the general path decides, with MLMD's error)
            return None
        if plan is None:
            return None
        return self._write(req, plan, now)

    def _new_node_ok(self, kind: "NodeKind", node: Any) -> Optional[str]:
        """The type name, when creating ``node`` cannot fail; else None."""
        if not node.HasField("type_id") or node.HasField("name") or node.HasField("external_id"):
            return None
        stored = self.stored.types.by_id(node.type_id, kind.type_kind)
        if stored is None or not self._properties_ok(node, stored.properties):
            return None
        return stored.name

    def _properties_ok(self, node: Any, declared: dict[str, int]) -> bool:
        expected, props = self._value_field, node.properties
        for name in props:
            data_type = declared.get(name)
            which = props[name].WhichOneof("value")
            if data_type is None or which != expected.get(data_type) or (
                    which == "double_value" and not math.isfinite(props[name].double_value)):
                return False
        custom = node.custom_properties
        for name in custom:
            which = custom[name].WhichOneof("value")
            if which is None or (which == "double_value" and not math.isfinite(custom[name].double_value)):
                return False
        return True

    def _existing_artifact(self, node: Any, now: int) -> tuple[bool, Optional[bytes]]:
        """For an input given by id: (True, None) when the put leaves it as stored, (True,
        its new read form) when only its update time moves; (False, None) when the general
        path must decide."""
        engine = self.stored
        touched = self._touched.get(node.id)
        if touched is not None:
            stored = pb.Artifact.FromString(touched[1])
        else:  # (its read form as last written, or from the tables: a node still queued has its form kept)
            stored = engine.load_node(self._artifact, node.id, self.reads_allowed)
            if stored is None:
                return False, None
        if node.HasField("type_id") and node.type_id != stored.type_id:
            return False, None
        stored_type = engine.types.by_id(stored.type_id, self._artifact.type_kind)
        if stored_type is None or not self._properties_ok(node, stored_type.properties):
            return False, None
        for given, kept in ((node.properties, stored.properties), (node.custom_properties, stored.custom_properties)):
            if len(given) != len(kept):
                return False, None
            for name in given:
                if name not in kept or kept[name] != given[name]:
                    return False, None
        if self._same_attributes(node, stored):
            return True, None
        # Attributes differ but no column does (e.g. the input came without its type name):
        # MLMD still updates it, and only its update time changes.
        if (node.uri != stored.uri or node.HasField("state") != stored.HasField("state")
                or node.state != stored.state or node.HasField("external_id") != stored.HasField("external_id")
                or node.external_id != stored.external_id):
            return False, None
        stored.last_update_time_since_epoch = now
        if not read_forms.normalise_properties(stored, engine.read_double, self.db.dialect.int_limit):
            return False, None
        return True, stored.SerializeToString(deterministic=True)

    def _plan(self, req: svc.PutExecutionRequest, now: int) -> Optional[tuple]:
        engine = self.stored
        if not req.HasField("execution"):
            return None
        execution = req.execution
        if execution.HasField("id"):
            return None
        execution_type = self._new_node_ok(self._execution, execution)
        if execution_type is None:
            return None
        options = req.options
        artifact_id = self.memory.next_id["Artifact"]
        pairs = []  # (artifact id or None, new _Node or None, existing update or None, event or None)
        inputs: set[int] = set()
        new_ids: set[int] = set()
        for pair in req.artifact_event_pairs:
            event = pair.event if pair.HasField("event") else None
            if event is not None and (event.HasField("execution_id") or not event.type):
                return None
            if pair.HasField("artifact"):
                artifact = pair.artifact
                if artifact.HasField("id"):
                    if artifact.id in inputs:
                        return None
                    known, form = self._existing_artifact(artifact, now)
                    if not known or (event is not None and event.HasField("artifact_id")
                                     and event.artifact_id != artifact.id):
                        return None
                    inputs.add(artifact.id)
                    pairs.append((artifact.id, None, form, event))
                else:
                    type_name = self._new_node_ok(self._artifact, artifact)
                    if type_name is None or (event is not None and event.HasField("artifact_id")):
                        return None
                    new_ids.add(artifact_id)
                    pairs.append((artifact_id, _Node(artifact_id, artifact, type_name), None, event))
                    artifact_id += 1
            elif event is not None:
                if not event.HasField("artifact_id"):
                    return None
                pairs.append((event.artifact_id, None, None, event))
            else:
                pairs.append((None, None, None, None))
        seen_events = set()
        for node_id, _, _, event in pairs:
            if event is not None:
                if (node_id, event.type) in seen_events:
                    return None
                seen_events.add((node_id, event.type))
        contexts = []
        if req.contexts:
            if not options.reuse_context_if_already_exist:
                return None
            for context in req.contexts:
                if context.HasField("id") or not context.HasField("type_id") or not context.HasField("name"):
                    return None
                context_id = engine.stored_context_id(context.type_id, context.name, self.reads_allowed)
                if context_id is None:  # (the general path creates it)
                    return None
                contexts.append(context_id)
        linked = sorted({node_id for node_id, _, _, _ in pairs if node_id is not None})
        for context_id in contexts:
            for node_id in linked:
                if node_id not in new_ids:
                    if self.reads_allowed:
                        self._look_up_link("Attribution", "artifact_id", context_id, node_id)
                    elif not self.memory.knows_link(("Attribution", context_id, node_id)):
                        return None  # (memory cannot say whether the table has it)
        return pairs, execution_type, contexts, linked, new_ids

    def _look_up_link(self, table: str, column: str, context_id: int, node_id: int) -> None:
        """Notes the link in the memory's known links if the table has it. Every link a step
        queues is in there, so the table alone decides for the others."""
        key = (table, context_id, node_id)
        if not self.memory.knows_link(key) and self.db.one(
                f"SELECT 1 FROM `{table}` WHERE `context_id` = ? AND `{column}` = ?", (context_id, node_id)):
            self.memory.note_link(key)

    # -- writing --------------------------------------------------------------
    def _write(self, req: svc.PutExecutionRequest, plan: tuple, now: int) -> svc.PutExecutionResponse:
        pairs, execution_type, contexts, linked, new_ids = plan
        memory = self.memory
        next_id = memory.next_id
        created = [entry[1] for entry in pairs if entry[1] is not None]
        if created:
            next_id["Artifact"] = created[-1].id + 1
            self._write_nodes(self._artifact, created, now)
        execution_id = next_id["Execution"]
        next_id["Execution"] = execution_id + 1
        self._write_nodes(self._execution, [_Node(execution_id, req.execution, execution_type)], now)
        for node_id, _, form, _ in pairs:
            if form is not None:
                self._touched[node_id] = (now, form)
                memory.remember_form(self._artifact.name, node_id, form)
                if self.versions is not None:
                    self._touched_at.append((node_id, self._offset, now))
        event_rows, path_rows = [], []
        event_id = next_id["Event"]
        for node_id, _, _, event in pairs:
            if event is None:
                continue
            when = event.milliseconds_since_epoch if event.HasField("milliseconds_since_epoch") else now
            event_rows.append((event_id, node_id, execution_id, event.type, when))
            path_rows += self._event_path_rows(event_id, event)
            event_id += 1
        next_id["Event"] = event_id
        if event_rows:
            self._queue("event", event_rows)
        if path_rows:
            self._queue("path", path_rows)
        self._write_links(contexts, execution_id, linked, new_ids)
        return svc.PutExecutionResponse(
            execution_id=execution_id, context_ids=contexts,
            artifact_ids=[-1 if node_id is None else node_id for node_id, _, _, _ in pairs])

    def _write_links(self, contexts: list[int], execution_id: int, linked: list[int], new_ids: set[int]) -> None:
        memory = self.memory
        next_id, links = memory.next_id, memory.links
        association, attribution = [], []
        for context_id in contexts:
            key = ("Association", context_id, execution_id)
            if key not in links:
                association.append((next_id["Association"], context_id, execution_id))
                next_id["Association"] += 1
                memory.note_link(key)
            for node_id in linked:
                key = ("Attribution", context_id, node_id)
                if key not in links:  # (not in the table either: see _look_up_link)
                    attribution.append((next_id["Attribution"], context_id, node_id))
                    next_id["Attribution"] += 1
                    memory.note_link(key)
        if association:
            self._queue("Association", association)
        if attribution:
            self._queue("Attribution", attribution)

    def _write_nodes(self, kind: "NodeKind", created: list[_Node], now: int) -> None:
        memory, db = self.memory, self.db
        row_of = self._rows[kind.name]
        rows, prop_rows, forms = [], [], []
        encode, encode_form = values.encode_value, read_forms.encode
        read_double, limit = self.stored.read_double, db.dialect.int_limit
        for made in created:
            node, node_id = made.node, made.id
            rows.append(row_of(node_id, node, now))
            for is_custom, props in ((0, node.properties), (1, node.custom_properties)):
                if props:
                    for name in sorted(props):
                        prop_rows.append((node_id, name, is_custom, *encode(props[name])))
            data = encode_form(kind.name, kind.message, node, node_id, made.type_name, now, read_double, limit)
            if data is not None:
                forms.append((node_id, data))
                memory.remember_form(kind.name, node_id, data)
        self._queue(kind.name, rows)
        if prop_rows:
            self._queue(kind.name + ".props", prop_rows)
        if kind is self._artifact and db.dialect.reversed_uris:
            self._queue("ruri", [(made.id, made.node.uri[::-1]) for made in created])
        if forms:
            self._queue(kind.name + ".pb", forms)
