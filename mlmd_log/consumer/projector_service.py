"""The projector service: follows a log and keeps one projection up to date.

It resumes from the projection's own checkpoint (written in the same transaction
as the rows, so a crash mid-batch replays exactly the records that were lost),
applies large batches while behind and small ones when caught up, reports its
lag, and stops between batches on SIGTERM/SIGINT: a ``Follower`` over the
projector (``ProjectorSink``), pipelined into MySQL when given a second connection.
"""
from __future__ import annotations

from typing import Callable, Optional

from mlmd_log.consumer.follower import Follower, FollowStatus, ProjectorSink
from mlmd_log.producer.base import Log
from mlmd_log.projections.backend import SqlBackend

ProjectorStatus = FollowStatus


class ProjectorService:
    """Applies ``log`` into ``db`` until stopped."""

    def __init__(self, log: Log, db: SqlBackend, batch_size: int = 2000, idle_sleep: float = 0.005,
                 retry_sleep: float = 1.0, reader: Optional[SqlBackend] = None):
        """``reader``: a second connection to the projection; with it, batches of pipeline steps
        are stored by writer processes while the next batch is decided (``PipelinedApplier``)."""
        self.log = log
        self.db = db
        self.sink = ProjectorSink(db, reader)
        self.follower = Follower(log, self.sink, batch_size=batch_size, idle_sleep=idle_sleep,
                                 retry_sleep=retry_sleep)

    @property
    def projector(self):
        return self.sink.projector

    @property
    def pipeline(self):
        return self.sink.pipeline

    @property
    def status(self) -> FollowStatus:
        return self.follower.status

    @property
    def stop_event(self):
        return self.follower.stop_event

    def stop(self) -> None:
        self.follower.stop()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT finish the batch in flight, then stop."""
        self.follower.stop_on_signals()

    def step(self, ask_end: bool = True) -> int:
        """Applies at most one batch; returns how many records it applied."""
        return self.follower.step(ask_end)

    def run(self, report_every: float = 10.0, on_report: Optional[Callable[[FollowStatus], None]] = None,
            until_caught_up: bool = False) -> FollowStatus:
        """Loops until stopped (or, with ``until_caught_up``, until the lag is zero)."""
        return self.follower.run(until_caught_up=until_caught_up, report_every=report_every, on_report=on_report)

    def close(self) -> None:
        """Writes the batches in flight (pipelined) and stops the writers."""
        self.sink.close()
