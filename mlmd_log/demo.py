"""The product's tour: a small ML pipeline recorded through the public MLMD API, then the
MLMD guide's questions answered from what the store holds.

Two runs of one pipeline: ExampleGen -> StatisticsGen -> Trainer -> Evaluator -> Pusher,
then a retrain on the same data whose model fails evaluation and whose push fails; then
the first model is promoted, so its history has a change to show. The answers
(``demo_questions``) are told only the two runs' names and read everything else back.
Run it with ``mlmd-log demo`` (or ``python -m mlmd_log.demo``).
"""
from __future__ import annotations

import json
import os
import shlex
import sys
from typing import Any, NamedTuple, Optional, Sequence, TextIO

import mlmd_log as mlmd
from mlmd_log.client import StoreConfig
from mlmd_log.demo_questions import PIPELINE, RUN_TYPE, answer_questions, run_steps
from mlmd_log.lineage_render import lineage_graph, write_picture
from mlmd_log.proto import metadata_store_pb2 as pb

_ARTIFACT_TYPES = {
    "Examples": {"span": pb.INT, "split_names": pb.STRING},
    "ExampleStatistics": {"span": pb.INT, "split_names": pb.STRING},
    "Model": {},
    "ModelEvaluation": {"accuracy": pb.DOUBLE, "blessed": pb.BOOLEAN},
    "PushedModel": {"pushed_destination": pb.STRING},
}
_EXECUTION_TYPES = {
    "ExampleGen": {"input_base": pb.STRING},
    "StatisticsGen": {},
    "Trainer": {"learning_rate": pb.DOUBLE, "epochs": pb.INT, "batch_size": pb.INT,
                "framework": pb.STRING, "framework_version": pb.STRING},
    "Evaluator": {"accuracy_threshold": pb.DOUBLE},
    "Pusher": {"push_destination": pb.STRING},
}
_CONTEXT_TYPES = {"Pipeline": {}, RUN_TYPE: {}}

_THRESHOLD = 0.8
_ACCURACY = {"first": 0.912, "retrain": 0.634}  # (the retrain's learning rate is too high)
_SERVING = "/serving/taxi"
_FRAMEWORK = {"framework": "tensorflow", "framework_version": "2.15.0"}


def _set_values(target: Any, values: dict) -> None:
    """Sets a proto map of Values from plain Python values (bool before int: bool is an int)."""
    for name, value in values.items():
        field = ("bool_value" if isinstance(value, bool) else "int_value" if isinstance(value, int)
                 else "double_value" if isinstance(value, float) else "string_value")
        setattr(target[name], field, value)


def _register_types(store: mlmd.MetadataStore) -> dict[str, int]:
    """Type name -> id; putting the same type again returns its id, so a second demo reuses them.
    A type of that name with other properties (the Trainer of an older demo) gains ours and
    keeps its own, as MLMD's type evolution allows, instead of refusing the demo."""
    ids = {}
    for put, proto, types in ((store.put_artifact_type, pb.ArtifactType, _ARTIFACT_TYPES),
                              (store.put_execution_type, pb.ExecutionType, _EXECUTION_TYPES),
                              (store.put_context_type, pb.ContextType, _CONTEXT_TYPES)):
        for name, properties in types.items():
            ids[name] = put(proto(name=name, properties=properties), can_add_fields=True, can_omit_fields=True)
    return ids


class _Output(NamedTuple):
    """An artifact a step writes: its type, properties and custom properties."""

    type_name: str
    properties: dict = {}
    custom: dict = {}


_CANDIDATE = _Output("Model", custom={"stage": "candidate"})


