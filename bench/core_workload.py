"""The core MLMD workloads, timed on one implementation in this process.

Runs under either interpreter: ``--impl ours`` imports ``mlmd_log``, ``--impl ref``
imports the official ``ml_metadata`` (both define the same protobuf symbols, so
one process can hold only one of them). Both sides get the same
``ConnectionConfig.sqlite.filename_uri`` on a fresh file per workload, so the
calls made are identical; what differs is only the library behind them:

* ref:  ml-metadata's SQLite source opens the file with ``sqlite3_open_v2`` and
  sets no PRAGMA, i.e. SQLite's defaults: ``journal_mode=DELETE`` (rollback
  journal) and ``synchronous=FULL``; every put is one ``BEGIN ... COMMIT``.
* ours: the record is appended to the FileLog beside the file (``PATH.log``,
  fsync before the put returns), then applied to the SQLite projection.

Prints one JSON document on stdout: ``{"impl": ..., "workloads": {name: stats}}``.

    python bench/core_workload.py --impl ours [--scale 1] [--only put_single,...] [--dir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
from typing import Any, Callable, Dict, List
from benchlib import import_impl, time_calls

BATCH = 100  # artifacts per batched put, ids per batched read
PRELOAD = 10_000  # artifacts in the store the reads run against


class Fixture:
    """A fresh store on a SQLite file with the bench types registered."""

    def __init__(self, lib: Any, pb: Any, path: str):
        self.pb = pb
        config = pb.ConnectionConfig()
        config.sqlite.filename_uri = path
        config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        self.store = lib.MetadataStore(config)
        at = pb.ArtifactType(name="BenchArtifact")
        at.properties["p_int"] = pb.INT
        at.properties["p_str"] = pb.STRING
        at.properties["p_double"] = pb.DOUBLE
        self.artifact_type_id = self.store.put_artifact_type(at)
        self.execution_type_id = self.store.put_execution_type(pb.ExecutionType(name="BenchExecution"))
        self.context_type_id = self.store.put_context_type(pb.ContextType(name="BenchContext"))
        self._n = 0

    def artifact(self) -> Any:
        """A new artifact with 3 properties (distinct values per call)."""
        self._n += 1
        a = self.pb.Artifact(type_id=self.artifact_type_id, uri=f"/data/bench/{self._n}")
        a.properties["p_int"].int_value = self._n
        a.properties["p_str"].string_value = f"value-{self._n}"
        a.properties["p_double"].double_value = self._n * 0.5
        return a

    def close(self) -> None:
        close = getattr(self.store, "close", None)
        if close is not None:
            close()
        self.store = None


def timed_loop(call: Callable[[int], None], count: int, budget_s: float, warmup: int) -> Dict[str, float]:
    """Runs ``call(i)`` ``warmup`` times untimed, then up to ``count`` times or ``budget_s`` seconds."""
    for i in range(warmup):
        call(-1 - i)
    return time_calls(call, count, budget_s)


# -- workloads ----------------------------------------------------------------
# Each takes (fixture, count, budget) and returns the stats of timed_loop plus
# "items_per_call". Counts are per scale 1.0.

def w_put_single(fx: Fixture, count: int, budget: float) -> Dict[str, Any]:
    def call(_: int) -> None:
        fx.store.put_artifacts([fx.artifact()])
    return dict(timed_loop(call, count, budget, warmup=20), items_per_call=1)


def w_put_batch(fx: Fixture, count: int, budget: float) -> Dict[str, Any]:
    def call(_: int) -> None:
        ids = fx.store.put_artifacts([fx.artifact() for _ in range(BATCH)])
        assert len(ids) == BATCH
    return dict(timed_loop(call, count, budget, warmup=3), items_per_call=BATCH)


def w_put_execution(fx: Fixture, count: int, budget: float) -> Dict[str, Any]:
    pb = fx.pb
    [input_id] = fx.store.put_artifacts([fx.artifact()])
    [input_artifact] = fx.store.get_artifacts_by_id([input_id])

    def call(i: int) -> None:
        execution = pb.Execution(type_id=fx.execution_type_id, last_known_state=pb.Execution.COMPLETE)
        context = pb.Context(type_id=fx.context_type_id, name="bench-pipeline-run")
        pairs = [(input_artifact, pb.Event(type=pb.Event.INPUT)),
                 (fx.artifact(), pb.Event(type=pb.Event.OUTPUT))]
        _, artifact_ids, context_ids = fx.store.put_execution(execution, pairs, [context],
                                                              reuse_context_if_already_exist=True)
        assert len(artifact_ids) == 2 and len(context_ids) == 1
    return dict(timed_loop(call, count, budget, warmup=10), items_per_call=1)


def _preload(fx: Fixture) -> List[int]:
    ids: List[int] = []
    for _ in range(PRELOAD // BATCH):
        ids.extend(fx.store.put_artifacts([fx.artifact() for _ in range(BATCH)]))
    return ids


def w_get_single(fx: Fixture, count: int, budget: float) -> Dict[str, Any]:
    ids = _preload(fx)
    rng = random.Random(7)
    picks = [rng.choice(ids) for _ in range(count + 50)]

    def call(i: int) -> None:
        [a] = fx.store.get_artifacts_by_id([picks[i]])
        assert a.id == picks[i]
    return dict(timed_loop(call, count, budget, warmup=50), items_per_call=1)


def w_get_batch(fx: Fixture, count: int, budget: float) -> Dict[str, Any]:
    ids = _preload(fx)
    rng = random.Random(11)
    picks = [rng.sample(ids, BATCH) for _ in range(count + 10)]

    def call(i: int) -> None:
        got = fx.store.get_artifacts_by_id(picks[i])
        assert len(got) == BATCH
    return dict(timed_loop(call, count, budget, warmup=10), items_per_call=BATCH)


# name -> (function, calls at scale 1, time budget in seconds at scale 1)
WORKLOADS: Dict[str, tuple] = {
    "put_single": (w_put_single, 5000, 6.0),
    "put_batch": (w_put_batch, 500, 6.0),
    "put_execution": (w_put_execution, 3000, 6.0),
    "get_single": (w_get_single, 50000, 4.0),
    "get_batch": (w_get_batch, 3000, 4.0),
}


def run(impl: str, names: List[str], scale: float, parent: str) -> Dict[str, Any]:
    lib, pb = import_impl(impl)
    results: Dict[str, Any] = {}
    for name in names:
        fn, count, budget = WORKLOADS[name]
        workdir = tempfile.mkdtemp(prefix=f"{impl}-{name}-", dir=parent)
        fx = Fixture(lib, pb, os.path.join(workdir, "mlmd.sqlite"))
        try:
            results[name] = fn(fx, max(1, int(count * scale)), budget * scale)
        finally:
            fx.close()
            shutil.rmtree(workdir, ignore_errors=True)
    version = getattr(lib, "__version__", "?")
    return {"impl": impl, "library": lib.__name__, "version": version, "python": platform.python_version(),
            "scale": scale, "workloads": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", required=True, choices=["ours", "ref"])
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies call counts and time budgets")
    parser.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated workload names")
    parser.add_argument("--dir", default=None, help="parent directory for the stores (default: system temp)")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workloads {unknown}; choose from {list(WORKLOADS)}")
    parent = tempfile.mkdtemp(prefix="mlmd-bench-", dir=args.dir)
    try:
        out = run(args.impl, names, args.scale, parent)
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
