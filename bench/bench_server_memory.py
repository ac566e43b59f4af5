"""Server memory under concurrent large puts: peak RSS of `mlmd-log serve` while N clients
each put one artifact carrying a big string property at the same instant.

Without a bound on in-flight requests every large put holds several copies of its bytes
at once (the parsed request, the log record, its payload, the applied row), so eight
60 MiB puts at once took the server to about 2 GB. The large-request budget admits large
requests up to a byte total and makes the rest wait (then RESOURCE_EXHAUSTED). Results:
bench/RESULTS.md.

    python bench/bench_server_memory.py [--clients 8] [--mib 60] [--dir DIR]
        [--server-arg=--large-request-budget-bytes=134217728 ...]

It reports (a markdown table), it asserts nothing. The server's RSS is sampled from
/proc every 5 ms; VmHWM (the kernel's high-water mark) is reported too.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import mlmd_log  # noqa: E402
from mlmd_log import errors  # noqa: E402
from mlmd_log.proto import metadata_store_pb2 as pb  # noqa: E402


def proc_status_mib(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


class RssSampler(threading.Thread):
    """Keeps the largest VmRSS of a process seen while it runs."""

    def __init__(self, pid: int, every_s: float = 0.005):
        super().__init__(daemon=True)
        self.pid, self.every_s, self.peak = pid, every_s, 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, proc_status_mib(self.pid, "VmRSS"))
            time.sleep(self.every_s)


def start_server(data_dir: str, extra: list[str]) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "mlmd_log.cli", "serve", "--port", "0", "--data-dir", data_dir,
                             *extra], stderr=subprocess.PIPE, text=True, cwd=ROOT)
    line = proc.stderr.readline()
    match = re.search(r"listening on \S+:(\d+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"server did not start: {line}{proc.stderr.read()}")
    threading.Thread(target=proc.stderr.read, daemon=True).start()  # (drain its log)
    return proc, int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--mib", type=float, default=60.0, help="size of each put's string property")
    parser.add_argument("--dir", help="where the server's store goes (default: a temporary directory)")
    parser.add_argument("--server-arg", action="append", default=[], help="extra `mlmd-log serve` flag (repeat)")
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="mlmd-bench-server-memory-", dir=args.dir)
    proc, port = start_server(data_dir, args.server_arg)
    try:
        config = pb.MetadataStoreClientConfig(host="127.0.0.1", port=port, client_timeout_sec=600)
        setup = mlmd_log.MetadataStore(config)
        type_id = setup.put_artifact_type(pb.ArtifactType(name="Blob"))
        setup.get_artifacts_by_id([1])  # (warm the read path too)
        idle = proc_status_mib(proc.pid, "VmRSS")
        size = int(args.mib * 2**20)
        outcomes: Counter = Counter()
        latencies: list[float] = []
        lock = threading.Lock()
        start = threading.Barrier(args.clients + 1)

        def put(worker: int) -> None:
            store = mlmd_log.MetadataStore(config)
            artifact = pb.Artifact(type_id=type_id, uri=f"/big/{worker}")
            artifact.custom_properties["blob"].string_value = chr(ord("a") + worker % 26) * size
            start.wait()
            began = time.monotonic()
            try:
                store.put_artifacts([artifact])
                outcome = "ok"
            except errors.StatusError as exc:
                outcome = f"{type(exc).__name__}"
            with lock:
                outcomes[outcome] += 1
                latencies.append(time.monotonic() - began)

        threads = [threading.Thread(target=put, args=(w,)) for w in range(args.clients)]
        for t in threads:
            t.start()
        sampler = RssSampler(proc.pid)
        sampler.start()
        began = time.monotonic()
        start.wait()
        for t in threads:
            t.join()
        wall = time.monotonic() - began
        time.sleep(0.2)
        sampler.done.set()
        sampler.join()
        hwm = proc_status_mib(proc.pid, "VmHWM")
        flags = " ".join(args.server_arg) or "(defaults)"
        print(f"| server flags | clients x MiB | idle RSS MiB | peak RSS MiB | VmHWM MiB | wall s | "
              f"slowest put s | outcomes |\n|---|---|---|---|---|---|---|---|\n"
              f"| {flags} | {args.clients} x {args.mib:g} | {idle:.0f} | {sampler.peak:.0f} | {hwm:.0f} | "
              f"{wall:.1f} | {max(latencies):.1f} | "
              f"{', '.join(f'{k} {v}' for k, v in sorted(outcomes.items()))} |")
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
