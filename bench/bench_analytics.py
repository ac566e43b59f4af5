"""Analytics on MLMD data: ml-metadata 1.17.1's Python API vs `mlmd-log sql`, same data, same answer.

The question: the mean accuracy of Model artifacts per pipeline (a context) per day (an INT
property ``day``). The data: ``--artifacts`` Model artifacts (200k by default: 20 pipelines
x 100 days x 100 models), properties ``accuracy`` DOUBLE and ``day`` INT, each attributed to
its pipeline's context, recorded with the same calls on both sides (batches of 1,000
artifacts by ``put_artifacts``, then their attributions): into ml-metadata on a SQLite
file, and into our embedded store (log + SQLite).

Timed, one after the other (never at once: 2 cores):
* ref API: what a user of ml-metadata writes: ``get_contexts_by_type``, then
  ``get_artifacts_by_context`` per pipeline, grouped in Python;
* ours, API: the same API code on our store (for comparison, not the target);
* ours, first sql: ``mlmd-log sql`` building the analytics file from the log (when there
  is none, or with ``--rebuild``);
* ours, sql: the ``mlmd-log sql`` command end to end (a process, catch-up check, query, csv);
* ours, query alone: the SQL on an already caught-up DuckDB file, in this process.
Both answers are checked equal (counts exactly, means to 1e-9). A benchmark reports; it
asserts nothing.

    python bench/bench_analytics.py [--artifacts 200000] [--data-dir DIR] [--repeat 3] [--rebuild]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any, Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from benchlib import ROOT, import_impl, ref_python  # noqa: E402

PIPELINES, DAYS, BATCH = 20, 100, 1000
TARGET = 100.0
QUERY = """SELECT m.context_name AS pipeline, a.day, avg(a.accuracy) AS mean_accuracy, count(*) AS models
FROM artifacts_Model AS a
JOIN context_members AS m ON m.node_kind = 'artifact' AND m.node_id = a.id
WHERE m.context_type = 'Pipeline'
GROUP BY ALL ORDER BY pipeline, day"""

Answer = List[Tuple[str, int, float, int]]


# -- each side, in its own interpreter ----------------------------------------------------
def _open(lib: Any, pb: Any, side: str, data_dir: str) -> Any:
    if side == "ref":
        config = pb.ConnectionConfig()
        config.sqlite.filename_uri = os.path.join(data_dir, "ref.sqlite")
        config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        return lib.MetadataStore(config)
    from mlmd_log.client import StoreConfig

    return lib.MetadataStore(StoreConfig.from_directory(os.path.join(data_dir, "ours")))


def _accuracy(i: int) -> float:
    return ((i * 7919) % 10007) / 10007


def record(lib: Any, pb: Any, store: Any, artifacts: int) -> None:
    """The same calls on either library: types, the pipelines, artifacts in batches with their attributions."""
    model = pb.ArtifactType(name="Model")
    model.properties["accuracy"] = pb.DOUBLE
    model.properties["day"] = pb.INT
    model_type = store.put_artifact_type(model)
    pipeline_type = store.put_context_type(pb.ContextType(name="Pipeline"))
    pipelines = store.put_contexts([pb.Context(type_id=pipeline_type, name=f"pipeline-{p:02d}")
                                    for p in range(PIPELINES)])
    for start in range(0, artifacts, BATCH):
        batch, owners = [], []
        for i in range(start, min(artifacts, start + BATCH)):
            pipeline, day = i % PIPELINES, (i // PIPELINES) % DAYS
            artifact = pb.Artifact(type_id=model_type, uri=f"/models/{i}")
            artifact.properties["accuracy"].double_value = _accuracy(i)
            artifact.properties["day"].int_value = day
            batch.append(artifact)
            owners.append(pipelines[pipeline])
        ids = store.put_artifacts(batch)
        store.put_attributions_and_associations(
            [pb.Attribution(artifact_id=a, context_id=c) for a, c in zip(ids, owners)], [])


def answer_by_api(store: Any) -> Answer:
    """What an ml-metadata user writes: each pipeline's artifacts, grouped by day in Python."""
    out: Answer = []
    for context in store.get_contexts_by_type("Pipeline"):
        sums: Dict[int, List[float]] = {}
        for artifact in store.get_artifacts_by_context(context.id):
            day = artifact.properties["day"].int_value
            acc = sums.setdefault(day, [0.0, 0])
            acc[0] += artifact.properties["accuracy"].double_value
            acc[1] += 1
        out.extend((context.name, day, total / n, n) for day, (total, n) in sums.items())
    return sorted(out)


def worker(side: str, data_dir: str, artifacts: int, task: str) -> Dict[str, Any]:
    lib, pb = import_impl(side)
    store = _open(lib, pb, side, data_dir)
    try:
        started = time.perf_counter()
        if task == "record":
            record(lib, pb, store, artifacts)
            return {"seconds": time.perf_counter() - started}
        answer = answer_by_api(store)
        return {"seconds": time.perf_counter() - started, "answer": answer}
    finally:
        getattr(store, "close", lambda: None)()  # (ml-metadata's store has no close)


def run_worker(python: str, side: str, data_dir: str, artifacts: int, task: str) -> Dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([python, os.path.abspath(__file__), "--worker", side, "--task", task, "--data-dir", data_dir,
                          "--artifacts", str(artifacts)], check=True, stdout=subprocess.PIPE, text=True, env=env)
    return json.loads(out.stdout)


# -- ours through SQL ----------------------------------------------------------------------
def sql_command(data_dir: str) -> List[str]:
    return [sys.executable, "-m", "mlmd_log.cli", "sql", "--data-dir", os.path.join(data_dir, "ours"), "--quiet",
            "--format", "csv", QUERY]


