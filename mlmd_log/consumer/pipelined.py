"""The direct projector with its writes overlapped with the next batch.

Applying a batch of pipeline steps into MySQL is two halves of about equal length: the
Python that decides each record's outcome and builds its rows (the step writer, from
memory), and the wait while the server stores those rows. Done one after the other, the
projector's process sits idle half the time. ``PipelinedApplier`` hands each batch's
rows, outcomes and checkpoint to a writer, which writes and commits them, and meanwhile
decides the next batch:

- records go this way while each is a step the engine can settle from memory
  (``StepWriter.reads_allowed`` off: nothing is read from the projection) or a retry of
  a record whose outcome is known. A record that is neither waits for the writers to
  finish and is applied alone the ordinary way (``Projector.apply_batch``) on the
  projector's connection, which also teaches the engine's memory what the records after it need;
- retries are recognised from the batches still in flight (in memory) and, for those
  committed, from a second connection (outcomes never change once committed);
- each batch is its own transaction, with its checkpoint, as before: a crash leaves the
  projection at a batch boundary. The writer checks that the checkpoint is where the
  batch starts (a second projector is refused, as ``Projector`` refuses it);
- several writers store consecutive batches at the same time: the server's work on one
  batch no longer waits for the last. Each is a child process with its own connection,
  driven by a thread here (writer_process.py), so that its Python does not slow the
  main thread down. The batches'
  ids were assigned in memory, so their new rows are independent. A batch commits in
  order: once its rows are in, it waits for the batch before it to commit, and only then
  re-times its inputs (the rows two batches may both update), checks and moves the
  checkpoint and commits. A writer never waits for a later batch, so they cannot
  deadlock (a clash of unique keys, which memory rules out, ends at the lock timeout);
- a batch handed over while every writer is busy waits for the first free one, and
  what the main thread decides meanwhile joins it (while it holds under ``MERGE_LIMIT``
  records):
  under load, fewer and larger transactions, MySQL's group commit. A projector that
  follows many synchronous writers otherwise stored their puts one record a batch,
  about ten statements and a commit each;
- when a write fails, the batches after it are rolled back, and the engine and the
  projector return to the state before the failed batch: the next call applies from
  there (rows that clash make that batch go the ordinary way, without the step writer).
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Optional

from mlmd_log import errors
from mlmd_log.projections.backend import SqlBackend
from mlmd_log.consumer.writer_process import WriterProcess
from mlmd_log.projections.bookkeeping import Outcome, outcome_rows
from mlmd_log.projections.projector import Projector, earlier_outcomes, ids_to_look_up
from mlmd_log.projections.steps import StepsFailed

LOG = logging.getLogger("mlmd_log.projector")

# A batch waiting for a writer takes in what is decided next while it holds fewer records
# than this (see the module); then the main thread waits for a writer to take it.
MERGE_LIMIT = 4000


@dataclass
class _Batch:
    """One batch's writes, and the state to return to if they fail."""

    before: tuple  # the projector's state before the batch (Projector.rewind)
    start: int  # the projector's next_offset before the batch
    end: int  # and after it
    last_time_after: int
    inserts: dict
    touched: dict
    outcomes: list
    previous: Optional["_Batch"] = None  # the batch handed over before it, until it commits
    done: threading.Event = field(default_factory=threading.Event)
    error: Optional[BaseException] = None

    def take_in(self, end: int, last_time_after: int, inserts: dict, touched: dict, outcomes: list) -> None:
        """The next records' writes join this batch (it has not gone to a writer yet)."""
        for key, rows in inserts.items():
            queued = self.inserts.get(key)
            if queued is None:
                self.inserts[key] = rows
            else:
                queued.extend(rows)
        self.touched.update(touched)  # (an input named again: its latest time and form)
        self.outcomes.extend(outcomes)
        self.end, self.last_time_after = end, last_time_after


