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
from mlmd_log.client import StoreConfig

from dbdump import MLMD_TABLES, dump_tables

SUPPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "support")


def _run_and_kill(data_dir: str, prefix: str, seconds: float) -> dict[str, int]:
    """Starts a writer, kills it with SIGKILL after ``seconds``, returns what it acknowledged."""
    proc = subprocess.Popen([sys.executable, os.path.join(SUPPORT, "crash_writer.py"), data_dir, prefix, "4"],
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


def _run_until_it_kills_itself(argv: list[str], point: str, hit: int) -> subprocess.Popen:
    """Runs a child that dies at the ``hit``-th pass through crash point ``point``."""
    env = dict(os.environ, MLMD_CRASH_AT=f"{point}:{hit}")
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _acked_until_death(proc: subprocess.Popen, timeout_s: float = 60) -> dict[str, int]:
    acked: dict[str, int] = {}
    out, err = proc.communicate(timeout=timeout_s)
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "ACK":
            acked[parts[1]] = int(parts[2])
    assert proc.returncode == -signal.SIGKILL, f"the child did not die at its crash point: {err[-2000:]}"
    return acked


def _assert_acked_once(data_dir: str, acked: dict[str, int]) -> None:
    store = MetadataStore(StoreConfig.from_directory(data_dir))
    try:
        stored = store.get_artifacts_by_type("Crash")
    finally:
        store.close()
    by_name: dict[str, list[int]] = {}
    for artifact in stored:
        by_name.setdefault(artifact.name, []).append(artifact.id)
    for name, artifact_id in acked.items():
        assert by_name.get(name) == [artifact_id], f"acknowledged put {name} -> {artifact_id} not found once"
    assert all(len(ids) == 1 for ids in by_name.values()), "a put was applied twice"


def _assert_equals_fresh_replay(log_dir: str, projection: str, rebuilt: str) -> int:
    """Replays the log into ``rebuilt``, compares it with ``projection``; returns the records."""
    log = FileLog(log_dir, readonly=True)
    db = open_projection(f"sqlite:///{rebuilt}")
    try:
        stats = replay(log, db)
    finally:
        db.close()
        log.close()
    live, fresh = dump_tables(projection), dump_tables(rebuilt)
    for table in MLMD_TABLES + ("mlmdlog_checkpoint", "mlmdlog_outcome"):
        assert live[table] == fresh[table], f"table {table} differs after replay"
    return stats.records


def test_kill9_loses_no_acknowledged_put_and_matches_replay(tmp_path):
    rng = random.Random(7)
    data_dir = str(tmp_path / "store")
    all_acked: dict[str, int] = {}
    for round_no in range(4):
        acked = _run_and_kill(data_dir, f"r{round_no}", rng.uniform(0.05, 0.6))
        all_acked.update(acked)
        if round_no == 2:
            _tear_last_segment(os.path.join(data_dir, "log"))
        _assert_acked_once(data_dir, all_acked)
    records = _assert_equals_fresh_replay(os.path.join(data_dir, "log"), os.path.join(data_dir, "mlmd.sqlite"),
                                          str(tmp_path / "rebuilt.sqlite"))
    assert records > len(all_acked)


def test_a_kill_at_each_crash_point_of_the_embedded_store_loses_nothing(tmp_path, report_figure):
    """SIGKILL exactly where a writer is most fragile (before a log write, mid-write, before
    the fsync, between applying and committing, either side of COMMIT), twice each: every
    acknowledged put survives once, and the projection equals a fresh replay of the log."""
    from crash_points import POINTS

    rng = random.Random(11)
    data_dir = str(tmp_path / "store")
    all_acked: dict[str, int] = {}
    kills: dict[str, int] = {}
    for round_no in range(2):
        for point in POINTS:
            hit = rng.randint(2, 25)
            proc = _run_until_it_kills_itself(
                [sys.executable, os.path.join(SUPPORT, "crash_writer.py"), data_dir, f"{point}{round_no}", "4"],
                point, hit)
            all_acked.update(_acked_until_death(proc))
            kills[point] = kills.get(point, 0) + 1
            _assert_acked_once(data_dir, all_acked)
    _assert_equals_fresh_replay(os.path.join(data_dir, "log"), os.path.join(data_dir, "mlmd.sqlite"),
                                str(tmp_path / "rebuilt.sqlite"))
    assert sum(kills.values()) == 2 * len(POINTS)
    report_figure("crash points, embedded store",
                  f"{sum(kills.values())} kills survived ({', '.join(f'{p} {n}' for p, n in kills.items())}), "
                  f"{len(all_acked)} acknowledged puts all found once")


def test_a_kill_at_each_crash_point_of_the_projector_service_applies_each_record_once(tmp_path, report_figure):
    """The projector service killed mid-apply and either side of its COMMIT resumes from its
    checkpoint and ends equal to a fresh replay."""
    from test_projector_service import _applied, _write_log

    _write_log(str(tmp_path), 1500)
    log_dir = str(tmp_path / "log")
    target = str(tmp_path / "projection.sqlite")
    rng = random.Random(5)
    kills: dict[str, int] = {}
    argv = [sys.executable, os.path.join(SUPPORT, "crash_projector.py"), "project", "--log", log_dir,
            "--into", f"sqlite:///{target}", "--batch-size", "10", "--until-caught-up"]
    for _ in range(2):
        for point in ("apply", "commit", "after-commit"):
            proc = _run_until_it_kills_itself(argv, point, rng.randint(2, 12))
            _acked_until_death(proc)
            kills[point] = kills.get(point, 0) + 1
    end = FileLog(log_dir, readonly=True).end_offset()
    assert 0 < _applied(target) < end, "the kills did not land mid-log"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    _assert_equals_fresh_replay(log_dir, target, str(tmp_path / "rebuilt.sqlite"))
    report_figure("crash points, projector service",
                  f"{sum(kills.values())} kills survived ({', '.join(f'{p} {n}' for p, n in kills.items())})")
