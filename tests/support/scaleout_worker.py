"""A pipeline worker process for tests/test_scaleout.py: writes through a shared log.

    python tests/support/scaleout_worker.py LOG_URL PROJECTION_URL WORKER STEPS

Prints one JSON line per put it made: what was acknowledged (ids) and what was
rejected (error class, code, message), so the test can hold the projection to it.
"""
from __future__ import annotations

import json
import sys

import mlmd_log as mlmd
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.proto import metadata_store_service_pb2 as svc
from mlmd_log.client import SharedLogConfig

UNKNOWN_TYPE_ID = 987654


def say(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def put_types(store: mlmd.MetadataStore) -> list[int]:
    """The same three types from every worker: all but the first put are idempotent re-puts."""
    data = pb.ArtifactType(name="Data", properties={"split": pb.STRING})
    trainer = pb.ExecutionType(name="Trainer", properties={"tag": pb.STRING})
    return [store.put_artifact_type(data), store.put_execution_type(trainer),
            store.put_context_type(pb.ContextType(name="Pipeline"))]


def rejected(store_call, **what: object) -> None:
    try:
        store_call()
    except mlmd.errors.StatusError as exc:
        say(op="reject", error=type(exc).__name__, code=exc.error_code, message=exc.message, **what)
    else:
        say(op="unexpectedly-accepted", **what)


def main(log_url: str, projection_url: str, worker: int, steps: int) -> None:
    store = mlmd.MetadataStore(SharedLogConfig(log_url, projection_url, wait_timeout_s=60))
    try:
        data, trainer, pipeline = put_types(store)
        say(op="types", ids=[data, trainer, pipeline])
        for i in range(steps):
            tag = f"w{worker}-{i}"
            execution = pb.Execution(type_id=trainer, last_known_state=pb.Execution.COMPLETE)
            execution.properties["tag"].string_value = tag
            source = pb.Artifact(type_id=data, uri=f"/in/{tag}")
            source.properties["split"].string_value = "train"
            model = pb.Artifact(type_id=data, uri=f"/out/{tag}", name=f"model-{tag}")
            execution_id, artifact_ids, context_ids = store.put_execution(
                execution,
                [(source, pb.Event(type=pb.Event.INPUT)), (model, pb.Event(type=pb.Event.OUTPUT))],
                [pb.Context(type_id=pipeline, name=f"pipeline-{i % 3}")],
                reuse_context_if_already_exist=True)
            say(op="exec", tag=tag, execution_id=execution_id, artifact_ids=artifact_ids, context_ids=context_ids)
            if i % 4 == 1:  # deliberately rejected puts: a taken name, an unknown type
                rejected(lambda: store.put_artifacts([pb.Artifact(type_id=data, name=f"model-{tag}")]),
                         kind="duplicate-name", tag=tag)
                rejected(lambda: store.put_execution(pb.Execution(type_id=UNKNOWN_TYPE_ID), [], []),
                         kind="unknown-type", tag=tag)
            if i == steps // 2:
                say(op="types", ids=put_types(store))
        puts = store.async_puts(max_batch=16)
        futures = {f"/async/w{worker}/{j}": puts.submit("PutArtifacts", svc.PutArtifactsRequest(
            artifacts=[pb.Artifact(type_id=data, uri=f"/async/w{worker}/{j}")])) for j in range(12)}
        puts.flush(timeout=120)
        for uri, future in futures.items():
            say(op="async", uri=uri, artifact_ids=list(future.result().artifact_ids))
        puts.close()
    finally:
        store.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
