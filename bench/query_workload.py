"""The query-layer workloads (filter queries, lineage subgraphs), timed on one implementation.

Runs under either interpreter: ``--impl ours`` imports ``mlmd_log``, ``--impl ref``
imports the official ``ml_metadata`` 1.17.1 (both define the same protobuf
symbols, so one process holds only one of them). Both sides build the same
dataset from a seed with the same calls, on ``ConnectionConfig.sqlite.filename_uri``
(ours: FileLog ``PATH.log`` + SQLite projection ``PATH``; ref: the SQLite file),
cached under ``--data-dir`` and reused when the dataset parameters match.

The dataset (scale 1): 1000 experiments. Each experiment is one
``put_lineage_subgraph`` call: a DataSet artifact and 4 chains of 25 Trainer
executions; step s of a chain reads the previous step's Model (step 0 reads the
DataSet) and writes a new Model. So 101 artifacts, 100 executions, 200 events per
experiment, 101,000 artifacts and 100,000 executions in all. Every artifact has
3 properties (``p_int``, ``p_str``, ``p_double``) and 2 custom properties (``tag``,
``epoch``), a state and a name. Contexts: the experiment (``exp-E``, type
Experiment) and its project (``proj-E%20``, type Project, reused across calls);
every node of a call is attributed/associated to both.

Each workload is a family of query variants (the same texts on both sides),
cycled: one untimed pass over all variants (warm-up, which also records the
returned ids for the side-by-side check), then timed calls until a count or a
time budget is used up. Prints one JSON document on stdout.

    python bench/query_workload.py --impl ours|ref [--scale 1] [--data-dir DIR]
                                   [--only attr_uri_prefix,...] [--budget 2.0]
                                   [--profile DIR] [--explain] [--build-only]
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
import time
from typing import Any, Callable, Dict, List, Optional
from benchlib import import_impl, time_calls

GENERATOR_VERSION = 1  # bump when the dataset changes; cached stores are rebuilt
SEED = 20261125
EXPERIMENTS = 1000  # at scale 1: 101,000 artifacts, 100,000 executions
CHAINS = 4  # per experiment
STEPS = 25  # per chain
PROJECTS = 20
STATES = ("LIVE", "PENDING", "MARKED_FOR_DELETION", "DELETED")
LIMIT = 100  # ListOptions.limit of every filter query
HOPS = 20  # max_num_hops of every lineage query
VARIANTS = 8  # query variants per workload


def experiments_at(scale: float) -> int:
    return max(2, int(round(EXPERIMENTS * scale)))


def dataset_params(scale: float) -> Dict[str, Any]:
    return {"generator": GENERATOR_VERSION, "seed": SEED, "experiments": experiments_at(scale),
            "chains": CHAINS, "steps": STEPS, "projects": PROJECTS}


def artifact_name(e: int, c: Optional[int], s: Optional[int]) -> str:
    """Names are unique per type: ``ds-E`` for DataSets, ``m-E-C-S`` for Models."""
    return f"ds-{e}" if c is None else f"m-{e}-{c}-{s}"


# -- building the dataset ------------------------------------------------------

class Builder:
    """Registers the types and writes one experiment per put_lineage_subgraph call."""

    def __init__(self, store: Any, pb: Any):
        self.store, self.pb = store, pb
        self.type_ids: Dict[str, int] = {}
        for name in ("DataSet", "Model"):
            t = pb.ArtifactType(name=name)
            t.properties["p_int"] = pb.INT
            t.properties["p_str"] = pb.STRING
            t.properties["p_double"] = pb.DOUBLE
            self.type_ids[name] = store.put_artifact_type(t)
        et = pb.ExecutionType(name="Trainer")
        et.properties["step"] = pb.INT
        self.type_ids["Trainer"] = store.put_execution_type(et)
        for name in ("Experiment", "Project"):
            self.type_ids[name] = store.put_context_type(pb.ContextType(name=name))

    def _artifact(self, rng: random.Random, type_name: str, e: int, c: Optional[int], s: Optional[int]) -> Any:
        pb = self.pb
        uri = f"/data/exp-{e}/dataset" if c is None else f"/data/exp-{e}/chain-{c}/step-{s}"
        a = pb.Artifact(type_id=self.type_ids[type_name], uri=uri, name=artifact_name(e, c, s),
                        state=getattr(pb.Artifact, rng.choice(STATES)))
        a.properties["p_int"].int_value = rng.randrange(1_000_000)
        a.properties["p_str"].string_value = f"s-{rng.randrange(1000)}"
        a.properties["p_double"].double_value = rng.random()
        a.custom_properties["tag"].string_value = f"tag-{rng.randrange(50)}"
        a.custom_properties["epoch"].int_value = rng.randrange(100)
        return a

    def experiment(self, e: int) -> None:
        pb = self.pb
        rng = random.Random(SEED * 1_000_003 + e)
        artifacts = [self._artifact(rng, "DataSet", e, None, None)]
        executions, edges = [], []
        for c in range(CHAINS):
            previous = 0  # index of the DataSet
            for s in range(STEPS):
                ex = pb.Execution(type_id=self.type_ids["Trainer"], last_known_state=pb.Execution.COMPLETE)
                ex.properties["step"].int_value = s
                executions.append(ex)
                artifacts.append(self._artifact(rng, "Model", e, c, s))
                x, out = len(executions) - 1, len(artifacts) - 1
                edges.append((x, previous, pb.Event(type=pb.Event.INPUT)))
                edges.append((x, out, pb.Event(type=pb.Event.OUTPUT)))
                previous = out
        contexts = [pb.Context(type_id=self.type_ids["Experiment"], name=f"exp-{e}"),
                    pb.Context(type_id=self.type_ids["Project"], name=f"proj-{e % PROJECTS}")]
        _, artifact_ids, _ = self.store.put_lineage_subgraph(executions, artifacts, contexts, edges,
                                                             reuse_context_if_already_exist=True)
        assert len(artifact_ids) == len(artifacts)


def open_store(lib: Any, pb: Any, path: str) -> Any:
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return lib.MetadataStore(config)


def close_store(store: Any) -> None:
    close = getattr(store, "close", None)
    if close is not None:
        close()


def ensure_dataset(lib: Any, pb: Any, impl: str, data_dir: str, scale: float) -> tuple[str, Dict[str, Any]]:
    """The store's path, built now unless a complete build with the same parameters exists."""
    params = dataset_params(scale)
    directory = os.path.join(data_dir, f"{impl}-x{params['experiments']}")
    marker = os.path.join(directory, "dataset.json")
    path = os.path.join(directory, "mlmd.sqlite")
    if os.path.exists(marker):
        with open(marker) as f:
            built = json.load(f)
        if built.get("params") == params:
            return path, dict(built, reused=True)
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    start = time.perf_counter()
    store = open_store(lib, pb, path)
    try:
        builder = Builder(store, pb)
        for e in range(params["experiments"]):
            builder.experiment(e)
            if e % 100 == 99:
                print(f"# {impl}: built {e + 1}/{params['experiments']} experiments "
                      f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    finally:
        close_store(store)
    built = {"params": params, "build_seconds": time.perf_counter() - start,
             "artifacts": params["experiments"] * (1 + CHAINS * STEPS),
             "executions": params["experiments"] * CHAINS * STEPS}
    with open(marker, "w") as f:
        json.dump(built, f)
    return path, dict(built, reused=False)


# -- the queries ---------------------------------------------------------------

def query_variants(scale: float) -> Dict[str, List[str]]:
    """workload -> its filter-query texts, the same on both sides. ``{t_lo}``/``{t_hi}``
    are create times resolved per side from named artifacts (each side stamps its own
    clock), chosen at call boundaries so the matching ids are the same on both."""
    n = experiments_at(scale)
    rng = random.Random(SEED)
    exps = [rng.randrange(n) for _ in range(VARIANTS)]
    out: Dict[str, List[str]] = {
        # (a) attributes
        "attr_uri_prefix": [f"uri LIKE '/data/exp-{e}/%'" for e in exps],
        "attr_uri_suffix": [f"uri LIKE '%/chain-{i % CHAINS}/step-{(7 * i) % STEPS}'" for i in range(VARIANTS)],
        "attr_name": [f"name = '{artifact_name(e, i % CHAINS, (3 * i) % STEPS)}'" for i, e in enumerate(exps)],
        "attr_create_time": ["create_time_since_epoch >= {t_lo:%d} AND create_time_since_epoch <= {t_hi:%d}"
                             % (e, min(e + 2, n - 1)) for e in exps],
        "attr_state_type": [f"state = {STATES[i % len(STATES)]} AND type = 'DataSet'" for i in range(VARIANTS)],
        # (b) properties
        "prop_int_gt": [f"properties.p_int.int_value > {999_000 - 1000 * i}" for i in range(VARIANTS)],
        "custom_str_eq": [f"custom_properties.tag.string_value = 'tag-{rng.randrange(50)}'"
                          for _ in range(VARIANTS)],
        "prop_combo": [f"properties.p_str.string_value = 's-{rng.randrange(1000)}' AND "
                       f"properties.p_double.double_value < 0.2 AND custom_properties.epoch.int_value >= 50"
                       for _ in range(VARIANTS)],
        # (c) contexts
        "ctx_name": [f"contexts_a.name = 'exp-{e}'" for e in exps],
        "ctx_type_and_prop": [f"contexts_a.type = 'Project' AND contexts_a.name = 'proj-{i % PROJECTS}' AND "
                              f"properties.p_int.int_value > 990000" for i in range(VARIANTS)],
        "ctx_two_aliases": [f"contexts_a.name = 'exp-{e}' AND contexts_b.name = 'proj-{e % PROJECTS}' "
                            f"AND state = LIVE" for e in exps],
    }
    return out


def lineage_starts(scale: float) -> List[str]:
    """Filter queries for the starting artifact: step 5 of chain 0 of some experiment, so
    20 hops reach back to the DataSet and on into the sibling chains (bidirectional)."""
    n = experiments_at(scale)
    rng = random.Random(SEED + 1)
    return [f"name = '{artifact_name(rng.randrange(n), 0, 5)}' AND type = 'Model'" for _ in range(VARIANTS)]


FILTER_GROUPS = {
    "attributes": ("attr_uri_prefix", "attr_uri_suffix", "attr_name", "attr_create_time", "attr_state_type"),
    "properties": ("prop_int_gt", "custom_str_eq", "prop_combo"),
    "contexts": ("ctx_name", "ctx_type_and_prop", "ctx_two_aliases"),
}
LINEAGE = ("lineage_upstream", "lineage_downstream", "lineage_bidirectional")
ALL_WORKLOADS = tuple(w for g in FILTER_GROUPS.values() for w in g) + LINEAGE


def resolve_times(store: Any, pb: Any, text: str, type_ids: Dict[str, int]) -> str:
    """Replaces ``{t_lo:E}`` by the create time of experiment E's first artifact and
    ``{t_hi:E}`` by that of its last one, read from this side's store."""
    import re

    def create_time(match: "re.Match[str]") -> str:
        e = int(match.group(2))
        if match.group(1) == "lo":
            name, type_name = artifact_name(e, None, None), "DataSet"
        else:
            name, type_name = artifact_name(e, CHAINS - 1, STEPS - 1), "Model"
        artifact = store.get_artifact_by_type_and_name(type_name, name)
        return str(artifact.create_time_since_epoch)

    return re.sub(r"\{t_(lo|hi):(\d+)\}", create_time, text)


# -- timing --------------------------------------------------------------------

def timed_cycle(call: Callable[[int], Any], variants: int, count: int, budget_s: float) -> Dict[str, Any]:
    """One untimed pass over the variants (their results are returned for the check),
    then ``call(i % variants)`` up to ``count`` times or ``budget_s`` seconds."""
    results = [call(v) for v in range(variants)]
    return {**time_calls(lambda i: call(i % variants), count, budget_s), "results": results}


def explain_ours(store: Any, call: Callable[[int], Any]) -> List[Dict[str, Any]]:
    """Ours only: the SQL statements of one call of variant 0 (bound values inlined by
    SQLite's expanded SQL), each with its median time over 5 runs and its EXPLAIN QUERY PLAN."""
    conn = store._transport.reads.reader._conn  # the query layer's SQLite connection
    captured: List[str] = []
    conn.set_trace_callback(captured.append)
    try:
        call(0)
    finally:
        conn.set_trace_callback(None)
    out = []
    for text in captured:
        if not text.lstrip().upper().startswith("SELECT"):
            continue
        runs = []
        for _ in range(5):
            t0 = time.perf_counter_ns()
            conn.execute(text).fetchall()
            runs.append(time.perf_counter_ns() - t0)
        plan = [row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + text).fetchall()]
        out.append({"sql": text, "median_ms": sorted(runs)[2] / 1e6, "plan": plan})
    return out


