"""The projector service: resumes exactly where its projection's checkpoint says, after a
kill -9 at any moment, and ends equal to a fresh replay of the log."""
from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import mlmd_log as mlmd
from mlmd_log.consumer.replay import replay
from mlmd_log.locations import open_log, open_projection
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.client import StoreConfig

from dbdump import MLMD_TABLES, dump_tables


def _write_log(data_dir: str, records: int) -> None:
    store = mlmd.MetadataStore(StoreConfig(os.path.join(data_dir, "log"), ":memory:", durability="none"))
    try:
        type_id = store.put_artifact_type(pb.ArtifactType(name="Step", properties={"i": pb.INT}))
        ctx_type = store.put_context_type(pb.ContextType(name="Run"))
        exec_type = store.put_execution_type(pb.ExecutionType(name="Task"))
        for i in range(records):
            artifact = pb.Artifact(type_id=type_id, uri=f"/s/{i}", name=f"s{i}")
            artifact.properties["i"].int_value = i
            store.put_execution(pb.Execution(type_id=exec_type), [(artifact, pb.Event(type=pb.Event.OUTPUT))],
                                [pb.Context(type_id=ctx_type, name=f"run{i % 7}")],
                                reuse_context_if_already_exist=True)
            if i % 50 == 0:  # some rejected puts along the way
                try:
                    store.put_artifacts([pb.Artifact(type_id=type_id, name="s0")])
                except mlmd.errors.AlreadyExistsError:
                    pass
    finally:
        store.close()


def _projector(log_dir: str, target: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mlmd_log.cli", "project", "--log", log_dir, "--into", target,
                             "--batch-size", "25", "--report-every", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _applied(path: str) -> int:
    """The projection's checkpoint; 0 while the projector has not created its tables yet."""
    if not os.path.exists(path):
        return 0
    conn = sqlite3.connect(path, timeout=10)
    try:
        row = conn.execute("SELECT `applied_offset` FROM `mlmdlog_checkpoint` WHERE `id` = 0").fetchone()
        return row[0] if row else 0
    except sqlite3.OperationalError:  # schema not created yet
        return 0
    finally:
        conn.close()


def test_projector_survives_kill9_and_matches_fresh_replay(tmp_path):
    data_dir = str(tmp_path)
    _write_log(data_dir, 3000)
    log_dir = os.path.join(data_dir, "log")
    target = str(tmp_path / "projection.sqlite")
    end = open_log(log_dir, readonly=True).end_offset()
    rng = random.Random(3)
    kills, last = 0, 0
    while kills < 5:  # kill -9 right after the projector has made some progress, five times
        proc = _projector(log_dir, f"sqlite:///{target}")
        deadline = time.monotonic() + 30
        while _applied(target) <= last and time.monotonic() < deadline:
            assert proc.poll() is None, f"projector exited early: {proc.stderr.read()}"
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.03))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        now = _applied(target)
        assert now > last, "projector made no progress"
        if now >= end:
            break
        last = now
    assert 0 < last < end, "the kills did not land mid-log"
    proc = _projector(log_dir, f"sqlite:///{target}")
    deadline = time.monotonic() + 60
    while _applied(target) < end and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)  # graceful stop once caught up
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"stopped at offset {end}" in out
    fresh = str(tmp_path / "fresh.sqlite")
    db = open_projection(f"sqlite:///{fresh}")
    replay(open_log(log_dir, readonly=True), db)
    db.close()
    resumed, rebuilt = dump_tables(target), dump_tables(fresh)
    for table in MLMD_TABLES + ("mlmdlog_checkpoint", "mlmdlog_outcome"):
        assert resumed[table] == rebuilt[table], f"{table} differs from a fresh replay"
    assert len(resumed["Artifact"]) == 3000


def test_a_projector_process_collects_garbage_rarely():
    """`mlmd-log project` (and its writer processes) freeze what exists at start and raise
    the collector's thresholds; checked in a child, as the setting is per process."""
    from mlmd_log.process import GC_THRESHOLDS

    out = subprocess.run([sys.executable, "-c", "import gc, json; from mlmd_log.process import tune_gc; "
                          "tune_gc(); print(json.dumps([gc.get_threshold(), gc.get_freeze_count()]))"],
                         capture_output=True, text=True, check=True).stdout
    thresholds, frozen = json.loads(out)
    assert tuple(thresholds) == GC_THRESHOLDS and frozen > 1000


