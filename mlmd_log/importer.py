"""Moving a database that ml-metadata wrote (schema v10, SQLite or MySQL) into a log.

The log holds requests, not rows, so an import writes the put requests whose replay
rebuilds the database: the projector assigns ids in log order and takes times from the
records, so the requests go in the order and at the times that give back the same ids
and the same create/update times. Everything goes through RecordFactory like any put.

How each part comes out exactly:
- ids: every table's rows are created in id order, one table's ids never wait on
  another's; ids with gaps cannot be recreated (a rejected put takes no id), so a type
  or node table with a gap is refused, naming the first missing id.
- node times: a node is created by a record at its create time; when its last update
  came later, it is created with one extra custom property (IMPORT_MARKER) and a record
  at the update time removes it, which moves last_update_time_since_epoch there. Records
  are sorted by those times; the projector's time never goes back, so a time earlier
  than one the id order forces before it (a clock that stepped back) comes out later:
  such rows are counted and named in the summary, never silently.
- events keep their own milliseconds; links, events and parent contexts follow as soon
  as both ends exist, in their tables' order.
Memory: the ids and times of the nodes (three ints a node); values stream in chunks.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

from mlmd_log import errors
from mlmd_log.producer.base import Log
from mlmd_log.producer.records import RecordFactory, encode_record
from mlmd_log.projections.backend import SqlBackend
from mlmd_log.projections.ddl import SIMPLE_TYPES
from mlmd_log.projections.nodes import ARTIFACT_KIND, CONTEXT_KIND, EXECUTION_KIND
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.proto import metadata_store_service_pb2 as svc
from mlmd_log.query.reader import Reader

#: The custom property that holds a node's last update back until its update time.
IMPORT_MARKER = "__mlmd_log_import_pending__"
CHUNK = 500  # rows a read or a put request carries

# Node tables in the order ties are broken: (reader kind, table, put RPC, request field).
_NODE_KINDS = (("artifact", "Artifact", "PutArtifacts", "artifacts"),
               ("execution", "Execution", "PutExecutions", "executions"),
               ("context", "Context", "PutContexts", "contexts"))
_TYPE_PUTS = {pb.ArtifactType: ("PutArtifactType", "artifact_type"),
              pb.ExecutionType: ("PutExecutionType", "execution_type"),
              pb.ContextType: ("PutContextType", "context_type")}
_TYPE_MESSAGES = {ARTIFACT_KIND: pb.ArtifactType, EXECUTION_KIND: pb.ExecutionType, CONTEXT_KIND: pb.ContextType}


@dataclass
class ImportSummary:
    """What an import wrote, and every time it could not reproduce."""

    records: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    inexact_times: int = 0
    first_inexact: list[str] = field(default_factory=list)  # (a few, for the message)

    def note_inexact(self, what: str) -> None:
        self.inexact_times += 1
        if len(self.first_inexact) < 5:
            self.first_inexact.append(what)


def check_importable(db: SqlBackend) -> None:
    """Refuses (FailedPreconditionError) what cannot come back as it is: a gap in a table
    whose ids reads return, a property named like the import's marker, or simple types
    other than MLMD's own."""
    for table in ("Type", "Artifact", "Execution", "Context"):
        gap = first_missing_id(db, table)
        if gap is not None:
            raise errors.FailedPreconditionError(
                f"{table} has no row with id {gap} although later ids exist (rows deleted, or ids a failed "
                "MySQL insert used up): the log recreates ids only in sequence, so this database cannot be "
                "imported with its ids")
    for table in ("ArtifactProperty", "ExecutionProperty", "ContextProperty"):
        if db.one(f"SELECT 1 FROM `{table}` WHERE `name` = ? LIMIT 1", (IMPORT_MARKER,)) is not None:
            raise errors.FailedPreconditionError(
                f"{table} already has a property named {IMPORT_MARKER}, the name an import uses to hold an "
                "update time back: this database cannot be imported")
    simple = db.rows("SELECT `id`, `name`, `type_kind` FROM `Type` WHERE `id` <= ? ORDER BY `id`", (len(SIMPLE_TYPES),))
    expected = [(i, name, kind) for i, (name, kind) in enumerate(SIMPLE_TYPES, start=1)]
    if [tuple(r) for r in simple] != expected[:len(simple)] or len(simple) < len(expected):
        raise errors.FailedPreconditionError(
            f"The first types are not MLMD's simple types with ids 1..{len(SIMPLE_TYPES)} (found {simple}): "
            "not a database ml-metadata created")


