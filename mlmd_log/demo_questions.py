"""The MLMD guide's questions about a pipeline's models, answered through the public read API.

Each answer is told only the names of the runs it is about and finds the rest as a user
of the store would: lineage subgraphs, events, contexts and filter queries, plus
mlmd-log's history and as-of views. An answer is a dict: the ``question`` as a heading,
``text`` lines for people, and the facts behind them as fields for scripts and tests.
"""
from __future__ import annotations

from typing import Any

import mlmd_log as mlmd
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.query.history import entry_lines, iso

PIPELINE = "demo-pipeline"
RUN_TYPE = "PipelineRun"
HYPERPARAMETERS = ("learning_rate", "epochs", "batch_size")

_INPUT, _OUTPUT = pb.Event.INPUT, pb.Event.OUTPUT
_Lineage = pb.LineageSubgraphQueryOptions


# -- reading helpers ----------------------------------------------------------------
def _in_run(run: str) -> str:
    """Filter clause: the node is attributed (or associated) to pipeline run ``run``."""
    return f"contexts_run.type = '{RUN_TYPE}' AND contexts_run.name = '{run}'"


def _artifacts(store: mlmd.MetadataStore, query: str) -> list[pb.Artifact]:
    return store.get_artifacts(list_options=mlmd.ListOptions(filter_query=query))


def _executions(store: mlmd.MetadataStore, query: str) -> list[pb.Execution]:
    return store.get_executions(list_options=mlmd.ListOptions(filter_query=query))


def _plain(value: pb.Value) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def _values(properties: Any) -> dict:
    return {name: _plain(properties[name]) for name in sorted(properties)}


def label(node: Any) -> str:
    """How the tour names a node: its type and id (``Model 3``)."""
    return f"{node.type} {node.id}"


def _input_ids(store: mlmd.MetadataStore, execution_id: int) -> list[int]:
    return sorted(e.artifact_id for e in store.get_events_by_execution_ids([execution_id]) if e.type == _INPUT)


def _run_of(store: mlmd.MetadataStore, execution: pb.Execution) -> pb.Context:
    [run] = [c for c in store.get_contexts_by_execution(execution.id) if c.type == RUN_TYPE]
    return run


def _one(nodes: list, what: str) -> Any:
    if len(nodes) != 1:
        raise mlmd.errors.FailedPreconditionError(f"expected one {what}, found {len(nodes)}")
    return nodes[0]


def run_steps(store: mlmd.MetadataStore, run: str) -> list[dict]:
    """The executions of a run in the order they were recorded, each with its state, inputs
    and outputs (labels)."""
    context = store.get_context_by_type_and_name(RUN_TYPE, run)
    executions = sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)
    events = store.get_events_by_execution_ids([e.id for e in executions])
    artifacts = {a.id: a for a in store.get_artifacts_by_id(sorted({e.artifact_id for e in events}))}

    def linked(execution: pb.Execution, event_type: int) -> list[str]:
        return [label(artifacts[e.artifact_id]) for e in events
                if e.execution_id == execution.id and e.type == event_type]

    return [{"execution": label(x), "execution_id": x.id, "state": pb.Execution.State.Name(x.last_known_state),
             "inputs": linked(x, _INPUT), "outputs": linked(x, _OUTPUT)} for x in executions]


# -- the questions ------------------------------------------------------------------
def _training_of(store: mlmd.MetadataStore, model: pb.Artifact) -> tuple[pb.Execution, list[pb.Artifact]]:
    """The execution that output ``model`` and the Examples it read, from one upstream
    lineage subgraph of two hops (model <- Trainer <- inputs)."""
    graph = store.get_lineage_subgraph(_Lineage(
        starting_artifacts=_Lineage.StartingNodes(filter_query=f"id = {model.id}"),
        max_num_hops=2, direction=_Lineage.UPSTREAM))
    [trainer_id] = {e.execution_id for e in graph.events if e.artifact_id == model.id and e.type == _OUTPUT}
    read = {e.artifact_id for e in graph.events if e.execution_id == trainer_id and e.type == _INPUT}
    [trainer] = [x for x in graph.executions if x.id == trainer_id]
    return trainer, sorted((a for a in graph.artifacts if a.id in read and a.type == "Examples"), key=lambda a: a.id)


