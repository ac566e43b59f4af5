"""Kill -9 a writing process at random moments: nothing acknowledged is lost or doubled,
a torn last record is dropped, and the projection equals a fresh replay of the log."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time


from mlmd_log import MetadataStore
from mlmd_log.consumer.replay import replay
from mlmd_log.locations import open_projection
from mlmd_log.producer import FileLog
from mlmd_log.service import StoreConfig

from dbdump import MLMD_TABLES, dump_tables

HERE = os.path.dirname(os.path.abspath(__file__))


def _run_and_kill(data_dir: str, prefix: str, seconds: float) -> dict[str, int]:
    """Starts a writer, kills it with SIGKILL after ``seconds``, returns what it acknowledged."""
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "crash_writer.py"), data_dir, prefix, "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    acked: dict[str, int] = {}

    def read() -> None:
        for line in proc.stdout:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "ACK":
                acked[parts[1]] = int(parts[2])

    reader = threading.Thread(target=read)
    reader.start()
    deadline = time.monotonic() + 20
    while len(acked) < 5 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(seconds)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    reader.join()
    assert acked, f"writer acknowledged nothing; stderr: {proc.stderr.read()}"
    return acked


def _tear_last_segment(log_dir: str) -> None:
    """Appends half a frame to the newest segment, as a crash mid-write leaves it."""
    newest = sorted(f for f in os.listdir(log_dir) if f.endswith(".log"))[-1]
    with open(os.path.join(log_dir, newest), "ab") as f:
        f.write(b"\x00\x00\x01\x00\xde\xad")


def test_kill9_loses_no_acknowledged_put_and_matches_replay(tmp_path):
    rng = random.Random(7)
    data_dir = str(tmp_path / "store")
    all_acked: dict[str, int] = {}
    for round_no in range(4):
        acked = _run_and_kill(data_dir, f"r{round_no}", rng.uniform(0.05, 0.6))
        all_acked.update(acked)
        if round_no == 2:
            _tear_last_segment(os.path.join(data_dir, "log"))
        store = MetadataStore(StoreConfig.from_directory(data_dir))
        try:
            stored = store.get_artifacts_by_type("Crash")
        finally:
            store.close()
        by_name: dict[str, list[int]] = {}
        for artifact in stored:
            by_name.setdefault(artifact.name, []).append(artifact.id)
        for name, artifact_id in all_acked.items():
            assert by_name.get(name) == [artifact_id], f"acknowledged put {name} -> {artifact_id} not found once"
        assert all(len(ids) == 1 for ids in by_name.values())

    rebuilt = str(tmp_path / "rebuilt.sqlite")
    log = FileLog(os.path.join(data_dir, "log"), readonly=True)
    db = open_projection(f"sqlite:///{rebuilt}")
    stats = replay(log, db)
    db.close()
    log.close()
    assert stats.records > len(all_acked)
    live = dump_tables(os.path.join(data_dir, "mlmd.sqlite"))
    fresh = dump_tables(rebuilt)
    for table in MLMD_TABLES + ("mlmdlog_checkpoint", "mlmdlog_outcome"):
        assert live[table] == fresh[table], f"table {table} differs after replay"