def first_missing_id(db: SqlBackend, table: str) -> Optional[int]:
    """The smallest id in 1..MAX(id) with no row, or None."""
    count, largest = db.one(f"SELECT COUNT(*), MAX(`id`) FROM `{table}`")
    if not largest or count == largest:
        return None
    if db.one(f"SELECT 1 FROM `{table}` WHERE `id` = 1") is None:
        return 1
    row = db.one(f"SELECT MIN(T.`id`) + 1 FROM `{table}` AS T LEFT JOIN `{table}` AS N ON N.`id` = T.`id` + 1 "
                 f"WHERE N.`id` IS NULL AND T.`id` < ?", (largest,))
    return row[0]


class _Writer:
    """Appends put records at chosen times, in chunks, reporting progress."""

    def __init__(self, log: Log, factory: RecordFactory, progress: Callable[[int], None]):
        self.log, self.factory, self.progress = log, factory, progress
        self.now_ms = 0  # (the projector's time: the running maximum of record times)
        self.records = 0
        self._pending: list[bytes] = []

    def put(self, rpc: str, request: Any, time_ms: int) -> int:
        """Queues one record at ``time_ms``; returns the time the projector will apply it at."""
        self.now_ms = max(self.now_ms, time_ms)
        self._pending.append(encode_record(self.factory.make(rpc, request, timestamp_ms=time_ms)))
        self.records += 1
        if len(self._pending) >= 200:
            self.flush()
        return self.now_ms

    def flush(self) -> None:
        if self._pending:
            self.log.append(self._pending)
            self._pending = []
        self.progress(self.records)


class _LinkQueue:
    """One table of links (or events) in its order, released once both ends exist."""

    def __init__(self, rows: Iterator[tuple[tuple[int, ...], Any]], rpc: str, field_name: str,
                 request: Callable[[], Any]):
        self._rows = rows  # ((artifact id or 0, execution id or 0, context ids...), message)
        self._head: Optional[tuple] = next(self._rows, None)
        self.rpc, self.field_name, self.request = rpc, field_name, request
        self.count = 0

    def release(self, ready: Callable[[tuple[int, ...]], bool], writer: _Writer) -> None:
        batch = []
        while self._head is not None and ready(self._head[0]):
            batch.append(self._head[1])
            self._head = next(self._rows, None)
            if len(batch) >= CHUNK:
                self._send(batch, writer)
                batch = []
        self._send(batch, writer)

    def _send(self, batch: list, writer: _Writer) -> None:
        if batch:
            request = self.request()
            getattr(request, self.field_name).extend(batch)
            writer.put(self.rpc, request, writer.now_ms)
            self.count += len(batch)

    @property
    def done(self) -> bool:
        return self._head is None


def _chunked(db: SqlBackend, sql: str) -> Iterator[tuple]:
    """Rows of ``sql`` (``... WHERE id > ? ORDER BY id LIMIT ?``) by keyset pages."""
    last = 0
    while True:
        rows = db.rows(sql, (last, CHUNK))
        if not rows:
            return
        yield from rows
        last = rows[-1][0]


