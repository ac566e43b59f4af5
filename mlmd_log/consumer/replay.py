"""Rebuilding a projection from the log: the proof that the log is the source of truth.

A replay streams the log from the projection's checkpoint in batches (constant
memory) and applies it with the same projector the live store uses, so the
result answers every read exactly as the live projection does.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

from mlmd_log import errors
from mlmd_log.consumer.follower import Follower, ProjectorSink
from mlmd_log.producer.base import Log
from mlmd_log.projections.backend import SqlBackend
from mlmd_log.projections.projector import decode_record


@dataclass
class ReplayStats:
    records: int
    rejected: int
    seconds: float
    end_offset: int


def offset_after_time(log: Log, time_ms: int) -> int:
    """The first offset whose record came after ``time_ms`` (by the running maximum of
    record times, as the projection's history keeps it); the log's end if none did."""
    latest = 0
    for offset, payload in log.read(0):
        record = decode_record(payload, offset)
        latest = max(latest, record.timestamp_ms if record is not None else 0)
        if latest > time_ms:
            return offset
    return log.end_offset()


def replay(log: Log, db: SqlBackend, batch_size: int = 2000,
           progress: Optional[Callable[[int, int], None]] = None, until: Optional[int] = None) -> ReplayStats:
    """Applies ``log`` into ``db`` from its checkpoint to the log's current end, or to
    offset ``until`` (records ``[0, until)``: the projection an as-of view stands for)."""
    started = time.monotonic()
    end = log.end_offset()
    if until is not None:
        if until < 0:
            raise errors.InvalidArgumentError(f"--until {until}: an offset is 0 or more")
        end = min(end, until)
    follower = Follower(log, ProjectorSink(db), batch_size=batch_size, count_rejected=True)
    status = follower.run(until=end, report_every=0,
                          on_report=None if progress is None else lambda s: progress(s.applied_offset, s.end_offset))
    return ReplayStats(status.records_applied, status.rejected, time.monotonic() - started, status.applied_offset)