def _put_types(log, names) -> None:
    from mlmd_log.producer.records import RecordFactory
    from mlmd_log.proto import metadata_store_service_pb2 as svc

    factory = RecordFactory()
    log.append([factory.make("PutArtifactType", svc.PutArtifactTypeRequest(
        artifact_type=pb.ArtifactType(name=name))).SerializeToString() for name in names])


def test_a_log_that_ends_before_the_checkpoint_stops_the_service(tmp_path, monkeypatch):
    """A projection at offset 20 over a log of 5 records (its topic deleted and created
    again, or the wrong --log): the service warns, and once that has lasted the grace it
    stops with DataLossError instead of reporting itself caught up and applying nothing."""
    from mlmd_log.consumer import follower as follower_module
    from mlmd_log.consumer.projector_service import ProjectorService
    from mlmd_log.producer import FileLog

    monkeypatch.setattr(follower_module, "LOG_BEHIND_GRACE_S", 0.3)
    first, second = FileLog(str(tmp_path / "first")), FileLog(str(tmp_path / "second"))
    _put_types(first, [f"A{i}" for i in range(20)])
    _put_types(second, [f"B{i}" for i in range(5)])
    db = open_projection(f"sqlite:///{tmp_path / 'p.db'}")
    replay(first, db)
    for until_caught_up in (True, False):
        service = ProjectorService(second, db)
        started = time.monotonic()
        try:
            service.run(report_every=1e9, until_caught_up=until_caught_up)
        except mlmd.errors.DataLossError as exc:
            assert "applied the log up to offset 20, but the log" in str(exc) and "ends at 5" in str(exc)
        else:
            raise AssertionError("the service went on over a log that ends before its checkpoint")
        assert 0.3 <= time.monotonic() - started < 10
        assert service.status.applied_offset == 20 and service.status.end_offset == 5
        service.close()
    names = {n for (n,) in db.rows("SELECT `name` FROM `Type`", ())}
    assert names >= {f"A{i}" for i in range(20)} and not any(n.startswith("B") for n in names)
    db.close()
    first.close()
    second.close()


def test_another_log_at_the_checkpoint_is_refused_before_anything_is_applied(tmp_path):
    """A log that reaches past the projection's checkpoint but holds other records (a topic
    created again and written past it): the record before the checkpoint has another id,
    so the service, replay and the staged projections refuse it with DataLossError, and
    apply nothing."""
    from mlmd_log.consumer.projector_service import ProjectorService
    from mlmd_log.producer import FileLog
    from mlmd_log.projections.duckdb import DuckDbProjection

    first, second = FileLog(str(tmp_path / "first")), FileLog(str(tmp_path / "second"))
    _put_types(first, [f"A{i}" for i in range(20)])
    _put_types(second, [f"B{i}" for i in range(25)])
    db = open_projection(f"sqlite:///{tmp_path / 'p.db'}")
    replay(first, db)
    service = ProjectorService(second, db)
    try:
        service.run(report_every=1e9, until_caught_up=True)
    except mlmd.errors.DataLossError as exc:
        assert "holds another record at offset 19 than the one the projection applied there" in str(exc)
    else:
        raise AssertionError("the service applied another log's records")
    service.close()
    try:
        replay(second, db)
    except mlmd.errors.DataLossError as exc:
        assert "offset 19" in str(exc)
    else:
        raise AssertionError("replay applied another log's records")
    assert replay(first, db).end_offset == 20  # (its own log: nothing to do, no error)
    names = {n for (n,) in db.rows("SELECT `name` FROM `Type`", ())}
    assert not any(n.startswith("B") for n in names)
    db.close()

    analytics = DuckDbProjection(str(tmp_path / "a.duckdb"), str(tmp_path / "a.staging"))
    analytics.catch_up(first)
    analytics.close()
    analytics = DuckDbProjection(str(tmp_path / "a.duckdb"), str(tmp_path / "a.staging"))
    try:
        analytics.catch_up(second)
    except mlmd.errors.DataLossError as exc:
        assert "offset 19" in str(exc)
    else:
        raise AssertionError("the DuckDB projection applied another log's records")
    analytics.close()
    first.close()
    second.close()