def _dataset(model: pb.Artifact, datasets: list[pb.Artifact]) -> dict:
    return {"question": f"Which dataset trained {label(model)}?", "model_id": model.id,
            "dataset_ids": [a.id for a in datasets],
            "text": [f"{label(a)} {a.name}  uri={a.uri}  span={_plain(a.properties['span'])}" for a in datasets]}


def _hyperparameters(model: pb.Artifact, trainer: pb.Execution) -> dict:
    values = {k: v for k, v in _values(trainer.properties).items() if k in HYPERPARAMETERS}
    return {"question": f"Which hyperparameters trained {label(model)}?", "execution_id": trainer.id,
            "hyperparameters": values,
            "text": ["  ".join(f"{k}={v}" for k, v in values.items()) + f"  (properties of {label(trainer)})"]}


def _produced_by(store: mlmd.MetadataStore, model: pb.Artifact, trainer: pb.Execution) -> dict:
    """The trainer's pipeline run (its context) and that run's parent, the pipeline."""
    run = _run_of(store, trainer)
    [pipeline] = store.get_parent_contexts_by_context(run.id)
    return {"question": f"Which pipeline run and which training run produced {label(model)}?",
            "pipeline": pipeline.name, "pipeline_run": run.name, "pipeline_run_context_id": run.id,
            "execution_id": trainer.id,
            "text": [f"pipeline {pipeline.name}, run {run.name} (context {run.id}), "
                     f"training run {label(trainer)} {trainer.name} "
                     f"({pb.Execution.State.Name(trainer.last_known_state)})"]}


def _framework(model: pb.Artifact, trainer: pb.Execution) -> dict:
    values = _values(trainer.properties)
    return {"question": f"Which framework version trained {label(model)}?", "framework": values.get("framework"),
            "framework_version": values.get("framework_version"),
            "text": [f"{values.get('framework')} {values.get('framework_version')}  (properties of {label(trainer)})"]}


def _failed_push(store: mlmd.MetadataStore, run: str) -> dict:
    """The run's failed Pusher (a filter query on state and context) and the model it read."""
    push = _one(_executions(store, f"type = 'Pusher' AND last_known_state = FAILED AND {_in_run(run)}"),
                f"failed push in {run}")
    model = _one(_artifacts(store, f"type = 'Model' AND events_in.execution_id = {push.id} "
                                   "AND events_in.type = INPUT"), f"model pushed by {label(push)}")
    error = _values(push.custom_properties).get("error")
    return {"question": f"When was the failed {label(model)} pushed?", "model_id": model.id,
            "execution_id": push.id, "time_ms": push.create_time_since_epoch,
            "time": iso(push.create_time_since_epoch),
            "text": [f"{iso(push.create_time_since_epoch)} by {label(push)}, FAILED: {error}"]}


def _models_on(store: mlmd.MetadataStore, dataset: pb.Artifact) -> dict:
    """Trainers that read ``dataset``, then the models they output: two filter queries on events."""
    trainers = _executions(store, f"type = 'Trainer' AND events_in.artifact_id = {dataset.id} "
                                  "AND events_in.type = INPUT")
    ids = ", ".join(str(x.id) for x in trainers) or "-1"
    models = _artifacts(store, f"type = 'Model' AND events_out.execution_id IN ({ids}) AND events_out.type = OUTPUT")
    return {"question": f"Every model trained on {label(dataset)}?", "dataset_id": dataset.id,
            "model_ids": [m.id for m in models],
            "text": [f"{label(m)}  stage={_plain(m.custom_properties['stage'])}" for m in models]}


def _changed(before: dict, after: dict) -> dict:
    return {k: [before.get(k), after.get(k)] for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)}


