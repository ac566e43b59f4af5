"""Oracle test: mlmd_log.MetadataStore must answer exactly like ml_metadata 1.17.1.

For a few seeds, tests/support/oracle/calls.py generates a sequence of a few hundred
MLMD calls by driving the official library (in its own virtualenv) and records
each call with its result.  tests/support/oracle/runner.py then replays the same calls
on a fresh in-memory mlmd_log store, and the results must agree call by call:
same return values and shapes, same ids, same protos (timestamps cleared), same
error classes (messages are shown in the diff but need not match).

Needs the reference venv: ``scripts/ref_venv.sh`` (or set MLMD_REF_PYTHON).
Tuning: MLMD_ORACLE_SEEDS="1,2,3", MLMD_ORACLE_CALLS=300.

Reproduce a failure by hand:
    .venv-ref/bin/python tests/support/oracle/calls.py --seed S --n 300 --out /tmp/calls.json
    python tests/support/oracle/runner.py --lib mlmd_log --calls /tmp/calls.json --out /tmp/ours.json
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.reference

ROOT = Path(__file__).resolve().parent.parent
ORACLE = ROOT / "tests" / "support" / "oracle"
SEEDS = [int(s) for s in os.environ.get("MLMD_ORACLE_SEEDS", "101,202,303").split(",") if s]
N_CALLS = int(os.environ.get("MLMD_ORACLE_CALLS", "300"))
# Filter queries and lineage reads (the query layer) are part of every sequence;
# MLMD_ORACLE_QUERY_LAYER=0 checks the core store alone.
QUERY_LAYER = os.environ.get("MLMD_ORACLE_QUERY_LAYER", "1") == "1"


def _load_runner():
    spec = importlib.util.spec_from_file_location("mlmd_oracle_runner", ORACLE / "runner.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


runner = _load_runner()


def _run(argv: list, what: str) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"{what} failed (exit {proc.returncode}):\n{' '.join(map(str, argv))}\n"
                    f"{proc.stderr[-4000:]}")


@pytest.fixture(scope="session")
def ref_python() -> str:
    python = os.environ.get("MLMD_REF_PYTHON") or str(ROOT / ".venv-ref" / "bin" / "python")
    if not Path(python).exists():
        pytest.skip("reference ml-metadata venv missing: run scripts/ref_venv.sh")
    probe = subprocess.run([python, "-c", "import ml_metadata"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"{python} cannot import ml_metadata: run scripts/ref_venv.sh")
    return python


@pytest.fixture(scope="session")
def generated(ref_python, tmp_path_factory) -> dict:
    """seed -> (calls.json path, {"calls", "results"}) generated against the reference."""
    out = {}
    directory = tmp_path_factory.mktemp("oracle")
    for seed in SEEDS:
        path = directory / f"calls_{seed}.json"
        _run([ref_python, str(ORACLE / "calls.py"), "--seed", str(seed), "--n", str(N_CALLS),
              "--out", str(path), *([] if QUERY_LAYER else ["--core-only"])], f"generating seed {seed}")
        out[seed] = (path, json.loads(path.read_text()))
    return out


def _replay(python: str, lib: str, calls_path: Path, out_path: Path) -> list:
    _run([python, str(ORACLE / "runner.py"), "--lib", lib, "--calls", str(calls_path),
          "--out", str(out_path)], f"replaying {calls_path.name} on {lib}")
    return json.loads(out_path.read_text())["results"]


def test_reference_replays_identically(ref_python, generated, tmp_path):
    """Self-check of the harness: the reference, replayed, gives the results it gave
    while the sequence was generated (so normalisation hides nothing but timestamps)."""
    for seed, (calls_path, data) in generated.items():
        assert len(data["calls"]) == N_CALLS
        replayed = _replay(ref_python, "ml_metadata", calls_path, tmp_path / f"ref_{seed}.json")
        mismatch = runner.first_mismatch(data["calls"], data["results"], replayed)
        assert mismatch is None, f"seed {seed}: reference is not deterministic\n{mismatch}"


def test_sequences_cover_the_api(generated):
    """The generated calls exercise the write API and its error paths, not only reads."""
    methods, errors = set(), set()
    for _, data in generated.values():
        for call, result in zip(data["calls"], data["results"]):
            methods.add(call["method"])
            if isinstance(result, dict) and "$error" in result:
                errors.add((call["method"], result["$error"]))
    for method in ["put_artifact_type", "put_execution_type", "put_context_type", "put_artifacts",
                   "put_executions", "put_contexts", "put_events", "put_execution",
                   "put_lineage_subgraph", "put_attributions_and_associations",
                   "put_parent_contexts", "get_artifacts", "get_artifacts_by_id",
                   "get_events_by_execution_ids", *(["get_lineage_subgraph"] if QUERY_LAYER else [])]:
        assert method in methods
    assert {e for _, e in errors} >= {"AlreadyExistsError", "InvalidArgumentError", "NotFoundError"}


@pytest.mark.parametrize("seed", SEEDS)
def test_mlmd_log_matches_reference(seed, generated, tmp_path):
    calls_path, data = generated[seed]
    ours = _replay(sys.executable, "mlmd_log", calls_path, tmp_path / f"ours_{seed}.json")
    mismatch = runner.first_mismatch(data["calls"], data["results"], ours)
    assert mismatch is None, f"seed {seed} (calls: {calls_path})\n{mismatch}"
