"""The one loop that follows a log: read a batch from the sink's next offset, check the log
is the sink's, apply, report.

Every consumer of a log is a ``Follower`` over a ``Sink``: replay (to the end, or ``until``
an offset), the projector service (following, pipelined or not), the embedded store's
inline apply, the staging side of the MySQL and DuckDB mirrors. What differs between them
is the sink (where the records go, what is still in flight, how to start over after its
database failed); what they share lives here once: resuming from the sink's checkpoint,
``check_follows`` (refusing a log that is not the one the sink was built from), a log that
ends before the checkpoint, waiting for records when caught up, lag reports, retries, and
stopping between batches on SIGTERM/SIGINT.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional, Protocol

from mlmd_log import errors
from mlmd_log.process import stop_on_signals
from mlmd_log.producer.base import WAIT_SLICE_S, Log
from mlmd_log.projections.backend import SqlBackend
from mlmd_log.projections.bookkeeping import Outcome
from mlmd_log.projections.projector import Projector, check_follows, log_ends_before_error

LOG = logging.getLogger("mlmd_log.projector")

# Caught up with batches still being stored: how long to wait for new records before
# looking at the sink again (a failed write is noticed within this).
IN_FLIGHT_WAIT_S = 0.02

# How long the log may end before the sink's checkpoint before a retrying follower stops
# with DataLossError: a cluster's new partition leader can briefly report a lower end, a
# topic deleted and created again stays lower. A follower that does not retry stops at once.
LOG_BEHIND_GRACE_S = 10.0

# Caught up, a follower looks at the log's end again after MIN_PAUSE while records came
# within BUSY_WINDOW seconds (a synchronous writer waits for them), then ever less often,
# up to its idle_sleep.
MIN_PAUSE = 0.001
BUSY_WINDOW = 0.05


class Sink(Protocol):
    """Where a follower puts the records it reads."""

    #: The projection whose outcomes tell which record the sink applied last (check_follows).
    db: SqlBackend
    #: Failures of the sink's database that a retrying follower survives (then ``restart``).
    infrastructure_errors: tuple

    @property
    def next_offset(self) -> int:
        """The next log offset the sink needs (its checkpoint, plus what is in flight)."""

    @property
    def in_flight(self) -> bool:
        """Whether records it took may not be stored yet (``drain`` stores them)."""

    def room(self) -> Optional[int]:
        """How many records it takes now (None: any number; 0: none until it has caught up
        with itself)."""

    def apply(self, batch: list[tuple[int, bytes]]) -> list[Outcome]:
        """Applies consecutive records from ``next_offset``; returns their outcomes. A sink
        that had to go back (a write in flight failed) returns fewer, and ``next_offset``
        says where to read from again."""

    def drain(self, wait: bool = True) -> None:
        """Stores what is in flight (``wait`` False: only notes what was stored already)."""

    def restart(self) -> None:
        """After its database failed: connects again and resumes from what it holds."""

    def close(self) -> None:
        """Stores what is in flight, then lets go of what it started."""


class ProjectorSink:
    """The direct projector into one SQL projection, its writes overlapped with the next
    batch (``PipelinedApplier``) when given ``reader``, a second connection to it."""

    def __init__(self, db: SqlBackend, reader: Optional[SqlBackend] = None, projector: Optional[Projector] = None):
        self.db = db
        self.reader = reader
        self.infrastructure_errors = db.infrastructure_errors
        self.pipeline = None
        self._start(projector)

    def _start(self, projector: Optional[Projector] = None) -> None:
        """A projector (and pipeline) from what the projection holds: its checkpoint, its ids."""
        self.projector = projector or Projector(self.db)
        if self.reader is not None:
            from mlmd_log.consumer.pipelined import PipelinedApplier
            self.pipeline = PipelinedApplier(self.projector, self.reader)

    @property
    def next_offset(self) -> int:
        return self.projector.next_offset

    @property
    def in_flight(self) -> bool:
        return self.pipeline is not None and self.pipeline.in_flight

    def room(self) -> Optional[int]:
        return None

    def apply(self, batch: list[tuple[int, bytes]]) -> list[Outcome]:
        return (self.pipeline or self.projector).apply_batch(batch)

    def drain(self, wait: bool = True) -> None:
        if self.pipeline is not None:
            self.pipeline.drain() if wait else self.pipeline.settle()

    def restart(self) -> None:
        """Connects again and starts over from what the projection holds: a commit whose
        answer was lost may have moved its checkpoint."""
        if self.pipeline is not None:
            self.pipeline.stop()
            self.pipeline = None
        self.db.reconnect()
        if self.reader is not None:
            self.reader.reconnect()
        self._start()

    def close(self) -> None:
        """Writes the batches in flight (pipelined) and stops the writers."""
        if self.pipeline is not None:
            try:
                self.pipeline.close()
            finally:
                self.pipeline = None


@dataclass
class FollowStatus:
    applied_offset: int  # the sink's next offset to apply
    end_offset: int  # the log's end as last seen
    records_applied: int
    rejected: int
    batches: int
    last_batch_seconds: float

    @property
    def lag(self) -> int:
        return max(0, self.end_offset - self.applied_offset)


def applied_through(next_offset: int) -> str:
    """What a checkpoint at ``next_offset`` (the next offset to apply) holds, in words."""
    return f"applied through offset {next_offset - 1}" if next_offset else "nothing applied yet"


def report_lag(name: str, status: FollowStatus) -> None:
    """The periodic lag report of a follower named ``name`` (projector, mirror, ...)."""
    LOG.info("%s: next offset %d, the log ends at %d (lag %d records, %d applied, last batch %.3fs)", name,
             status.applied_offset, status.end_offset, status.lag, status.records_applied,
             status.last_batch_seconds)


class Follower:
    """Runs ``sink`` over ``log``; see the module. ``retry_sleep`` None: a failure of the log
    or of the sink's database is raised (replay); else retried after that many seconds."""

    def __init__(self, log: Log, sink: Sink, batch_size: int = 2000, idle_sleep: float = 0.005,
                 retry_sleep: Optional[float] = None, name: str = "projector",
                 stop_event: Optional[threading.Event] = None, count_rejected: bool = False):
        """``count_rejected``: count the rejected records in ``status`` (a look at every
        outcome, which the projector service does without)."""
        self.log = log
        self.sink = sink
        self.batch_size = batch_size
        self.idle_sleep = idle_sleep
        self.retry_sleep = retry_sleep
        self.name = name
        self.stop_event = stop_event or threading.Event()
        self.status = FollowStatus(sink.next_offset, 0, 0, 0, 0, 0.0)
        self._stale = False  # the sink's database failed: restart it before the next step
        self._behind_since: Optional[float] = None  # when the log was first seen ending before the checkpoint
        self._verified = False  # the log checked to be the sink's (check_follows), and not behind since
        self._held_back = False  # the last step left records in the log: the sink had no room
        self._pause, self._last_records = MIN_PAUSE, time.monotonic()
        self.count_rejected = count_rejected

    def stop(self) -> None:
        self.stop_event.set()

    def stop_on_signals(self) -> dict:
        """SIGTERM/SIGINT finish the batch in flight, then stop. Returns the previous handlers."""
        return stop_on_signals(self.stop_event)

    # -- one batch ---------------------------------------------------------------------
    def step(self, ask_end: bool = True, until: Optional[int] = None) -> int:
        """Applies at most one batch (not past ``until``); returns how many records it
        applied. ``ask_end`` False: at the end the log last told, none (no request: the
        caller waits for records)."""
        self._held_back = False
        start = self.sink.next_offset
        end = self.log.end_offset_beyond(start, ask_end)  # (while behind, the end the last fetch saw)
        self.status.end_offset = end
        if end < start:
            self._log_ends_before(start, end)
            return 0
        if ask_end or end > start:  # (not asked, the end may be this offset for "not known")
            self._behind_since = None
            if not self._verified:
                check_follows(self.log, self.sink.db, start, end)
                self._verified = True
        if until is not None:
            end = self.status.end_offset = min(end, until)
        room = self.sink.room()
        self._held_back = room == 0 and end > start
        count = min(self.batch_size, end - start, self.batch_size if room is None else room)
        if count <= 0:
            return 0
        started = time.monotonic()
        outcomes = self.sink.apply(list(self.log.read(start, count)))
        status = self.status
        status.applied_offset = self.sink.next_offset
        status.records_applied += len(outcomes)
        if self.count_rejected:
            status.rejected += sum(1 for o in outcomes if o.error_code)
        status.batches += 1
        status.last_batch_seconds = time.monotonic() - started
        self._pause, self._last_records = MIN_PAUSE, time.monotonic()
        return len(outcomes)

    def _log_ends_before(self, applied: int, end: int) -> None:
        """The log ends before the checkpoint: DataLossError at once (not retrying), or a
        warning and DataLossError once that has lasted LOG_BEHIND_GRACE_S."""
        now = time.monotonic()
        self._verified = False  # (should the end come back, the record before the checkpoint must match)
        if self.retry_sleep is None or (self._behind_since is not None
                                        and now - self._behind_since >= LOG_BEHIND_GRACE_S):
            raise log_ends_before_error(applied, end, self.log)
        if self._behind_since is None:
            self._behind_since = now
            LOG.warning("%s: the log ends at offset %d, before the projection's %d; stopping unless that "
                        "changes within %.0fs", self.name, end, applied, LOG_BEHIND_GRACE_S)

    # -- the loop ----------------------------------------------------------------------
    def run(self, until: Optional[int] = None, until_caught_up: bool = False, report_every: float = 10.0,
            on_report: Optional[Callable[[FollowStatus], None]] = None) -> FollowStatus:
        """Applies until stopped, or up to ``until`` (or, with ``until_caught_up``, the log's
        end as last seen), then stores what is in flight. ``on_report`` is called every
        ``report_every`` seconds (0: after every batch)."""
        finishing = until_caught_up or until is not None
        last_report = time.monotonic()
        while not self.stop_event.is_set():
            try:
                if self._stale:
                    self.sink.restart()
                    self._stale, self._verified = False, False
                # A follower learns of new records by waiting for them (one fetch, answered at
                # once when there are some), not by asking for the end before each wait.
                # Until the log is checked to be the sink's (at start, after a restart or
                # after it ended before the checkpoint), the end is asked for.
                applied = self.step(ask_end=finishing or not self.log.waits_for_records or not self._verified,
                                    until=until)
            except (errors.UnavailableError, *self.sink.infrastructure_errors) as exc:
                self._recover(exc)
                continue
            if time.monotonic() - last_report >= report_every:
                last_report = time.monotonic()
                (on_report or (lambda status: report_lag(self.name, status)))(self.status)
            if applied:
                continue
            if self.sink.in_flight:
                # Following, new records are decided while the sink stores the last ones (a
                # sink that takes no records is fed elsewhere: its drain waits for that).
                if not finishing and self.sink.room() != 0:
                    self._wait_for_records(IN_FLIGHT_WAIT_S)
                self._drain(wait=finishing)  # (a failed write moves next_offset back: the next step applies again)
                continue
            if self._behind_since is not None:  # (the log ends before the checkpoint: look again)
                self.stop_event.wait(min(1.0, LOG_BEHIND_GRACE_S / 4))
                continue
            if self._held_back:  # (the sink takes more once it has caught up with itself)
                self._pause_for_records()
                continue
            if finishing:
                break
            self._wait_for_records()
        return self.status

    def _recover(self, exc: BaseException) -> None:
        """After the log or the sink's database failed: raise (not retrying), or wait; after
        the database, the next step first restarts the sink."""
        if self.retry_sleep is None:
            raise exc
        LOG.warning("%s: %s; retrying in %.1fs", self.name, exc, self.retry_sleep)
        self.stop_event.wait(self.retry_sleep)
        if isinstance(exc, self.sink.infrastructure_errors):  # (the log failed: the sink is as left)
            self._stale = True

    def _drain(self, wait: bool = True) -> None:
        """Stores (or only notes) what is in flight; after a failure, the sink is back at
        the state before it."""
        try:
            self.sink.drain(wait)
        except (errors.UnavailableError, *self.sink.infrastructure_errors) as exc:
            self._recover(exc)
        self.status.applied_offset = self.sink.next_offset

    def _wait_for_records(self, slice_s: float = WAIT_SLICE_S) -> None:
        """Idle: a log that can block until records come (Kafka) is waited on, ``slice_s`` at
        a time (no polling while it is quiet); others are looked at again after a pause
        that grows from MIN_PAUSE to idle_sleep while the log stays quiet."""
        if self.log.waits_for_records:
            try:
                self.log.wait_for_records(self.sink.next_offset, slice_s)
                return
            except errors.UnavailableError:
                pass  # the next step reports it
            except errors.OutOfRangeError:  # (the log ends before the checkpoint: the next step asks where)
                self._verified = False
        self._pause_for_records()

    def _pause_for_records(self) -> None:
        self.stop_event.wait(min(self._pause, self.idle_sleep))
        if time.monotonic() - self._last_records > BUSY_WINDOW:
            self._pause = min(self._pause * 2, max(self.idle_sleep, MIN_PAUSE))