class PipelinedApplier:
    """``apply_batch`` like ``Projector.apply_batch``, writes overlapped (see the module)."""

    def __init__(self, projector: Projector, reader: SqlBackend, writers: int = 2):
        """``writers``: processes storing batches at the same time, each on a connection of
        its own (the projector's connection serves the ordinary path)."""
        self.projector = projector
        self.engine = projector.engine
        self.reader = reader
        self._in_flight: list[_Batch] = []  # submitted, in order; pruned once committed
        self._steps_off = False  # the next ordinary batch goes without the step writer
        # batches (and hand-overs that joined a waiting one), for reports and tests
        self.counts = {"pipelined": 0, "ordinary": 0, "failed": 0, "joined": 0}
        self._writers: list[WriterProcess] = []
        try:
            for _ in range(writers):
                self._writers.append(WriterProcess(projector.db))
        except BaseException:
            self._close_writers()
            raise
        # Batches handed over that no writer has taken yet (at most one but for the stop
        # markers, None), and the condition writers and the main thread wait on.
        self._waiting: deque = deque()
        self._changed = threading.Condition()
        self._threads = [threading.Thread(target=self._write_loop, args=(w,), name=f"mlmd-log-writer-{i}",
                                          daemon=True)
                         for i, w in enumerate(self._writers)]
        for thread in self._threads:
            thread.start()

    # -- the main thread --------------------------------------------------------------
    def apply_batch(self, records: Iterable[tuple[int, bytes]]) -> list[Outcome]:
        """Applies consecutive records from ``projector.next_offset`` (as Projector.apply_batch).

        A pipelined batch's outcomes are what its transaction will commit. If a write
        fails, the projector returns to the state before it (``next_offset`` moves back),
        and the next call, given the records from there, applies them again."""
        rewound = self._settle()
        records = list(records)
        projector, engine = self.projector, self.engine
        if rewound and records and records[0][0] > projector.next_offset:
            return []  # (these follow a batch that must be applied again: the caller reads from next_offset)
        if self._steps_off or projector.in_transaction or not engine.steps.enabled:
            return self._ordinary(records)
        pending = projector.decode_pending(records)
        payloads = dict(records)
        applied: list[Outcome] = []
        while pending:
            if not engine.types.loaded:  # (loading them reads the projection: the ordinary path does)
                return applied + self._ordinary(records, pending[0][0])
            outcomes, undecided = self._decide(pending)
            applied += outcomes
            if undecided is None:
                break
            # That record alone the ordinary way, once the writers have stored what was handed
            # over (the ordinary path reads the projection); then the rest from memory again.
            offset = pending[undecided][0]
            alone = self._ordinary([(offset, payloads[offset])], offset)
            if not alone:
                return applied  # (a handed-over batch failed: the caller reads from next_offset)
            applied += alone
            pending = pending[undecided + 1:]
        return applied

    def _decide(self, pending: list) -> tuple[list[Outcome], Optional[int]]:
        """Settles records from memory up to the first it cannot (its index, or None) and
        hands those settled over to the writers."""
        outcomes, before = self.projector.decide_in_memory(pending, self._earlier(pending))
        if outcomes:
            self._hand_over(before, outcomes)
        return outcomes, (len(outcomes) if len(outcomes) < len(pending) else None)

    def _hand_over(self, before: tuple, outcomes: list) -> None:
        projector, engine = self.projector, self.engine
        start, end = before[1], projector.next_offset
        inserts, touched = engine.steps.take()
        with self._changed:
            waiting = self._waiting[-1] if self._waiting else None
            if waiting is not None and len(waiting.outcomes) < MERGE_LIMIT:
                waiting.take_in(end, projector.last_time_ms, inserts, touched, outcomes)
                self.counts["joined"] += 1
            else:
                while self._waiting:  # (full: the writers take it first)
                    self._changed.wait()
                batch = _Batch(before, start, end, projector.last_time_ms, inserts, touched, outcomes,
                               self._in_flight[-1] if self._in_flight else None)
                self.counts["pipelined"] += 1
                self._in_flight.append(batch)
                self._waiting.append(batch)
                self._changed.notify_all()

    @property
    def in_flight(self) -> bool:
        """Whether batches handed to the writers may still be uncommitted."""
        return bool(self._in_flight)

    def drain(self) -> None:
        """Waits until every batch handed over is committed; raises what failed (after
        returning to the state before it)."""
        for batch in list(self._in_flight):
            batch.done.wait()
        self._settle()

    def settle(self) -> None:
        """Forgets the batches committed so far; raises what failed (after returning to the
        state before it), as ``drain`` does, without waiting for the rest."""
        self._settle()

    def close(self) -> None:
        """Writes what is in flight, then stops the writers."""
        try:
            self.drain()
        finally:
            self.stop()

    def stop(self) -> None:
        """Stops the writers' threads once they have dealt with what was handed over (after a
        failure: rolled back), and ends their processes."""
        with self._changed:
            self._waiting.extend(None for thread in self._threads if thread.is_alive())
            self._changed.notify_all()
        for thread in self._threads:
            thread.join()
        self._close_writers()

    def _close_writers(self) -> None:
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    def _ordinary(self, records: list, start: Optional[int] = None) -> list[Outcome]:
        """``Projector.apply_batch`` of ``records`` (from offset ``start`` on), once the writers
        has stored everything handed over."""
        self.drain()
        if start is not None:
            if self.projector.next_offset != start:  # (a handed-over batch failed: it is applied again first)
                return []
            records = [r for r in records if r[0] >= start]
        steps = self.engine.steps
        steps.enabled = not self._steps_off
        try:
            outcomes = self.projector.apply_batch(records)
        finally:
            steps.enabled = True
        self._steps_off = False
        self.counts["ordinary"] += 1
        return outcomes

    def _earlier(self, pending: list) -> dict[str, Outcome]:
        """First outcomes of the records' ids that earlier records may have had (see
        ids_to_look_up): batches in flight first, then what is committed."""
        wanted = set(ids_to_look_up(pending))
        found: dict[str, Outcome] = {}
        if not wanted:
            return found
        for batch in self._in_flight:
            for outcome in batch.outcomes:
                if outcome.record_id in wanted and outcome.record_id not in found:
                    found[outcome.record_id] = outcome
        for record_id, outcome in earlier_outcomes(self.reader, [r for r in wanted if r not in found]).items():
            found[record_id] = outcome
        return found

    def _settle(self) -> bool:
        """Forgets committed batches; after a failed one, returns to the state before it
        (True) and raises its error (StepsFailed is not raised: that batch goes the ordinary
        way, without the step writer, next)."""
        while self._in_flight and self._in_flight[0].done.is_set() and self._in_flight[0].error is None:
            self._in_flight.pop(0)
        if not any(b.done.is_set() and b.error is not None for b in self._in_flight):
            return False
        for batch in self._in_flight:  # (those after a failed one roll back)
            batch.done.wait()
        failed = next(b for b in self._in_flight if b.error is not None)  # (the earliest: those before it committed)
        self._in_flight.clear()
        self.counts["failed"] += 1
        self.projector.rewind(failed.before)
        if isinstance(failed.error, StepsFailed):
            LOG.warning("applying the batch at offset %d again without the step writer: %s", failed.start,
                        failed.error)
            self._steps_off = True
            return True
        raise failed.error

    # -- the threads that drive the writer processes -------------------------------------
    def _write_loop(self, writer: WriterProcess) -> None:
        while True:
            with self._changed:
                while not self._waiting:
                    self._changed.wait()
                batch = self._waiting.popleft()  # (from here on, nothing joins it)
                self._changed.notify_all()
            if batch is None:
                return
            try:
                self._write(writer, batch)
            except BaseException as exc:  # noqa: BLE001  (handed to the main thread)
                batch.error = exc
            finally:
                batch.previous = None  # (or every batch would keep all those before it)
            batch.done.set()

    @staticmethod
    def _write(writer: WriterProcess, batch: _Batch) -> None:
        previous = batch.previous
        if previous is not None and previous.done.is_set() and previous.error is not None:
            raise errors.AbortedError("an earlier batch failed")  # (decided on top of it: dropped)
        writer.call("rows", batch.inserts, outcome_rows(batch.outcomes))  # (rolled back there if it fails)
        try:
            if previous is not None:
                previous.done.wait()
                if previous.error is not None:
                    raise errors.AbortedError("an earlier batch failed")
            writer.call("end", batch.start, batch.touched, batch.end, batch.last_time_after)
        except BaseException:
            try:
                writer.call("rollback")  # (the child rolled back already if "end" failed there)
            except Exception:  # noqa: BLE001  (a child that is gone keeps nothing)
                pass
            raise