class Importer:
    """One import of ``source`` (an ml-metadata database) into the empty ``log``."""

    def __init__(self, source: SqlBackend, log: Log, progress: Callable[[int, int], None] = lambda done, total: None):
        self.db, self.log = source, log
        self.reader = Reader(source.conn, source.dialect)
        self._progress = progress
        self.summary = ImportSummary()

    def total_records_estimate(self) -> int:
        """At most how many records the import writes (the progress bar's total, for its
        ETA): a type each, a create and an update a node at most, links in chunks."""
        count = lambda sql: self.db.one(sql)[0]  # noqa: E731
        nodes = sum(count(f"SELECT COUNT(*) FROM `{t}`") + count(
            f"SELECT COUNT(*) FROM `{t}` WHERE `create_time_since_epoch` <> `last_update_time_since_epoch`")
            for _, t, _, _ in _NODE_KINDS)
        links = sum(count(f"SELECT COUNT(*) FROM `{t}`") // CHUNK + 1
                    for t in ("Event", "Attribution", "Association", "ParentContext"))
        return count("SELECT COUNT(*) FROM `Type`") - len(SIMPLE_TYPES) + nodes + links

    def run(self) -> ImportSummary:
        if self.log.end_offset() != 0:
            raise errors.FailedPreconditionError(
                f"The target log already holds {self.log.end_offset()} records: an import rebuilds a store's "
                "ids from the first record, so it goes into an empty log only")
        check_importable(self.db)
        total = self.total_records_estimate()
        writer = _Writer(self.log, RecordFactory("mlmd-log import"), lambda done: self._progress(done, max(total, done)))
        first_time = self._first_time()
        self._write_types(writer, first_time)
        self._write_nodes_and_links(writer)
        writer.flush()
        self.summary.records = writer.records
        return self.summary

    def _first_time(self) -> int:
        times = [self.db.one(f"SELECT MIN(`create_time_since_epoch`) FROM `{t}`")[0] for _, t, _, _ in _NODE_KINDS]
        return min((t for t in times if t is not None), default=0)

    # -- types ------------------------------------------------------------
    def _write_types(self, writer: _Writer, time_ms: int) -> None:
        """One record a type, in id order (types of all kinds share the ids)."""
        count = 0
        for type_id, kind in _chunked(self.db, "SELECT `id`, `type_kind` FROM `Type` WHERE `id` > ? "
                                               f"AND `id` > {len(SIMPLE_TYPES)} ORDER BY `id` LIMIT ?"):
            message = _TYPE_MESSAGES.get(kind)
            if message is None:
                raise errors.FailedPreconditionError(f"Type {type_id} has an unknown type_kind {kind}")
            [stored] = self.reader.get_types_by_id(message, [type_id])
            stored.ClearField("id")
            rpc, field_name = _TYPE_PUTS[message]
            request = getattr(svc, f"{rpc}Request")(all_fields_match=True)
            getattr(request, field_name).CopyFrom(stored)
            writer.put(rpc, request, time_ms)
            count += 1
        self.summary.rows["types"] = count

    # -- nodes, then what links them ----------------------------------------
    def _node_times(self, table: str) -> list[tuple[int, int, int]]:
        return [tuple(r) for r in self.db.rows(
            f"SELECT `id`, `create_time_since_epoch`, `last_update_time_since_epoch` FROM `{table}` ORDER BY `id`")]

    def _write_nodes_and_links(self, writer: _Writer) -> None:
        """Creates and updates in time order (each table's creates in id order), releasing
        events and links as soon as their ends exist."""
        times = [self._node_times(table) for _, table, _, _ in _NODE_KINDS]
        created = [0, 0, 0]  # (nodes of each kind created so far: ids 1..created[k])
        updates: list[tuple[int, int, int]] = []  # heap of (update time, kind, id)
        links = self._link_queues()

        def ready(ends: tuple[int, ...]) -> bool:
            artifact, execution, *contexts = ends
            return artifact <= created[0] and execution <= created[1] and all(c <= created[2] for c in contexts)

        while True:
            heads = [(times[k][created[k]][1] or 0, 0, k) for k in range(3) if created[k] < len(times[k])]
            step = min(heads + ([(updates[0][0], 1, updates[0][1])] if updates else []), default=None)
            if step is None:
                break
            when, is_update, kind = step
            if is_update:
                self._write_updates(writer, kind, when, updates)
            else:
                created[kind] = self._write_creates(writer, kind, times[kind], created[kind], when, updates)
            for queue in links:
                queue.release(ready, writer)
        for queue in links:
            if not queue.done:
                raise errors.FailedPreconditionError(
                    f"A {queue.field_name} row names a node that does not exist (a foreign key ml-metadata keeps)")
        for queue, name in zip(links, ("events", "attributions", "associations", "parent_contexts")):
            self.summary.rows[name] = queue.count
        for (name, _, _, _), rows in zip(_NODE_KINDS, times):
            self.summary.rows[name + "s"] = len(rows)

    def _write_creates(self, writer: _Writer, kind: int, times: list, start: int, when: int, updates: list) -> int:
        """Creates the run of nodes from ``start`` on that share the create time ``when``;
        returns how many of the kind exist after."""
        end = start
        while end < len(times) and end - start < CHUNK and (times[end][1] or 0) == when:
            end += 1
        reader_kind, table, rpc, field_name = _NODE_KINDS[kind]
        nodes = self.reader.nodes_from_tables(reader_kind, [row[0] for row in times[start:end]])
        request = getattr(svc, f"{rpc}Request")()
        for node, (node_id, created_ms, updated_ms) in zip(nodes, times[start:end]):
            _strip(node)
            if (updated_ms or 0) != (created_ms or 0):
                node.custom_properties[IMPORT_MARKER].bool_value = True
                heapq.heappush(updates, (updated_ms or 0, kind, node_id))
        getattr(request, field_name).extend(nodes)
        applied = writer.put(rpc, request, when)
        if applied != when:
            for node_id, _, _ in times[start:end]:
                self.summary.note_inexact(f"{table} {node_id} create_time_since_epoch {when} -> {applied}")
        return end

    def _write_updates(self, writer: _Writer, kind: int, when: int, updates: list) -> None:
        """Writes the final state of the nodes of ``kind`` whose last update is at ``when``."""
        ids = []
        while updates and updates[0][:2] == (when, kind) and len(ids) < CHUNK:
            ids.append(heapq.heappop(updates)[2])
        reader_kind, table, rpc, field_name = _NODE_KINDS[kind]
        nodes = self.reader.nodes_from_tables(reader_kind, ids)
        for node in nodes:
            node_id = node.id
            _strip(node)
            node.id = node_id
        request = getattr(svc, f"{rpc}Request")()
        getattr(request, field_name).extend(nodes)
        applied = writer.put(rpc, request, when)
        if applied != when:
            for node_id in ids:
                self.summary.note_inexact(f"{table} {node_id} last_update_time_since_epoch {when} -> {applied}")

    def _link_queues(self) -> list[_LinkQueue]:
        db = self.db

        def events() -> Iterator[tuple[tuple[int, ...], Any]]:
            for ids in _id_chunks(db, "Event"):
                for event in self.reader.get_events_by_ids(ids):
                    yield (event.artifact_id, event.execution_id), event

        def attributions() -> Iterator[tuple[tuple[int, ...], Any]]:
            for _, context_id, artifact_id in _chunked(db, "SELECT `id`, `context_id`, `artifact_id` FROM "
                                                           "`Attribution` WHERE `id` > ? ORDER BY `id` LIMIT ?"):
                yield (artifact_id, 0, context_id), pb.Attribution(context_id=context_id, artifact_id=artifact_id)

        def associations() -> Iterator[tuple[tuple[int, ...], Any]]:
            for _, context_id, execution_id in _chunked(db, "SELECT `id`, `context_id`, `execution_id` FROM "
                                                            "`Association` WHERE `id` > ? ORDER BY `id` LIMIT ?"):
                yield (0, execution_id, context_id), pb.Association(context_id=context_id, execution_id=execution_id)

        def parents() -> Iterator[tuple[tuple[int, ...], Any]]:
            # (no id: the table's own order, which is the order children are read back in)
            for child, parent in db.rows("SELECT `context_id`, `parent_context_id` FROM `ParentContext`"):
                yield (0, 0, child, parent), pb.ParentContext(child_id=child, parent_id=parent)

        return [_LinkQueue(events(), "PutEvents", "events", svc.PutEventsRequest),
                _LinkQueue(attributions(), "PutAttributionsAndAssociations", "attributions",
                           svc.PutAttributionsAndAssociationsRequest),
                _LinkQueue(associations(), "PutAttributionsAndAssociations", "associations",
                           svc.PutAttributionsAndAssociationsRequest),
                _LinkQueue(parents(), "PutParentContexts", "parent_contexts", svc.PutParentContextsRequest)]


