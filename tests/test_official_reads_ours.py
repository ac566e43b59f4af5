"""The official ml-metadata 1.17.1 opens a SQLite projection written by mlmd-log (read-only)
and returns the same types, artifacts, executions, contexts and events our API returns."""
from __future__ import annotations

import base64
import json
import os
import subprocess

import pytest

import mlmd_log as mlmd
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.client import StoreConfig

pytestmark = pytest.mark.reference
SUPPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "support")


def _populate(store: mlmd.MetadataStore) -> None:
    data_type = pb.ArtifactType(name="DataSet", version="v1", description="rows", external_id="t-data",
                                base_type=pb.ArtifactType.DATASET,
                                properties={"day": pb.INT, "split": pb.STRING, "score": pb.DOUBLE,
                                            "ok": pb.BOOLEAN, "meta": pb.STRUCT, "blob": pb.PROTO})
    data_type_id = store.put_artifact_type(data_type)
    model_type_id = store.put_artifact_type(pb.ArtifactType(name="Model", base_type=pb.ArtifactType.MODEL))
    trainer_type = pb.ExecutionType(name="Trainer", properties={"lr": pb.DOUBLE})
    trainer_type.input_type.any.SetInParent()
    trainer_id = store.put_execution_type(trainer_type)
    ctx_type_id = store.put_context_type(pb.ContextType(name="Pipeline", properties={"owner": pb.STRING}))

    artifacts = []
    for i in range(12):
        a = pb.Artifact(type_id=data_type_id, uri=f"/data/{i % 4}", name=f"d{i}", state=pb.Artifact.LIVE)
        a.properties["day"].int_value = i
        a.properties["split"].string_value = "train" if i % 2 else "eval"
        a.properties["score"].double_value = i / 7
        a.properties["ok"].bool_value = bool(i % 3)
        a.properties["meta"].struct_value.update({"rows": i, "tags": ["a", "b"]})
        a.properties["blob"].proto_value.Pack(pb.Value(string_value=f"packed {i}"))
        a.custom_properties["note"].string_value = f"n{i}"
        if i % 5 == 0:
            a.external_id = f"ext-{i}"
        artifacts.append(a)
    ids = store.put_artifacts(artifacts)
    parent = pb.Context(type_id=ctx_type_id, name="all")
    [parent_id] = store.put_contexts([parent])
    for step in range(4):
        execution = pb.Execution(type_id=trainer_id, name=f"run{step}", last_known_state=pb.Execution.COMPLETE)
        execution.properties["lr"].double_value = 0.1 * (step + 1)
        model = pb.Artifact(type_id=model_type_id, uri=f"/models/{step}")
        ctx = pb.Context(type_id=ctx_type_id, name=f"p{step % 2}")
        ctx.properties["owner"].string_value = "team"
        path = pb.Event.Path(steps=[pb.Event.Path.Step(key="examples"), pb.Event.Path.Step(index=step)])
        store.put_execution(execution, [(pb.Artifact(id=ids[step]), pb.Event(type=pb.Event.INPUT, path=path)),
                                        (model, pb.Event(type=pb.Event.OUTPUT))],
                            [ctx], reuse_context_if_already_exist=True)
    children = store.get_contexts_by_type("Pipeline")
    store.put_parent_contexts([pb.ParentContext(parent_id=parent_id, child_id=c.id)
                               for c in children if c.id != parent_id])
    updated = store.get_artifacts_by_id([ids[0]])[0]
    updated.properties["split"].string_value = "test"
    store.put_artifacts([updated])


def _decode(cls, items):
    return [cls.FromString(base64.b64decode(x)) for x in items]


def test_official_library_reads_our_projection(tmp_path, ref_python):
    data_dir = str(tmp_path / "store")
    store = mlmd.MetadataStore(StoreConfig.from_directory(data_dir))
    try:
        _populate(store)
        ours = {
            "artifact_types": store.get_artifact_types(),
            "execution_types": store.get_execution_types(),
            "context_types": store.get_context_types(),
            "artifacts": store.get_artifacts(),
            "executions": store.get_executions(),
            "contexts": store.get_contexts(),
        }
        ours["events"] = store.get_events_by_execution_ids([e.id for e in ours["executions"]])
        by_context = {c.id: (store.get_artifacts_by_context(c.id), store.get_executions_by_context(c.id),
                             store.get_parent_contexts_by_context(c.id)) for c in ours["contexts"]}
    finally:
        store.close()

    run = subprocess.run([ref_python, os.path.join(SUPPORT, "ref_dump.py"), os.path.join(data_dir, "mlmd.sqlite")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    theirs = json.loads(run.stdout)
    classes = {"artifact_types": pb.ArtifactType, "execution_types": pb.ExecutionType,
               "context_types": pb.ContextType, "artifacts": pb.Artifact, "executions": pb.Execution,
               "contexts": pb.Context, "events": pb.Event}
    for key, cls in classes.items():
        assert _decode(cls, theirs[key]) == list(ours[key]), f"{key} differ"
    assert len(ours["artifacts"]) == 16 and len(ours["events"]) == 8
    for context_id, (artifacts, executions, parents) in by_context.items():
        assert _decode(pb.Artifact, theirs["artifacts_by_context"][str(context_id)]) == artifacts
        assert _decode(pb.Execution, theirs["executions_by_context"][str(context_id)]) == executions
        assert _decode(pb.Context, theirs["parents"][str(context_id)]) == parents
