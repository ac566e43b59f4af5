"""Folds log records into a projection: one transaction per batch, each record applied as if alone.

The applied offset and every record's outcome are written in the same transaction
as the rows, so a crash at any instant leaves the projection at a record boundary
and replay resumes exactly after it (exactly-once effect). A record whose id was
already applied is a producer retry: it gets the first outcome and changes nothing.
"""
from __future__ import annotations

import logging
from typing import Iterable, Optional

from mlmd_log import errors
from mlmd_log.producer.base import Log, record_at
from mlmd_log.producer.records import FIRST_ATTEMPT, UnreadableRecord, parse_record
from mlmd_log.projections.backend import SqlBackend
from mlmd_log.projections.bookkeeping import Outcome, next_offset, read_checkpoint, read_outcomes, write_checkpoint, write_outcomes
from mlmd_log.projections import history
from mlmd_log.projections.engine import Engine
from mlmd_log.projections.steps import StepsFailed
from mlmd_log.schemas import log_record_pb2

SCHEMA_VERSION = 1
LOG = logging.getLogger("mlmd_log.projector")


def ids_to_look_up(pending: Iterable[tuple[int, log_record_pb2.LogRecord]]) -> list[str]:
    """The record ids an earlier record may have had: all but first attempts (a new id
    made by the producer, LogRecord.attempt 1), which no earlier record can repeat."""
    return [record.record_id for _, record in pending if record.attempt != FIRST_ATTEMPT]


def earlier_outcomes(db: SqlBackend, record_ids: list[str]) -> dict[str, Outcome]:
    """Outcomes ``db`` holds for these record ids (producer retries), the first per id, in
    one query per 500 ids."""
    wanted = sorted({r for r in record_ids if r})
    seen: dict[str, Outcome] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        for outcome in read_outcomes(db, f"`record_id` IN ({', '.join('?' for _ in chunk)})", chunk):
            seen.setdefault(outcome.record_id, outcome)
    return seen


def check_checkpoint(db: SqlBackend, expected: int) -> None:
    """At the start of a transaction: the checkpoint is where this projector left it. If
    another writer moved it (a second projector on the same projection), applying from
    there would apply its records twice; refuse instead."""
    stored = next_offset(db)
    if stored != expected:
        raise errors.FailedPreconditionError(
            f"The projection's checkpoint is at offset {stored}, but this projector left it at "
            f"{expected}: another projector is writing the same projection. Run one per projection.")


def decode_record(payload: bytes, offset: int) -> Optional[log_record_pb2.LogRecord]:
    """Parses a log payload; None for one that is not a LogRecord (written before writers
    checked their records: see ``unreadable_outcome``). Refuses records of a newer schema."""
    try:
        record = parse_record(payload)
    except UnreadableRecord:
        return None
    if record.schema_version > SCHEMA_VERSION:
        raise errors.FailedPreconditionError(
            f"Log record at offset {offset} has schema version {record.schema_version}; this mlmd-log "
            f"understands up to {SCHEMA_VERSION}. Upgrade mlmd-log to apply it.")
    return record


def unreadable_outcome(payload: bytes, offset: int) -> Outcome:
    """The outcome of a payload that is not a LogRecord: rejected, with no record id (none
    can be read), the same on every replay. The log goes on after it."""
    try:
        parse_record(payload)
        reason = "it could not be decoded"
    except UnreadableRecord as exc:
        reason = exc.message
    return Outcome(offset, "", errors.INVALID_ARGUMENT, f"Log record at offset {offset} is {reason}")


def log_ends_before_error(applied: int, end: int, log: Log) -> errors.DataLossError:
    return errors.DataLossError(
        f"The projection has applied the log up to offset {applied}, but the log ends at {end} ({log!r}): "
        "it lost records it had acknowledged, or it is not the log this projection was built from (a topic "
        "deleted and created again?). Replay the log into a new projection, or point --log at the right one.")


