"""Lineage queries: get_lineage_subgraph compared with the official ml-metadata 1.17.1 on
generated pipelines (chains, fan-in/fan-out, diamonds, cycles through contexts) for every
direction, hop limit and ending condition; GetLineageGraph (which 1.17's server no longer
implements) checked against hand-worked graphs.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path

import pytest

import mlmd_log as mlmd
from mlmd_log import errors
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.proto import metadata_store_service_pb2 as svc

ROOT = Path(__file__).resolve().parent.parent

# Runs with either library: builds the pipeline ``spec`` and answers lineage queries as
# normalised JSON (sorted ids and edges; errors by class).
SCRIPT = r'''
def build(mlmd, pb, spec):
    c = pb.ConnectionConfig(); c.fake_database.SetInParent()
    s = mlmd.MetadataStore(c)
    at = s.put_artifact_type(pb.ArtifactType(name="A", properties={"k": pb.INT}))
    et = s.put_execution_type(pb.ExecutionType(name="E"))
    ct = s.put_context_type(pb.ContextType(name="C"))
    arts = []
    for i in range(spec["artifacts"]):
        a = pb.Artifact(type_id=at, name=f"a{i}", uri=f"/a/{i}")
        a.properties["k"].int_value = i % 3
        arts.append(a)
    aids = s.put_artifacts(arts)
    eids = s.put_executions([pb.Execution(type_id=et, name=f"e{i}") for i in range(spec["executions"])])
    cids = s.put_contexts([pb.Context(type_id=ct, name=f"c{i}") for i in range(spec["contexts"])])
    s.put_events([pb.Event(artifact_id=aids[a], execution_id=eids[e], type=t) for a, e, t in spec["events"]])
    s.put_attributions_and_associations(
        [pb.Attribution(artifact_id=aids[a], context_id=cids[c]) for a, c in spec["attributions"]],
        [pb.Association(execution_id=eids[e], context_id=cids[c]) for e, c in spec["associations"]])
    return s

def subgraph(mlmd, pb, s, q):
    opts = pb.LineageSubgraphQueryOptions()
    getattr(opts, q["start"]).filter_query = q["filter"]
    if q.get("hops") is not None:
        opts.max_num_hops = q["hops"]
    opts.direction = q.get("direction", 0)
    for which in ("ending_artifacts", "ending_executions"):
        if which in q:
            getattr(opts, which).filter_query = q[which][0]
            getattr(opts, which).include_ending_nodes = q[which][1]
    try:
        g = s.get_lineage_subgraph(opts, q.get("mask"))
    except Exception as e:
        return {"error": type(e).__name__}
    return {
        "artifacts": sorted(a.id for a in g.artifacts),
        "executions": sorted(e.id for e in g.executions),
        "contexts": sorted(c.id for c in g.contexts),
        "events": sorted([e.artifact_id, e.execution_id, e.type] for e in g.events),
        "attributions": sorted([a.artifact_id, a.context_id] for a in g.attributions),
        "associations": sorted([a.execution_id, a.context_id] for a in g.associations),
        "types": sorted([t.name for t in g.artifact_types] + [t.name for t in g.execution_types]
                        + [t.name for t in g.context_types]),
        "full": all(a.HasField("type_id") for a in g.artifacts) and all(e.HasField("type_id") for e in g.executions),
    }
'''
_ns: dict = {}
exec(SCRIPT, _ns)  # noqa: S102 - shared with the reference run

IN, OUT, D_IN, D_OUT, I_IN, I_OUT, P_OUT = (pb.Event.INPUT, pb.Event.OUTPUT, pb.Event.DECLARED_INPUT,
                                            pb.Event.DECLARED_OUTPUT, pb.Event.INTERNAL_INPUT,
                                            pb.Event.INTERNAL_OUTPUT, pb.Event.PENDING_OUTPUT)


def chain(n: int) -> dict:
    """a0 -> e0 -> a1 -> e1 -> ... -> a_n."""
    events = []
    for i in range(n):
        events += [(i, i, IN), (i + 1, i, OUT)]
    return {"artifacts": n + 1, "executions": n, "contexts": 1, "events": events,
            "attributions": [(0, 0), (n, 0)], "associations": [(0, 0)]}


def diamond() -> dict:
    """a0 -> e0 -> {a1, a2}; a1 -> e1 -> a3; a2 -> e2 -> a3' ; {a3, a4} -> e3 -> a5."""
    return {"artifacts": 6, "executions": 4, "contexts": 2,
            "events": [(0, 0, IN), (1, 0, OUT), (2, 0, OUT), (1, 1, IN), (3, 1, OUT), (2, 2, IN),
                       (4, 2, OUT), (3, 3, IN), (4, 3, IN), (5, 3, OUT), (0, 3, D_IN)],
            "attributions": [(0, 0), (5, 1), (3, 0), (3, 1)], "associations": [(3, 1), (0, 0)]}


