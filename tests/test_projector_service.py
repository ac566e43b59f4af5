"""The projector service: resumes exactly where its projection's checkpoint says, after a
kill -9 at any moment, and ends equal to a fresh replay of the log."""
from __future__ import annotations

import os
import random
import signal
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
    db = open_projection(f"sqlite:///{path}", create=False)
    try:
        row = db.one("SELECT `applied_offset` FROM `mlmdlog_checkpoint` WHERE `id` = 0")
        return row[0] if row else 0
    finally:
        db.close()


def test_projector_survives_kill9_and_matches_fresh_replay(tmp_path):
    data_dir = str(tmp_path)
    _write_log(data_dir, 4000)
    log_dir = os.path.join(data_dir, "log")
    target = str(tmp_path / "projection.sqlite")
    end = open_log(log_dir, readonly=True).end_offset()
    rng = random.Random(3)
    kills = 0
    while True:
        proc = _projector(log_dir, f"sqlite:///{target}")
        time.sleep(rng.uniform(0.35, 0.6))
        if proc.poll() is not None:
            raise AssertionError(f"projector exited early: {proc.stderr.read()}")
        if os.path.exists(target) and _applied(target) >= end:
            proc.send_signal(signal.SIGTERM)  # graceful stop once caught up
            out, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            assert f"stopped at offset {end}" in out
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        assert kills < 40, "projector made no progress"
    assert kills >= 2, kills
    fresh = str(tmp_path / "fresh.sqlite")
    db = open_projection(f"sqlite:///{fresh}")
    replay(open_log(log_dir, readonly=True), db)
    db.close()
    resumed, rebuilt = dump_tables(target), dump_tables(fresh)
    for table in MLMD_TABLES + ("mlmdlog_checkpoint", "mlmdlog_outcome"):
        assert resumed[table] == rebuilt[table], f"{table} differs from a fresh replay"
    assert len(resumed["Artifact"]) == 4000