def check_follows(log: Log, db: SqlBackend, applied: int, end: Optional[int] = None) -> None:
    """DataLossError unless ``log`` is the log the projection was built from, as far as one
    record tells: it reaches the checkpoint ``applied``, and holds at ``applied - 1`` the
    record (by record id) whose outcome the projection stored there. A log trimmed below
    that offset cannot tell, and passes. ``end``: the log's end, when the caller was told it."""
    if applied <= 0:
        return
    end = log.end_offset() if end is None else end
    if end < applied:
        raise log_ends_before_error(applied, end, log)
    stored = read_outcomes(db, "`log_offset` = ?", (applied - 1,))
    payload = record_at(log, applied - 1) if stored and stored[0].record_id else None
    if payload is None:
        return
    decoded = decode_record(payload, applied - 1)
    found = "" if decoded is None else decoded.record_id
    if found != stored[0].record_id:
        raise errors.DataLossError(
            f"The log ({log!r}) holds another record at offset {applied - 1} than the one the projection applied "
            f"there (record id {found!r}, not {stored[0].record_id!r}): it is not the log this projection was "
            "built from (a topic deleted and created again?). Replay the log into a new projection, or point "
            "--log at the right one.")


class _Rejected(Exception):
    """A record failed: its writes must be undone by the caller."""

    def __init__(self, outcome: Outcome):
        super().__init__(outcome.error_message)
        self.outcome = outcome


