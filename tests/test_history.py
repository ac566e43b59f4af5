"""History you can ask: an entity's history, as-of views and diffs, checked against replays.

The random histories are the oracle's generated call sequences (tests/support/oracle),
driven against our own store, so every RPC and its error paths appear in them."""
from __future__ import annotations

import datetime
import json
import os
import sqlite3
import subprocess
import sys

import pytest

from mlmd_log import errors
from mlmd_log.cli import main as cli_main
from mlmd_log.consumer.replay import replay
from mlmd_log.locations import open_log, open_projection
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.store import MetadataStore
from oracle import calls as oracle_calls
from oracle import runner

SEEDS = (3, 11)
N_CALLS = 260


class _Session(runner.Session):
    """The oracle's call runner over a store we open (not its fresh in-memory one)."""

    def __init__(self, store):
        self.lib = runner.load_library("mlmd_log")
        self.store = store


def _readonly(path: str) -> MetadataStore:
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READONLY
    return MetadataStore(config)


def _everything(store) -> list:
    """Reads that together show the whole store: types, nodes, events, links, lineage."""
    session = _Session(store)
    out = [session.call({"method": m}) for m in
           ("get_artifact_types", "get_execution_types", "get_context_types", "get_artifacts", "get_executions",
            "get_contexts")]
    artifacts = [a.id for a in store.get_artifacts()]
    executions = [e.id for e in store.get_executions()]
    contexts = [c.id for c in store.get_contexts()]
    out.append(session.call({"method": "get_events_by_artifact_ids", "args": [artifacts]}))
    out.append(session.call({"method": "get_events_by_execution_ids", "args": [executions]}))
    for context_id in contexts:
        for method in ("get_artifacts_by_context", "get_executions_by_context", "get_parent_contexts_by_context",
                       "get_children_contexts_by_context"):
            out.append(session.call({"method": method, "args": [context_id]}))
    for artifact_id in artifacts:
        out.append(session.call({"method": "get_contexts_by_artifact", "args": [artifact_id]}))
    return out


@pytest.fixture(scope="module", params=SEEDS)
def recorded(request, tmp_path_factory):
    """(data dir, the generated calls) after running them on an embedded store."""
    generated = oracle_calls.generate(request.param, N_CALLS, "mlmd_log")
    data_dir = str(tmp_path_factory.mktemp(f"history_{request.param}"))
    with MetadataStore(data_dir) as store:
        session = _Session(store)
        for call in generated["calls"]:
            session.call(call)
    return data_dir, generated["calls"]


def _log_end(data_dir: str) -> int:
    with open_log(os.path.join(data_dir, "log"), readonly=True) as log:
        return log.end_offset()


def _replayed(data_dir: str, until: int, path: str) -> str:
    log, db = open_log(os.path.join(data_dir, "log"), readonly=True), open_projection(f"sqlite:///{path}")
    try:
        replay(log, db, until=until)
    finally:
        db.close()
        log.close()
    return path


