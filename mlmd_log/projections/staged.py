"""The staged projection: apply to a SQLite staging projection, then mirror into a target.

``DuckDbProjection`` (analytics) and ``MirroredProjection`` (MySQL) both run the MLMD state
machine on a local SQLite staging file and copy each applied batch into their target in
one target transaction, together with the target's checkpoint. The copy is written here
once (``StagedProjection.mirror``); a target supplies its SQL spellings and bulk path
(``MirrorTarget``: mirror.py for MySQL, duckdb.py for DuckDB). Why each rule of the copy
is complete:

* append-only tables (Event, EventPath, Attribution, Association, ParentContext,
  mlmdlog_outcome) copy the staging rows past the target's high-water mark (max id,
  event id or log offset read back from the target; the staging rowid of ParentContext,
  which has no id, is kept with the target's checkpoint);
* Type, TypeProperty, ParentType, MLMDEnv are small and replaced when they differ;
* Artifact, Execution, Context and their property tables: every change to a node or
  to its properties sets the node's ``last_update_time_since_epoch`` to the record's
  time (``Engine._update_node`` rewrites the row whenever ``_write_properties``
  changed anything), and the projector keeps record times monotonic, so every node
  touched since the target's checkpoint has ``last_update_time_since_epoch >=
  last_time_ms`` of that checkpoint. Those nodes are deleted from the target with all
  their property rows (and read forms) and copied again (deleted properties disappear
  that way).

The mirror is idempotent: staging ahead of the target (a crash between the two commits)
makes the next mirror copy the larger window; a failed mirror leaves the target as it
was; a lost or older staging file is replayed from the log up to the target's offset
before mirroring resumes (the projector is deterministic: same ids, times and rowids).
A target whose checkpoint this mirror did not write (no mark: a new target, or one the
direct projector wrote) gets a full copy.

A staged projection is a sink of the one follower (consumer/follower.py): ``StagedSink``.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Protocol, Sequence

from mlmd_log import errors
from mlmd_log.schema import NODE_KINDS, NodeKind
from mlmd_log.consumer.follower import Follower, ProjectorSink
from mlmd_log.producer.base import Log
from mlmd_log.projections import bookkeeping, history
from mlmd_log.projections.backend import SqliteBackend
from mlmd_log.projections.projector import Projector

LOG = logging.getLogger("mlmd_log.staged")


def open_staging(path: str) -> SqliteBackend:
    """A staging projection: the MLMD state machine's own tables. Reads are served by the
    target, so it keeps no reversed uris (SQLite's uri suffix filters are their only use)
    and no index that only reads use; opened later as a projection of its own, it gets
    both then."""
    staging = SqliteBackend(path, staging=True)
    staging.create_schema()
    return staging

# -- what is mirrored ------------------------------------------------------------
# MLMD v10 tables with the same names and columns (in the same order) as ddl.SQLITE_MLMD,
# with DuckDB column types (the MySQL mirror uses the names only).
_PROPERTY_COLUMNS = (("name", "VARCHAR"), ("is_custom_property", "TINYINT"), ("int_value", "BIGINT"),
                     ("double_value", "DOUBLE"), ("string_value", "VARCHAR"), ("byte_value", "BLOB"),
                     ("proto_value", "BLOB"), ("bool_value", "BOOLEAN"))
_TIMES = (("create_time_since_epoch", "BIGINT"), ("last_update_time_since_epoch", "BIGINT"))

TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "Type": (("id", "INTEGER"), ("name", "VARCHAR"), ("version", "VARCHAR"), ("type_kind", "TINYINT"),
             ("description", "VARCHAR"), ("input_type", "VARCHAR"), ("output_type", "VARCHAR"),
             ("external_id", "VARCHAR")),
    "TypeProperty": (("type_id", "INTEGER"), ("name", "VARCHAR"), ("data_type", "INTEGER")),
    "ParentType": (("type_id", "INTEGER"), ("parent_type_id", "INTEGER")),
    "Artifact": (("id", "INTEGER"), ("type_id", "INTEGER"), ("uri", "VARCHAR"), ("state", "INTEGER"),
                 ("name", "VARCHAR"), ("external_id", "VARCHAR"), *_TIMES),
    "ArtifactProperty": (("artifact_id", "INTEGER"), *_PROPERTY_COLUMNS),
    "Execution": (("id", "INTEGER"), ("type_id", "INTEGER"), ("last_known_state", "INTEGER"),
                  ("name", "VARCHAR"), ("external_id", "VARCHAR"), *_TIMES),
    "ExecutionProperty": (("execution_id", "INTEGER"), *_PROPERTY_COLUMNS),
    "Event": (("id", "INTEGER"), ("artifact_id", "INTEGER"), ("execution_id", "INTEGER"), ("type", "INTEGER"),
              ("milliseconds_since_epoch", "BIGINT")),
    "EventPath": (("event_id", "INTEGER"), ("is_index_step", "TINYINT"), ("step_index", "BIGINT"),
                  ("step_key", "VARCHAR")),
    "MLMDEnv": (("schema_version", "INTEGER"),),
    "Context": (("id", "INTEGER"), ("type_id", "INTEGER"), ("name", "VARCHAR"), ("external_id", "VARCHAR"),
                *_TIMES),
    "ContextProperty": (("context_id", "INTEGER"), *_PROPERTY_COLUMNS),
    "ParentContext": (("context_id", "INTEGER"), ("parent_context_id", "INTEGER")),
    "Association": (("id", "INTEGER"), ("context_id", "INTEGER"), ("execution_id", "INTEGER")),
    "Attribution": (("id", "INTEGER"), ("context_id", "INTEGER"), ("artifact_id", "INTEGER")),
    bookkeeping.OUTCOME_TABLE: bookkeeping.OUTCOME_COLUMNS,
}


# The history index of staging (projections/history.py), for targets that keep it (DuckDB):
# append-only, keyed by log offset (a record's touches are committed with its record row).
HISTORY_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    history.RECORD_TABLE: (("log_offset", "BIGINT"), ("record_id", "VARCHAR"), ("time_ms", "BIGINT"),
                           ("applied_ms", "BIGINT"), ("host", "VARCHAR"), ("pid", "BIGINT"),
                           ("user_name", "VARCHAR"), ("client_name", "VARCHAR"), ("rpc", "VARCHAR"),
                           ("error_code", "INTEGER"), ("error_message", "VARCHAR")),
    history.TOUCH_TABLE: (("kind", "VARCHAR"), ("entity_id", "BIGINT"), ("log_offset", "BIGINT")),
}
HISTORY_APPENDS = tuple((table, "log_offset") for table in HISTORY_TABLES)
# Every table a mirror may copy, with its columns.
COLUMNS = {**TABLES, **HISTORY_TABLES}


def staging_select(table: str, alias: str = "") -> str:
    """SELECT of the mirrored columns of a staging table, in ``TABLES`` order."""
    prefix = f"{alias}." if alias else ""
    return "SELECT " + ", ".join(f"{prefix}`{c}`" for c, _ in COLUMNS[table]) + f" FROM `{table}`" + \
        (f" AS {alias}" if alias else "")


def changed_nodes_sql(node: NodeKind, since: Optional[int]) -> tuple[str, str, str, tuple]:
    """Staging queries for the nodes changed since ``since`` (all when None), their property
    rows and their read forms, each in id order, and their parameters.

    Since a time, the node table is read through its update-time index, named: seeing the
    ORDER BY id, SQLite's planner otherwise scans the whole table in id order, so every
    mirror cost time in proportion to the projection's size (6-9 ms per query at 49k nodes
    for a few changed ones)."""
    if since is None:
        nodes, where, params = f"`{node.table}` AS N", "", ()
    else:
        index = f"idx_{node.name}_last_update_time_since_epoch"
        nodes, where, params = (f"`{node.table}` AS N INDEXED BY `{index}`",
                                " WHERE N.`last_update_time_since_epoch` >= ?", (since,))
    node_columns = ", ".join(f"N.`{c}`" for c, _ in TABLES[node.table])
    prop_columns = ", ".join(f"P.`{c}`" for c, _ in TABLES[node.prop_table])
    return (f"SELECT {node_columns} FROM {nodes}{where} ORDER BY N.`id`",
            f"SELECT {prop_columns} FROM {nodes} CROSS JOIN `{node.prop_table}` AS P ON P.`{node.owner}` = N.`id`"
            f"{where} ORDER BY P.`{node.owner}`, P.`name`, P.`is_custom_property`",
            f"SELECT F.`id`, F.`pb` FROM {nodes} CROSS JOIN `{node.read_form_table}` AS F ON F.`id` = N.`id`"
            f"{where} ORDER BY F.`id`",
            params)


# Append-only tables with a monotonically assigned key: (table, key column).
APPEND_BY_KEY = (("Event", "id"), ("Attribution", "id"), ("Association", "id"), (bookkeeping.OUTCOME_TABLE, bookkeeping.OUTCOME_KEY))
SMALL_TABLES = ("Type", "TypeProperty", "ParentType", "MLMDEnv")
SMALL_ORDER = {"Type": "`id`", "TypeProperty": "`type_id`, `name`", "ParentType": "`type_id`, `parent_type_id`",
               "MLMDEnv": "`schema_version`"}


def _columns(table: str) -> tuple[str, ...]:
    return tuple(c for c, _ in COLUMNS[table])


@dataclass
class ApplyStats:
    """What one ``apply`` (or ``catch_up``) did."""

    records: int = 0  # log records applied to staging
    rejected: int = 0  # of which were rejected puts (an outcome row, no MLMD rows)
    applied_offset: int = 0  # the target's checkpoint after the call: the next offset it lacks
    copied: dict[str, int] = field(default_factory=dict)  # rows written to the target per table
    seconds: float = 0.0

    def add(self, other: "ApplyStats") -> None:
        self.records += other.records
        self.rejected += other.rejected
        for table, n in other.copied.items():
            self.copied[table] = self.copied.get(table, 0) + n


@dataclass(frozen=True)
class MirrorMark:
    """Where the target's last mirror left off."""

    applied_offset: int  # the next log offset the target lacks
    last_time_ms: int
    parent_context_rowid: int


