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
from mlmd_log.service import StoreConfig

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
    from mlmd_log.consumer.service import GC_THRESHOLDS

    out = subprocess.run([sys.executable, "-c", "import gc, json; from mlmd_log.consumer.service import tune_gc; "
                          "tune_gc(); print(json.dumps([gc.get_threshold(), gc.get_freeze_count()]))"],
                         capture_output=True, text=True, check=True).stdout
    thresholds, frozen = json.loads(out)
    assert tuple(thresholds) == GC_THRESHOLDS and frozen > 1000
