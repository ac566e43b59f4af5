"""The projector service: follows a log and keeps one projection up to date.

It resumes from the projection's own checkpoint (written in the same transaction
as the rows, so a crash mid-batch replays exactly the records that were lost),
applies large batches while behind and small ones when caught up, reports its
lag, and stops between batches on SIGTERM/SIGINT.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

from mlmd_log import errors
from mlmd_log.producer.base import WAIT_SLICE_S, Log
from mlmd_log.process import stop_on_signals
from mlmd_log.projections.backend import SqlBackend
from mlmd_log.projections.projector import Projector, check_follows, log_ends_before_error

LOG = logging.getLogger("mlmd_log.projector")

# Caught up with batches still being stored: how long to wait for new records before
# looking at the writers again (a failed write is noticed within this).
IN_FLIGHT_WAIT_S = 0.02


# How long the log may end before the projection's checkpoint before the service stops
# with DataLossError: a cluster's new partition leader can briefly report a lower end, a
# topic deleted and created again stays lower.
LOG_BEHIND_GRACE_S = 10.0


@dataclass
class ProjectorStatus:
    applied_offset: int  # next offset to apply
    end_offset: int
    records_applied: int
    batches: int
    last_batch_seconds: float

    @property
    def lag(self) -> int:
        return max(0, self.end_offset - self.applied_offset)


class ProjectorService:
    """Applies ``log`` into ``db`` until stopped."""

    def __init__(self, log: Log, db: SqlBackend, batch_size: int = 2000, idle_sleep: float = 0.005,
                 retry_sleep: float = 1.0, reader: Optional[SqlBackend] = None):
        """``reader``: a second connection to the projection; with it, batches of pipeline steps
        are stored by writer processes while the next batch is decided (``PipelinedApplier``)."""
        self.log = log
        self.db = db
        self.reader = reader
        self.pipeline = None
        self._stale = False  # the database failed: connect again and start over before the next step
        self._start_projector()
        self.batch_size = batch_size
        self.idle_sleep = idle_sleep
        self.retry_sleep = retry_sleep
        self.stop_event = threading.Event()
        self.status = ProjectorStatus(self.projector.next_offset, 0, 0, 0, 0.0)
        self._behind_since: Optional[float] = None  # when the log was first seen ending before the checkpoint
        self._verified = False  # the log checked to be the projection's (check_follows), and not behind since

    def _start_projector(self) -> None:
        """A projector (and pipeline) from what the projection holds: its checkpoint, its ids."""
        self.projector = Projector(self.db)
        if self.reader is not None:
            from mlmd_log.consumer.pipelined import PipelinedApplier
            self.pipeline = PipelinedApplier(self.projector, self.reader)

    def _recover(self, exc: BaseException) -> None:
        """After the log or the database failed: wait; after the database, the next step
        first connects again and starts over (see _restart)."""
        LOG.warning("projector: %s; retrying in %.1fs", exc, self.retry_sleep)
        self.stop_event.wait(self.retry_sleep)
        if isinstance(exc, self.db.infrastructure_errors):  # (the log failed: the projection is as left)
            self._stale = True

    def _restart(self) -> None:
        """Connects again and starts over from what the projection holds: a commit whose
        answer was lost may have moved its checkpoint."""
        if self.pipeline is not None:
            self.pipeline.stop()
            self.pipeline = None
        self.db.reconnect()
        if self.reader is not None:
            self.reader.reconnect()
        self._start_projector()
        self._stale = False
        self._verified = False

    def stop(self) -> None:
        self.stop_event.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT finish the batch in flight, then stop."""
        stop_on_signals(self.stop_event)

    def step(self, ask_end: bool = True) -> int:
        """Applies at most one batch; returns how many records it applied. ``ask_end`` False:
        at the end the log last told, none (no request: the caller waits for records)."""
        start = self.projector.next_offset
        end = self.log.end_offset_beyond(start, ask_end)  # (while behind, the end the last fetch saw)
        self.status.end_offset = end
        if end < start:
            self._log_ends_before(start, end)
            return 0
        if ask_end or end > start:  # (not asked, the end may be this offset for "not known")
            self._behind_since = None
            if not self._verified:
                check_follows(self.log, self.db, start, end)
                self._verified = True
        if start >= end:
            return 0
        started = time.monotonic()
        batch = list(self.log.read(start, min(self.batch_size, end - start)))
        outcomes = (self.pipeline or self.projector).apply_batch(batch)
        self.status.applied_offset = self.projector.next_offset
        self.status.records_applied += len(outcomes)
        self.status.batches += 1
        self.status.last_batch_seconds = time.monotonic() - started
        return len(outcomes)

    def _log_ends_before(self, applied: int, end: int) -> None:
        """The log ends before the checkpoint: a warning, and DataLossError once that has
        lasted LOG_BEHIND_GRACE_S."""
        now = time.monotonic()
        self._verified = False  # (should the end come back, the record before the checkpoint must match)
        if self._behind_since is None:
            self._behind_since = now
            LOG.warning("projector: the log ends at offset %d, before the projection's %d; stopping unless that "
                        "changes within %.0fs", end, applied, LOG_BEHIND_GRACE_S)
        elif now - self._behind_since >= LOG_BEHIND_GRACE_S:
            raise log_ends_before_error(applied, end, self.log)

    def run(self, report_every: float = 10.0, on_report: Optional[Callable[[ProjectorStatus], None]] = None,
            until_caught_up: bool = False) -> ProjectorStatus:
        """Loops until stopped (or, with ``until_caught_up``, until the lag is zero)."""
        last_report = time.monotonic()
        while not self.stop_event.is_set():
            try:
                if self._stale:
                    self._restart()
                # A follower learns of new records by waiting for them (one fetch, answered at
                # once when there are some), not by asking for the end before each wait.
                # Until the log is checked to be the projection's (at start, after a restart or
                # after it ended before the checkpoint), the end is asked for.
                applied = self.step(ask_end=until_caught_up or not self.log.waits_for_records
                                    or not self._verified)
            except (errors.UnavailableError, *self.db.infrastructure_errors) as exc:
                self._recover(exc)
                continue
            if time.monotonic() - last_report >= report_every:
                last_report = time.monotonic()
                (on_report or _log_status)(self.status)
            if applied == 0:
                if self.pipeline is not None and self.pipeline.in_flight:
                    if until_caught_up:
                        self._drain()  # (a failed write moves next_offset back: the next step applies again)
                    else:  # (new records are decided while the writers store the last ones)
                        self._wait_for_records(IN_FLIGHT_WAIT_S)
                        self._drain(wait=False)
                    continue
                if self._behind_since is not None:  # (the log ends before the checkpoint: look again)
                    self.stop_event.wait(min(1.0, LOG_BEHIND_GRACE_S / 4))
                    continue
                if until_caught_up:
                    break
                self._wait_for_records()
        return self.status

    def _drain(self, wait: bool = True) -> None:
        """Waits for the batches in flight to be stored (``wait`` False: only notes those
        stored); after a failed one, returns to the state before it."""
        try:
            self.pipeline.drain() if wait else self.pipeline.settle()
        except (errors.UnavailableError, *self.db.infrastructure_errors) as exc:
            self._recover(exc)
        self.status.applied_offset = self.projector.next_offset

    def close(self) -> None:
        """Writes the batches in flight (pipelined) and stops the writers."""
        if self.pipeline is not None:
            try:
                self.pipeline.close()
            finally:
                self.pipeline = None

    def _wait_for_records(self, slice_s: float = WAIT_SLICE_S) -> None:
        """Idle: a log that can block until records come (Kafka) is waited on, ``slice_s`` at
        a time (no polling while it is quiet); others are looked at again after idle_sleep."""
        if self.log.waits_for_records:
            try:
                self.log.wait_for_records(self.projector.next_offset, slice_s)
                return
            except errors.UnavailableError:
                pass  # the next step reports it
            except errors.OutOfRangeError:  # (the log ends before the checkpoint: the next step asks where)
                self._verified = False
        self.stop_event.wait(self.idle_sleep)


def _log_status(status: ProjectorStatus) -> None:
    LOG.info("projector: applied through offset %d of %d (lag %d records, %d applied, last batch %.3fs)",
             status.applied_offset, status.end_offset, status.lag, status.records_applied,
             status.last_batch_seconds)
