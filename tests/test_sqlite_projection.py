"""The SQLite projection, replayed from a log into a new file: the projection contract."""
from __future__ import annotations

import os

from mlmd_log.consumer.replay import replay
from mlmd_log.locations import open_projection
from mlmd_log.query.reader import Reader

from contracts import ProjectionContract
from dbdump import dump_tables, normalised


class TestSqliteProjectionContract(ProjectionContract):
    def open_target(self, directory, request):
        path = os.path.join(directory, "projection.sqlite")
        return path, open_projection(f"sqlite:///{path}")

    def project(self, target, log):
        stats = replay(log, target[1], batch_size=self.batch_size)
        return stats.records, stats.rejected

    def dump(self, target, tables):
        return normalised(dump_tables(target[0], tables))

    def reader(self, target):
        return Reader(target[1].conn)

    def close_target(self, target):
        target[1].close()