@dataclass(frozen=True)
class _TargetState:
    """The target as this process's last mirror left it (see StagedProjection._known)."""

    offset: int
    small: dict  # table -> canonical rows
    max_keys: dict  # (table, column) -> max value, -1 for none


def _cell(value: Any) -> Any:
    """A cell as both staging and target show it (MySQL returns bytes where SQLite kept text)."""
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value)
    if isinstance(value, bool):
        return int(value)
    return value


def _canonical(rows: Sequence[Sequence[Any]]) -> list[tuple]:
    return sorted((tuple(_cell(v) for v in r) for r in rows), key=repr)


class MirrorTarget(Protocol):
    """The target side of the mirror: what it holds, and how it spells reads and writes.
    Writes happen between ``begin`` and ``commit`` (a target may queue them until then)."""

    name: str  # for messages: MySQL, DuckDB
    tables: tuple[str, ...]  # every table a full copy rewrites
    appends: tuple[tuple[str, str], ...]  # the append-only tables it copies, by key (APPEND_BY_KEY, HISTORY_APPENDS)
    read_forms: bool  # whether the nodes' read forms (NodeKind.read_form_table) are mirrored
    infrastructure_errors: tuple

    def create_schema(self) -> None: ...
    def applied_offset(self) -> int: ...
    def mark(self, lock: bool = False) -> tuple[Optional[int], Optional[MirrorMark]]:
        """(checkpoint offset or None, the mirror's mark or None when the next mirror must be a
        full copy); ``lock``: inside the mirror transaction, so two mirrors serialise."""
    def begin(self) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def max_key(self, table: str, column: str) -> int: ...
    def rows(self, table: str, columns: Sequence[str]) -> list[tuple]: ...
    def clear(self, table: str) -> None: ...
    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int: ...
    def delete_nodes(self, node: NodeKind, ids: Sequence[int]) -> None:
        """Deletes these nodes with all their property rows (and read forms)."""
    def write_mark(self, offset: int, last_time_ms: int, parent_context_rowid: int) -> None: ...
    def after_copy(self, rewritten: set[str], full: bool) -> None:
        """In the mirror's transaction, once the rows are in: ``rewritten`` names the small
        tables replaced (``full``: everything was)."""
    def reconnect(self) -> None: ...
    def close(self) -> None: ...