def fan() -> dict:
    """Fan-in of 5 artifacts into e0, fan-out of e0 into 5, with every event type."""
    types = [IN, D_IN, I_IN, IN, IN]
    outs = [OUT, D_OUT, I_OUT, P_OUT, OUT]
    events = [(i, 0, types[i]) for i in range(5)] + [(5 + i, 0, outs[i]) for i in range(5)]
    events += [(9, 1, IN), (10, 1, OUT), (10, 2, IN), (0, 2, OUT)]  # a cycle back to a0
    return {"artifacts": 11, "executions": 3, "contexts": 3, "events": events,
            "attributions": [(i, i % 3) for i in range(11)], "associations": [(0, 0), (1, 1), (2, 2), (0, 2)]}


def random_pipeline(seed: int) -> dict:
    rng = random.Random(seed)
    n_a, n_e = rng.randint(5, 25), rng.randint(3, 15)
    events = set()
    for e in range(n_e):
        for a in rng.sample(range(n_a), rng.randint(1, 3)):
            events.add((a, e, rng.choice([IN, IN, D_IN, I_IN])))
        for a in rng.sample(range(n_a), rng.randint(1, 3)):
            events.add((a, e, rng.choice([OUT, OUT, D_OUT, I_OUT, P_OUT])))
    uniq = {}
    for a, e, t in sorted(events):
        uniq.setdefault((a, e, t in (IN, D_IN, I_IN)), (a, e, t))
    return {"artifacts": n_a, "executions": n_e, "contexts": 3, "events": sorted(uniq.values()),
            "attributions": [(a, rng.randrange(3)) for a in range(0, n_a, 2)],
            "associations": [(e, rng.randrange(3)) for e in range(0, n_e, 3)]}


PIPELINES = {"chain": chain(6), "diamond": diamond(), "fan": fan(),
             **{f"random{s}": random_pipeline(s) for s in range(4)}}


