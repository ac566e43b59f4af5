"""The MLMD guide's example workflow, recorded in an embedded mlmd-log store.

A DataSet is read by a Trainer run that writes a SavedModel, all inside an
Experiment context; then the model's lineage is walked back to its data.
Run it with ``mlmd-log demo`` (or ``python -m mlmd_log.demo``).
"""
from __future__ import annotations

import sys
import time

import mlmd_log as mlmd
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.client import StoreConfig


def _register_types(store: mlmd.MetadataStore) -> dict[str, int]:
    data_type = pb.ArtifactType(name="DataSet", properties={"day": pb.INT, "split": pb.STRING})
    model_type = pb.ArtifactType(name="SavedModel", properties={"version": pb.INT, "name": pb.STRING})
    trainer_type = pb.ExecutionType(name="Trainer", properties={"state": pb.STRING})
    experiment_type = pb.ContextType(name="Experiment", properties={"note": pb.STRING})
    return {
        "DataSet": store.put_artifact_type(data_type),
        "SavedModel": store.put_artifact_type(model_type),
        "Trainer": store.put_execution_type(trainer_type),
        "Experiment": store.put_context_type(experiment_type),
    }


def run_demo(data_dir: str = "mlmd-data", out=sys.stdout) -> int:
    """Records one training run and prints it with the model's lineage; returns the model id."""
    store = mlmd.MetadataStore(StoreConfig.from_directory(data_dir))
    try:
        types = _register_types(store)
        run = int(time.time())
        data = pb.Artifact(type_id=types["DataSet"], uri="path/to/data", name=f"data-{run}")
        data.properties["day"].int_value = 1
        data.properties["split"].string_value = "train"
        [data_id] = store.put_artifacts([data])

        trainer = pb.Execution(type_id=types["Trainer"], name=f"trainer-{run}",
                               last_known_state=pb.Execution.COMPLETE)
        trainer.properties["state"].string_value = "COMPLETED"
        model = pb.Artifact(type_id=types["SavedModel"], uri="path/to/model/file", name=f"model-{run}")
        model.properties["version"].int_value = 1
        model.properties["name"].string_value = "MNIST-v1"
        experiment = pb.Context(type_id=types["Experiment"], name=f"exp-{run}")
        experiment.properties["note"].string_value = "My first experiment."

        execution_id, (_, model_id), [context_id] = store.put_execution(
            trainer,
            [(store.get_artifacts_by_id([data_id])[0], pb.Event(type=pb.Event.DECLARED_INPUT)),
             (model, pb.Event(type=pb.Event.DECLARED_OUTPUT))],
            [experiment])

        print(f"Recorded in {data_dir}:", file=out)
        print(f"  DataSet    artifact  id={data_id}  uri=path/to/data", file=out)
        print(f"  Trainer    execution id={execution_id}", file=out)
        print(f"  SavedModel artifact  id={model_id}  uri=path/to/model/file", file=out)
        print(f"  Experiment context   id={context_id}", file=out)
        print(f"  artifacts in the experiment: {[a.id for a in store.get_artifacts_by_context(context_id)]}",
              file=out)
        print(f"  executions in the experiment: {[e.id for e in store.get_executions_by_context(context_id)]}",
              file=out)
        _print_lineage(store, model_id, out)
        print(f"Draw it: mlmd-log lineage artifact {model_id} --data-dir {data_dir} "
              "(--format mermaid or json; --output lineage.svg)", file=out)
        return model_id
    finally:
        store.close()


def _print_lineage(store: mlmd.MetadataStore, model_id: int, out) -> None:
    """Walks output events back to the executions that made an artifact, and their inputs."""
    print(f"Lineage of SavedModel {model_id}:", file=out)
    frontier, depth = [model_id], 0
    while frontier and depth < 10:
        producing = [e for e in store.get_events_by_artifact_ids(frontier)
                     if e.type in (pb.Event.OUTPUT, pb.Event.DECLARED_OUTPUT)]
        if not producing:
            break
        execution_ids = sorted({e.execution_id for e in producing})
        executions = store.get_executions_by_id(execution_ids)
        inputs = [e for e in store.get_events_by_execution_ids(execution_ids)
                  if e.type in (pb.Event.INPUT, pb.Event.DECLARED_INPUT)]
        input_ids = sorted({e.artifact_id for e in inputs})
        for execution in executions:
            print(f"  {'  ' * depth}<- {execution.type} execution {execution.id} ({execution.name})", file=out)
        for artifact in store.get_artifacts_by_id(input_ids):
            print(f"  {'  ' * depth}   <- {artifact.type} artifact {artifact.id} uri={artifact.uri}", file=out)
        frontier, depth = input_ids, depth + 1


if __name__ == "__main__":
    run_demo(sys.argv[1] if len(sys.argv) > 1 else "mlmd-data")
