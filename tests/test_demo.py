"""The demo is the product's tour: every answer it prints is what the store holds.

Each answer is checked against the recorded data read back here by plainer means (events
walked by hand, the history index, an as-of view), never by the demo's own helpers.
"""
from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mlmd_log as mlmd
from mlmd_log.cli import main
from mlmd_log.client import StoreConfig
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.query.history import iso

_INPUT, _OUTPUT = pb.Event.INPUT, pb.Event.OUTPUT


@pytest.fixture(scope="module")
def json_tour(tmp_path_factory):
    """One demo run as a subprocess with --json, and the data directory it wrote."""
    data_dir = tmp_path_factory.mktemp("tour") / "mlmd-data"
    done = subprocess.run([sys.executable, "-m", "mlmd_log", "demo", "--data-dir", str(data_dir), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), str(data_dir)


def _open(data_dir: str) -> mlmd.MetadataStore:
    return mlmd.MetadataStore(StoreConfig.from_directory(data_dir))


def _linked(store, execution_id: int, event_type: int) -> list[int]:
    return sorted(e.artifact_id for e in store.get_events_by_execution_ids([execution_id]) if e.type == event_type)


def _producer(store, artifact_id: int) -> pb.Execution:
    [execution_id] = [e.execution_id for e in store.get_events_by_artifact_ids([artifact_id]) if e.type == _OUTPUT]
    return store.get_executions_by_id([execution_id])[0]


def _run_context(store, name: str) -> pb.Context:
    return store.get_context_by_type_and_name("PipelineRun", name)


def _check_answers(store, tour: dict) -> None:
    """Every answer of one --json tour against the store."""
    first_run, second_run = tour["runs"]
    answers = tour["answers"]
    model_id = answers["dataset"]["model_id"]
    [model] = store.get_artifacts_by_id([model_id])
    assert model.type == "Model" and _run_context(store, first_run).id in [
        c.id for c in store.get_contexts_by_artifact(model_id)]

    trainer = _producer(store, model_id)
    examples = [a.id for a in store.get_artifacts_by_id(_linked(store, trainer.id, _INPUT)) if a.type == "Examples"]
    assert trainer.type == "Trainer" and answers["dataset"]["dataset_ids"] == examples == [examples[0]]

    hyper = answers["hyperparameters"]
    assert hyper["execution_id"] == trainer.id
    assert hyper["hyperparameters"] == {"learning_rate": trainer.properties["learning_rate"].double_value,
                                        "epochs": trainer.properties["epochs"].int_value,
                                        "batch_size": trainer.properties["batch_size"].int_value}

    produced = answers["produced_by"]
    run = _run_context(store, first_run)
    assert produced["pipeline_run"] == first_run and produced["pipeline_run_context_id"] == run.id
    assert produced["execution_id"] == trainer.id
    assert run.id in [c.id for c in store.get_contexts_by_execution(trainer.id)]
    assert [p.name for p in store.get_parent_contexts_by_context(run.id)] == [produced["pipeline"]]

    framework = answers["framework"]
    assert (framework["framework"], framework["framework_version"]) == (
        trainer.properties["framework"].string_value, trainer.properties["framework_version"].string_value)
    assert framework["framework_version"] == "2.15.0"

    push = answers["failed_push"]
    [pusher] = store.get_executions_by_id([push["execution_id"]])
    assert pusher.type == "Pusher" and pusher.last_known_state == pb.Execution.FAILED
    assert _run_context(store, second_run).id in [c.id for c in store.get_contexts_by_execution(pusher.id)]
    assert push["time_ms"] == pusher.create_time_since_epoch and push["time"] == iso(pusher.create_time_since_epoch)
    assert push["model_id"] in _linked(store, pusher.id, _INPUT) and push["model_id"] != model_id

    on_dataset = answers["models_on_dataset"]
    dataset_id = on_dataset["dataset_id"]
    trained_on_it = sorted(m.id for m in store.get_artifacts_by_type("Model")
                           if dataset_id in _linked(store, _producer(store, m.id).id, _INPUT))
    assert on_dataset["model_ids"] == trained_on_it == [model_id, push["model_id"]]

    cache = answers["cache_check"]
    [retrain] = store.get_executions_by_id([cache["execution_id"]])
    assert retrain.type == "Trainer" and cache["input_ids"] == _linked(store, retrain.id, _INPUT)
    same_inputs = [x.id for x in store.get_executions_by_type("Trainer")
                   if x.id < retrain.id and _linked(store, x.id, _INPUT) == cache["input_ids"]]
    assert cache["ran_before"] is True and cache["earlier_execution_ids"] == same_inputs == [trainer.id]
    assert set(cache["changed_properties"]) == {"learning_rate", "epochs"}

    history = answers["history"]
    assert history["id"] == model_id
    [update] = [e for e in store.history("artifact", model_id) if e["offset"] == history["entry"]["offset"]]
    assert update["rpc"] == "PutArtifacts" and update["changes"]["custom_properties"] == {
        "stage": ["candidate", "production"]}
    assert history["entry"] == update and "custom_properties.stage: 'candidate' -> 'production'" in history["text"][-1]
    assert model.custom_properties["stage"].string_value == "production"

    as_of = answers["as_of"]
    [created] = store.history("context", _run_context(store, second_run).id, limit=1)
    assert as_of["offset"] == created["offset"] and created["changes"]["created"]
    then = store.as_of(offset=as_of["offset"])
    try:
        models_then = [a.id for a in then.get_artifacts(list_options=mlmd.ListOptions(filter_query="type = 'Model'"))]
        [model_then] = then.get_artifacts_by_id([model_id])
    finally:
        then.close()
    assert as_of["models_then"] == models_then and push["model_id"] not in models_then and model_id in models_then
    assert as_of["models_now"] == [a.id for a in store.get_artifacts_by_type("Model")]
    assert as_of["stage_then"] == model_then.custom_properties["stage"].string_value == "candidate"


def test_json_tour_answers_match_the_store(json_tour):
    tour, data_dir = json_tour
    assert tour["runs"] == {"run-1": tour["runs"]["run-1"], "run-2": tour["runs"]["run-2"]}
    assert [s["state"] for s in tour["runs"]["run-2"]] == ["COMPLETE", "COMPLETE", "FAILED"]
    with _open(data_dir) as store:
        _check_answers(store, tour)


def test_the_tour_draws_the_models_lineage_and_prints_the_command_that_shows_it(json_tour):
    tour, data_dir = json_tour
    lineage = tour["lineage"]
    assert lineage["model_id"] == tour["answers"]["dataset"]["model_id"]
    if shutil.which("dot"):
        assert lineage["picture"] == str(Path(data_dir) / "lineage-run-1-run-2.svg")
        assert "<svg" in Path(lineage["picture"]).read_text()
    else:
        assert lineage["picture"] is None and "dot" in lineage["not_drawn"]
    argv = shlex.split(lineage["command"])
    assert argv[:2] == ["mlmd-log", "lineage"]
    done = subprocess.run([sys.executable, "-m", "mlmd_log", *argv[1:], "--format", "json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    graph = json.loads(done.stdout)
    assert graph["focus"] == f"a{lineage['model_id']}"
    assert {g["name"] for g in graph["contexts"]} == set(tour["runs"])  # (both runs, through the shared examples)
    assert f"e{tour['answers']['failed_push']['execution_id']}" in {n["key"] for n in graph["nodes"]}


def test_text_tour_prints_each_question_and_the_store_agrees(tmp_path, capsys):
    data_dir = str(tmp_path / "mlmd-data")
    assert main(["demo", "--data-dir", data_dir]) == 0
    text = capsys.readouterr().out
    with _open(data_dir) as store:
        [model] = store.get_artifacts_by_context(_run_context(store, "run-1").id,
                                                 mlmd.ListOptions(filter_query="type = 'Model'"))
        [failed] = [x for x in store.get_executions_by_type("Pusher") if x.last_known_state == pb.Execution.FAILED]
    for heading in (f"Which dataset trained Model {model.id}?", f"Which hyperparameters trained Model {model.id}?",
                    f"Which pipeline run and which training run produced Model {model.id}?",
                    f"Which framework version trained Model {model.id}?", "When was the failed Model",
                    "Every model trained on Examples", "Did Trainer already run on the same inputs",
                    f"Who changed Model {model.id}, and what?", "What did the store hold before run-2?"):
        assert f"\n{heading}" in text
    assert "learning_rate=0.001" in text and "tensorflow 2.15.0" in text
    assert f"{iso(failed.create_time_since_epoch)} by Pusher {failed.id}, FAILED" in text
    assert "custom_properties.stage: 'candidate' -> 'production'" in text
    assert "as of offset" in text and "1 model (now 2 models)" in text
    assert f"mlmd-log lineage artifact {model.id} --data-dir {data_dir}" in text
    assert len(text.splitlines()) < 60  # (one screen or two)


def test_a_second_demo_on_the_same_directory_answers_about_its_own_runs(tmp_path, capsys):
    data_dir = str(tmp_path / "mlmd-data")
    assert main(["demo", "--data-dir", data_dir, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["demo", "--data-dir", data_dir, "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert list(second["runs"]) == ["run-3", "run-4"]
    assert second["answers"]["dataset"]["model_id"] != first["answers"]["dataset"]["model_id"]
    assert second["answers"]["as_of"]["models_then"] == first["answers"]["as_of"]["models_now"] + [
        second["answers"]["dataset"]["model_id"]]
    with _open(data_dir) as store:
        _check_answers(store, second)


def test_a_store_with_an_older_demos_trainer_type_takes_the_tour(tmp_path, capsys):
    """The first demo declared Trainer with a ``state`` property; the tour's Trainer adds its
    own properties to that type rather than failing on a store people already have."""
    data_dir = str(tmp_path / "mlmd-data")
    with _open(data_dir) as store:
        store.put_execution_type(pb.ExecutionType(name="Trainer", properties={"state": pb.STRING}))
    assert main(["demo", "--data-dir", data_dir, "--json"]) == 0
    tour = json.loads(capsys.readouterr().out)
    with _open(data_dir) as store:
        _check_answers(store, tour)
        assert set(store.get_execution_type("Trainer").properties) >= {"state", "learning_rate"}


def test_without_graphviz_the_tour_says_the_picture_was_not_drawn_and_goes_on(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # (no `dot` here)
    assert main(["demo", "--data-dir", str(tmp_path / "mlmd-data")]) == 0
    text = capsys.readouterr().out
    assert "both runs: not drawn (cannot draw" in text and "`dot` is not installed" in text
    assert not list((tmp_path / "mlmd-data").glob("*.svg"))