def queries_for(spec: dict) -> list[dict]:
    qs = []
    for start, n in (("starting_artifacts", spec["artifacts"]), ("starting_executions", spec["executions"])):
        for node in sorted({0, n // 2, n - 1}):
            for hops in (0, 1, 2, 3, 5, None):
                for direction in (0, 1, 2, 3):
                    qs.append({"start": start, "filter": f"id = {node + 1}", "hops": hops, "direction": direction})
        qs.append({"start": start, "filter": "id IN (1, 2)", "hops": 4, "direction": 3})
    qs += [
        {"start": "starting_artifacts", "filter": "id = 1", "hops": 6,
         "ending_executions": ("id = 2", False)},
        {"start": "starting_artifacts", "filter": "id = 1", "hops": 6, "direction": 2,
         "ending_executions": ("id = 2", True)},
        {"start": "starting_artifacts", "filter": "id <= 2", "hops": 6,
         "ending_artifacts": ("properties.k.int_value = 1", True)},
        {"start": "starting_executions", "filter": "id = 1", "hops": 6,
         "ending_artifacts": ("properties.k.int_value = 2", False), "direction": 1},
        {"start": "starting_artifacts", "filter": "name LIKE 'a%'", "hops": 2, "mask": ["artifacts", "events"]},
        {"start": "starting_artifacts", "filter": "id = 1", "hops": 3,
         "mask": ["artifact_types", "contexts", "associations", "attributions"]},
        {"start": "starting_executions", "filter": "id = 1", "hops": 3, "mask": ["execution_types", "context_types"]},
        {"start": "starting_artifacts", "filter": "id = 999", "hops": 1},
        {"start": "starting_artifacts", "filter": "", "hops": 1},
        {"start": "starting_artifacts", "filter": "id = 1", "hops": -1},
        {"start": "starting_artifacts", "filter": "id = ", "hops": 1},
    ]
    return qs


def _answers(spec):
    store = _ns["build"](mlmd, pb, spec)
    return [_ns["subgraph"](mlmd, pb, store, q) for q in queries_for(spec)]


def _ref_python():
    python = os.environ.get("MLMD_REF_PYTHON") or str(ROOT / ".venv-ref" / "bin" / "python")
    return python if Path(python).exists() else None


@pytest.mark.reference
@pytest.mark.parametrize("name", list(PIPELINES))
def test_subgraphs_equal_official(name):
    python = _ref_python()
    if python is None:
        pytest.skip("reference ml-metadata venv missing: run scripts/ref_venv.sh")
    spec = PIPELINES[name]
    program = SCRIPT + r'''
import json, sys
import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2 as pb
spec, queries = json.loads(sys.stdin.read())
s = build(mlmd, pb, spec)
print(json.dumps([subgraph(mlmd, pb, s, q) for q in queries]))
'''
    run = subprocess.run([python, "-c", program], input=json.dumps([spec, queries_for(spec)]),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    expected = json.loads(run.stdout.strip().splitlines()[-1])
    ours = json.loads(json.dumps(_answers(spec)))
    bad = [(q, e, o) for q, e, o in zip(queries_for(spec), expected, ours) if e != o]
    assert not bad, f"{len(bad)} of {len(expected)} differ; first: {bad[0]}"


# ------------------------------------------------------------------ hand-worked cases
@pytest.fixture(scope="module")
def chain_store():
    return _ns["build"](mlmd, pb, chain(6))


def sub(store, **q):
    q.setdefault("start", "starting_artifacts")
    return _ns["subgraph"](mlmd, pb, store, q)


def test_hops_count_nodes_on_a_chain(chain_store):
    assert sub(chain_store, filter="id = 1", hops=0)["artifacts"] == [1]
    g = sub(chain_store, filter="id = 1", hops=3)
    assert g["artifacts"] == [1, 2] and g["executions"] == [1, 2]
    assert g["events"] == [[1, 1, IN], [2, 1, OUT], [2, 2, IN]]
    assert sub(chain_store, filter="id = 7", hops=None)["artifacts"] == list(range(1, 8))


def test_directions(chain_store):
    assert sub(chain_store, filter="id = 4", hops=10, direction=1)["artifacts"] == [1, 2, 3, 4]
    assert sub(chain_store, filter="id = 4", hops=10, direction=2)["artifacts"] == [4, 5, 6, 7]
    assert sub(chain_store, filter="id = 4", hops=2, direction=3)["artifacts"] == [3, 4, 5]


def test_ending_nodes_stop_the_traversal(chain_store):
    g = sub(chain_store, filter="id = 1", hops=10, ending_executions=("id = 3", False))
    assert g["executions"] == [1, 2] and g["artifacts"] == [1, 2, 3]
    g = sub(chain_store, filter="id = 1", hops=10, ending_executions=("id = 3", True))
    assert g["executions"] == [1, 2, 3] and [3, 3, IN] in g["events"]


def test_errors(chain_store):
    assert sub(chain_store, filter="id = 99", hops=1) == {"error": "NotFoundError"}
    assert sub(chain_store, filter="", hops=1) == {"error": "InvalidArgumentError"}
    assert sub(chain_store, filter="id = 1", hops=-1) == {"error": "InvalidArgumentError"}
    with pytest.raises(errors.InvalidArgumentError):
        chain_store.get_lineage_subgraph(pb.LineageSubgraphQueryOptions(max_num_hops=1))


def test_traversal_batches_queries_per_hop_not_per_node():
    spec = random_pipeline(7)
    store = _ns["build"](mlmd, pb, {**spec, "artifacts": spec["artifacts"]})
    reads = getattr(getattr(store, "_transport", None), "reads", None)
    conn = reads.reader._conn if reads is not None else None
    if conn is None or not hasattr(conn, "set_trace_callback"):
        pytest.skip("no sqlite connection to trace")
    statements = []
    conn.set_trace_callback(statements.append)
    try:
        request = svc.GetLineageSubgraphRequest()
        request.lineage_subgraph_query_options.starting_artifacts.filter_query = "id > 0"
        request.lineage_subgraph_query_options.max_num_hops = 4
        request.read_mask.paths.append("events")
        store._call("GetLineageSubgraph", request)
    finally:
        conn.set_trace_callback(None)
    event_reads = [s for s in statements if "FROM `Event`" in s or 'FROM "Event"' in s]
    assert len(event_reads) <= 4 + 1  # one batched read per hop (+ chunking)


def _graph(store, query: str, hops=None, max_nodes=None, boundary_a=None, boundary_e=None):
    request = svc.GetLineageGraphRequest()
    request.options.artifacts_options.filter_query = query
    if hops is not None:
        request.options.stop_conditions.max_num_hops = hops
    if max_nodes is not None:
        request.options.max_node_size = max_nodes
    if boundary_a:
        request.options.stop_conditions.boundary_artifacts = boundary_a
    if boundary_e:
        request.options.stop_conditions.boundary_executions = boundary_e
    g = store._call("GetLineageGraph", request).subgraph
    return sorted(a.id for a in g.artifacts), sorted(e.id for e in g.executions), len(g.events)


def test_lineage_graph(chain_store):
    assert _graph(chain_store, "id = 1", hops=2) == ([1, 2], [1], 2)
    assert _graph(chain_store, "id = 1", hops=20, max_nodes=0) == (list(range(1, 8)), list(range(1, 7)), 12)
    assert _graph(chain_store, "id = 1", hops=20) == (list(range(1, 8)), list(range(1, 7)), 12)
    assert _graph(chain_store, "id = 1", hops=20, max_nodes=3) == ([1, 2], [1], 2)
    assert _graph(chain_store, "id = 1", hops=20, boundary_e="id != 3") == ([1, 2, 3], [1, 2], 4)
    assert _graph(chain_store, "id = 4", hops=20, boundary_a="id != 2") == ([3, 4, 5, 6, 7], [2, 3, 4, 5, 6], 9)
    with pytest.raises(errors.NotFoundError):
        _graph(chain_store, "id = 99")
    with pytest.raises(errors.InvalidArgumentError):
        _graph(chain_store, "id = 1", hops=-1)
