"""A projection into a remote SQL database (MySQL/MariaDB) through a local SQLite staging projection.

Applying the log directly to MySQL runs the MLMD state machine there: ~15 statements per
record, each a network round trip (a few hundred records/s). Instead the ordinary
projector applies each batch to a private SQLite *staging* projection (in-process, no
round trips), and what the batch changed is MIRRORED into the target in ONE target
transaction of a few dozen multi-row statements, together with the target's checkpoint.
The mirror itself (what is copied, and why that is complete) is ``StagedProjection`` in
staged.py; this module holds MySQL's side of it (``MySqlMirrorTarget``) and ``follow``,
which pipelines staging and mirroring.

The target's ``mlmdlog_checkpoint`` row means exactly what the direct projector writes
(the next offset to apply, and the last record time), so writers that poll it
(``RemoteTransport.wait_for_outcomes``) and read ``mlmdlog_outcome`` work unchanged, and
a target built by the direct projector can be taken over (its first mirror is a full copy).
``mlmdlog_mirror_state`` repeats the applied offset, with the ParentContext high-water
mark: when it disagrees with the checkpoint (another projector wrote the target), the
next mirror is a full copy too.

    follow(log, MirroredProjection(MySqlBackend(...), "staging.sqlite"), stop_event)
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import select
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional, Sequence

from mlmd_log import errors
from mlmd_log.consumer.follower import Follower, FollowStatus, ProjectorSink, report_lag
from mlmd_log.process import leave_stops_to_parent
from mlmd_log.producer.base import WAIT_SLICE_S, Log
from mlmd_log.projections import bookkeeping
from mlmd_log.projections.backend import SqlBackend
from mlmd_log.projections.mysql import MAX_STATEMENT_CHARS, multi_row_statements
from mlmd_log.projections.staged import APPEND_BY_KEY, TABLES, ApplyStats, MirrorMark, StagedProjection, open_staging
from mlmd_log.schema import NODE_KINDS, NodeKind
from mlmd_log.urls import parse_log_url

LOG = logging.getLogger("mlmd_log.mirror")

MIRROR_TABLES = tuple(TABLES) + tuple(kind.read_form_table for kind in NODE_KINDS)  # every table a full copy rewrites

class MySqlMirrorTarget:
    """The target side of the mirror on MySQL/MariaDB: multi-row INSERTs in chunks, MLMD's
    tables untouched apart from their rows.

    Writes are queued and sent several statements to a query (the connection takes multi
    statements), about 1 MB at a time, before the next read and with the COMMIT: a mirror
    of a few records costs a few round trips instead of one per statement. The server
    stops at the first failing statement of a query; the transaction is then rolled back."""

    name = "MySQL"
    tables = MIRROR_TABLES
    appends = APPEND_BY_KEY  # (MySQL keeps no history index)
    read_forms = True
    max_statement_chars = MAX_STATEMENT_CHARS  # per query

    def __init__(self, db: Any, chunk_rows: int = 1000):
        self.db = db.with_multi_statements()
        self.chunk_rows = chunk_rows
        self.infrastructure_errors = self.db.infrastructure_errors
        self._queued: list[str] = []  # writes not sent yet (see _queue)
        self._queued_chars = 0

    def create_schema(self) -> None:
        self.db.create_schema()
        self.db.execute(bookkeeping.MIRROR_STATE_DDL)

    def reconnect(self) -> None:
        """After a lost connection: reconnect, select the database and isolation level again."""
        self.db.reconnect()

    # -- transaction --------------------------------------------------------------
    def begin(self) -> None:
        self._queued, self._queued_chars = [], 0
        self.db.begin()

    def commit(self) -> None:
        self._send_queued(["COMMIT"])

    def rollback(self) -> None:
        self._queued, self._queued_chars = [], 0
        self.db.rollback()

    def _queue(self, statement: str) -> None:
        self._queued.append(statement)
        self._queued_chars += len(statement)
        if self._queued_chars >= self.max_statement_chars:
            self._send_queued()

    def _send_queued(self, tail: Sequence[str] = ()) -> None:
        """Sends the queued statements (and ``tail``) in one query, reading every result."""
        statements = self._queued + list(tail)
        self._queued, self._queued_chars = [], 0
        if not statements:
            return
        cur = self.db.conn.cursor()
        cur.execute(";\n".join(statements))
        while cur.nextset():
            pass

    # -- reads (after the queued writes) -------------------------------------------
    def applied_offset(self) -> int:
        """The checkpoint the writers poll (0 before anything was applied)."""
        self._send_queued()
        return bookkeeping.next_offset(self.db)

    def mark(self, lock: bool = False) -> tuple[Optional[int], Optional[MirrorMark]]:
        """(checkpoint offset or None, the mirror's mark or None when the next mirror must be a full copy).

        With ``lock`` (inside the mirror transaction) the rows are locked, so two mirrors
        of one target serialise instead of interleaving."""
        self._send_queued()
        checkpoint = bookkeeping.read_checkpoint(self.db, lock)
        state = bookkeeping.read_mirror_state(self.db, lock)
        if checkpoint is None:
            return None, None
        offset, last_time_ms = checkpoint
        if state is None or state[0] != offset:
            return offset, None  # written by someone else (the direct projector): take over by a full copy
        return offset, MirrorMark(offset, last_time_ms, state[1])

    def max_key(self, table: str, column: str) -> int:
        self._send_queued()
        row = self.db.one(f"SELECT MAX(`{column}`) FROM `{table}`")
        return int(row[0]) if row and row[0] is not None else -1

    def rows(self, table: str, columns: Sequence[str]) -> list[tuple]:
        self._send_queued()
        names = ", ".join(f"`{c}`" for c in columns)
        return self.db.rows(f"SELECT {names} FROM `{table}`")

    # -- writes (queued) ------------------------------------------------------------
    def clear(self, table: str) -> None:
        self._queue(f"DELETE FROM `{table}`")

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Multi-row INSERTs of at most ``chunk_rows`` rows and ~1 MB of SQL each (queued)."""
        names = ", ".join(f"`{c}`" for c in columns)
        for statement in multi_row_statements(f"INSERT INTO `{table}` ({names}) VALUES ", rows, self.db.conn.escape,
                                              self.chunk_rows, self.max_statement_chars):
            self._queue(statement)
        return len(rows)

    def delete_nodes(self, node: NodeKind, ids: Sequence[int]) -> None:
        """Deletes these nodes and all their property rows."""
        for start in range(0, len(ids), self.chunk_rows):
            listed = ", ".join(str(int(i)) for i in ids[start:start + self.chunk_rows])
            self._queue(f"DELETE FROM `{node.prop_table}` WHERE `{node.owner}` IN ({listed})")
            self._queue(f"DELETE FROM `{node.read_form_table}` WHERE `id` IN ({listed})")
            self._queue(f"DELETE FROM `{node.table}` WHERE `id` IN ({listed})")

    def write_mark(self, offset: int, last_time_ms: int, parent_context_rowid: int) -> None:
        self._queue(bookkeeping.checkpoint_upsert_sql(offset, last_time_ms))
        self._queue(bookkeeping.mirror_state_upsert_sql(offset, parent_context_rowid))

    def after_copy(self, rewritten: set[str], full: bool) -> None:
        pass  # (MySQL keeps no views of its own)

    def close(self) -> None:
        self.db.close()


class MirroredProjection(StagedProjection):
    """MLMD tables in ``target`` (MySQL/MariaDB), fed from a log through a SQLite staging
    projection (see StagedProjection)."""

    def __init__(self, target: SqlBackend, staging_sqlite_path: str, chunk_rows: int = 1000,
                 fetch_rows: int = 20000):
        super().__init__(MySqlMirrorTarget(target, chunk_rows), staging_sqlite_path, fetch_rows)

    @property
    def db(self) -> SqlBackend:
        """The target backend (reads: ``Reader(p.db.conn, dialects.MYSQL)``)."""
        return self.target.db


class _Cell:
    """A shared value for the thread stager (the process stager shares ``multiprocessing.Value``s)."""

    def __init__(self, value: int):
        self.value = value


@dataclass
class _StageShared:
    """What the stager and the mirror loop share: Event/Value-like, in one process or two."""

    halt: Any  # set by the mirror loop: stop
    applied: Any  # set by the stager after each batch: wakes the mirror loop
    mirrored: Any  # .value: the target's offset, written by the mirror loop (bounds how far ahead to stage)
    idle: Any  # .value: 1 while staging is at the end of the log as last seen
    records: Any  # .value: records staged
    rejected: Any  # .value: of which rejected


class _StagingSink(ProjectorSink):
    """The stager's sink: staging's projector, at most ``max_ahead`` records ahead of the
    target, telling the mirror loop of each batch it applied. A failed batch leaves staging
    at its last commit: it is retried as it is."""

    def __init__(self, projector: Any, shared: _StageShared, max_ahead: int):
        super().__init__(projector.db, projector=projector)
        self.shared = shared
        self.max_ahead = max_ahead

    def room(self) -> Optional[int]:
        return 0 if self.projector.next_offset - self.shared.mirrored.value >= self.max_ahead else None

    def apply(self, batch: list[tuple[int, bytes]]) -> list:
        outcomes = self.projector.apply_batch(batch)
        self.shared.records.value += len(outcomes)
        self.shared.rejected.value += sum(1 for o in outcomes if o.error_code)
        self.shared.applied.set()
        return outcomes

    def restart(self) -> None:
        pass


class _Halted:
    """The stager's stop flag (Event-like, for its follower): ``halt`` set, or the stager no
    longer ``alive`` (its parent gone)."""

    def __init__(self, halt: Any, alive: Callable[[], bool]):
        self._halt, self._alive = halt, alive

    def set(self) -> None:
        self._halt.set()

    def is_set(self) -> bool:
        return self._halt.is_set() or not self._alive()

    def wait(self, timeout: float) -> bool:
        return self._halt.wait(timeout) or not self._alive()


def _stage(log: Log, projector: Any, shared: _StageShared, batch_size: int, max_ahead: int, idle_sleep: float,
           retry_sleep: float, alive: Callable[[], bool] = lambda: True) -> None:
    """Follows the log into staging ahead of the mirror (at most ``max_ahead`` records ahead
    of the target) until ``shared.halt``, so the engine's work on batch N+1 overlaps the
    target's on batch N. Raises what it cannot retry."""
    def note_idle(status: Any) -> None:  # (after every step: whether staging is at the log's end)
        shared.idle.value = int(status.applied_offset >= status.end_offset)

    follower = Follower(log, _StagingSink(projector, shared, max_ahead), batch_size=batch_size,
                        idle_sleep=idle_sleep, retry_sleep=retry_sleep, name="mirror: staging",
                        stop_event=_Halted(shared.halt, alive))  # type: ignore[arg-type]
    follower.run(report_every=0, on_report=note_idle)


STAGING_LOCK_WAIT_S = 120.0  # how long a stager waits for another one to let go of staging


def _lock_staging(path: str, alive: Callable[[], bool] = lambda: True) -> int:
    """The exclusive lock of staging (``PATH.lock``) for one stager; returns its fd. A stager
    still finishing its last batch (that of a killed projector) is waited for, up to
    STAGING_LOCK_WAIT_S."""
    from mlmd_log.producer.file_log import describe_holder, try_lock_file

    deadline = time.monotonic() + STAGING_LOCK_WAIT_S
    while True:
        fd, holder = try_lock_file(path + ".lock")
        if fd is not None:
            return fd
        if time.monotonic() > deadline or not alive():
            raise errors.FailedPreconditionError(
                f"Staging {path} is in use by another stager ({describe_holder(holder)}, lock {path}.lock): "
                "run one projector per staging file")
        time.sleep(0.05)


class _Stager(threading.Thread):
    """The stager as a thread of this process, on the projection's own staging projector."""

    def __init__(self, log: Log, projection: MirroredProjection, batch_size: int, max_ahead: int,
                 idle_sleep: float, retry_sleep: float):
        super().__init__(name="mlmd-log-mirror-stager", daemon=True)
        self.shared = _StageShared(threading.Event(), threading.Event(), _Cell(projection.applied_offset()),
                                   _Cell(0), _Cell(0), _Cell(0))
        self._args = (log, projection.projector, self.shared, batch_size, max_ahead, idle_sleep, retry_sleep)
        self._staging_path = projection.staging_path
        self._failure: Optional[BaseException] = None

    def run(self) -> None:
        from mlmd_log.producer.file_log import release_lock_file

        try:
            lock = _lock_staging(self._staging_path, lambda: not self.shared.halt.is_set())
            try:
                _stage(*self._args)
            finally:
                release_lock_file(lock)
        except BaseException as exc:  # noqa: BLE001 - handed to the mirror loop, which re-raises
            self._failure = exc

    def failure(self) -> Optional[BaseException]:
        return self._failure

    def stop(self) -> None:
        self.shared.halt.set()
        self.join()


def _stage_in_child(log_url: str, staging_path: str, shared: _StageShared, failures: Any, parent: int,
                    batch_size: int, max_ahead: int, idle_sleep: float, retry_sleep: float) -> None:
    """The process stager's body: its own log reader and staging projector; stopped by the
    parent (``shared.halt``), or when the parent is gone."""
    from mlmd_log.locations import open_log
    from mlmd_log.producer.file_log import release_lock_file
    from mlmd_log.projections.projector import Projector

    leave_stops_to_parent()
    alive = lambda: os.getppid() == parent and not shared.halt.is_set()  # noqa: E731
    try:
        lock = _lock_staging(staging_path, alive)
        try:
            log = open_log(log_url, readonly=True)
            staging = open_staging(staging_path)
            try:
                _stage(log, Projector(staging), shared, batch_size, max_ahead, idle_sleep, retry_sleep, alive=alive)
            finally:
                staging.close()
                log.close()
        finally:
            release_lock_file(lock)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        if isinstance(exc, errors.StatusError):
            failures.put((exc.error_code, exc.message))
        else:
            failures.put((errors.INTERNAL, f"The staging process failed: {type(exc).__name__}: {exc}"))


class _Flag:
    """A stop flag shared with a child process, Event-like for ``_stage``. No lock behind it
    (a ``multiprocessing.Event`` has one: a parent killed while holding it would leave the
    child blocked forever)."""

    def __init__(self, ctx: Any):
        self._value = ctx.Value("b", 0, lock=False)

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        return bool(self._value.value)

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, 0.01))
        return True


