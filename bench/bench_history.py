"""History on a large log, timed: replay with the history index, ``history`` of one entity,
opening an ``as_of`` view and answering reads on it, and a ``diff`` of a short range.

The log is ``--records`` records: types, then pipeline steps (put_execution: a shared
source artifact as INPUT, a new Model as OUTPUT, one of 8 run contexts), every 10th record
a property update of an earlier Model, every 100th a rejected put. It is written to a
FileLog (no fsync: only the projection side is measured) and replayed into a SQLite
projection, as ``mlmd-log replay`` does. A benchmark prints numbers; it asserts nothing
(tests/test_history.py checks the answers).

    python bench/bench_history.py [--records 1000000] [--dir /tmp/mlmd-bench-history] [--keep]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchlib import pipeline_types, step_parts, step_request  # noqa: E402
from mlmd_log.consumer.replay import replay  # noqa: E402
from mlmd_log.producer import FileLog  # noqa: E402
from mlmd_log.producer.records import RecordFactory  # noqa: E402
from mlmd_log.projections.backend import SqliteBackend  # noqa: E402
from mlmd_log.proto import metadata_store_pb2 as pb  # noqa: E402
from mlmd_log.proto import metadata_store_service_pb2 as svc  # noqa: E402

WORKERS = 8
# Ids in a fresh projection: MLMD's simple types take 1-9, then the four types below in
# order; the source artifact is artifact 1 and step k's Model is artifact k + 1.
EXAMPLES_TYPE, MODEL_TYPE, TRAINER_TYPE, RUN_TYPE = 10, 11, 12, 13


def write_log(path: str, records: int) -> None:
    factory = RecordFactory("bench-history")
    examples, model, trainer, run = pipeline_types(pb)
    source = pb.Artifact(type_id=EXAMPLES_TYPE, uri="bench://examples", properties={"span": pb.Value(int_value=1)})
    first = [factory.make("PutTypes", svc.PutTypesRequest(artifact_types=[examples, model],
                                                          execution_types=[trainer], context_types=[run])),
             factory.make("PutArtifacts", svc.PutArtifactsRequest(artifacts=[source]))]
    source.id = 1
    log = FileLog(path, durability="none")
    try:
        log.append([r.SerializeToString() for r in first])
        batch, step = [], 0
        for offset in range(2, records):
            if offset % 100 == 0:  # rejected: a type id that does not exist
                request = svc.PutArtifactsRequest(artifacts=[pb.Artifact(type_id=99999)])
                batch.append(factory.make("PutArtifacts", request))
            elif offset % 10 == 0 and step > 0:  # an earlier Model's version property changes
                model_id = 1 + (offset * 7919) % step + 1
                update = pb.Artifact(id=model_id, type_id=MODEL_TYPE, uri=f"bench://w{(model_id - 1) % WORKERS}"
                                     f"/model/{model_id - 1}")
                update.properties["version"].int_value = offset
                batch.append(factory.make("PutArtifacts", svc.PutArtifactsRequest(artifacts=[update])))
            else:
                step += 1
                parts = step_parts(pb, step, step % WORKERS, MODEL_TYPE, TRAINER_TYPE, RUN_TYPE)
                batch.append(factory.make("PutExecution", step_request(pb, svc, parts, source)))
            if len(batch) == 5000:
                log.append([r.SerializeToString() for r in batch])
                batch = []
        if batch:
            log.append([r.SerializeToString() for r in batch])
    finally:
        log.close()


def timed_ms(action, repeats: int) -> tuple[float, float]:
    """(median, max) milliseconds of ``action(i)`` over ``repeats`` calls."""
    times = []
    for i in range(repeats):
        started = time.perf_counter()
        action(i)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--dir", default="/tmp/mlmd-bench-history")
    parser.add_argument("--keep", action="store_true", help="reuse a log and projection left by an earlier run")
    args = parser.parse_args()
    log_path, db_path = os.path.join(args.dir, "log"), os.path.join(args.dir, "mlmd.sqlite")
    if not args.keep and os.path.exists(args.dir):
        shutil.rmtree(args.dir)
    os.makedirs(args.dir, exist_ok=True)
    if not os.path.exists(log_path):
        started = time.perf_counter()
        write_log(log_path, args.records)
        print(f"log: {args.records} records written in {time.perf_counter() - started:.1f}s")
    log = FileLog(log_path, readonly=True)
    db = SqliteBackend(db_path)
    db.create_schema()
    stats = replay(log, db, batch_size=2000)
    db.close()
    end = log.end_offset()
    log.close()
    if stats.records:
        print(f"replay with the history index: {stats.records} records in {stats.seconds:.1f}s = "
              f"{stats.records / stats.seconds:,.0f} records/s ({stats.rejected} rejected)")
    size = sum(os.path.getsize(os.path.join(args.dir, f)) for f in os.listdir(args.dir) if f.startswith("mlmd"))
    print(f"projection: {size / 2**20:,.0f} MiB for {end} records")

    from mlmd_log.store import MetadataStore

    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = db_path
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READONLY
    store = MetadataStore(config)
    models = max(2, end * 8 // 10)
    median, worst = timed_ms(lambda i: store.history("artifact", 2 + (i * 7919) % (models - 2)), 200)
    print(f"history(artifact) of a Model: median {median:.2f} ms, max {worst:.2f} ms (200 Models)")
    median, worst = timed_ms(lambda i: store.history("context", 1, limit=100), 20)
    print(f"history(context, limit=100) of a run context touched by ~1/8 of the records: median {median:.2f} ms")

    def open_and_read(i: int) -> None:
        view = store.as_of(offset=end // 2 + i * 997)
        try:
            view.get_artifacts_by_id([2 + i, 3 + i, 1000 + i])
            view.get_contexts_by_artifact(5 + i)
            view.get_events_by_artifact_ids([10 + i])
        finally:
            view.close()
    median, worst = timed_ms(open_and_read, 10)
    print(f"as_of(offset) opened and three reads answered: median {median:.1f} ms, max {worst:.1f} ms")

    view = store.as_of(offset=end // 2)
    try:
        median, _ = timed_ms(lambda i: view.get_artifacts(list_options=__import__("mlmd_log").ListOptions(
            limit=100, filter_query="uri LIKE 'bench://w3/%'")), 5)
        print(f"as_of view: a filter query (uri prefix, 100 results): median {median:.1f} ms")
        median, _ = timed_ms(lambda i: view.get_lineage_subgraph(_lineage_options(5 + i)), 5)
        print(f"as_of view: get_lineage_subgraph from one Model, 2 hops: median {median:.1f} ms")
    finally:
        view.close()
    median, _ = timed_ms(lambda i: store.diff(end // 2 + i * 100, end // 2 + i * 100 + 100), 5)
    print(f"diff of 100 records: median {median:.1f} ms")
    store.close()
    return 0


def _lineage_options(artifact_id: int) -> pb.LineageSubgraphQueryOptions:
    options = pb.LineageSubgraphQueryOptions(max_num_hops=2)
    options.starting_artifacts.filter_query = f"id = {artifact_id}"
    return options


if __name__ == "__main__":
    sys.exit(main())
