"""Load on `mlmd-log serve` over loopback, and pipeline writers side by side with ml-metadata.

Part A, mixed: 32 client processes for 30 s against one server (file log with fsync +
SQLite projection): put_artifacts, put_execution, get_artifacts_by_id, paged
get_artifacts_by_type, get_events_by_execution_ids. Every client then reads back every
artifact it was acknowledged: a missing or changed one is a lost write. The server's
RSS is sampled every second to show whether memory stays flat.

Part B, pipeline steps: 32 writers each record a chain of steps with the official
client's ``put_execution`` (the previous step's output as INPUT, a new model as
OUTPUT, the run's context reused). Ours: 32 processes with the official ml-metadata
1.17.1 client, ``MetadataStoreClientConfig`` -> our server. Theirs: 32 processes with
ml-metadata 1.17.1 in-process on ONE shared SQLite file (the official server is not
installable here). A step that fails is retried (counted); its latency is the time
until it succeeded.

Every worker waits for a common start instant and stops itself at a deadline, so a
run is bounded: about (warm-up + seconds) per part. It reports, asserts nothing.

    python bench/bench_grpc.py [--clients 32] [--seconds 30] [--step-seconds 20]
                               [--only mixed|steps] [--json out.json] [--dir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional
from benchlib import ref_python

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WARMUP_SECONDS = 12.0  # 32 interpreters importing grpc on 2 cores need this to be ready

# ---------------------------------------------------------------------------------------
# Worker of part A: raw stubs (light clients leave the cores to the server).
# ---------------------------------------------------------------------------------------
MIXED_WORKER = r'''
import json, random, sys, time
import grpc
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.proto import metadata_store_service_pb2 as svc
from mlmd_log.proto import metadata_store_service_pb2_grpc as rpc

port, worker, start_at, stop_at = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
rng = random.Random(worker)
stub = rpc.MetadataStoreServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
T = 30

def ensure_types():
    at = pb.ArtifactType(name="BenchArtifact")
    at.properties["i"] = pb.INT; at.properties["s"] = pb.STRING; at.properties["d"] = pb.DOUBLE
    et = pb.ExecutionType(name="BenchStep"); et.properties["i"] = pb.INT
    ct = pb.ContextType(name="BenchRun")
    for _ in range(20):
        try:
            r = stub.PutTypes(svc.PutTypesRequest(artifact_types=[at], execution_types=[et], context_types=[ct]), timeout=T)
            return r.artifact_type_ids[0], r.execution_type_ids[0], r.context_type_ids[0]
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.ABORTED: raise
            time.sleep(0.05)
    raise SystemExit("types")

atype, etype, ctype = ensure_types()
acked = {}  # artifact id -> uri
executions = []
lat = {}
errors = {}
seq = 0

def artifact():
    global seq
    seq += 1
    uri = f"bench://w{worker}/{seq}"
    a = pb.Artifact(type_id=atype, uri=uri)
    a.properties["i"].int_value = seq; a.properties["s"].string_value = "x" * 20; a.properties["d"].double_value = seq / 3
    return a

def op_put_artifact():
    a = artifact()
    [i] = stub.PutArtifacts(svc.PutArtifactsRequest(artifacts=[a]), timeout=T).artifact_ids
    acked[i] = a.uri

def op_put_execution():
    ids = list(acked)
    req = svc.PutExecutionRequest(execution=pb.Execution(type_id=etype, last_known_state=pb.Execution.COMPLETE))
    req.execution.properties["i"].int_value = seq
    if ids:
        src = req.artifact_event_pairs.add()
        chosen = rng.choice(ids)  # an artifact given with its id is updated: keep its uri
        src.artifact.CopyFrom(pb.Artifact(id=chosen, type_id=atype, uri=acked[chosen]))
        src.event.type = pb.Event.INPUT
    out = artifact()
    pair = req.artifact_event_pairs.add(); pair.artifact.CopyFrom(out); pair.event.type = pb.Event.OUTPUT
    req.contexts.add(type_id=ctype, name=f"bench-run-{worker}")
    req.options.reuse_context_if_already_exist = True
    r = stub.PutExecution(req, timeout=T)
    acked[r.artifact_ids[-1]] = out.uri
    executions.append(r.execution_id)

def op_get_by_id():
    ids = rng.sample(list(acked), min(5, len(acked)))
    stub.GetArtifactsByID(svc.GetArtifactsByIDRequest(artifact_ids=ids), timeout=T)

def op_get_by_type():
    req = svc.GetArtifactsByTypeRequest(type_name="BenchArtifact")
    req.options.max_result_size = 20
    req.options.order_by_field.field = pb.ListOperationOptions.OrderByField.ID
    req.options.order_by_field.is_asc = False
    stub.GetArtifactsByType(req, timeout=T)

def op_get_events():
    if executions:
        stub.GetEventsByExecutionIDs(svc.GetEventsByExecutionIDsRequest(execution_ids=[rng.choice(executions)]), timeout=T)

OPS = [(0.25, "put_artifacts", op_put_artifact), (0.15, "put_execution", op_put_execution),
       (0.40, "get_artifacts_by_id", op_get_by_id), (0.10, "get_artifacts_by_type", op_get_by_type),
       (0.10, "get_events_by_execution_ids", op_get_events)]
op_put_artifact()
while time.time() < start_at:
    time.sleep(0.01)
while time.time() < stop_at:
    x = rng.random()
    for weight, name, fn in OPS:
        if x < weight: break
        x -= weight
    t0 = time.perf_counter()
    try:
        fn()
    except grpc.RpcError as e:
        errors[f"{name}:{e.code().name}"] = errors.get(f"{name}:{e.code().name}", 0) + 1
        continue
    lat.setdefault(name, []).append(round((time.perf_counter() - t0) * 1e6))
lost = 0
ids = sorted(acked)
for k in range(0, len(ids), 100):
    got = stub.GetArtifactsByID(svc.GetArtifactsByIDRequest(artifact_ids=ids[k:k + 100]), timeout=T).artifacts
    found = {a.id: a.uri for a in got}
    lost += sum(1 for i in ids[k:k + 100] if found.get(i) != acked[i])
print(json.dumps({"lat_us": lat, "errors": errors, "acked": len(acked), "lost": lost}))
'''

# ---------------------------------------------------------------------------------------
# Worker of part B: the official ml-metadata client, remote (ours) or in-process (theirs).
# ---------------------------------------------------------------------------------------
STEP_WORKER = r'''
import json, sys, time, random
import ml_metadata as mlmd
from ml_metadata import errors
from ml_metadata.proto import metadata_store_pb2 as pb

target, worker, start_at, stop_at = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
if target.startswith("grpc:"):
    store = mlmd.MetadataStore(pb.MetadataStoreClientConfig(host="127.0.0.1", port=int(target[5:])))
else:
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = target
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    store = mlmd.MetadataStore(config)
rng = random.Random(worker)
retries = {}

def retrying(fn):
    """Runs fn until it succeeds (counting failures by class), as a pipeline runner would."""
    for attempt in range(1000):
        try:
            return fn()
        except errors.StatusError as e:
            retries[type(e).__name__] = retries.get(type(e).__name__, 0) + 1
            time.sleep(min(0.2, 0.005 * (attempt + 1)) * rng.random())
    raise SystemExit("gave up")

def types():
    at = pb.ArtifactType(name="Examples"); at.properties["span"] = pb.INT
    mt = pb.ArtifactType(name="Model"); mt.properties["version"] = pb.INT
    et = pb.ExecutionType(name="Trainer"); et.properties["step"] = pb.INT
    ct = pb.ContextType(name="PipelineRun")
    return (store.put_artifact_type(at), store.put_artifact_type(mt), store.put_execution_type(et),
            store.put_context_type(ct))

ex_type, model_type, trainer_type, run_type = retrying(types)
seed = pb.Artifact(type_id=ex_type, uri=f"bench://w{worker}/examples")
seed.properties["span"].int_value = 1
[prev_id] = retrying(lambda: store.put_artifacts([seed]))
prev = pb.Artifact(id=prev_id, type_id=ex_type, uri=seed.uri); prev.properties["span"].int_value = 1
lat = []
step = 0
while time.time() < start_at:
    time.sleep(0.01)
while time.time() < stop_at:
    step += 1
    execution = pb.Execution(type_id=trainer_type, last_known_state=pb.Execution.COMPLETE)
    execution.properties["step"].int_value = step
    model = pb.Artifact(type_id=model_type, uri=f"bench://w{worker}/model/{step}")
    model.properties["version"].int_value = step
    run = pb.Context(type_id=run_type, name=f"run-{worker}")
    t0 = time.perf_counter()
    _, artifact_ids, _ = retrying(lambda: store.put_execution(
        execution, [(prev, pb.Event(type=pb.Event.INPUT)), (model, pb.Event(type=pb.Event.OUTPUT))], [run],
        reuse_context_if_already_exist=True))
    lat.append(round((time.perf_counter() - t0) * 1e6))
    model.id = artifact_ids[-1]
    prev = model
print(json.dumps({"lat_us": {"put_execution (pipeline step)": lat}, "errors": retries, "acked": len(lat), "lost": 0}))
'''


class Server:
    """`mlmd-log serve` on a free loopback port, with its RSS sampled once a second."""

    def __init__(self, data_dir: str, workers: int):
        self.proc = subprocess.Popen([sys.executable, "-m", "mlmd_log.cli", "serve", "--port", "0",
                                      "--data-dir", data_dir, "--workers", str(workers)],
                                     stderr=subprocess.PIPE, text=True, cwd=ROOT)
        line = self.proc.stderr.readline()
        match = re.search(r"listening on \S+:(\d+)", line)
        if not match:
            raise RuntimeError(line + self.proc.stderr.read())
        self.port = int(match.group(1))
        self.rss_mib: List[float] = []
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            try:
                with open(f"/proc/{self.proc.pid}/status") as f:
                    kb = int(next(line for line in f if line.startswith("VmRSS")).split()[1])
                self.rss_mib.append(round(kb / 1024, 1))
            except (OSError, StopIteration):
                return

    def stop(self) -> int:
        self._stop.set()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.communicate(timeout=60)
        return self.proc.returncode


def run_workers(python: str, script: str, target: str, clients: int, seconds: float,
                env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Starts `clients` processes that begin together after the warm-up and stop by themselves."""
    start_at = time.time() + WARMUP_SECONDS
    stop_at = start_at + seconds
    procs = [subprocess.Popen([python, "-c", script, target, str(w), str(start_at), str(stop_at)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
             for w in range(clients)]
    merged: Dict[str, Any] = {"lat_us": {}, "errors": {}, "acked": 0, "lost": 0, "failed_workers": []}
    for w, proc in enumerate(procs):
        out, err = proc.communicate(timeout=WARMUP_SECONDS + seconds + 300)
        if proc.returncode != 0:
            merged["failed_workers"].append(f"worker {w}: {err.strip().splitlines()[-1:] if err else proc.returncode}")
            continue
        result = json.loads(out.strip().splitlines()[-1])
        for name, values in result["lat_us"].items():
            merged["lat_us"].setdefault(name, []).extend(values)
        for name, count in result["errors"].items():
            merged["errors"][name] = merged["errors"].get(name, 0) + count
        merged["acked"] += result["acked"]
        merged["lost"] += result["lost"]
    merged["seconds"] = seconds
    merged["clients"] = clients
    return merged


def percentile(sorted_values: List[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] / 1000.0


def summarize(result: Dict[str, Any]) -> Dict[str, Any]:
    rows = {}
    everything: List[int] = []
    for name, values in sorted(result["lat_us"].items()):
        values.sort()
        everything.extend(values)
        rows[name] = {"count": len(values), "per_s": round(len(values) / result["seconds"], 1),
                      "p50_ms": percentile(values, 0.50), "p99_ms": percentile(values, 0.99)}
    everything.sort()
    rows["all"] = {"count": len(everything), "per_s": round(len(everything) / result["seconds"], 1),
                   "p50_ms": percentile(everything, 0.50), "p99_ms": percentile(everything, 0.99)}
    return {"ops": rows, "errors": result["errors"], "acked": result["acked"], "lost": result["lost"],
            "failed_workers": result["failed_workers"], "clients": result["clients"], "seconds": result["seconds"]}


def print_table(title: str, summary: Dict[str, Any]) -> None:
    print(f"\n{title}: {summary['clients']} clients x {summary['seconds']:.0f} s")
    print(f"{'operation':34} {'count':>8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, row in summary["ops"].items():
        print(f"{name:34} {row['count']:>8} {row['per_s']:>9} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f}")
    print(f"errors/retries: {summary['errors'] or 'none'}; acknowledged writes {summary['acked']}, "
          f"lost {summary['lost']}; failed workers: {summary['failed_workers'] or 'none'}")
    if summary.get("rss_mib"):
        rss = summary["rss_mib"]
        print(f"server RSS MiB: first {rss[0]}, max {max(rss)}, last {rss[-1]} ({len(rss)} samples)")


def part_mixed(args: argparse.Namespace, base: str) -> Dict[str, Any]:
    server = Server(os.path.join(base, "mixed"), workers=args.clients)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        result = run_workers(sys.executable, MIXED_WORKER, str(server.port), args.clients, args.seconds, env)
    finally:
        code = server.stop()
    summary = summarize(result)
    summary["rss_mib"] = server.rss_mib
    summary["server_exit"] = code
    print_table("A. mixed puts and reads through mlmd-log serve", summary)
    return summary


def part_steps(args: argparse.Namespace, base: str) -> Dict[str, Any]:
    ref = ref_python(args.ref_python)
    server = Server(os.path.join(base, "steps"), workers=args.clients)
    try:
        ours = summarize(run_workers(ref, STEP_WORKER, f"grpc:{server.port}", args.clients, args.step_seconds))
    finally:
        ours["server_exit"] = server.stop()
        ours["rss_mib"] = server.rss_mib
    print_table("B1. pipeline steps, official client -> mlmd-log serve", ours)
    shared = os.path.join(base, "shared.sqlite")
    theirs = summarize(run_workers(ref, STEP_WORKER, shared, args.clients, args.step_seconds))
    print_table("B2. pipeline steps, ml-metadata 1.17.1 in-process, one shared SQLite file", theirs)
    ratio = ours["ops"]["all"]["per_s"] / max(theirs["ops"]["all"]["per_s"], 1e-9)
    print(f"\nthroughput ratio ours/theirs: {ratio:.2f}x (target >= 5x)")
    return {"ours": ours, "theirs": theirs, "ratio": round(ratio, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0, help="part A duration")
    parser.add_argument("--step-seconds", type=float, default=20.0, help="part B duration per side")
    parser.add_argument("--only", choices=("mixed", "steps"))
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--dir", help="where the stores live (default: a temp dir, removed after)")
    parser.add_argument("--ref-python", help="interpreter with ml-metadata 1.17.1")
    args = parser.parse_args()
    base = args.dir or tempfile.mkdtemp(prefix="mlmd-bench-grpc-")
    os.makedirs(base, exist_ok=True)
    results: Dict[str, Any] = {"machine": f"{os.cpu_count()} CPU, {platform.platform()}, Python {platform.python_version()}"}
    try:
        if args.only in (None, "mixed"):
            results["mixed"] = part_mixed(args, base)
        if args.only in (None, "steps"):
            results["steps"] = part_steps(args, base)
    finally:
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