class _Wakeup:
    """The child's "a batch is staged" signal to its parent, Event-like: a byte on a pipe,
    written without blocking (a full pipe already says it), waited for with ``select``."""

    def __init__(self, ctx: Any):
        self._reader, self._writer = ctx.Pipe(duplex=False)
        self._writer_fd: Optional[int] = None  # (the child's end, made non-blocking on first use)

    def set(self) -> None:  # (child)
        if self._writer_fd is None:
            self._writer_fd = self._writer.fileno()
            os.set_blocking(self._writer_fd, False)
        try:
            os.write(self._writer_fd, b"!")
        except (BlockingIOError, BrokenPipeError):
            pass

    def clear(self) -> None:  # (parent)
        fd = self._reader.fileno()
        while select.select([fd], [], [], 0)[0]:
            if not os.read(fd, 65536):
                return

    def wait(self, timeout: float) -> bool:  # (parent)
        return bool(select.select([self._reader.fileno()], [], [], timeout)[0])


class _StagerProcess:
    """The stager in a child process: the state machine (staging) and the mirror (reading
    staging, writing the target) then run on two cores instead of sharing one interpreter.
    The child opens the log by its URL and staging by its path; the parent keeps the mirror."""

    def __init__(self, log_url: str, projection: MirroredProjection, batch_size: int, max_ahead: int,
                 idle_sleep: float, retry_sleep: float):
        if parse_log_url(log_url).kind == "memory":
            raise errors.InvalidArgumentError("A memory: log cannot be read by another process: stage in a thread")
        ctx = multiprocessing.get_context("spawn")  # (no fork: this process may run broker client threads)
        self.shared = _StageShared(_Flag(ctx), _Wakeup(ctx), ctx.Value("q", projection.applied_offset(), lock=False),
                                   ctx.Value("b", 0, lock=False), ctx.Value("q", 0, lock=False),
                                   ctx.Value("q", 0, lock=False))
        self._failures = ctx.Queue()
        self._failure: Optional[BaseException] = None
        self._projection = projection
        self.process = ctx.Process(
            target=_stage_in_child, name="mlmd-log-mirror-stager", daemon=True,
            args=(log_url, projection.staging_path, self.shared, self._failures, os.getpid(), batch_size,
                  max_ahead, idle_sleep, retry_sleep))

    def start(self) -> None:
        self.process.start()

    def failure(self) -> Optional[BaseException]:
        if self._failure is None:
            try:
                code, message = self._failures.get_nowait()
            except queue.Empty:
                if self.process.is_alive() or self.shared.halt.is_set():
                    return None
                code, message = errors.INTERNAL, f"The staging process exited (exit code {self.process.exitcode})"
            self._failure = errors.make_exception(message, code)
        return self._failure

    def stop(self) -> None:
        self.shared.halt.set()
        self.process.join(60)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        # Staging moved on in the child: the parent's projector reads its checkpoint again.
        self._projection.reload_staging()