def _cache_check(store: mlmd.MetadataStore, step: pb.Execution) -> dict:
    """What an orchestrator's cache asks before running ``step``: did an earlier execution of
    the same type read exactly the same artifacts? Candidates are the executions with an
    INPUT event on its first input; each one's whole input set is then compared."""
    inputs = _input_ids(store, step.id)
    candidates = _executions(store, f"type = '{step.type}' AND id < {step.id} "
                                    f"AND events_in.artifact_id = {inputs[0]} AND events_in.type = INPUT")
    earlier = [x for x in candidates if _input_ids(store, x.id) == inputs]
    answer = {"question": f"Did {step.type} already run on the same inputs as {label(step)}?",
              "execution_id": step.id, "input_ids": inputs, "earlier_execution_ids": [x.id for x in earlier],
              "ran_before": bool(earlier)}
    if not earlier:
        return {**answer, "text": ["no: no earlier execution read the same artifacts; a cache would run it"]}
    changed = _changed(_values(earlier[-1].properties), _values(step.properties))
    differ = ", ".join(f"{k} {old} -> {new}" for k, (old, new) in changed.items())
    verdict = (f"but its properties differ ({differ}): a cache would run the step again" if changed
               else "with the same properties: a cache would reuse its outputs")
    return {**answer, "changed_properties": changed,
            "text": [f"yes: {label(earlier[-1])} read the same artifacts (ids {inputs})", verdict]}


def _last_change(store: mlmd.MetadataStore, artifact: pb.Artifact) -> dict:
    """The latest record that changed the artifact's properties, from its history index."""
    entries = [e for e in store.history("artifact", artifact.id)
               if (e.get("changes") or {}).get("custom_properties") or (e.get("changes") or {}).get("properties")]
    entry = entries[-1]
    return {"question": f"Who changed {label(artifact)}, and what?", "kind": "artifact", "id": artifact.id,
            "entry": entry, "text": entry_lines(entry)}


def _before_run(store: mlmd.MetadataStore, run: str, model: pb.Artifact) -> dict:
    """The store as it was just before ``run``'s context was put (its first history offset)."""
    run_context = store.get_context_by_type_and_name(RUN_TYPE, run)
    offset = store.history("context", run_context.id, limit=1)[0]["offset"]
    then = store.as_of(offset=offset)
    try:
        models_then = [m.id for m in then.get_artifacts_by_type("Model")]
        [model_then] = then.get_artifacts_by_id([model.id])
    finally:
        then.close()
    stage_then = _plain(model_then.custom_properties["stage"])
    models_now = [m.id for m in store.get_artifacts_by_type("Model")]
    def models(ids: list) -> str:
        return f"{len(ids)} model{'' if len(ids) == 1 else 's'}"

    return {"question": f"What did the store hold before {run}?", "offset": offset, "models_then": models_then,
            "models_now": models_now, "model_id": model.id, "stage_then": stage_then,
            "text": [f"as of offset {offset}: {models(models_then)} (now {models(models_now)}); "
                     f"{label(model)} was stage={stage_then!r}"]}


def answer_questions(store: mlmd.MetadataStore, first_run: str, second_run: str) -> dict[str, dict]:
    """The guide's questions about ``first_run``'s model and ``second_run``'s failed one,
    plus a history and an as-of answer; keys name the questions."""
    model = _one(_artifacts(store, f"type = 'Model' AND {_in_run(first_run)}"), f"model of {first_run}")
    trainer, datasets = _training_of(store, model)
    retrain = _one(_executions(store, f"type = 'Trainer' AND {_in_run(second_run)}"), f"Trainer of {second_run}")
    return {
        "dataset": _dataset(model, datasets),
        "hyperparameters": _hyperparameters(model, trainer),
        "produced_by": _produced_by(store, model, trainer),
        "framework": _framework(model, trainer),
        "failed_push": _failed_push(store, second_run),
        "models_on_dataset": _models_on(store, datasets[0]),
        "cache_check": _cache_check(store, retrain),
        "history": _last_change(store, model),
        "as_of": _before_run(store, second_run, model),
    }