class _Recorder:
    """Records pipeline steps the way an orchestrator does: one put_execution per step, with
    its input and output events, inside the run's context."""

    def __init__(self, store: mlmd.MetadataStore, types: dict[str, int]):
        self.store, self.types = store, types

    def pipeline(self) -> pb.Context:
        """The pipeline's context, made by the first demo on this store and reused after."""
        existing = self.store.get_context_by_type_and_name("Pipeline", PIPELINE)
        if existing is not None:
            return existing
        [context_id] = self.store.put_contexts([pb.Context(type_id=self.types["Pipeline"], name=PIPELINE)])
        return self.store.get_contexts_by_id([context_id])[0]

    def start_run(self, pipeline: pb.Context, name: str) -> pb.Context:
        [run_id] = self.store.put_contexts([pb.Context(type_id=self.types[RUN_TYPE], name=name)])
        self.store.put_parent_contexts([pb.ParentContext(child_id=run_id, parent_id=pipeline.id)])
        return self.store.get_contexts_by_id([run_id])[0]

    def step(self, run: pb.Context, component: str, properties: dict, inputs: Sequence[pb.Artifact] = (),
             outputs: Sequence[_Output] = (), state: int = pb.Execution.COMPLETE,
             custom: Optional[dict] = None) -> list[pb.Artifact]:
        """One execution of ``component`` reading ``inputs`` and writing ``outputs``; returns
        the outputs as stored."""
        execution = pb.Execution(type_id=self.types[component], name=f"{run.name}/{component}",
                                 last_known_state=state)
        _set_values(execution.properties, properties)
        _set_values(execution.custom_properties, custom or {})
        events = [(artifact, pb.Event(type=pb.Event.INPUT)) for artifact in inputs]
        for output in outputs:
            artifact = pb.Artifact(type_id=self.types[output.type_name], name=f"{run.name}/{output.type_name}",
                                   uri=f"/pipelines/{PIPELINE}/{run.name}/{component}/{output.type_name}",
                                   state=pb.Artifact.LIVE)
            _set_values(artifact.properties, output.properties)
            _set_values(artifact.custom_properties, output.custom)
            events.append((artifact, pb.Event(type=pb.Event.OUTPUT)))
        _, artifact_ids, _ = self.store.put_execution(execution, events, [run])
        return self.store.get_artifacts_by_id(artifact_ids[len(inputs):])


def _next_run_names(store: mlmd.MetadataStore, pipeline: pb.Context) -> tuple[str, str]:
    """Two new run names, numbered after the runs this pipeline already has."""
    done = len(store.get_children_contexts_by_context(pipeline.id))
    return f"run-{done + 1}", f"run-{done + 2}"


def record_pipeline(store: mlmd.MetadataStore) -> tuple[str, str]:
    """Records two runs (the second's model fails evaluation and its push fails), then
    promotes the first model; returns the runs' names."""
    recorder = _Recorder(store, _register_types(store))
    pipeline = recorder.pipeline()
    first_name, second_name = _next_run_names(store, pipeline)

    first = recorder.start_run(pipeline, first_name)
    [examples] = recorder.step(first, "ExampleGen", {"input_base": "/data/taxi/span-1"},
                               outputs=[_Output("Examples", {"span": 1, "split_names": "train,eval"})])
    [statistics] = recorder.step(first, "StatisticsGen", {}, [examples],
                                 [_Output("ExampleStatistics", {"span": 1, "split_names": "train,eval"})])
    [model] = recorder.step(first, "Trainer", {"learning_rate": 0.001, "epochs": 10, "batch_size": 64, **_FRAMEWORK},
                            [examples, statistics], [_CANDIDATE])
    [evaluation] = recorder.step(first, "Evaluator", {"accuracy_threshold": _THRESHOLD}, [model, examples],
                                 [_Output("ModelEvaluation", {"accuracy": _ACCURACY["first"], "blessed": True})])
    recorder.step(first, "Pusher", {"push_destination": _SERVING}, [model, evaluation],
                  [_Output("PushedModel", {"pushed_destination": f"{_SERVING}/{first_name}"})])

    second = recorder.start_run(pipeline, second_name)  # (a retrain on the first run's examples and statistics)
    [retrained] = recorder.step(second, "Trainer",
                                {"learning_rate": 0.05, "epochs": 3, "batch_size": 64, **_FRAMEWORK},
                                [examples, statistics], [_CANDIDATE])
    rejected = _Output("ModelEvaluation", {"accuracy": _ACCURACY["retrain"], "blessed": False})
    [failed_evaluation] = recorder.step(second, "Evaluator", {"accuracy_threshold": _THRESHOLD},
                                        [retrained, examples], [rejected])
    recorder.step(second, "Pusher", {"push_destination": _SERVING}, [retrained, failed_evaluation],
                  state=pb.Execution.FAILED,
                  custom={"error": f"model not blessed: accuracy {_ACCURACY['retrain']} < {_THRESHOLD}"})

    [promoted] = store.get_artifacts_by_id([model.id])
    _set_values(promoted.custom_properties, {"stage": "production"})
    store.put_artifacts([promoted])
    return first_name, second_name