def _command_env() -> Dict[str, str]:
    """The environment of an installed command: byte code cached (in a directory of its own,
    outside the source tree), as pip's install leaves it, even where this shell turns that off."""
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONPYCACHEPREFIX=os.path.join("/tmp", "mlmd-bench-pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_sql(data_dir: str) -> Tuple[float, Answer]:
    started = time.perf_counter()
    out = subprocess.run(sql_command(data_dir), check=True, stdout=subprocess.PIPE, text=True, env=_command_env())
    seconds = time.perf_counter() - started
    rows = [line.split(",") for line in out.stdout.splitlines()[1:]]
    return seconds, [(p, int(d), float(m), int(n)) for p, d, m, n in rows]


def query_alone(data_dir: str, repeat: int) -> Tuple[float, Answer]:
    import duckdb

    con = duckdb.connect(os.path.join(data_dir, "ours", "analytics.duckdb"), read_only=True)
    try:
        best, rows = float("inf"), []
        for _ in range(repeat):
            started = time.perf_counter()
            rows = con.execute(QUERY).fetchall()
            best = min(best, time.perf_counter() - started)
        return best, [tuple(r) for r in rows]
    finally:
        con.close()


def same(a: Answer, b: Answer) -> bool:
    return len(a) == len(b) and all(x[0] == y[0] and x[1] == y[1] and x[3] == y[3] and abs(x[2] - y[2]) <= 1e-9
                                    for x, y in zip(a, b))


def ensure_recorded(python: str, side: str, data_dir: str, artifacts: int) -> str:
    marker = os.path.join(data_dir, f"{side}.recorded")
    if os.path.exists(marker) and open(marker).read().strip() == str(artifacts):
        return "reused"
    print(f"recording {artifacts} artifacts into {side} ...", file=sys.stderr)
    for stale in ("ref.sqlite", "ours"):  # (what an interrupted recording left)
        path = os.path.join(data_dir, stale)
        if stale.startswith(side) and os.path.exists(path):
            shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
    seconds = run_worker(python, side, data_dir, artifacts, "record")["seconds"]
    with open(marker, "w") as out:
        out.write(str(artifacts))
    return f"{seconds:.1f}s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=int, default=200_000)
    parser.add_argument("--data-dir", default=None, help="default: /tmp/mlmd-bench-analytics-N (reused)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each of our timings (best kept)")
    parser.add_argument("--ref-python", default=None)
    parser.add_argument("--rebuild", action="store_true", help="build our analytics file again (timed)")
    parser.add_argument("--worker", choices=["ours", "ref"], help=argparse.SUPPRESS)
    parser.add_argument("--task", choices=["record", "answer"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    data_dir = args.data_dir or f"/tmp/mlmd-bench-analytics-{args.artifacts}"
    if args.worker:
        print(json.dumps(worker(args.worker, data_dir, args.artifacts, args.task)))
        return
    os.makedirs(data_dir, exist_ok=True)
    ref = ref_python(args.ref_python)
    recorded = {side: ensure_recorded(python, side, data_dir, args.artifacts)
                for side, python in (("ref", ref), ("ours", sys.executable))}
    print("ref: answering through the API ...", file=sys.stderr)
    api = run_worker(ref, "ref", data_dir, args.artifacts, "answer")
    api_answer = [tuple(r) for r in api["answer"]]
    print("ours: answering through the same API ...", file=sys.stderr)
    ours_api = run_worker(sys.executable, "ours", data_dir, args.artifacts, "answer")
    analytics = os.path.join(data_dir, "ours", "analytics.duckdb")
    if args.rebuild:
        for path in (analytics, analytics + ".staging.sqlite", analytics + ".wal"):
            if os.path.exists(path):
                os.unlink(path)
    first = None if os.path.exists(analytics) else run_sql(data_dir)  # (builds the analytics file)
    run_sql(data_dir)  # (a warm-up: byte code cached, as after an install)
    cli = [run_sql(data_dir) for _ in range(args.repeat)]
    cli_s, cli_answer = min(s for s, _ in cli), cli[-1][1]
    alone_s, alone_answer = query_alone(data_dir, max(args.repeat, 5))

    rows = [("ref: ml-metadata API (get_contexts_by_type + get_artifacts_by_context, grouped in Python)",
             api["seconds"], api_answer),
            ("ours: the same API calls on our store (for comparison)", ours_api["seconds"],
             [tuple(r) for r in ours_api["answer"]]),
            *([("ours: first `mlmd-log sql` (builds the analytics file from the log)", *first)] if first else []),
            ("ours: `mlmd-log sql` end to end (process, catch-up check, query, csv)", cli_s, cli_answer),
            ("ours: the query alone on the caught-up DuckDB file", alone_s, alone_answer)]
    print(f"\nmean accuracy of Model artifacts per pipeline per day: {args.artifacts} artifacts, "
          f"{PIPELINES} pipelines x {DAYS} days, {len(api_answer)} groups (recorded: ref {recorded['ref']}, "
          f"ours {recorded['ours']})\n")
    print("| how | seconds | ref / this | same answer |")
    print("|---|---:|---:|:---:|")
    for label, seconds, answer in rows:
        print(f"| {label} | {seconds:.3f} | {api['seconds'] / seconds:.1f}x | {'yes' if same(answer, api_answer) else 'NO'} |")
    met = api["seconds"] / cli_s >= TARGET
    print(f"\ntarget >= {TARGET:.0f}x end to end: {'met' if met else 'not met'} ({api['seconds'] / cli_s:.1f}x); "
          f"query alone {api['seconds'] / alone_s:.0f}x")


if __name__ == "__main__":
    main()
