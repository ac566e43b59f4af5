"""mlmd-log vs ml-metadata 1.17.1: core put/get throughput, side by side, same machine, same run.

Each side runs ``bench/core_workload.py`` in its own interpreter (the two
libraries define the same protobuf symbols and cannot share a process): ours
with this interpreter, the reference with the ref virtualenv's python
(``scripts/ref_venv.sh`` creates it). Both write to a SQLite file given as
``ConnectionConfig.sqlite.filename_uri`` with durable writes: the reference on
SQLite's defaults (rollback journal, ``synchronous=FULL``), ours through the
fsync'd FileLog plus its SQLite projection. The sides run one after the other,
never at once, so they do not compete for the 2 cores.

Prints ops/s, items/s, p50/p99 latency per call, the ratio ours/theirs and
whether the target ratio is met. A benchmark reports; it asserts nothing.

    python bench/bench_core.py [--scale 1] [--repeat 1] [--only ours|ref]
                               [--workloads put_single,...] [--json out.json] [--dir DIR]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from typing import Any, Dict, List, Optional
from benchlib import median_runs, ref_python

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKLOAD = os.path.join(HERE, "core_workload.py")

# workload -> (label, target ratio of throughput ours/theirs)
TARGETS: Dict[str, tuple] = {
    "put_single": ("put_artifacts, 1 artifact/call", 2.0),
    "put_batch": ("put_artifacts, 100 artifacts/call", 5.0),
    "put_execution": ("put_execution (1 in, 1 out, 1 ctx)", 2.0),
    "get_single": ("get_artifacts_by_id, 1 id", 1.0),
    "get_batch": ("get_artifacts_by_id, 100 ids", 1.0),
}


def run_side(python: str, impl: str, args: argparse.Namespace) -> Dict[str, Any]:
    cmd = [python, WORKLOAD, "--impl", impl, "--scale", str(args.scale), "--only", args.workloads]
    if args.dir:
        cmd += ["--dir", args.dir]
    print(f"# running {impl}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"{impl} side failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt_rate(x: Optional[float]) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def fmt_lat(s: Optional[Dict[str, Any]]) -> str:
    if s is None:
        return "-"
    return f"{s['p50_ms']:.3f}/{s['p99_ms']:.3f}"


def table(ours: Optional[Dict[str, Any]], ref: Optional[Dict[str, Any]]) -> tuple[str, List[Dict[str, Any]]]:
    """The side-by-side table as markdown, and one row dict per workload."""
    names = list((ours or ref)["workloads"])
    head = ("| workload | ours ops/s | ref ops/s | ours items/s | ref items/s | ours p50/p99 ms "
            "| ref p50/p99 ms | ratio | target | met |")
    lines = [head, "|" + "---|" * 10]
    rows = []
    for name in names:
        label, target = TARGETS[name]
        o = ours["workloads"].get(name) if ours else None
        r = ref["workloads"].get(name) if ref else None
        ratio = o["ops_per_s"] / r["ops_per_s"] if o and r else None
        met = None if ratio is None else ratio >= target
        items = lambda s: s["ops_per_s"] * s["items_per_call"] if s else None  # noqa: E731
        lines.append(
            f"| {label} | {fmt_rate(o and o['ops_per_s'])} | {fmt_rate(r and r['ops_per_s'])} "
            f"| {fmt_rate(items(o))} | {fmt_rate(items(r))} | {fmt_lat(o)} | {fmt_lat(r)} "
            f"| {'-' if ratio is None else f'{ratio:.2f}x'} | >= {target:g}x "
            f"| {'-' if met is None else ('yes' if met else 'NO')} |")
        rows.append({"workload": name, "label": label, "target": target, "ratio": ratio, "met": met})
    return "\n".join(lines), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies call counts and time budgets")
    parser.add_argument("--repeat", type=int, default=1, help="runs per side; the median run is reported")
    parser.add_argument("--only", choices=["ours", "ref"], default=None, help="run one side only")
    parser.add_argument("--workloads", default=",".join(TARGETS), help="comma-separated subset")
    parser.add_argument("--json", default=None, help="also write the raw results here")
    parser.add_argument("--dir", default=None, help="parent directory of the stores (default: system temp)")
    parser.add_argument("--ref-python", default=None, help="interpreter with ml-metadata 1.17.1")
    args = parser.parse_args()

    sides: Dict[str, Optional[Dict[str, Any]]] = {"ours": None, "ref": None}
    pythons = {"ours": sys.executable}
    if args.only != "ours":
        pythons["ref"] = ref_python(args.ref_python)
    runs: Dict[str, List[Dict[str, Any]]] = {"ours": [], "ref": []}
    for _ in range(max(1, args.repeat)):  # interleave sides so drift hits both alike
        for impl in ("ours", "ref"):
            if args.only in (None, impl):
                runs[impl].append(run_side(pythons[impl], impl, args))
    for impl in runs:
        if runs[impl]:
            sides[impl] = median_runs(runs[impl])

    text, rows = table(sides["ours"], sides["ref"])
    print(f"mlmd-log vs ml-metadata {sides['ref']['version'] if sides['ref'] else '(not run)'} "
          f"- {dt.datetime.now().isoformat(timespec='seconds')}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, scale {args.scale:g}, repeat {args.repeat}")
    print("SQLite file on both sides; ref: journal_mode=DELETE, synchronous=FULL (SQLite defaults); "
          "ours: FileLog fsync + SQLite projection")
    print(text)
    judged = [r for r in rows if r["met"] is not None]
    if judged:
        print(f"targets met: {sum(r['met'] for r in judged)}/{len(judged)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ours": sides["ours"], "ref": sides["ref"], "rows": rows,
                       "argv": sys.argv[1:], "cores": os.cpu_count(), "machine": platform.platform(),
                       "when": dt.datetime.now().isoformat(timespec="seconds")}, f, indent=2)


if __name__ == "__main__":
    main()
