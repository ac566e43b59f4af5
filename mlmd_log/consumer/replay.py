"""Rebuilding a projection from the log: the proof that the log is the source of truth.

A replay streams the log from the projection's checkpoint in batches (constant
memory) and applies it with the same projector the live store uses, so the
result answers every read exactly as the live projection does.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

from mlmd_log.consumer.follower import Follower, ProjectorSink
from mlmd_log.producer.base import Log
from mlmd_log.projections.backend import SqlBackend


@dataclass
class ReplayStats:
    records: int
    rejected: int
    seconds: float
    end_offset: int


def replay(log: Log, db: SqlBackend, batch_size: int = 2000,
           progress: Optional[Callable[[int, int], None]] = None) -> ReplayStats:
    """Applies ``log`` into ``db`` from its checkpoint to the log's current end."""
    started = time.monotonic()
    follower = Follower(log, ProjectorSink(db), batch_size=batch_size, count_rejected=True)
    status = follower.run(until=log.end_offset(), report_every=0,
                          on_report=None if progress is None else lambda s: progress(s.applied_offset, s.end_offset))
    return ReplayStats(status.records_applied, status.rejected, time.monotonic() - started, status.applied_offset)