def _cuts(end: int) -> list[int]:
    return sorted({0, 1, 2, end // 5, end // 3, end // 2, 2 * end // 3, end - 1, end})


def test_as_of_answers_every_read_as_a_replay_cut_there(recorded, tmp_path):
    data_dir, calls = recorded
    reads = [c for c in calls if c["method"].startswith("get_")]
    assert len(reads) > 50
    end = _log_end(data_dir)
    assert end > 100
    with MetadataStore(data_dir) as live:
        for cut in _cuts(end):
            view = live.as_of(offset=cut)
            cut_store = _readonly(_replayed(data_dir, cut, str(tmp_path / f"cut_{cut}.db")))
            try:
                ours, theirs = _Session(view), _Session(cut_store)
                for call in reads:
                    assert ours.call(call) == theirs.call(call), f"offset {cut}: {runner.readable_call(call)}"
                assert _everything(view) == _everything(cut_store), f"offset {cut}"
            finally:
                view.close()
                cut_store.close()


def test_diff_is_the_difference_of_two_as_of_views(recorded):
    data_dir, _ = recorded
    end = _log_end(data_dir)
    with MetadataStore(data_dir) as live:
        for start, stop in ((0, end), (end // 4, end // 2), (end // 2, end // 2 + 7), (end - 3, end)):
            diff = live.diff(start, stop)
            before, after = live.as_of(offset=start), live.as_of(offset=stop)
            try:
                for kind, read in (("artifact", "get_artifacts"), ("execution", "get_executions"),
                                   ("context", "get_contexts"), ("artifact_type", "get_artifact_types"),
                                   ("execution_type", "get_execution_types"), ("context_type", "get_context_types")):
                    old = {n.id: n for n in getattr(before, read)()}
                    new = {n.id: n for n in getattr(after, read)()}
                    created = {e["id"] for e in diff["created"] if e["kind"] == kind}
                    changed = {e["id"] for e in diff["changed"] if e["kind"] == kind}
                    assert created == set(new) - set(old), (kind, start, stop)
                    assert changed == {i for i in set(old) & set(new) if old[i] != new[i]}, (kind, start, stop)
                old_events = {e.SerializeToString(deterministic=True) for e in
                              before.get_events_by_artifact_ids([a.id for a in before.get_artifacts()])}
                new_events = [e for e in after.get_events_by_artifact_ids([a.id for a in after.get_artifacts()])
                              if e.SerializeToString(deterministic=True) not in old_events]
                assert len(new_events) == len([link for link in diff["links_added"] if link["link"] == "Event"])
            finally:
                before.close()
                after.close()


def test_history_is_the_same_after_a_replay(recorded, tmp_path):
    data_dir, _ = recorded
    rebuilt = _replayed(data_dir, _log_end(data_dir), str(tmp_path / "rebuilt.db"))
    with MetadataStore(data_dir) as live:
        kinds = {"artifact": live.get_artifacts(), "execution": live.get_executions(),
                 "context": live.get_contexts(), "artifact_type": live.get_artifact_types()}
        again = MetadataStore(f"sqlite:///{rebuilt}")  # (a projection URL: a read-only store)
        try:
            asked = 0
            for kind, nodes in kinds.items():
                for node in nodes[:15]:
                    history = live.history(kind, node.id)
                    assert history, (kind, node.id)
                    assert history == again.history(kind, node.id)
                    assert history[0]["changes"]["created"] or history[0]["outcome"] != "ok"
                    asked += 1
            assert asked > 20
            with pytest.raises(errors.FailedPreconditionError, match="read-only"):
                again.put_artifact_type(pb.ArtifactType(name="X"))
        finally:
            again.close()
        assert not os.path.exists("sqlite:")  # (a URL is never taken for a data directory)


# -- one history, by hand -----------------------------------------------------------
@pytest.fixture()
def model_story(tmp_path):
    """A Model artifact created, used as a training input, updated, and a rejected put."""
    store = MetadataStore(str(tmp_path / "store"))
    model_type = pb.ArtifactType(name="Model")
    model_type.properties["accuracy"] = pb.DOUBLE
    type_id = store.put_artifact_type(model_type)
    model = pb.Artifact(type_id=type_id, uri="gs://models/1")
    model.properties["accuracy"].double_value = 0.5
    [model_id] = store.put_artifacts([model])
    trainer = store.put_execution_type(pb.ExecutionType(name="Trainer"))
    run_type = store.put_context_type(pb.ContextType(name="Run"))
    stored = store.get_artifacts_by_id([model_id])[0]
    store.put_execution(pb.Execution(type_id=trainer), [(stored, pb.Event(type=pb.Event.INPUT))],
                        [pb.Context(type_id=run_type, name="run-1")])
    stored = store.get_artifacts_by_id([model_id])[0]
    stored.properties["accuracy"].double_value = 0.9
    stored.custom_properties["note"].string_value = "retrained"
    store.put_artifacts([stored])
    with pytest.raises(errors.InvalidArgumentError):
        store.put_artifacts([pb.Artifact(id=model_id, type_id=type_id + 100)])
    # A type changed later: a property added.
    model_type.properties["loss"] = pb.DOUBLE
    store.put_artifact_type(model_type, can_add_fields=True)
    yield store, model_id, type_id
    store.close()


def test_history_lists_each_change_with_who_when_and_what(model_story):
    store, model_id, _ = model_story
    history = store.history("artifact", model_id)
    assert [h["rpc"] for h in history] == ["PutArtifacts", "PutExecution", "PutArtifacts", "PutArtifacts"]
    created, used, updated, rejected = history
    assert created["changes"]["created"] and created["changes"]["fields"]["uri"] == [None, "gs://models/1"]
    assert created["changes"]["properties"] == {"accuracy": [None, 0.5]}
    assert [link["link"] for link in used["changes"]["links_added"]] == ["event", "attribution"]
    assert used["changes"]["links_added"][0]["type"] == "INPUT"
    assert updated["changes"]["properties"] == {"accuracy": [0.5, 0.9]}
    assert updated["changes"]["custom_properties"] == {"note": [None, "retrained"]}
    assert rejected["outcome"]["error"] == "InvalidArgumentError" and "changes" not in rejected
    for entry in history:
        assert entry["producer"]["pid"] == os.getpid() and entry["producer"]["host"]
        assert entry["time"].endswith("Z") and entry["time_ms"] > 0 and len(entry["record_id"]) == 32
    assert [h["offset"] for h in history] == sorted(h["offset"] for h in history)


def test_type_history_shows_its_properties(model_story):
    store, _, type_id = model_story
    history = store.history("artifact_type", type_id)
    assert history[0]["changes"]["created"] and history[0]["changes"]["properties"] == {"accuracy": [None, "DOUBLE"]}
    assert history[-1]["changes"]["properties"] == {"loss": [None, "DOUBLE"]}


def test_as_of_time_cuts_where_the_records_were_applied(model_story):
    store, model_id, _ = model_story
    history = store.history("artifact", model_id)
    updated_at = datetime.datetime.fromtimestamp(history[2]["time_ms"] / 1000, tz=datetime.timezone.utc)
    just_before = store.as_of(time=updated_at - datetime.timedelta(milliseconds=1))
    at_update = store.as_of(time=updated_at)
    try:
        before_value = just_before.get_artifacts_by_id([model_id])[0].properties["accuracy"].double_value
        assert at_update.get_artifacts_by_id([model_id])[0].properties["accuracy"].double_value == 0.9
        assert before_value == 0.5 or history[1]["time_ms"] == history[2]["time_ms"]
    finally:
        just_before.close()
        at_update.close()


def test_an_as_of_view_is_read_only_and_stays_put_while_the_store_moves(model_story):
    store, model_id, type_id = model_story
    view = store.as_of(offset=2)
    try:
        with pytest.raises(errors.FailedPreconditionError, match="read-only"):
            view.put_artifacts([pb.Artifact(type_id=type_id)])
        seen = view.get_artifacts()
        store.put_artifacts([pb.Artifact(type_id=type_id, uri="gs://later")])
        assert view.get_artifacts() == seen and [a.id for a in seen] == [model_id]
        with pytest.raises(errors.FailedPreconditionError):
            view.as_of(offset=1)
    finally:
        view.close()
    with pytest.raises(errors.OutOfRangeError):
        store.as_of(offset=10_000)
    with pytest.raises(errors.InvalidArgumentError):
        store.as_of()
    with pytest.raises(errors.InvalidArgumentError):
        store.history("model", 1)


def test_in_memory_stores_answer_history_too():
    config = pb.ConnectionConfig()
    config.fake_database.SetInParent()
    store = MetadataStore(config)
    type_id = store.put_artifact_type(pb.ArtifactType(name="Data"))
    [first] = store.put_artifacts([pb.Artifact(type_id=type_id, uri="a")])
    store.put_artifacts([pb.Artifact(type_id=type_id, uri="b")])
    view = store.as_of(offset=2)
    assert [a.uri for a in view.get_artifacts()] == ["a"]
    assert store.history("artifact", first)[0]["changes"]["created"]
    view.close()
    store.close()


def test_a_projection_from_before_history_starts_it_at_its_offset(tmp_path):
    data_dir = str(tmp_path / "old")
    with MetadataStore(data_dir) as store:
        type_id = store.put_artifact_type(pb.ArtifactType(name="Data"))
        store.put_artifacts([pb.Artifact(type_id=type_id, uri="a")])
    conn = sqlite3.connect(os.path.join(data_dir, "mlmd.sqlite"))  # (what a projection of an older release has)
    for kind, name in conn.execute("SELECT type, name FROM sqlite_master WHERE (type = 'trigger' AND name LIKE "
                                   "'mlmdlog_v%') OR (type = 'table' AND name LIKE 'mlmdlog_v_%')").fetchall():
        conn.execute(f"DROP {kind.upper()} IF EXISTS `{name}`")
    conn.execute("DELETE FROM mlmdlog_meta WHERE name = 'history_from'")
    conn.commit()
    conn.close()
    with MetadataStore(data_dir) as store:
        with pytest.raises(errors.FailedPreconditionError, match="starts at offset 2"):
            store.as_of(offset=1)
        store.put_artifacts([pb.Artifact(type_id=type_id, uri="b")])
        assert [a.uri for a in store.as_of(offset=2).get_artifacts()] == ["a"]
        assert [a.uri for a in store.as_of(offset=3).get_artifacts()] == ["a", "b"]


# -- the commands -------------------------------------------------------------------
def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlmd_log", *argv], capture_output=True, text=True, timeout=120)


def test_history_and_diff_commands(model_story, tmp_path):
    store, model_id, _ = model_story
    data_dir = str(tmp_path / "store")
    store.close()
    shown = _run("history", "artifact", str(model_id), "--data-dir", data_dir, "--json")
    assert shown.returncode == 0, shown.stderr
    lines = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [entry["rpc"] for entry in lines][-1] == "PutArtifacts" and len(lines) == 4
    text = _run("history", "artifact", str(model_id), "--data-dir", data_dir)
    assert "properties.accuracy: 0.5 -> 0.9" in text.stdout and "REJECTED InvalidArgumentError" in text.stdout
    diff = _run("diff", "--from", "2", "--to", "7", "--data-dir", data_dir, "--json")
    assert diff.returncode == 0, diff.stderr
    changes = json.loads(diff.stdout)
    assert {(e["kind"], e["id"]) for e in changes["changed"]} >= {("artifact", model_id)}
    assert [r["rpc"] for r in changes["rejected"]] == ["PutArtifacts"]
    missing = _run("history", "artifact", "999", "--data-dir", data_dir)
    assert missing.returncode == 1 and missing.stderr.startswith("mlmd-log: NotFoundError")
    bad = _run("diff", "--from", "yesterday", "--data-dir", data_dir)
    assert bad.returncode == 1 and "neither an offset nor an ISO time" in bad.stderr
    assert _run("history", "artifact", "x", "--data-dir", data_dir).returncode == 2


def test_replay_until_an_offset_or_a_time_cuts_the_projection(model_story, tmp_path):
    store, model_id, _ = model_story
    history = store.history("artifact", model_id)
    log = str(tmp_path / "store" / "log")
    assert cli_main(["replay", "--log", log, "--into", f"sqlite:///{tmp_path / 'a.db'}", "--until", "3",
                     "--quiet"]) == 0
    cut = _readonly(str(tmp_path / "a.db"))
    assert [a.id for a in cut.get_artifacts()] == [model_id] and cut.get_executions() == []
    cut.close()
    when = datetime.datetime.fromtimestamp(history[2]["time_ms"] / 1000, tz=datetime.timezone.utc)
    assert cli_main(["replay", "--log", log, "--into", f"sqlite:///{tmp_path / 'b.db'}", "--until",
                     when.isoformat(), "--quiet"]) == 0
    cut = _readonly(str(tmp_path / "b.db"))
    assert cut.get_artifacts_by_id([model_id])[0].properties["accuracy"].double_value == 0.9
    cut.close()


def test_history_from_an_avro_archive_equals_the_stores(model_story, tmp_path):
    store, model_id, _ = model_story
    expected = store.history("artifact", model_id)
    store.close()
    data_dir = str(tmp_path / "store")
    archive = str(tmp_path / "archive")
    exported = _run("export", "--data-dir", data_dir, "--to", archive, "--quiet")
    assert exported.returncode == 0, exported.stderr
    shown = _run("history", "artifact", str(model_id), "--log", f"avro:///{archive}", "--projection",
                 f"sqlite:///{tmp_path / 'from-archive.db'}", "--json", "--quiet")
    assert shown.returncode == 0, shown.stderr
    assert [json.loads(line) for line in shown.stdout.splitlines()] == expected


def test_as_of_a_projection_replayed_from_an_avro_archive(model_story, tmp_path):
    store, model_id, _ = model_story
    before = store.as_of(offset=5).get_artifacts_by_id([model_id])
    store.close()
    archive = str(tmp_path / "archive")
    assert _run("export", "--data-dir", str(tmp_path / "store"), "--to", archive, "--quiet").returncode == 0
    rebuilt = f"sqlite:///{tmp_path / 'rebuilt.db'}"
    assert cli_main(["replay", "--log", f"avro://{archive}", "--into", rebuilt, "--quiet"]) == 0
    with MetadataStore(rebuilt) as again:
        view = again.as_of(offset=5)
        assert view.get_artifacts_by_id([model_id]) == before
        assert before[0].properties["accuracy"].double_value == 0.5
        view.close()


def test_malformed_history_questions_are_invalid_argument(model_story):
    store, model_id, _ = model_story
    for bad in ("3", float("nan"), 2.5, True, 2 ** 70):
        with pytest.raises(errors.InvalidArgumentError):
            store.as_of(offset=bad)
        with pytest.raises(errors.InvalidArgumentError):
            store.history("artifact", bad)
        with pytest.raises(errors.InvalidArgumentError):
            store.diff(0, bad)
    with pytest.raises(errors.InvalidArgumentError):
        store.as_of(time="yesterday")
    with pytest.raises(errors.InvalidArgumentError):
        store.history("artifact", model_id, limit="all")
    assert store.as_of(offset=2.0).get_artifacts()  # (a whole float is an offset)
