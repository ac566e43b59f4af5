"""The embedded write path: append to the log, then apply inline and return the outcome.

Many threads may write at once. Each appends its record (the log groups their
fsyncs), then takes the apply lock; whoever holds it applies every record
appended so far in one projection transaction, so a burst of writers costs one
fsync and one commit instead of one each.
"""
from __future__ import annotations

import logging
import threading
from typing import Iterator, Optional

from mlmd_log import errors
from mlmd_log.consumer.follower import Follower, ProjectorSink
from mlmd_log.producer.base import Log
from mlmd_log.projections.bookkeeping import Outcome
from mlmd_log.projections.projector import Projector

APPLY_BATCH = 512
COMMIT_INTERVAL_S = 0.05  # how stale the projection file may be for other processes
COMMIT_RECORDS = 5000  # most records applied before a commit regardless of time

LOG = logging.getLogger("mlmd_log.inline")


class InlineApplier:
    """Owns a log and the projector that follows it, in one process.

    Puts are acknowledged once their record is durable in the log and applied; the
    projection's transaction is committed in the background every COMMIT_INTERVAL_S (or
    every COMMIT_RECORDS records), so a stream of small puts pays for one commit, not one
    each. Reads in this process share the connection and see every applied put; other
    processes reading the projection file see it up to COMMIT_INTERVAL_S later. A crash
    loses only uncommitted projection rows, which catch-up re-applies from the log."""

    def __init__(self, log: Log, projector: Projector, commit_interval_s: float = COMMIT_INTERVAL_S):
        self.log = log
        self.lock = threading.RLock()  # re-entered by close() under the transport's lock
        self._commit_interval_s = commit_interval_s
        self._closed = threading.Event()
        self._committer: Optional[threading.Thread] = None
        self._fresh: dict[int, Outcome] = {}
        # Payloads appended by submitters in this process but not applied yet: applying
        # them from memory saves reading back what was just written.
        self._unapplied: dict[int, bytes] = {}
        self._sink = _InlineSink(projector, self._fresh)
        self._follower = Follower(_AppendedHereFirst(log, self._unapplied), self._sink, batch_size=APPLY_BATCH)
        self.catch_up()

    @property
    def projector(self) -> Projector:
        return self._sink.projector

    def catch_up(self) -> int:
        """Applies whatever the log holds past the projection's checkpoint; returns how many."""
        with self.lock:
            return self._apply_pending(keep=False)

    def _apply_pending(self, keep: bool) -> int:
        """Applies up to the log's end; ``keep``: the outcomes wait in memory for their
        submitters, and the commit is left to the committer."""
        self._sink.keep = keep
        self._sink.deferred = keep and self._commit_interval_s > 0
        before = self._follower.status.records_applied
        self._follower.run(until=self.log.end_offset())
        if self.projector.in_transaction:
            self._start_committer()
            if self.projector.uncommitted_records >= COMMIT_RECORDS:
                self.projector.commit()
        return self._follower.status.records_applied - before

    def _start_committer(self) -> None:
        if self._committer is None:
            self._committer = threading.Thread(target=self._commit_loop, name="mlmd-log-commit", daemon=True)
            self._committer.start()

    def _commit_loop(self) -> None:
        while not self._closed.wait(self._commit_interval_s):
            # A bounded wait for the lock: close() may hold it while it joins this thread.
            if self.lock.acquire(timeout=self._commit_interval_s):
                try:
                    self.commit()
                finally:
                    self.lock.release()

    def commit(self) -> None:
        """Commits whatever was applied and not committed yet."""
        with self.lock:
            try:
                self.projector.commit()
            except Exception as exc:  # noqa: BLE001 - back at the last commit; catch-up re-applies
                LOG.warning("projection commit failed, will re-apply from the log: %s", exc)

    def submit(self, payload: bytes) -> Outcome:
        """Appends one record, makes sure it is applied, and returns its outcome."""
        [offset] = self.append([payload])
        return self.outcome_for(offset)

    def append(self, payloads: list[bytes]) -> list[int]:
        """Appends records durably; they are applied by the next ``outcome_for`` (of any caller)."""
        offsets = self.log.append(payloads)
        for offset, payload in zip(offsets, payloads):
            self._unapplied[offset] = payload
        return offsets

    def outcome_for(self, offset: int) -> Outcome:
        """The outcome of the record at ``offset``, applying whatever is pending first."""
        with self.lock:
            outcome = self._fresh.pop(offset, None)
            if outcome is None and self.projector.next_offset <= offset:
                self._apply_pending(keep=True)
                outcome = self._fresh.pop(offset, None)
            if outcome is None:
                outcome = self.projector.outcome_at(offset)
            self._unapplied.pop(offset, None)  # in case the applier read it from the log first
        if outcome is None:
            raise errors.InternalError(f"Record at offset {offset} was appended but has no outcome")
        return outcome

    def reconnect(self) -> None:
        """After the projection's server dropped the connection: connect again, and apply
        again from the log what the projection lost with its open transaction (the same
        outcomes), so reads see every acknowledged put."""
        with self.lock:
            self.projector.abandon()  # (memory back at the last commit)
            db = self.projector.db
            db.reconnect()
            self._sink.projector = Projector(db)  # (a commit whose answer was lost may have moved the checkpoint)
            for offset in [o for o in self._fresh if o >= self.projector.next_offset]:
                del self._fresh[offset]
            self.catch_up()

    def close(self) -> None:
        self._closed.set()
        if self._committer is not None:
            self._committer.join()
        self.commit()
        self.log.close()


class _InlineSink(ProjectorSink):
    """The applier's projector as a follower's sink: outcomes kept for their submitters and
    commits deferred while the applier says so (see ``InlineApplier._apply_pending``)."""

    def __init__(self, projector: Projector, fresh: dict[int, Outcome]):
        super().__init__(projector.db, projector=projector)
        self._fresh = fresh
        self.keep = self.deferred = False

    def apply(self, batch: list[tuple[int, bytes]]) -> list[Outcome]:
        outcomes = self.projector.apply_batch(batch, commit=not self.deferred)
        if self.keep:
            for outcome in outcomes:
                self._fresh[outcome.offset] = outcome
        return outcomes


class _AppendedHereFirst:
    """The log as the inline applier reads it: the records this process appended from memory
    (``unapplied``, by offset), the others from the log."""

    waits_for_records = False

    def __init__(self, log: Log, unapplied: dict[int, bytes]):
        self._log = log
        self._unapplied = unapplied

    def __repr__(self) -> str:
        return repr(self._log)

    def end_offset(self) -> int:
        return self._log.end_offset()

    def end_offset_beyond(self, offset: int, ask: bool = True) -> int:
        return self._log.end_offset()

    def read(self, start: int, max_records: Optional[int] = None) -> Iterator[tuple[int, bytes]]:
        count = self._log.end_offset() - start if max_records is None else max_records
        batch = []
        for offset in range(start, start + count):
            payload = self._unapplied.pop(offset, None)
            if payload is None:
                break
            batch.append((offset, payload))
        if len(batch) < count:
            for offset, payload in self._log.read(start + len(batch), count - len(batch)):
                self._unapplied.pop(offset, None)
                batch.append((offset, payload))
        return iter(batch)
