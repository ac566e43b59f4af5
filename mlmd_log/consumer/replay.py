"""Rebuilding a projection from the log: the proof that the log is the source of truth.

A replay streams the log from the projection's checkpoint in batches (constant
memory) and applies it with the same projector the live store uses, so the
result answers every read exactly as the live projection does.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

from mlmd_log.producer.base import Log
from mlmd_log.projections.backend import SqlBackend
from mlmd_log.projections.projector import Projector, check_follows


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
    projector = Projector(db)
    check_follows(log, db, projector.next_offset)
    end = log.end_offset()
    applied = rejected = 0
    while projector.next_offset < end:
        batch = list(log.read(projector.next_offset, min(batch_size, end - projector.next_offset)))
        if not batch:
            break
        outcomes = projector.apply_batch(batch)
        applied += len(outcomes)
        rejected += sum(1 for o in outcomes if o.error_code)
        if progress is not None:
            progress(projector.next_offset, end)
    return ReplayStats(applied, rejected, time.monotonic() - started, projector.next_offset)
