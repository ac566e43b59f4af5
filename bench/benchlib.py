"""Helpers every benchmark here shares (stdlib only: the workloads import this under the
reference interpreter too)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ref_python(explicit: Optional[str] = None) -> str:
    """The interpreter with ml-metadata 1.17.1: --ref-python, $MLMD_REF_PYTHON, .venv-ref, or
    whatever scripts/ref_venv.sh creates."""
    for candidate in (explicit, os.environ.get("MLMD_REF_PYTHON"), os.path.join(ROOT, ".venv-ref", "bin", "python")):
        if candidate and os.path.exists(candidate):
            return candidate
    out = subprocess.run(["bash", os.path.join(ROOT, "scripts", "ref_venv.sh")], check=True,
                         capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def import_impl(impl: str) -> tuple[Any, Any]:
    """(the library module, its metadata_store_pb2) for ``ours`` or ``ref``."""
    if impl == "ref":
        import ml_metadata as lib
        from ml_metadata.proto import metadata_store_pb2 as pb
    elif impl == "ours":
        sys.path.insert(0, ROOT)
        import mlmd_log as lib
        from mlmd_log.proto import metadata_store_pb2 as pb
    else:
        raise SystemExit(f"--impl must be ours or ref, not {impl!r}")
    return lib, pb


def pipeline_types(pb: Any) -> tuple[Any, Any, Any, Any]:
    """The pipeline-step workload's types (either library's protos): Examples and Model
    artifacts, a Trainer execution, a PipelineRun context."""
    examples = pb.ArtifactType(name="Examples")
    examples.properties["span"] = pb.INT
    model = pb.ArtifactType(name="Model")
    model.properties["version"] = pb.INT
    trainer = pb.ExecutionType(name="Trainer")
    trainer.properties["step"] = pb.INT
    return examples, model, trainer, pb.ContextType(name="PipelineRun")


def step_parts(pb: Any, step: int, worker: int, model_type: int, trainer_type: int, run_type: int) -> tuple:
    """One pipeline step's new execution (its step number as a property), its new Model
    (version = step, a uri of its own) and the worker's run context."""
    execution = pb.Execution(type_id=trainer_type, last_known_state=pb.Execution.COMPLETE)
    execution.properties["step"].int_value = step
    model = pb.Artifact(type_id=model_type, uri=f"bench://w{worker}/model/{step}")
    model.properties["version"].int_value = step
    return execution, model, pb.Context(type_id=run_type, name=f"run-{worker}")


def step_request(pb: Any, svc: Any, parts: tuple, source: Any) -> Any:
    """The step as a PutExecutionRequest: ``source`` (an artifact given with its id) as INPUT,
    the new Model as OUTPUT, the run context reused."""
    execution, model, run = parts
    request = svc.PutExecutionRequest(execution=execution)
    for artifact, event_type in ((source, pb.Event.INPUT), (model, pb.Event.OUTPUT)):
        pair = request.artifact_event_pairs.add()
        pair.artifact.CopyFrom(artifact)
        pair.event.type = event_type
    request.contexts.add().CopyFrom(run)
    request.options.reuse_context_if_already_exist = True
    return request


def percentile_ms(sorted_ns: Sequence[int], q: float) -> float:
    """The q-quantile (nearest rank) of sorted nanosecond timings, in milliseconds."""
    if not sorted_ns:
        return float("nan")
    k = min(len(sorted_ns) - 1, max(0, int(round(q * (len(sorted_ns) - 1)))))
    return sorted_ns[k] / 1e6


def median_runs(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Per workload, the run whose throughput is the median of the repeats."""
    merged = dict(runs[0], workloads={}, repeats=len(runs))
    for name in runs[0]["workloads"]:
        stats = sorted((r["workloads"][name] for r in runs), key=lambda s: s["ops_per_s"])
        merged["workloads"][name] = stats[(len(stats) - 1) // 2]
    return merged


def time_calls(call: Callable[[int], Any], count: int, budget_s: float) -> Dict[str, float]:
    """Calls ``call(i)`` for i in 0..count-1, stopping early after ``budget_s`` seconds;
    throughput and latency percentiles of those calls."""
    lat: List[int] = []
    clock = time.perf_counter_ns
    start = clock()
    deadline = start + int(budget_s * 1e9)
    for i in range(count):
        t0 = clock()
        call(i)
        t1 = clock()
        lat.append(t1 - t0)
        if t1 > deadline:
            break
    elapsed = (clock() - start) / 1e9
    lat.sort()
    return {"calls": len(lat), "seconds": elapsed, "ops_per_s": len(lat) / elapsed,
            "p50_ms": percentile_ms(lat, 0.50), "p99_ms": percentile_ms(lat, 0.99),
            "mean_ms": sum(lat) / len(lat) / 1e6}