def run(impl: str, names: List[str], scale: float, data_dir: str, budget: float, count: int,
        profile_dir: Optional[str], build_only: bool, explain: bool = False) -> Dict[str, Any]:
    lib, pb = import_impl(impl)
    path, built = ensure_dataset(lib, pb, impl, data_dir, scale)
    out: Dict[str, Any] = {"impl": impl, "library": lib.__name__, "version": getattr(lib, "__version__", "?"),
                           "python": platform.python_version(), "scale": scale, "dataset": built,
                           "store": path, "workloads": {}}
    if build_only:
        return out
    store = open_store(lib, pb, path)
    try:
        type_ids = {"DataSet": store.get_artifact_type("DataSet").id}
        variants = query_variants(scale)
        directions = {"lineage_upstream": pb.LineageSubgraphQueryOptions.UPSTREAM,
                      "lineage_downstream": pb.LineageSubgraphQueryOptions.DOWNSTREAM,
                      "lineage_bidirectional": pb.LineageSubgraphQueryOptions.BIDIRECTIONAL}
        for name in names:
            if name in directions:
                texts = lineage_starts(scale)
                direction = directions[name]

                def call(v: int, texts=texts, direction=direction) -> Any:
                    options = pb.LineageSubgraphQueryOptions(
                        starting_artifacts=pb.LineageSubgraphQueryOptions.StartingNodes(filter_query=texts[v]),
                        max_num_hops=HOPS, direction=direction)
                    graph = store.get_lineage_subgraph(options)
                    return {"artifacts": sorted(a.id for a in graph.artifacts),
                            "executions": sorted(x.id for x in graph.executions),
                            "contexts": sorted(c.id for c in graph.contexts),
                            "events": sorted([e.artifact_id, e.execution_id, e.type] for e in graph.events)}
                kind = "lineage"
            else:
                texts = [resolve_times(store, pb, t, type_ids) for t in variants[name]]

                def call(v: int, texts=texts) -> Any:
                    found = store.get_artifacts(list_options=lib.ListOptions(filter_query=texts[v], limit=LIMIT))
                    return [a.id for a in found]
                kind = "filter"
            profiler = None
            if profile_dir:
                import cProfile
                profiler = cProfile.Profile()
                profiler.enable()
            stats = timed_cycle(call, len(texts), max(1, count), budget)
            if profiler is not None:
                profiler.disable()
                os.makedirs(profile_dir, exist_ok=True)
                profiler.dump_stats(os.path.join(profile_dir, f"{impl}-{name}.prof"))
            stats.update(kind=kind, queries=texts)
            if explain and impl == "ours":
                stats["explain"] = explain_ours(store, call)
            out["workloads"][name] = stats
            print(f"# {impl}: {name}: {stats['ops_per_s']:,.1f}/s p50 {stats['p50_ms']:.2f} ms",
                  file=sys.stderr, flush=True)
    finally:
        close_store(store)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", required=True, choices=["ours", "ref"])
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the dataset size")
    parser.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "mlmd-bench-query"),
                        help="where the built stores are cached (reused when present)")
    parser.add_argument("--only", default=",".join(ALL_WORKLOADS), help="comma-separated workload names")
    parser.add_argument("--budget", type=float, default=2.0, help="timed seconds per workload")
    parser.add_argument("--count", type=int, default=20000, help="max timed calls per workload")
    parser.add_argument("--profile", default=None, help="write a cProfile file per workload into this dir")
    parser.add_argument("--explain", action="store_true",
                        help="ours: record each SQL statement of variant 0 with its time and query plan")
    parser.add_argument("--build-only", action="store_true", help="build (or reuse) the dataset and stop")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in ALL_WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workloads {unknown}; choose from {list(ALL_WORKLOADS)}")
    os.makedirs(args.data_dir, exist_ok=True)
    out = run(args.impl, names, args.scale, args.data_dir, args.budget, args.count, args.profile,
              args.build_only, args.explain)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