class StagedProjection:
    """MLMD tables in ``target``, fed from a log through a SQLite staging projection.

    ``apply(log, batch_size)`` applies the next batch to staging and mirrors it into the
    target in one target transaction; ``catch_up`` repeats that until the target holds the
    log as it was when called; ``follower(log)`` follows it."""

    def __init__(self, target: MirrorTarget, staging_sqlite_path: str, fetch_rows: int = 20000):
        self.target = target
        self.target_name = target.name
        target.create_schema()
        self.staging_path = staging_sqlite_path
        self.staging = open_staging(staging_sqlite_path)
        self.projector = Projector(self.staging)
        # The mirror reads staging through its own connection: it sees committed batches only,
        # so a stager can apply the next batch to staging while this one is mirrored.
        self.staging_reader = SqliteBackend(staging_sqlite_path, readonly=True)
        self.fetch_rows = fetch_rows
        self._follower: Optional[Follower] = None
        # What the target holds after this process's last mirror (its offset, small tables
        # and the max keys of the tables it appends to), so the next mirror need not ask it
        # again: about a dozen round trips (or scans) less per mirror. Trusted only while the
        # target's checkpoint is still that offset; forgotten on any failure.
        self._known: Optional[_TargetState] = None

    def applied_offset(self) -> int:
        """The target's checkpoint: the next log offset it lacks (it holds those before)."""
        return self.target.applied_offset()

    def reload_staging(self) -> None:
        """Staging's projector anew from the file (after another process applied to it)."""
        self.projector = Projector(self.staging)

    def close(self) -> None:
        self.staging_reader.close()
        self.staging.close()
        self.target.close()

    def __enter__(self) -> "StagedProjection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- mirroring ------------------------------------------------------------------
    def mirror(self) -> dict[str, int]:
        """Copies what staging applied since the target's checkpoint, in one target transaction.

        Returns rows written per table ({} when the target is already at staging's offset)."""
        st = self.staging_reader
        st.conn.execute("BEGIN")  # one read snapshot of staging for the whole mirror
        try:
            offset, last_time = bookkeeping.read_checkpoint(st) or (0, 0)
            known, self._known = self._known, None  # (restored only by a mirror that commits)
            if known is not None and known.offset == offset:
                self._known = known
                return {}  # staging has nothing the last mirror did not copy
            if known is None or known.offset > offset:  # (with a fresh cache, staging is ahead: skip the look)
                if self._holds_already(offset, *self.target.mark()):
                    return {}
            self.target.begin()
            try:
                target_offset, mark = self.target.mark(lock=True)  # again, under the lock
                if self._holds_already(offset, target_offset, mark):
                    self.target.rollback()
                    return {}
                trusted = known if known is not None and mark is not None and mark.applied_offset == known.offset \
                    else None
                copied, small = self._copy(mark, offset, last_time, trusted)
                self.target.commit()
            except BaseException:
                self.target.rollback()
                raise
            self._known = self._state_of_staging(offset, small)
            return copied
        finally:
            st.conn.execute("COMMIT")

    def _holds_already(self, offset: int, target_offset: Optional[int], mark: Optional[MirrorMark]) -> bool:
        """Whether the target's last mirror copied staging at ``offset``; a target ahead of
        staging is an error (staging must be replayed up to it first)."""
        if mark is not None and mark.applied_offset == offset:
            return True
        if target_offset is not None and target_offset > offset:
            raise errors.FailedPreconditionError(
                f"Staging {self.staging_path} (offset {offset}) is behind the target ({self.target_name}, offset "
                f"{target_offset})")
        return False

    def _state_of_staging(self, offset: int, small: dict) -> _TargetState:
        """What the target holds right after a mirror of staging at ``offset`` (``small``:
        the small tables as that mirror read them; max keys from staging's snapshot, which
        the target now equals for these tables)."""
        keys = {(table, key): self._staging_max(table, key) for table, key in self.target.appends}
        for node in NODE_KINDS:
            keys[(node.table, "id")] = self._staging_max(node.table, "id")
        return _TargetState(offset, small, keys)

    def _staging_max(self, table: str, column: str) -> int:
        row = self.staging_reader.one(f"SELECT MAX(`{column}`) FROM `{table}`")
        return int(row[0]) if row and row[0] is not None else -1

    def _target_max(self, trusted: Optional[_TargetState], table: str, column: str) -> int:
        if trusted is not None:
            return trusted.max_keys[(table, column)]
        return self.target.max_key(table, column)

    def _copy(self, mark: Optional[MirrorMark], offset: int, last_time: int,
              trusted: Optional[_TargetState]) -> tuple[dict[str, int], dict]:
        """Copies staging into the (locked) target; returns rows written per table and the
        small tables as staging holds them."""
        copied: dict[str, int] = {}

        def count(table: str, n: int) -> None:
            if n:
                copied[table] = copied.get(table, 0) + n

        full = mark is None  # first mirror (or a take-over): whatever is in the target is not ours to keep
        if full:
            for table in self.target.tables:
                self.target.clear(table)
        rewritten, small = self._replace_small_tables(count, full, trusted)
        # Append-only tables. EventPath rows belong to events past the target's last event.
        last_event = self._target_max(trusted, "Event", "id")
        count("EventPath", self._copy_rows("EventPath", "WHERE `event_id` > ? ORDER BY `event_id`, rowid",
                                           (last_event,)))
        for table, key in self.target.appends:
            count(table, self._copy_rows(table, f"WHERE `{key}` > ? ORDER BY `{key}`",
                                         (self._target_max(trusted, table, key),)))
        pc_mark = 0 if mark is None else mark.parent_context_rowid
        for chunk in self._stream("SELECT rowid, `context_id`, `parent_context_id` FROM `ParentContext` "
                                  "WHERE rowid > ? ORDER BY rowid", (pc_mark,)):
            pc_mark = chunk[-1][0]
            count("ParentContext", self.target.insert("ParentContext", ("context_id", "parent_context_id"),
                                                      [r[1:] for r in chunk]))
        for node in NODE_KINDS:
            self._copy_nodes(node, None if mark is None else mark.last_time_ms, count, trusted)
        self.target.write_mark(offset, last_time, pc_mark)
        self.target.after_copy(rewritten, full)
        return copied, small

    def _stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[list[tuple]]:
        """Staging rows in chunks (memory stays bounded however large the window)."""
        cur = self.staging_reader.conn.cursor()  # its own cursor: the stream outlives single statements
        cur.execute(self.staging_reader.sql(sql), tuple(params))
        while True:
            chunk = cur.fetchmany(self.fetch_rows)
            if not chunk:
                return
            yield chunk

    def _copy_rows(self, table: str, tail: str, params: Sequence[Any]) -> int:
        n = 0
        for chunk in self._stream(staging_select(table) + " " + tail, params):
            n += self.target.insert(table, _columns(table), chunk)
        return n

    def _replace_small_tables(self, count: Callable[[str, int], None], full: bool,
                              trusted: Optional[_TargetState]) -> tuple[set[str], dict]:
        """Type, TypeProperty, ParentType, MLMDEnv: rewritten when they differ from staging.
        Returns the tables rewritten and staging's rows (canonical), which the target holds
        once this commits."""
        rewritten, staged = set(), {}
        for table in SMALL_TABLES:
            columns = _columns(table)
            new = self.staging_reader.rows(staging_select(table) + f" ORDER BY {SMALL_ORDER[table]}")
            staged[table] = _canonical(new)
            if not full:
                held = trusted.small[table] if trusted is not None else _canonical(self.target.rows(table, columns))
                if held == staged[table]:
                    continue
                self.target.clear(table)
            count(table, self.target.insert(table, columns, new))
            rewritten.add(table)
        return rewritten, staged

    def _copy_nodes(self, node: NodeKind, since: Optional[int], count: Callable[[str, int], None],
                    trusted: Optional[_TargetState]) -> None:
        """Nodes changed since ``since`` (all when None) replace their target rows and properties."""
        nodes_sql, props_sql, forms_sql, params = changed_nodes_sql(node, since)
        existing = -1 if since is None else self._target_max(trusted, node.table, "id")
        for chunk in self._stream(nodes_sql, params):
            old = [r[0] for r in chunk if r[0] <= existing]  # ids past the target's max are new: nothing to delete
            if old:
                self.target.delete_nodes(node, old)
            count(node.table, self.target.insert(node.table, _columns(node.table), chunk))
        for chunk in self._stream(props_sql, params):
            count(node.prop_table, self.target.insert(node.prop_table, _columns(node.prop_table), chunk))
        if self.target.read_forms:
            forms = node.read_form_table
            for chunk in self._stream(forms_sql, params):
                count(forms, self.target.insert(forms, ("id", "pb"), chunk))

    # -- following ------------------------------------------------------------------
    def follower(self, log: Log, batch_size: int = 20000) -> Follower:
        """The follower of ``log`` into this projection (one per log: it checks the log is
        staging's once, on its first step)."""
        if self._follower is None or self._follower.log is not log:
            self._follower = Follower(log, StagedSink(self), batch_size=batch_size, name=self.target_name,
                                      count_rejected=True)
        self._follower.batch_size = batch_size
        return self._follower

    def apply(self, log: Log, batch_size: int = 20000) -> ApplyStats:
        """Applies the next batch of ``log`` to staging, then mirrors staging into the target."""
        return self.follow(log, batch_size, lambda follower: follower.step())

    def catch_up(self, log: Log, batch_size: int = 20000,
                 progress: Optional[Callable[[int, int], None]] = None) -> ApplyStats:
        """``apply`` until the target holds the whole log as it was when called;
        ``progress(applied offset, end)`` after each batch (a bar for a person waiting)."""
        end = log.end_offset()
        if progress is None:
            return self.follow(log, batch_size, lambda follower: follower.run(until=end, report_every=float("inf")))
        return self.follow(log, batch_size, lambda follower: follower.run(
            until=end, report_every=0, on_report=lambda status: progress(status.applied_offset, end)))

    def follow(self, log: Log, batch_size: int, run: Callable[[Follower], Any]) -> ApplyStats:
        """Calls ``run`` with the follower of ``log`` (once staging has caught up with the
        target), then mirrors whatever staging holds beyond the target (a no-op when the last
        mirror left the target there); returns what that did."""
        started = time.monotonic()
        self.rebuild_staging(log, batch_size)
        follower = self.follower(log, batch_size)
        sink, status = follower.sink, follower.status
        records, rejected = status.records_applied, status.rejected
        sink.copied = {}
        run(follower)
        sink.drain()
        return ApplyStats(status.records_applied - records, status.rejected - rejected, self.applied_offset(),
                          sink.copied, time.monotonic() - started)

    def rebuild_staging(self, log: Log, batch_size: int) -> None:
        """A lost or older staging file is replayed up to the target's offset (no mirroring)."""
        target = self.applied_offset()
        if self.projector.next_offset >= target:
            return
        if log.end_offset() < target:
            raise errors.DataLossError(f"The {self.target_name} projection has applied offset {target}, beyond "
                                       f"the end of the log ({log.end_offset()})")
        LOG.info("%s: staging at offset %d is behind the target (%d); replaying it", self.target_name,
                 self.projector.next_offset, target)
        Follower(log, ProjectorSink(self.projector.db, projector=self.projector), batch_size).run(until=target)


