"""`mlmd-log import`: a database the official ml-metadata 1.17.1 wrote, moved into a log,
answers every read as the original does: ids, properties, events, links and times."""
from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess

import pytest

import mlmd_log as mlmd
import ref_dump
from mlmd_log.cli import main
from mlmd_log.client import StoreConfig
from mlmd_log.proto import metadata_store_pb2 as pb

SUPPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "support")


def _official_dump(ref_python: str, path: str) -> dict:
    run = subprocess.run([ref_python, os.path.join(SUPPORT, "ref_dump.py"), path],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


def _our_dump(data_dir: str) -> dict:
    store = mlmd.MetadataStore(StoreConfig.from_directory(data_dir))
    try:
        return ref_dump.dump(store, pb)
    finally:
        store.close()


def _links_as_sets(dump: dict) -> dict:
    """The dump with the lineage graph's attributions and associations as sets: MLMD's own
    order there follows SQLite's choice of index, which our projection's extra indexes
    change (a read of the same rows, not a difference the import makes)."""
    if "lineage" not in dump or isinstance(dump["lineage"], dict):
        return dump
    graph = pb.LineageGraph.FromString(base64.b64decode(dump["lineage"][0]))
    for name in ("attributions", "associations"):
        links = sorted(getattr(graph, name), key=lambda link: link.SerializeToString(deterministic=True))
        graph.ClearField(name)
        getattr(graph, name).extend(links)
    return {**dump, "lineage": ref_dump.b64([graph])}


def _import(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["import", "--quiet", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.reference
@pytest.mark.parametrize("seed, target", [(7, "data-dir"), (23, "log-into")])
def test_imported_store_answers_as_the_original(tmp_path, capsys, ref_python, seed, target):
    source = str(tmp_path / "mlmd.db")
    run = subprocess.run([ref_python, os.path.join(SUPPORT, "write_mlmd_db.py"), source, str(seed), "300"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    data_dir = str(tmp_path / "store")
    where = (["--data-dir", data_dir] if target == "data-dir" else
             ["--log", os.path.join(data_dir, "log"), "--into", "sqlite:///" + os.path.join(data_dir, "mlmd.sqlite")])
    code, out, err = _import(capsys, "--from", "sqlite:///" + source, *where)
    assert code == 0, err
    assert "imported" in out and err == ""  # (no time the log could not reproduce)

    original = _official_dump(ref_python, source)
    assert len(original["artifacts"]) > 10 and len(original["events"]) > 5 and any(original["parents"].values())
    # The official library reading our projection: byte for byte, times included.
    assert _links_as_sets(_official_dump(ref_python, os.path.join(data_dir, "mlmd.sqlite"))) == \
        _links_as_sets(original)
    # Our own store reading the imported log's projection.
    ours = _our_dump(data_dir)
    for key in original:
        assert _links_as_sets(ours)[key] == _links_as_sets(original)[key], key


def _our_source(tmp_path, artifacts: int = 3) -> str:
    """An MLMD v10 SQLite file written by mlmd-log itself (same tables), for refusals."""
    data_dir = str(tmp_path / "source")
    store = mlmd.MetadataStore(StoreConfig.from_directory(data_dir))
    try:
        type_id = store.put_artifact_type(pb.ArtifactType(name="Data", properties={"n": pb.INT}))
        store.put_artifacts([pb.Artifact(type_id=type_id, uri=f"/d/{i}", properties={"n": pb.Value(int_value=i)})
                             for i in range(artifacts)])
    finally:
        store.close()
    return os.path.join(data_dir, "mlmd.sqlite")


def _edit(path: str, sql: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(sql)


def test_a_non_empty_log_is_refused(tmp_path, capsys):
    source = _our_source(tmp_path)
    target = str(tmp_path / "target")
    assert _import(capsys, "--from", "sqlite:///" + source, "--data-dir", target)[0] == 0
    code, _, err = _import(capsys, "--from", "sqlite:///" + source, "--data-dir", target)
    assert code == 1 and "FailedPreconditionError" in err and "already holds" in err


def test_another_schema_version_is_refused_with_its_number(tmp_path, capsys):
    source = _our_source(tmp_path)
    _edit(source, "UPDATE `MLMDEnv` SET `schema_version` = 9")
    code, _, err = _import(capsys, "--from", "sqlite:///" + source, "--data-dir", str(tmp_path / "t"))
    assert code == 1 and "schema version 9" in err and len(err.strip().splitlines()) == 1


def test_a_file_that_is_not_a_database_is_one_line(tmp_path, capsys):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    code, _, err = _import(capsys, "--from", f"sqlite:///{junk}", "--data-dir", str(tmp_path / "t"))
    assert code == 1 and "FailedPreconditionError" in err and len(err.strip().splitlines()) == 1


def test_an_id_gap_is_refused_naming_the_first_missing_id(tmp_path, capsys):
    source = _our_source(tmp_path, artifacts=4)
    _edit(source, "DELETE FROM `Artifact` WHERE `id` IN (2, 3)")
    code, _, err = _import(capsys, "--from", "sqlite:///" + source, "--data-dir", str(tmp_path / "t"))
    assert code == 1 and "Artifact has no row with id 2" in err


def test_times_the_log_cannot_give_are_named(tmp_path, capsys):
    """A clock that stepped back: artifact 2 created before artifact 1. Ids must go in
    order and the log's time only forward, so artifact 2 gets artifact 1's time; the rest
    is exact and the command says which time moved."""
    source = _our_source(tmp_path)
    _edit(source, "UPDATE `Artifact` SET `create_time_since_epoch` = 1000, `last_update_time_since_epoch` = 1000 "
                  "WHERE `id` = 2")
    _edit(source, "UPDATE `Artifact` SET `create_time_since_epoch` = 2000, `last_update_time_since_epoch` = 5000 "
                  "WHERE `id` = 1")
    target = str(tmp_path / "t")
    code, _, err = _import(capsys, "--from", "sqlite:///" + source, "--data-dir", target)
    assert code == 0 and "Artifact 2 create_time_since_epoch 1000 -> 2000" in err
    store = mlmd.MetadataStore(StoreConfig.from_directory(target))
    try:
        first, second, third = store.get_artifacts()
    finally:
        store.close()
    assert (first.create_time_since_epoch, first.last_update_time_since_epoch) == (2000, 5000)
    assert (second.create_time_since_epoch, second.last_update_time_since_epoch) == (2000, 2000)
    assert "__mlmd_log_import_pending__" not in first.custom_properties
    assert [a.properties["n"].int_value for a in (first, second, third)] == [0, 1, 2]


def test_help_shows_an_example(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["import", "--help"])
    assert exit_.value.code == 0 and "mlmd-log import --from sqlite:///mlmd.db" in capsys.readouterr().out.replace("\n", " ")