class _MirrorSink:
    """The mirror side of ``follow`` as a follower's sink: a stager (started on the first
    drain, after staging caught up with the target) reads the log into staging, so this
    sink takes no records; each drain mirrors what staging committed, or waits for the
    stager's next batch. Caught up once a mirror copied nothing after staging had reached
    the log's end (``until_caught_up``; else it is always in flight)."""

    def __init__(self, projection: MirroredProjection, log: Log, batch_size: int, until_caught_up: bool,
                 start_stager: Callable[[], Any]):
        self.projection = projection
        self.db = projection.target.db  # (check_follows: the target's own outcomes)
        self.infrastructure_errors = (*projection.target.infrastructure_errors,
                                      *projection.staging.infrastructure_errors)
        self.total = ApplyStats()
        self.stager: Any = None  # _Stager or _StagerProcess
        self.last_mirror_seconds = 0.0
        self._log, self._batch_size, self._until_caught_up = log, batch_size, until_caught_up
        self._start_stager = start_stager
        self._caught_up = False
        self._offset = projection.applied_offset()

    @property
    def next_offset(self) -> int:
        return self._offset

    @property
    def in_flight(self) -> bool:
        return not self._caught_up

    def room(self) -> Optional[int]:
        return 0

    def apply(self, batch: list[tuple[int, bytes]]) -> list:
        raise AssertionError("the stager applies the log; a mirror sink takes no records")

    def drain(self, wait: bool = True) -> None:
        """One mirror of what staging committed; when it copied nothing, a wait for the
        stager's next batch (both ways: the mirror waits for staging, not for the log)."""
        if self.stager is None:
            self.projection.rebuild_staging(self._log, self._batch_size)
            self.stager = self._start_stager()
        shared = self.stager.shared
        failure = self.stager.failure()
        if failure is not None:
            raise failure
        idle = shared.idle.value  # read before mirroring: staging had reached the end before this mirror
        shared.applied.clear()  # (before mirroring: a batch staged from here on wakes the wait below)
        started = time.monotonic()
        copied = self.projection.mirror()
        self._offset = shared.mirrored.value = self.projection.applied_offset()
        self.last_mirror_seconds = time.monotonic() - started
        self.total.add(ApplyStats(copied=copied))
        self._caught_up = self._until_caught_up and not copied and bool(idle)
        if not copied and not idle:
            shared.applied.wait(WAIT_SLICE_S)  # until staging applies more (or a look at the stop flag)

    def restart(self) -> None:
        """After the target failed: connect to it again."""
        self.projection.target.reconnect()

    def close(self) -> None:
        if self.stager is not None:
            self.stager.stop()
            self.total.records, self.total.rejected = self.stager.shared.records.value, \
                self.stager.shared.rejected.value