def _id_chunks(db: SqlBackend, table: str) -> Iterator[list[int]]:
    """The ids of ``table`` ascending, a chunk at a time."""
    chunk: list[int] = []
    for (row_id,) in _chunked(db, f"SELECT `id` FROM `{table}` WHERE `id` > ? ORDER BY `id` LIMIT ?"):
        chunk.append(row_id)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _strip(node: Any) -> None:
    """What a put must not carry: the id (a new node), the type name and the times (derived)."""
    for name in ("id", "type", "create_time_since_epoch", "last_update_time_since_epoch"):
        node.ClearField(name)


def import_database(source_url: str, log: Log, progress: Callable[[int, int], None] = lambda done, total: None
                    ) -> ImportSummary:
    """Imports the ml-metadata database at ``source_url`` (sqlite:///PATH or mysql://...)
    into the empty ``log``; opens the source read-only and refuses any schema but v10."""
    from mlmd_log.locations import open_projection
    source = open_projection(source_url, create=False, readonly=True)
    try:
        return Importer(source, log, progress).run()
    finally:
        source.close()


def import_into(source_url: str, log_url: str, projection_url: Optional[str], quiet: bool = False) -> ImportSummary:
    """The `mlmd-log import` command's work: the records into the log at ``log_url``, then
    (when given) applied to the projection at ``projection_url``, each with a progress bar."""
    from mlmd_log.consumer.replay import replay
    from mlmd_log.locations import open_log, open_projection
    from mlmd_log.progress import Progress

    log = open_log(log_url)
    try:
        with Progress("import", quiet=quiet) as bar:
            summary = import_database(source_url, log, progress=bar.update)
        if projection_url is not None:
            db = open_projection(projection_url)
            try:
                with Progress("apply", quiet=quiet) as bar:
                    stats = replay(log, db, progress=bar.update)
            finally:
                db.close()
            if stats.rejected:  # (every record was built to apply: a rejection is a bug, never a lost row)
                raise errors.InternalError(f"{stats.rejected} imported records were rejected on apply: "
                                           f"{projection_url} does not equal the source")
    finally:
        log.close()
    return summary
