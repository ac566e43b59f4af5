"""Three ways from a log into MySQL/MariaDB, timed: the mirror (SQLite staging, then a
batched copy; ``catch_up``), the same mirror pipelined (``follow``, staging in a child
process) and the direct projector (``replay``). The log is ``--steps`` pipeline steps
(``put_execution``: the seed artifact as INPUT, a new Model as OUTPUT, a run context
reused), held in memory so only the projection is measured. Each way projects into a
database of its own, dropped afterwards. A benchmark prints numbers; it asserts nothing
(tests/test_mirror_projection.py checks the three give the same rows).

    python bench/bench_mirror.py [--steps 1500] [--batch 2000] [--mysql mysql://u:p@host:3306/db]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchlib import pipeline_types, step_parts, step_request  # noqa: E402
from mlmd_log.consumer.replay import replay  # noqa: E402
from mlmd_log.producer.memory_log import MemoryLog  # noqa: E402
from mlmd_log.producer.records import RecordFactory  # noqa: E402
from mlmd_log.projections.backend import SqliteBackend  # noqa: E402
from mlmd_log.projections.mirror import MirroredProjection, follow  # noqa: E402
from mlmd_log.projections.mysql import MySqlBackend, MySqlTarget  # noqa: E402
from mlmd_log.projections.projector import Projector  # noqa: E402
from mlmd_log.proto import metadata_store_pb2 as pb  # noqa: E402
from mlmd_log.proto import metadata_store_service_pb2 as svc  # noqa: E402

WORKERS = 8  # run contexts the steps take turns in


def pipeline_log(steps: int) -> MemoryLog:
    """Types and a seed artifact (applied to a scratch projection for their ids), then the steps."""
    log, records = MemoryLog(), RecordFactory("bench-mirror")
    examples, model, trainer, run = pipeline_types(pb)
    log.append([records.make("PutTypes", svc.PutTypesRequest(
        artifact_types=[examples, model], execution_types=[trainer], context_types=[run])).SerializeToString()])
    scratch = SqliteBackend(":memory:")
    scratch.create_schema()
    projector = Projector(scratch)
    types = svc.PutTypesResponse.FromString(projector.apply_batch(list(log.read(0, 1)))[0].response)
    examples_type, model_type = types.artifact_type_ids
    [trainer_type], [run_type] = types.execution_type_ids, types.context_type_ids
    seed = pb.Artifact(type_id=examples_type, uri="bench://examples", properties={"span": pb.Value(int_value=1)})
    log.append([records.make("PutArtifacts", svc.PutArtifactsRequest(artifacts=[seed])).SerializeToString()])
    [seed.id] = svc.PutArtifactsResponse.FromString(projector.apply_batch(list(log.read(1, 1)))[0].response) \
        .artifact_ids
    scratch.close()
    log.append([records.make("PutExecution", step_request(
        pb, svc, step_parts(pb, step, step % WORKERS, model_type, trainer_type, run_type), seed)).SerializeToString()
        for step in range(1, steps + 1)])
    return log


def timed(way, log: MemoryLog, target: MySqlTarget, staging: str) -> float:
    """Seconds ``way`` takes to project all of ``log`` into a new database on ``target``'s server."""
    try:
        started = time.perf_counter()
        way(log, target, staging)
        return time.perf_counter() - started
    finally:
        admin = MySqlBackend(target)
        admin.execute(f"DROP DATABASE IF EXISTS `{target.database}`")
        admin.close()


def mirror_catch_up(log, target, staging, batch):
    projection = MirroredProjection(MySqlBackend(target), staging)
    try:
        projection.catch_up(log, batch_size=batch)
    finally:
        projection.close()


def mirror_follow(log, target, staging, batch):
    projection = MirroredProjection(MySqlBackend(target), staging)
    try:
        follow(log, projection, threading.Event(), batch_size=batch, until_caught_up=True)
    finally:
        projection.close()


def direct(log, target, staging, batch):
    db = MySqlBackend(target)
    db.create_schema()
    replay(log, db, batch_size=batch)
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500, help="pipeline steps in the log")
    parser.add_argument("--batch", type=int, default=2000, help="records per applied batch")
    parser.add_argument("--mysql", default=os.environ.get("MLMD_TEST_MYSQL_URL"),
                        help="a MySQL/MariaDB server (default $MLMD_TEST_MYSQL_URL); databases are made on it")
    args = parser.parse_args()
    if not args.mysql:
        raise SystemExit("--mysql mysql://user:pass@host:3306/db (or MLMD_TEST_MYSQL_URL) is needed")
    log = pipeline_log(args.steps)
    records = log.end_offset()
    server = MySqlTarget.from_url(args.mysql)
    print(f"{records} records ({args.steps} put_execution steps) into MySQL, batches of {args.batch}")
    with tempfile.TemporaryDirectory() as staging_dir:
        for name, way in (("mirror, apply/catch_up", mirror_catch_up), ("mirror, follow (pipelined)", mirror_follow),
                          ("direct projector", direct)):
            target = server.with_database(f"mlmdlog_bench_{uuid.uuid4().hex[:10]}")
            staging = os.path.join(staging_dir, f"{target.database}.sqlite")
            seconds = timed(lambda lg, tg, st: way(lg, tg, st, args.batch), log, target, staging)
            print(f"  {name:<28} {records / seconds:>10,.0f} records/s  ({seconds:.2f} s)")


if __name__ == "__main__":
    main()
