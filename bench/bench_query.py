"""mlmd-log vs ml-metadata 1.17.1: filter queries and lineage subgraphs, side by side, same data.

Each side runs ``bench/query_workload.py`` in its own interpreter (the two
libraries define the same protobuf symbols and cannot share a process): ours
with this interpreter, the reference with the ref virtualenv's python
(``scripts/ref_venv.sh`` creates it). Each side first builds (or reuses, from
``--data-dir``) the same seeded dataset, about 100k artifacts at scale 1, with
the same calls, then times the same query texts. The sides run one after the
other, never at once, so they do not compete for the 2 cores.

Prints queries/s and p50/p99 latency per workload, the ratio ours/theirs, the
target (>= 5x for filter queries, >= 1x for lineage, issue 3) and whether it is
met, and whether both sides returned the same ids for every query variant. A
benchmark reports; it asserts nothing.

    python bench/bench_query.py [--scale 1] [--data-dir DIR] [--only ours|ref]
                                [--workloads attr_name,...] [--budget 2] [--repeat 1] [--json out.json]
                                [--explain] [--profile DIR]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKLOAD = os.path.join(HERE, "query_workload.py")
sys.path.insert(0, HERE)
from bench_core import fmt_lat, fmt_rate, ref_python  # noqa: E402
from query_workload import ALL_WORKLOADS, FILTER_GROUPS  # noqa: E402
from benchlib import median_runs

FILTER_TARGET = 5.0
LINEAGE_TARGET = 1.0

# workload -> (group, label)
LABELS: Dict[str, tuple] = {
    "attr_uri_prefix": ("attributes", "uri LIKE '/data/exp-E/%'"),
    "attr_uri_suffix": ("attributes", "uri LIKE '%/chain-C/step-S'"),
    "attr_name": ("attributes", "name = 'm-E-C-S'"),
    "attr_create_time": ("attributes", "create_time_since_epoch range"),
    "attr_state_type": ("attributes", "state = X AND type = 'DataSet'"),
    "prop_int_gt": ("properties", "properties.p_int.int_value > N"),
    "custom_str_eq": ("properties", "custom_properties.tag.string_value = 'tag-K'"),
    "prop_combo": ("properties", "p_str = AND p_double < AND custom epoch >="),
    "ctx_name": ("contexts", "contexts_a.name = 'exp-E'"),
    "ctx_type_and_prop": ("contexts", "contexts_a.type/name (project) AND p_int >"),
    "ctx_two_aliases": ("contexts", "contexts_a (exp) AND contexts_b (proj) AND state"),
    "lineage_upstream": ("lineage", "get_lineage_subgraph 20 hops UPSTREAM"),
    "lineage_downstream": ("lineage", "get_lineage_subgraph 20 hops DOWNSTREAM"),
    "lineage_bidirectional": ("lineage", "get_lineage_subgraph 20 hops BIDIRECTIONAL"),
}


def run_side(python: str, impl: str, args: argparse.Namespace) -> Dict[str, Any]:
    cmd = [python, WORKLOAD, "--impl", impl, "--scale", str(args.scale), "--only", args.workloads,
           "--data-dir", args.data_dir, "--budget", str(args.budget)]
    if args.profile:
        cmd += ["--profile", args.profile]
    if args.explain and impl == "ours":
        cmd += ["--explain"]
    print(f"# running {impl}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)  # stderr: progress, passed on
    if proc.returncode != 0:
        raise SystemExit(f"{impl} side failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def same_results(o: Dict[str, Any], r: Dict[str, Any]) -> List[int]:
    """Indexes of the query variants whose ids differ between the sides."""
    return [i for i, (a, b) in enumerate(zip(o["results"], r["results"])) if a != b]


def result_size(result: Any) -> str:
    if isinstance(result, dict):  # lineage: artifacts/executions/events
        return f"{len(result['artifacts'])}a/{len(result['executions'])}x/{len(result['events'])}ev"
    return str(len(result))


def group_of(name: str) -> str:
    return LABELS[name][0]


def table(ours: Optional[Dict[str, Any]], ref: Optional[Dict[str, Any]]) -> tuple[str, List[Dict[str, Any]]]:
    """The side-by-side table as markdown, and one row dict per workload."""
    names = list((ours or ref)["workloads"])
    head = ("| group | query | rows (variant 0) | ours q/s | ref q/s | ours p50/p99 ms | ref p50/p99 ms "
            "| ratio q/s | ratio p50 | target | met | same ids |")
    lines = [head, "|" + "---|" * 12]
    rows = []
    for name in names:
        group, label = LABELS[name]
        target = LINEAGE_TARGET if group == "lineage" else FILTER_TARGET
        o = ours["workloads"].get(name) if ours else None
        r = ref["workloads"].get(name) if ref else None
        ratio = o["ops_per_s"] / r["ops_per_s"] if o and r else None
        ratio_p50 = r["p50_ms"] / o["p50_ms"] if o and r else None
        met = None if ratio is None else ratio >= target
        mismatches = same_results(o, r) if o and r else None
        same = "-" if mismatches is None else ("yes" if not mismatches else f"NO: variants {mismatches}")
        size = result_size((o or r)["results"][0])
        lines.append(
            f"| {group} | `{label}` | {size} | {fmt_rate(o and o['ops_per_s'])} | {fmt_rate(r and r['ops_per_s'])} "
            f"| {fmt_lat(o)} | {fmt_lat(r)} | {'-' if ratio is None else f'{ratio:.2f}x'} "
            f"| {'-' if ratio_p50 is None else f'{ratio_p50:.2f}x'} | >= {target:g}x "
            f"| {'-' if met is None else ('yes' if met else 'NO')} | {same} |")
        rows.append({"workload": name, "group": group, "label": label, "target": target, "ratio": ratio,
                     "ratio_p50": ratio_p50, "met": met, "mismatched_variants": mismatches})
    return "\n".join(lines), rows


def mismatch_details(ours: Dict[str, Any], ref: Dict[str, Any], rows: List[Dict[str, Any]]) -> List[str]:
    out = []
    for row in rows:
        for i in row["mismatched_variants"] or []:
            o, r = ours["workloads"][row["workload"]], ref["workloads"][row["workload"]]
            a, b = o["results"][i], r["results"][i]
            if isinstance(a, dict):
                diff = {k: (sorted(set(map(str, a[k])) - set(map(str, b[k])))[:5],
                            sorted(set(map(str, b[k])) - set(map(str, a[k])))[:5]) for k in a if a[k] != b[k]}
            else:
                diff = {"ours_only": sorted(set(a) - set(b))[:10], "ref_only": sorted(set(b) - set(a))[:10],
                        "order_differs": set(a) == set(b)}
            out.append(f"- {row['workload']} variant {i}: ours `{o['queries'][i]}` / ref `{r['queries'][i]}`: "
                       f"{len(a)} vs {len(b)} results; {diff}")
    return out


def print_explain(ours: Dict[str, Any]) -> None:
    """Ours' SQL per workload (variant 0): time and query plan of each statement."""
    for name, stats in ours["workloads"].items():
        print(f"\n## {name}: `{stats['queries'][0]}`")
        for step in stats.get("explain", []):
            sql = step["sql"] if len(step["sql"]) <= 600 else step["sql"][:600] + " ..."
            print(f"- {step['median_ms']:.3f} ms: {sql}")
            for line in step["plan"]:
                print(f"    {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the dataset size (0.05: smoke run)")
    parser.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "mlmd-bench-query"),
                        help="cache of the built stores, reused when present")
    parser.add_argument("--budget", type=float, default=2.0, help="timed seconds per workload and side")
    parser.add_argument("--repeat", type=int, default=1, help="runs per side; the median run is reported")
    parser.add_argument("--only", choices=["ours", "ref"], default=None, help="run one side only")
    parser.add_argument("--workloads", default=",".join(ALL_WORKLOADS), help="comma-separated subset")
    parser.add_argument("--json", default=None, help="also write the raw results here")
    parser.add_argument("--profile", default=None, help="cProfile files per workload and side into this dir")
    parser.add_argument("--explain", action="store_true",
                        help="print ours' SQL per query (variant 0) with its time and EXPLAIN QUERY PLAN")
    parser.add_argument("--ref-python", default=None, help="interpreter with ml-metadata 1.17.1")
    args = parser.parse_args()
    unknown = [n for n in args.workloads.split(",") if n and n not in ALL_WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workloads {unknown}; choose from {list(ALL_WORKLOADS)}")

    pythons = {"ours": sys.executable}
    if args.only != "ours":
        pythons["ref"] = ref_python(args.ref_python)
    sides: Dict[str, Optional[Dict[str, Any]]] = {"ours": None, "ref": None}
    runs: Dict[str, List[Dict[str, Any]]] = {"ours": [], "ref": []}
    for _ in range(max(1, args.repeat)):  # interleave sides so drift hits both alike
        for impl in ("ours", "ref"):
            if args.only in (None, impl):
                runs[impl].append(run_side(pythons[impl], impl, args))
    for impl in runs:
        if runs[impl]:
            sides[impl] = median_runs(runs[impl])

    any_side = sides["ours"] or sides["ref"]
    text, rows = table(sides["ours"], sides["ref"])
    ds = any_side["dataset"]
    print(f"mlmd-log vs ml-metadata {sides['ref']['version'] if sides['ref'] else '(not run)'} "
          f"- {dt.datetime.now().isoformat(timespec='seconds')}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, scale {args.scale:g}, repeat {args.repeat}")
    print(f"dataset: {ds['artifacts']:,} artifacts, {ds['executions']:,} executions, "
          f"{ds['params']['experiments']:,} experiments x {ds['params']['chains']} chains x "
          f"{ds['params']['steps']} steps; "
          + ", ".join(f"{impl} built in {s['dataset']['build_seconds']:.0f} s"
                      + (" (cached)" if s["dataset"]["reused"] else "")
                      for impl, s in sides.items() if s))
    print("get_artifacts(ListOptions(filter_query=..., limit=100)); 8 variants per query, cycled; "
          f"{args.budget:g} s timed per workload after one untimed pass")
    print(text)
    for group in list(FILTER_GROUPS) + ["lineage"]:
        judged = [r for r in rows if r["group"] == group and r["met"] is not None]
        if judged:
            worst = min(judged, key=lambda r: r["ratio"])
            print(f"{group}: targets met {sum(r['met'] for r in judged)}/{len(judged)}, "
                  f"lowest ratio {worst['ratio']:.2f}x ({worst['workload']})")
    if sides["ours"] and sides["ref"]:
        details = mismatch_details(sides["ours"], sides["ref"], rows)
        print("id mismatches: " + ("none" if not details else f"{len(details)}"))
        for line in details:
            print(line)
    if args.explain and sides["ours"]:
        print_explain(sides["ours"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ours": sides["ours"], "ref": sides["ref"], "rows": rows, "argv": sys.argv[1:],
                       "cores": os.cpu_count(), "machine": platform.platform(),
                       "when": dt.datetime.now().isoformat(timespec="seconds")}, f, indent=2)


if __name__ == "__main__":
    main()