class Projector:
    """Applies records in log order to one SQL projection."""

    def __init__(self, db: SqlBackend):
        self.db = db
        self.engine = Engine(db)
        self._rows_at_maintain = 0  # (so a reopened projection refreshes its statistics once)
        filled = self.engine.complete_derived_tables()  # (a projection from before them)
        if filled:
            LOG.info("filled the derived tables of an older projection: %s", filled)
        self.next_offset, self.last_time_ms = read_checkpoint(db) or (0, 0)
        # State as of the last commit, while a deferred transaction is open (see apply_batch).
        self._committed: Optional[tuple[dict, int, int]] = None
        # Outcomes of records not yet applied whose payload is no LogRecord, by offset.
        self._unreadable: dict[int, Outcome] = {}
        # The time each record of the batch was applied at (its rows' timestamps), by offset.
        self._applied_ms: dict[int, int] = {}

    @property
    def in_transaction(self) -> bool:
        return self._committed is not None

    @property
    def uncommitted_records(self) -> int:
        """Records applied in the open (deferred) transaction."""
        return 0 if self._committed is None else self.next_offset - self._committed[1]

    def apply_batch(self, records: Iterable[tuple[int, bytes]], commit: bool = True) -> list[Outcome]:
        """Applies consecutive records starting at ``next_offset`` in one transaction.

        With ``commit=False`` the transaction (rows, outcomes, checkpoint) stays open and
        the next batches join it until ``commit()``: one commit for many small batches. The
        log is durable already, so an uncommitted projection costs nothing on a crash but
        re-applying those records. If a batch fails, everything since the last commit is
        rolled back and the projector returns to that commit's state."""
        outcomes: list[Outcome] = []
        if self._committed is None:
            self._committed = (self.engine.snapshot(), self.next_offset, self.last_time_ms)
            self.db.begin()
            self._check_sole_writer()
        try:
            pending = self.decode_pending(records)
            seen = earlier_outcomes(self.db, ids_to_look_up(pending))
            outcomes = self._apply_records(pending, seen)
            write_outcomes(self.db, outcomes)
            if self.db.keeps_history:
                history.write_records(self.db, pending, outcomes, [self._applied_ms[o] for o, _ in pending])
            self._applied_ms.clear()
            if self.engine.versions is not None:
                self.engine.versions.at(-1)  # (between batches no record is being applied)
            write_checkpoint(self.db, self.next_offset, self.last_time_ms)
        except BaseException:
            self.abandon()
            raise
        if commit:
            self.commit()
        return outcomes

    def decode_pending(self, records: Iterable[tuple[int, bytes]]) -> list[tuple[int, log_record_pb2.LogRecord]]:
        """The records from ``next_offset`` on, decoded; earlier ones (re-delivered) skipped."""
        pending = []
        self._unreadable = {o: outcome for o, outcome in self._unreadable.items() if o >= self.next_offset}
        for offset, payload in records:
            if offset < self.next_offset + len(pending):
                continue  # already applied (a resumed reader may re-deliver)
            if offset != self.next_offset + len(pending):
                raise errors.DataLossError(
                    f"Log gap: expected offset {self.next_offset + len(pending)}, got {offset}")
            record = decode_record(payload, offset)
            if record is None:  # (an empty record: applying it gives the outcome kept here)
                self._unreadable[offset] = unreadable_outcome(payload, offset)
                record = log_record_pb2.LogRecord()
            pending.append((offset, record))
        return pending

    def _check_sole_writer(self) -> None:
        try:
            check_checkpoint(self.db, self.next_offset)
        except errors.FailedPreconditionError:
            self.abandon()
            raise

    def commit(self) -> None:
        """Commits the open transaction (no-op without one)."""
        if self._committed is None:
            return
        try:
            self.db.commit()
        except BaseException:
            self.abandon()
            raise
        self._committed = None
        rows = self.engine.memory.rows_created()
        try:  # after the commit: housekeeping must never undo or fail an applied batch
            self.db.maintain(self._rows_at_maintain, rows)
            self._rows_at_maintain = rows
        except Exception as exc:  # noqa: BLE001
            LOG.warning("projection housekeeping failed (the batch is applied): %s", exc)

    def abandon(self) -> None:
        """Rolls back to the last commit, in the database and in memory."""
        if self._committed is None:
            return
        snapshot, offset, last_time = self._committed
        self._committed = None
        try:  # (a connection the server dropped fails here, and the server rolled back already)
            self.db.rollback()
        finally:
            self.engine.restore(snapshot)
            self.next_offset, self.last_time_ms = offset, last_time

    def _apply_records(self, pending: list, seen: dict[str, Outcome]) -> list[Outcome]:
        """Applies decoded records in order, each as if alone: a rejected one leaves no rows.

        Records are applied in segments, each under one savepoint, not one savepoint per
        record: most records succeed, and a savepoint per record costs a copy of every page
        it touches. When a record fails, its segment is rolled back to the savepoint and the
        records before it in the segment are applied again (deterministic: the same rows);
        the failed record keeps the outcome it got, and a new segment starts after it. So a
        rejection costs at most the segment's records once more.

        Pipeline steps go through the engine's step writer (rows queued, written per table
        before the segment's savepoint is released). Should those rows not go in, the batch
        is applied again without it."""
        if not pending:
            return []
        state = (self.engine.snapshot(), self.last_time_ms, dict(seen))
        self.db.savepoint("batch")
        try:
            outcomes = self._apply_segments(pending, seen)
        except StepsFailed as exc:
            LOG.warning("applying batch at offset %d again without the step writer: %s", pending[0][0], exc)
            self._back_to("batch", state, seen)
            self.engine.steps.enabled = False
            try:
                outcomes = self._apply_segments(pending, seen)
            finally:
                self.engine.steps.enabled = True
        self.db.release("batch")
        self.next_offset = pending[-1][0] + 1
        return outcomes

    def _back_to(self, savepoint: str, state: tuple, seen: dict[str, Outcome]) -> None:
        """Undoes what was applied since ``savepoint``: rows there, memory to ``state``."""
        self.db.rollback_to(savepoint)
        snapshot, self.last_time_ms, earlier = state
        self.engine.restore(snapshot)
        seen.clear()
        seen.update(earlier)

    def _apply_segments(self, pending: list, seen: dict[str, Outcome]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        start = 0
        while start < len(pending):
            state = (self.engine.snapshot(), self.last_time_ms, dict(seen))
            self.db.savepoint("segment")
            end = len(pending)
            for index in range(start, end):
                offset, record = pending[index]
                try:
                    outcomes.append(self._apply_one(offset, record, seen))
                except _Rejected as rejected:
                    self._back_to("segment", state, seen)
                    del outcomes[start:]
                    outcomes += [self._apply_one(o, r, seen) for o, r in pending[start:index]]
                    self.last_time_ms = max(self.last_time_ms, record.timestamp_ms)
                    self._applied_ms[offset] = self.last_time_ms
                    if record.record_id:
                        seen[record.record_id] = rejected.outcome
                    outcomes.append(rejected.outcome)
                    end = index + 1
                    break
            self.engine.flush_steps()
            self.db.release("segment")
            start = end
        return outcomes

    def _apply_one(self, offset: int, record: log_record_pb2.LogRecord, seen: dict[str, Outcome]) -> Outcome:
        """Runs one record, or repeats the first outcome of an earlier record with its id. A
        rejected record raises _Rejected: the caller undoes its writes."""
        outcome = self.settle_from_memory(offset, record, seen)
        if outcome is None:
            self.last_time_ms = max(self.last_time_ms, record.timestamp_ms)
            outcome = self._run(offset, record)
            if record.record_id:
                seen[record.record_id] = outcome
        self._applied_ms[offset] = self.last_time_ms
        return outcome

    def settle_from_memory(self, offset: int, record: log_record_pb2.LogRecord,
                           seen: dict[str, Outcome]) -> Optional[Outcome]:
        """The outcome of a record that repeats an earlier one's id (that one's) or that the
        engine's step writer settles (its rows queued); None, having changed nothing, for a
        record the general path must apply."""
        earlier = seen.get(record.record_id) if record.record_id else None
        if earlier is not None:
            return Outcome(offset, record.record_id, earlier.error_code, earlier.error_message, earlier.response)
        kind = record.WhichOneof("request")
        time_ms = max(self.last_time_ms, record.timestamp_ms)
        step = self.engine.apply_step(kind, getattr(record, kind), time_ms, offset) if kind else None
        if step is None:
            return None
        self.last_time_ms = time_ms
        outcome = Outcome(offset, record.record_id, response=step.SerializeToString(deterministic=True))
        if record.record_id:
            seen[record.record_id] = outcome
        return outcome

    def decide_in_memory(self, pending: list, seen: dict[str, Outcome]) -> tuple[list[Outcome], tuple]:
        """Settles decoded records from memory alone (nothing is read from the projection), in
        order, up to the first one it cannot. Their rows stay queued in the engine's step
        writer for the caller to write, with their outcomes and the checkpoint, in a
        transaction of its own (the pipelined applier); ``next_offset`` moves past them.
        Returns their outcomes and the state before them, for ``rewind`` should that write fail."""
        before = (self.engine.snapshot(), self.next_offset, self.last_time_ms)
        outcomes: list[Outcome] = []
        self.engine.steps.reads_allowed = False
        try:
            for offset, record in pending:
                outcome = self.settle_from_memory(offset, record, seen)
                if outcome is None:  # (it changed nothing: the records before it are decided)
                    break
                outcomes.append(outcome)
        finally:
            self.engine.steps.reads_allowed = True
        if outcomes:
            self.next_offset = outcomes[-1].offset + 1
        return outcomes, before

    def rewind(self, before: tuple) -> None:
        """Back to the state ``decide_in_memory`` returned: writing what it decided failed."""
        snapshot, self.next_offset, self.last_time_ms = before
        self.engine.restore(snapshot)

    def _run(self, offset: int, record: log_record_pb2.LogRecord) -> Outcome:
        kind: Optional[str] = record.WhichOneof("request")
        if kind is None:
            unreadable = self._unreadable.get(offset)
            if unreadable is not None:
                return unreadable
            return Outcome(offset, record.record_id, errors.INVALID_ARGUMENT,
                           f"Log record at offset {offset} carries no request")
        request = getattr(record, kind)
        try:
            response = self.engine.apply(kind, request, self.last_time_ms, offset)
        except StepsFailed:
            raise  # (rows queued by earlier steps: the batch is applied again without them)
        except errors.StatusError as exc:
            failure = (exc.error_code, exc.message)
        except self.db.integrity_errors:  # a constraint the engine did not translate
            failure = (errors.INTERNAL, f"A uniqueness constraint was violated applying log record at offset {offset}")
        except self.db.infrastructure_errors:
            raise  # the database failed, not the record: abort the batch, retry later
        except Exception as exc:  # a defect met by this record: reject it alone, keep the log moving
            failure = (errors.INTERNAL,
                       f"Internal error applying log record at offset {offset}: {type(exc).__name__}: {exc}")
        else:
            return Outcome(offset, record.record_id, response=response.SerializeToString(deterministic=True))
        raise _Rejected(Outcome(offset, record.record_id, *failure))

    def outcome_at(self, offset: int) -> Optional[Outcome]:
        found = read_outcomes(self.db, "`log_offset` = ?", (offset,))
        return found[0] if found else None