class StagedSink:
    """A staged projection as a follower's sink: each batch is applied to staging, then
    mirrored into the target. Staging ahead of what this sink last mirrored (a crash between
    the two commits, or a batch applied to staging alone) is in flight: ``drain`` mirrors it."""

    def __init__(self, projection: StagedProjection):
        self.projection = projection
        self.copied: dict[str, int] = {}  # rows written to the target per table, since the caller reset it
        self._mirrored_at: Optional[int] = None  # staging's offset at this sink's last mirror

    @property
    def db(self) -> SqliteBackend:
        return self.projection.projector.db

    @property
    def infrastructure_errors(self) -> tuple:
        return self.projection.projector.db.infrastructure_errors

    @property
    def next_offset(self) -> int:
        return self.projection.projector.next_offset

    @property
    def in_flight(self) -> bool:
        return self._mirrored_at != self.projection.projector.next_offset

    def room(self) -> Optional[int]:
        return None

    def apply(self, batch: list[tuple[int, bytes]]) -> list:
        outcomes = self.projection.projector.apply_batch(batch)
        self.drain()
        return outcomes

    def drain(self, wait: bool = True) -> None:
        """Mirrors what staging holds beyond the target."""
        offset = self.projection.projector.next_offset
        for table, n in self.projection.mirror().items():
            self.copied[table] = self.copied.get(table, 0) + n
        self._mirrored_at = offset

    def restart(self) -> None:
        raise NotImplementedError("a staged projection is not retried")

    def close(self) -> None:
        pass