def draw_lineage(store: mlmd.MetadataStore, data_dir: str, runs: Sequence[str], model_id: int) -> dict:
    """The model's lineage both ways (it reaches both runs through their shared examples),
    drawn into DATA_DIR/lineage-RUN-RUN.svg when Graphviz is installed; and the command
    that prints or draws it again."""
    command = f"mlmd-log lineage artifact {model_id} --data-dir {shlex.quote(data_dir)}"
    picture: Optional[str] = os.path.join(data_dir, f"lineage-{'-'.join(runs)}.svg")
    try:
        write_picture(lineage_graph(store, "artifact", model_id), picture)
    except mlmd.errors.FailedPreconditionError as no_dot:  # (Graphviz missing: say so, keep the tour)
        picture, reason = None, no_dot.message
    else:
        reason = None
    return {"model_id": model_id, "picture": picture, "not_drawn": reason, "command": command}


def _print_tour(data_dir: str, steps: dict[str, list[dict]], answers: dict, lineage: dict, out: TextIO) -> None:
    print(f"Recorded two runs of pipeline {PIPELINE!r} in {data_dir}, through mlmd_log.MetadataStore:", file=out)
    for run, executions in steps.items():
        print(f"  {run}", file=out)
        for s in executions:
            flow = ", ".join(s["inputs"]) + " -> " + (", ".join(s["outputs"]) or "(nothing)")
            print(f"    {s['execution']:<16} {s['state']:<9} {flow.strip()}", file=out)
    for answer in answers.values():
        print(f"\n{answer['question']}", file=out)
        for line in answer["text"]:
            print(f"  {line}", file=out)
    where = lineage["picture"] or f"not drawn ({lineage['not_drawn']})"
    print(f"\nLineage of Model {lineage['model_id']}, both runs: {where}", file=out)
    print(f"  {lineage['command']} --format mermaid   (or dot, json; --output FILE.svg)", file=out)


def run_demo(data_dir: str = "mlmd-data", out: Optional[TextIO] = None, as_json: bool = False) -> dict:
    """Records the pipeline, answers the guide's questions from the store and prints them
    (as text, or as one JSON object) to ``out`` (sys.stdout as it is at the call); returns the answers."""
    out = out or sys.stdout
    store = mlmd.MetadataStore(StoreConfig.from_directory(data_dir))
    try:
        runs = record_pipeline(store)
        answers = answer_questions(store, *runs)
        steps = {run: run_steps(store, run) for run in runs}
        lineage = draw_lineage(store, data_dir, runs, answers["dataset"]["model_id"])
        if as_json:
            json.dump({"data_dir": data_dir, "pipeline": PIPELINE, "runs": steps, "answers": answers,
                       "lineage": lineage}, out, indent=2)
            print(file=out)
        else:
            _print_tour(data_dir, steps, answers, lineage, out)
        return answers
    finally:
        store.close()


if __name__ == "__main__":
    run_demo(sys.argv[1] if len(sys.argv) > 1 else "mlmd-data")
