"""The embedded write path: append to the log, then apply inline and return the outcome.

Many threads may write at once. Each appends its record (the log groups their
fsyncs), then takes the apply lock; whoever holds it applies every record
appended so far in one projection transaction, so a burst of writers costs one
fsync and one commit instead of one each.
"""
from __future__ import annotations

import logging
import threading
from typing import Optional

from mlmd_log import errors
from mlmd_log.producer.base import Log
from mlmd_log.projections.projector import Outcome, Projector, check_follows

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
        self.projector = projector
        self.lock = threading.RLock()  # re-entered by close() under the transport's lock
        self._commit_interval_s = commit_interval_s
        self._closed = threading.Event()
        self._committer: Optional[threading.Thread] = None
        self._fresh: dict[int, Outcome] = {}
        # Payloads appended by submitters in this process but not applied yet: applying
        # them from memory saves reading back what was just written.
        self._unapplied: dict[int, bytes] = {}
        # The log must be the one the projection was built from before anything past its
        # checkpoint is applied: another log at the same path (one restored or copied over
        # it) would otherwise have its records mixed into this projection.
        check_follows(log, projector.db, projector.next_offset)
        self.catch_up()

    def catch_up(self) -> int:
        """Applies whatever the log holds past the projection's checkpoint; returns how many."""
        with self.lock:
            return self._apply_pending(keep=False)

    def _apply_pending(self, keep: bool) -> int:
        applied = 0
        end = self.log.end_offset()
        if self.projector.next_offset > end:
            raise errors.DataLossError(
                f"The projection has applied up to offset {self.projector.next_offset} but the log ends at {end}: "
                "the log lost records it had acknowledged. Rebuild the projection with `mlmd-log replay`.")
        while self.projector.next_offset < end:
            batch = self._next_batch(end)
            if not batch:
                break
            deferred = keep and self._commit_interval_s > 0
            for outcome in self.projector.apply_batch(batch, commit=not deferred):
                if keep:
                    self._fresh[outcome.offset] = outcome
            applied += len(batch)
        if self.projector.in_transaction:
            self._start_committer()
            if self.projector.uncommitted_records >= COMMIT_RECORDS:
                self.projector.commit()
        return applied

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

    def _next_batch(self, end: int) -> list[tuple[int, bytes]]:
        """The next records to apply: from memory when this process wrote them, else from the log."""
        start = self.projector.next_offset
        count = min(APPLY_BATCH, end - start)
        batch = []
        for offset in range(start, start + count):
            payload = self._unapplied.pop(offset, None)
            if payload is None:
                break
            batch.append((offset, payload))
        if len(batch) < count:
            for offset, payload in self.log.read(start + len(batch), count - len(batch)):
                self._unapplied.pop(offset, None)
                batch.append((offset, payload))
        return batch

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
            self.projector = Projector(db)  # (a commit whose answer was lost may have moved the checkpoint)
            self._fresh = {offset: outcome for offset, outcome in self._fresh.items()
                           if offset < self.projector.next_offset}
            self.catch_up()

    def close(self) -> None:
        self._closed.set()
        if self._committer is not None:
            self._committer.join()
        self.commit()
        self.log.close()