def follow(log: Log, projection: MirroredProjection, stop_event: threading.Event, batch_size: int = 2000,
           idle_sleep: float = 0.05, retry_sleep: float = 1.0, report_every: float = 10.0,
           until_caught_up: bool = False, max_ahead: Optional[int] = None,
           log_url: Optional[str] = None, stop_on_signals: bool = False) -> ApplyStats:
    """Keeps ``projection`` up to date with ``log`` until ``stop_event`` is set (or, with
    ``until_caught_up``, until the target holds the log as last seen).

    Pipelined: a stager applies batches to staging (at most ``max_ahead`` records, default
    two batches, ahead of the target) while this loop mirrors what staging committed, so
    the state machine and the target's inserts overlap. Given ``log_url`` (the URL ``log``
    was opened from) the stager is a child process, so the two use two cores; otherwise a
    thread. A database that fails (lost connection, server restart) is retried after
    ``retry_sleep``; no record is lost or applied twice, because staging and target each
    commit their checkpoint with their rows. Both sides are followers (consumer/follower.py);
    with ``stop_on_signals``, SIGTERM and SIGINT set ``stop_event``.

    Returns the totals of what it applied and mirrored."""
    started = time.monotonic()
    ahead = max_ahead or 2 * batch_size

    def start_stager() -> Any:
        stager = (_StagerProcess(log_url, projection, batch_size, ahead, idle_sleep, retry_sleep) if log_url else
                  _Stager(log, projection, batch_size, ahead, idle_sleep, retry_sleep))
        stager.start()
        return stager

    sink = _MirrorSink(projection, log, batch_size, until_caught_up, start_stager)

    def report(status: FollowStatus) -> None:
        staged = sink.stager.shared.records.value if sink.stager is not None else 0
        report_lag("mirror", replace(status, records_applied=staged, last_batch_seconds=sink.last_mirror_seconds))

    follower = Follower(log, sink, batch_size=batch_size, idle_sleep=idle_sleep, retry_sleep=retry_sleep,
                        name="mirror", stop_event=stop_event)
    if stop_on_signals:
        follower.stop_on_signals()
    try:
        follower.run(until_caught_up=until_caught_up, report_every=report_every, on_report=report)
    finally:
        sink.close()
    total = sink.total
    total.applied_offset = sink.next_offset
    total.seconds = time.monotonic() - started
    return total
