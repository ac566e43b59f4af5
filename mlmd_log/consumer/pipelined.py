"""The direct projector with its writes overlapped with the next batch.

Applying a batch of pipeline steps into MySQL is two halves of about equal length: the
Python that decides each record's outcome and builds its rows (the step writer, from
memory), and the wait while the server stores those rows. Done one after the other, the
projector's process sits idle half the time. ``PipelinedApplier`` hands each batch's
rows, outcomes and checkpoint to a writer thread, which writes and commits them on the
projection's connection, and meanwhile decides the next batch:

- records go this way while each is a step the engine can settle from memory
  (``StepWriter.reads_allowed`` off: nothing is read from the projection) or a retry of
  a record whose outcome is known. A record that is neither waits for the writer to
  finish and is applied alone the ordinary way (``Projector.apply_batch``) on the same
  connection, which also teaches the engine's memory what the records after it need;
- retries are recognised from the batches still in flight (in memory) and, for those
  committed, from a second connection (outcomes never change once committed);
- each batch is its own transaction, with its checkpoint, as before: a crash leaves the
  projection at a batch boundary. The writer checks that the checkpoint is where the
  batch starts (a second projector is refused, as ``Projector`` refuses it);
- when a write fails, the batches after it are dropped unwritten, and the engine and the
  projector return to the state before the failed batch: the next call applies from
  there (rows that clash make that batch go the ordinary way, without the step writer).
"""
from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Iterable, Optional

from mlmd_log import errors
from mlmd_log.projections.backend import SqlBackend
from mlmd_log.projections.projector import (OUTCOME_INSERT, Outcome, Projector, check_checkpoint, earlier_outcomes,
                                            ids_to_look_up, outcome_rows)
from mlmd_log.projections.steps import StepsFailed, write_rows

LOG = logging.getLogger("mlmd_log.projector")


@dataclass
class _Batch:
    """One batch's writes, and the state to return to if they fail."""

    start: int  # the projector's next_offset before the batch
    end: int  # and after it
    last_time_before: int
    last_time_after: int
    snapshot: dict  # the engine's counters before the batch
    inserts: dict
    touched: dict
    outcomes: list
    generation: int = 0  # batches of a generation after a failed one are dropped
    done: threading.Event = field(default_factory=threading.Event)
    error: Optional[BaseException] = None


class PipelinedApplier:
    """``apply_batch`` like ``Projector.apply_batch``, writes overlapped (see the module)."""

    def __init__(self, projector: Projector, reader: SqlBackend, depth: int = 2):
        self.projector = projector
        self.engine = projector.engine
        self.db = projector.db
        self.reader = reader
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._in_flight: list[_Batch] = []  # submitted, in order; pruned once committed
        self._steps_off = False  # the next ordinary batch goes without the step writer
        self._generation = 0  # advanced after each failure (see _write_loop)
        self.counts = {"pipelined": 0, "ordinary": 0, "failed": 0}  # batches, for reports and tests
        self._thread = threading.Thread(target=self._write_loop, name="mlmd-log-writer", daemon=True)
        self._thread.start()

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
            # That record alone the ordinary way, once the writer has stored what was handed
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
        hands those settled over to the writer."""
        projector, engine = self.projector, self.engine
        start, last_time_before, snapshot = projector.next_offset, projector.last_time_ms, engine.snapshot()
        seen = self._earlier(pending)
        outcomes: list[Outcome] = []
        undecided = None
        engine.steps.reads_allowed = False
        try:
            for index, (offset, record) in enumerate(pending):
                outcome = projector.settle_from_memory(offset, record, seen)
                if outcome is None:  # (it changed nothing: the records before it are a batch)
                    undecided = index
                    break
                outcomes.append(outcome)
        finally:
            engine.steps.reads_allowed = True
        if outcomes:
            self._hand_over(start, outcomes[-1].offset + 1, last_time_before, snapshot, outcomes)
        return outcomes, undecided

    def _hand_over(self, start: int, end: int, last_time_before: int, snapshot: dict, outcomes: list) -> None:
        projector, engine = self.projector, self.engine
        inserts, touched = engine.steps.take()
        batch = _Batch(start, end, last_time_before, projector.last_time_ms, snapshot, inserts, touched, outcomes,
                       self._generation)
        projector.next_offset = end
        self.counts["pipelined"] += 1
        self._in_flight.append(batch)
        self._queue.put(batch)

    @property
    def in_flight(self) -> bool:
        """Whether batches handed to the writer may still be unwritten."""
        return bool(self._in_flight)

    def drain(self) -> None:
        """Waits until every batch handed over is committed; raises what failed (after
        returning to the state before it)."""
        for batch in list(self._in_flight):
            batch.done.wait()
        self._settle()

    def close(self) -> None:
        """Writes what is in flight, then stops the writer thread."""
        try:
            self.drain()
        finally:
            self.stop()

    def stop(self) -> None:
        """Stops the writer thread once it has dealt with what was handed over (after a
        failure: dropped)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _ordinary(self, records: list, start: Optional[int] = None) -> list[Outcome]:
        """``Projector.apply_batch`` of ``records`` (from offset ``start`` on), once the writer
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
        failed = next((b for b in self._in_flight if b.done.is_set() and b.error is not None), None)
        if failed is None:
            return False
        for batch in self._in_flight:  # (the writer drops those after a failure)
            batch.done.wait()
        self._in_flight.clear()
        self._generation += 1
        self.counts["failed"] += 1
        self.engine.restore(failed.snapshot)
        self.projector.next_offset, self.projector.last_time_ms = failed.start, failed.last_time_before
        if isinstance(failed.error, StepsFailed):
            LOG.warning("applying the batch at offset %d again without the step writer: %s", failed.start,
                        failed.error)
            self._steps_off = True
            return True
        raise failed.error

    # -- the writer thread ------------------------------------------------------------
    def _write_loop(self) -> None:
        failed_generation = None
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            if batch.generation == failed_generation:  # (decided on top of a failed batch: dropped)
                batch.error = errors.AbortedError("an earlier batch failed")
                batch.done.set()
                continue
            try:
                self._write(batch)
            except BaseException as exc:  # noqa: BLE001  (handed to the main thread)
                batch.error = exc
                failed_generation = batch.generation
            batch.done.set()

    def _write(self, batch: _Batch) -> None:
        db = self.db
        db.begin()
        try:
            check_checkpoint(db, batch.start)
            write_rows(db, batch.inserts, batch.touched)
            db.executemany(OUTCOME_INSERT, outcome_rows(batch.outcomes))
            db.write_checkpoint(batch.end, batch.last_time_after)
            db.commit()
        except BaseException:
            db.rollback()
            raise
