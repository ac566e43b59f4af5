"""Fixture databases written by the OFFICIAL ml-metadata, plus its answers to reads.

The official library lives in its own virtualenv (``scripts/ref_venv.sh``) because it
pins an old protobuf. ``build_reference_fixture`` runs a script there that

1. creates a SQLite MLMD store and fills it with a realistic mix of data (versioned
   types with base types and every property kind, artifacts with struct and proto
   values, states, external ids, executions, contexts with parents, attributions,
   associations, events with paths, and enough rows to page past 100);
2. rewrites the node timestamps to a fixed pattern with ties, so ordering by
   CREATE_TIME / LAST_UPDATE_TIME is deterministic and exercises tie-breaking;
3. answers every request in ``reference_reads()`` through the official service layer
   (``MetadataStore._call``: request in, response out, no Python-wrapper reshaping),
   following next_page_tokens for paged reads, and stores the serialized responses
   (or the error class and message) as base64 in a JSON file.

Tests then open the same file with our Reader and compare answer for answer.
"""
from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def reference_python() -> str | None:
    """Path of the reference interpreter, or None when it cannot be made."""
    override = os.environ.get("MLMD_REF_PYTHON")
    if override:
        return override
    venv_python = ROOT / ".venv-ref" / "bin" / "python"
    if venv_python.exists():
        return str(venv_python)
    try:
        out = subprocess.run(["bash", str(ROOT / "scripts" / "ref_venv.sh")], check=True,
                             capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.SubprocessError):
        return None
    path = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    return path or None


@dataclass
class Read:
    """One request sent to both implementations."""

    key: str
    method: str  # service method, e.g. "GetArtifactsByID"
    request: str  # text-format request
    paged: bool = False  # follow next_page_token until it is empty
    unordered: bool = False  # official order depends on a hash set; compare as sets


@dataclass
class Fixture:
    db_path: str
    answers: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------
# The script run inside the reference virtualenv.
# --------------------------------------------------------------------------------------
_REF_SCRIPT = r'''
import base64, json, sqlite3, sys
from google.protobuf import text_format, struct_pb2, any_pb2
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb
from ml_metadata.proto import metadata_store_service_pb2 as svc
from ml_metadata import errors

db_path, reads_path, out_path = sys.argv[1:4]

def open_store():
    cfg = pb.ConnectionConfig()
    cfg.sqlite.filename_uri = db_path
    cfg.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return metadata_store.MetadataStore(cfg)

store = open_store()
S, I, D, B, ST, P = pb.STRING, pb.INT, pb.DOUBLE, pb.BOOLEAN, pb.STRUCT, pb.PROTO

def atype(name, props=None, version=None, base=None, ext=None, desc=None):
    t = pb.ArtifactType(name=name)
    for k, v in (props or {}).items(): t.properties[k] = v
    if version is not None: t.version = version
    if base is not None: t.base_type = base
    if ext is not None: t.external_id = ext
    if desc is not None: t.description = desc
    return store.put_artifact_type(t)

def etype(name, props=None, version=None, base=None, ext=None, desc=None, io=False):
    t = pb.ExecutionType(name=name)
    for k, v in (props or {}).items(): t.properties[k] = v
    if version is not None: t.version = version
    if base is not None: t.base_type = base
    if ext is not None: t.external_id = ext
    if desc is not None: t.description = desc
    if io:
        t.input_type.dict.properties["examples"].simple.name = "Examples"
        t.output_type.any.SetInParent()
    return store.put_execution_type(t)

def ctype(name, props=None, version=None, ext=None, desc=None):
    t = pb.ContextType(name=name)
    for k, v in (props or {}).items(): t.properties[k] = v
    if version is not None: t.version = version
    if ext is not None: t.external_id = ext
    if desc is not None: t.description = desc
    return store.put_context_type(t)

dataset = atype("Dataset", {"split": S, "num": I, "score": D, "flag": B, "meta": ST, "blob": P},
                base=pb.ArtifactType.DATASET, ext="at-dataset", desc="a data set")
model_v1 = atype("Model", {"acc": D}, version="v1", base=pb.ArtifactType.MODEL, ext="at-model-v1")
model_v2 = atype("Model", {"acc": D, "layers": I}, version="v2", base=pb.ArtifactType.MODEL)
model = atype("Model", {"framework": S})
stats = atype("Stats", base=pb.ArtifactType.STATISTICS, desc="")
bare = atype("Bare")
trainer = etype("Trainer", {"steps": I, "lr": D}, base=pb.ExecutionType.TRAIN, ext="et-trainer",
                desc="trains", io=True)
trainer2 = etype("Trainer", {"steps": I}, version="2", base=pb.ExecutionType.TRAIN)
plain = etype("Plain")
pipeline = ctype("Pipeline", {"owner": S, "prio": I}, ext="ct-pipeline", desc="pipelines")
run = ctype("Run", version="r1")
empty_type = ctype("Nobody")

def struct(d):
    s = struct_pb2.Struct(); s.update(d); return s

def packed(msg):
    a = any_pb2.Any(); a.Pack(msg); return a

def props_into(target, values):
    for k, v in values.items():
        if isinstance(v, bool): target[k].bool_value = v
        elif isinstance(v, int): target[k].int_value = v
        elif isinstance(v, float): target[k].double_value = v
        elif isinstance(v, str): target[k].string_value = v
        elif isinstance(v, struct_pb2.Struct): target[k].struct_value.CopyFrom(v)
        else: target[k].proto_value.CopyFrom(v)

def art(type_id, uri=None, name=None, state=None, ext=None, props=None, custom=None):
    a = pb.Artifact(type_id=type_id)
    if uri is not None: a.uri = uri
    if name is not None: a.name = name
    if state is not None: a.state = state
    if ext is not None: a.external_id = ext
    props_into(a.properties, props or {}); props_into(a.custom_properties, custom or {})
    return a

arts = [
    art(dataset, "gs://data/train", "train", pb.Artifact.LIVE, "ext-a1",
        {"split": "train", "num": 1200, "score": 0.75, "flag": True,
         "meta": struct({"rows": 3, "cols": ["a", "b"], "nested": {"x": None, "y": True}}),
         "blob": packed(pb.Value(int_value=7))},
        {"c_int": -5, "c_double": 1.0 / 3.0, "c_big": 123456789012.345678, "c_tiny": 2.5e-7,
         "c_huge": 1e20, "c_str": "hello 'quoted' \"x\" \u00e9", "c_bool": False,
         "c_struct": struct({"k": [1, 2, {"z": "w"}]}), "c_proto": packed(pb.Artifact(id=9, uri="u")),
         "c_empty": ""}),
    art(dataset, "gs://data/eval", "eval", pb.Artifact.PENDING, None, {"split": "eval", "num": 0}),
    art(dataset, "gs://data/train", None, None, "ext-a3"),
    art(model_v1, "gs://m/1", "m1", pb.Artifact.MARKED_FOR_DELETION, "ext-a4", {"acc": 0.91}),
    art(model_v2, "gs://m/2", "m2", pb.Artifact.DELETED, None, {"acc": 0.93, "layers": 12}),
    art(model, "gs://m/3", "m3", pb.Artifact.ABANDONED, None, {"framework": "jax"}),
    art(model, "", "m4", pb.Artifact.REFERENCE, "ext-a7", None, {"note": "empty uri"}),
    art(stats, "gs://s/1", "s1", pb.Artifact.UNKNOWN),
    art(model, "gs://m/1", "m1"),  # same name, other type version
]
art_ids = list(store.put_artifacts(arts))
bare_ids = list(store.put_artifacts([art(bare, "mem://%d" % i, "b%03d" % i) for i in range(130)]))

def exe(type_id, name=None, state=None, ext=None, props=None, custom=None):
    e = pb.Execution(type_id=type_id)
    if name is not None: e.name = name
    if state is not None: e.last_known_state = state
    if ext is not None: e.external_id = ext
    props_into(e.properties, props or {}); props_into(e.custom_properties, custom or {})
    return e

exes = [
    exe(trainer, "train-1", pb.Execution.COMPLETE, "ext-e1", {"steps": 100, "lr": 0.01}, {"who": "me"}),
    exe(trainer, "train-2", pb.Execution.FAILED, None, {"steps": 5}),
    exe(trainer2, "train-1", pb.Execution.RUNNING),
    exe(plain, None, pb.Execution.NEW, "ext-e4"),
    exe(plain, "p2", pb.Execution.CACHED, None, None, {"s": struct({"a": 1})}),
    exe(plain, "p3", pb.Execution.CANCELED),
    exe(plain, "p4"),
]
exe_ids = list(store.put_executions(exes))

def ctx(type_id, name, ext=None, props=None, custom=None):
    c = pb.Context(type_id=type_id, name=name)
    if ext is not None: c.external_id = ext
    props_into(c.properties, props or {}); props_into(c.custom_properties, custom or {})
    return c

ctxs = [
    ctx(pipeline, "pipe-a", "ext-c1", {"owner": "alice", "prio": 1}, {"tag": "x"}),
    ctx(pipeline, "pipe-b", None, {"owner": "bob"}),
    ctx(run, "run-1", "ext-c3"),
    ctx(run, "run-2"),
    ctx(run, "run-3", None, None, {"flag": True}),
    ctx(run, "run-4"),
]
ctx_ids = list(store.put_contexts(ctxs))
c1, c2, r1, r2, r3, r4 = ctx_ids
# Parent links inserted out of id order on purpose.
links = [(r4, c1), (r1, c1), (r3, c1), (r1, c2), (r2, c2), (r3, r1), (r2, r1)]
store.put_parent_contexts([pb.ParentContext(child_id=c, parent_id=p) for c, p in links])

# Attributions and associations, also out of id order.
attr = [(c1, art_ids[3]), (c1, art_ids[0]), (c1, art_ids[2]), (c2, art_ids[1]), (r1, art_ids[0])]
attr += [(c2, b) for b in reversed(bare_ids[:40])]
assoc = [(c1, exe_ids[2]), (c1, exe_ids[0]), (c2, exe_ids[1]), (r1, exe_ids[0])]
store.put_attributions_and_associations(
    [pb.Attribution(context_id=c, artifact_id=a) for c, a in attr],
    [pb.Association(context_id=c, execution_id=e) for c, e in assoc])

def event(a, e, t, steps=(), ms=None):
    ev = pb.Event(type=t)
    if a is not None: ev.artifact_id = a
    if e is not None: ev.execution_id = e
    for s in steps:
        if isinstance(s, int): ev.path.steps.add().index = s
        else: ev.path.steps.add().key = s
    if ms is not None: ev.milliseconds_since_epoch = ms
    return ev

E = pb.Event
store.put_events([
    event(art_ids[0], exe_ids[0], E.INPUT, ("examples", 0), 1000),
    event(art_ids[1], exe_ids[0], E.INPUT, ("examples", 1, "k"), 1001),
    event(art_ids[3], exe_ids[0], E.OUTPUT, ("model",), 1002),
    event(art_ids[3], exe_ids[1], E.INPUT, (), 1003),
    event(art_ids[0], exe_ids[2], E.DECLARED_INPUT, (3,), 5),
    event(art_ids[4], exe_ids[2], E.DECLARED_OUTPUT, ("a", "b", 7, "c"), 6),
    event(art_ids[0], exe_ids[1], E.INTERNAL_INPUT, (), 7),
])
# put_execution writes an execution, its events (with paths) and context links at once.
e_new = exe(trainer, "train-3", pb.Execution.COMPLETE)
a_new = art(dataset, "gs://data/new", "new", pb.Artifact.LIVE)
store.put_execution(e_new, [(a_new, event(None, None, E.OUTPUT, ("out", 0), 2000))], [ctxs[3]],
                    reuse_context_if_already_exist=True)
del store

# Fixed timestamps with ties, not monotonic in id.
con = sqlite3.connect(db_path)
for table in ("Artifact", "Execution", "Context"):
    con.execute(f"UPDATE `{table}` SET create_time_since_epoch = 1000 + ((id * 7) % 11) / 2, "
                f"last_update_time_since_epoch = 5000 + ((id * 5) % 13) / 3")
con.commit(); con.close()

store = open_store()
reads = json.load(open(reads_path))
answers = {}

def run_one(method, request):
    resp = getattr(svc, method + "Response")()
    try:
        store._call(method, request, resp)
    except errors.StatusError as e:
        return {"error": type(e).__name__, "message": str(e)}
    except AttributeError as e:  # method not exposed by the Python extension
        return {"unavailable": str(e)}
    return {"response": base64.b64encode(resp.SerializeToString()).decode()}

for r in reads:
    req = getattr(svc, r["method"] + "Request")()
    text_format.Parse(r["request"], req)
    if not r["paged"]:
        answers[r["key"]] = run_one(r["method"], req)
        continue
    pages = []
    for _ in range(200):
        out = run_one(r["method"], req)
        pages.append(out)
        if "error" in out: break
        resp = getattr(svc, r["method"] + "Response")()
        resp.ParseFromString(base64.b64decode(out["response"]))
        if not resp.next_page_token: break
        req.options.next_page_token = resp.next_page_token
    answers[r["key"]] = {"pages": pages}

answers["_ids"] = {"art": art_ids, "bare": bare_ids, "exe": exe_ids, "ctx": ctx_ids}
json.dump(answers, open(out_path, "w"))
'''


def reference_reads() -> list[Read]:
    """Requests asked of both implementations. Ids follow the script's insertion order:
    artifacts 1..9 then bare 10..139 then 140 (from put_execution); executions 1..7 then
    8; contexts 1..6."""
    reads: list[Read] = []

    def add(key, method, request="", **kw):
        reads.append(Read(key, method, request, **kw))

    # Types.
    for kind in ("Artifact", "Execution", "Context"):
        add(f"{kind}Types", f"Get{kind}Types")
    add("at_dataset", "GetArtifactType", 'type_name: "Dataset"')
    add("at_model_null_version", "GetArtifactType", 'type_name: "Model"')
    add("at_model_v2", "GetArtifactType", 'type_name: "Model" type_version: "v2"')
    add("at_model_empty_version", "GetArtifactType", 'type_name: "Model" type_version: ""')
    add("at_missing", "GetArtifactType", 'type_name: "Nope"')
    add("at_wrong_kind", "GetArtifactType", 'type_name: "Trainer"')
    add("at_simple", "GetArtifactType", 'type_name: "mlmd.Dataset"')
    add("et_trainer", "GetExecutionType", 'type_name: "Trainer"')
    add("et_trainer2", "GetExecutionType", 'type_name: "Trainer" type_version: "2"')
    add("ct_pipeline", "GetContextType", 'type_name: "Pipeline"')
    add("ct_run", "GetContextType", 'type_name: "Run" type_version: "r1"')
    add("ct_missing", "GetContextType", 'type_name: "Run"')
    ids = " ".join(f"type_ids: {i}" for i in (12, 10, 1, 99, 12, 14, 16, 19, 20))
    for kind in ("Artifact", "Execution", "Context"):
        add(f"{kind}TypesByID", f"Get{kind}TypesByID", ids)
    exts = 'external_ids: "et-trainer" external_ids: "at-model-v1" external_ids: "at-dataset" ' \
           'external_ids: "ct-pipeline" external_ids: "zz"'
    for kind in ("Artifact", "Execution", "Context"):
        add(f"{kind}TypesByExternalIds", f"Get{kind}TypesByExternalIds", exts)
        add(f"{kind}TypesByExternalIds_none", f"Get{kind}TypesByExternalIds", 'external_ids: "zz"')
        add(f"{kind}TypesByExternalIds_emptystr", f"Get{kind}TypesByExternalIds",
            'external_ids: "at-dataset" external_ids: ""')
        add(f"{kind}TypesByExternalIds_nolist", f"Get{kind}TypesByExternalIds")

    # Nodes by id.
    add("ArtifactsByID", "GetArtifactsByID",
        " ".join(f"artifact_ids: {i}" for i in (9, 1, 140, 500, 1, 5, 7, 8, 2, 3, 4, 6, 10)))
    add("ArtifactsByID_types", "GetArtifactsByID",
        "populate_artifact_types: true " +
        " ".join(f"artifact_ids: {i}" for i in (9, 1, 140, 500, 5, 4, 12, 8)))
    add("ArtifactsByID_empty", "GetArtifactsByID")
    add("ExecutionsByID", "GetExecutionsByID",
        " ".join(f"execution_ids: {i}" for i in (8, 7, 6, 5, 4, 3, 2, 1, 77)))
    add("ContextsByID", "GetContextsByID", " ".join(f"context_ids: {i}" for i in (6, 1, 3, 2, 4, 5, 0)))

    # Without options: everything.
    for kind in ("Artifacts", "Executions", "Contexts"):
        add(f"All{kind}", f"Get{kind}")

    # By type / by type and name / by uri / by external ids.
    add("ArtifactsByType", "GetArtifactsByType", 'type_name: "Dataset"')
    add("ArtifactsByType_v1", "GetArtifactsByType", 'type_name: "Model" type_version: "v1"')
    add("ArtifactsByType_none", "GetArtifactsByType", 'type_name: "Nope"')
    add("ArtifactsByType_noart", "GetArtifactsByType", 'type_name: "Bare" type_version: "x"')
    add("ExecutionsByType", "GetExecutionsByType", 'type_name: "Plain"')
    add("ContextsByType", "GetContextsByType", 'type_name: "Run" type_version: "r1"')
    add("ContextsByType_empty", "GetContextsByType", 'type_name: "Nobody"')
    add("ContextsByType_empty_opts", "GetContextsByType",
        'type_name: "Nobody" options { max_result_size: -1 next_page_token: "!!" }')
    add("ArtifactByTypeAndName", "GetArtifactByTypeAndName",
        'type_name: "Model" type_version: "v1" artifact_name: "m1"')
    add("ArtifactByTypeAndName_null_version", "GetArtifactByTypeAndName",
        'type_name: "Model" artifact_name: "m1"')
    add("ArtifactByTypeAndName_m3", "GetArtifactByTypeAndName", 'type_name: "Model" artifact_name: "m3"')
    add("ArtifactByTypeAndName_notype", "GetArtifactByTypeAndName", 'type_name: "X" artifact_name: "m3"')
    add("ExecutionByTypeAndName", "GetExecutionByTypeAndName",
        'type_name: "Trainer" type_version: "2" execution_name: "train-1"')
    add("ExecutionByTypeAndName_missing", "GetExecutionByTypeAndName",
        'type_name: "Trainer" execution_name: "nope"')
    add("ContextByTypeAndName", "GetContextByTypeAndName", 'type_name: "Pipeline" context_name: "pipe-b"')
    add("ContextByTypeAndName_missing", "GetContextByTypeAndName",
        'type_name: "Run" context_name: "run-1"')
    add("ArtifactsByURI_one", "GetArtifactsByURI", 'uris: "gs://data/train"')
    add("ArtifactsByURI_many", "GetArtifactsByURI",
        'uris: "gs://m/1" uris: "gs://data/train" uris: "nope" uris: "" uris: "gs://m/1"', unordered=True)
    add("ArtifactsByURI_none", "GetArtifactsByURI")
    add("ArtifactsByExternalIds", "GetArtifactsByExternalIds",
        'external_ids: "ext-a7" external_ids: "ext-a1" external_ids: "zz" external_ids: "ext-a4"')
    add("ArtifactsByExternalIds_none", "GetArtifactsByExternalIds", 'external_ids: "zz"')
    add("ArtifactsByExternalIds_emptystr", "GetArtifactsByExternalIds", 'external_ids: ""')
    add("ExecutionsByExternalIds", "GetExecutionsByExternalIds",
        'external_ids: "ext-e4" external_ids: "ext-e1"')
    add("ContextsByExternalIds", "GetContextsByExternalIds", 'external_ids: "ext-c3" external_ids: "ext-c1"')

    # Graph neighbourhoods.
    for a in (1, 4, 2, 9, 140):
        add(f"ContextsByArtifact_{a}", "GetContextsByArtifact", f"artifact_id: {a}")
    for e in (1, 3, 4, 8):
        add(f"ContextsByExecution_{e}", "GetContextsByExecution", f"execution_id: {e}")
    for c in (1, 2, 3, 5, 4, 99):
        add(f"ArtifactsByContext_{c}", "GetArtifactsByContext", f"context_id: {c}")
        add(f"ExecutionsByContext_{c}", "GetExecutionsByContext", f"context_id: {c}")
        add(f"ParentContextsByContext_{c}", "GetParentContextsByContext", f"context_id: {c}")
        add(f"ChildrenContextsByContext_{c}", "GetChildrenContextsByContext", f"context_id: {c}")
    # The ...ByContexts reads have no official Python entry point; test_reader cross-checks
    # them against the single-context reads instead.

    # Events.
    add("EventsByExecutionIDs", "GetEventsByExecutionIDs",
        " ".join(f"execution_ids: {e}" for e in (3, 1, 2, 8, 42)))
    add("EventsByArtifactIDs", "GetEventsByArtifactIDs",
        " ".join(f"artifact_ids: {a}" for a in (5, 4, 1, 2, 140, 42)))
    add("EventsByExecutionIDs_none", "GetEventsByExecutionIDs", "execution_ids: 42")
    add("EventsByArtifactIDs_empty", "GetEventsByArtifactIDs")

    # Paged lists: every order field and direction, several page sizes.
    orders = [("", "noorder"), ("order_by_field { field: ID is_asc: true }", "id_asc"),
              ("order_by_field { field: ID is_asc: false }", "id_desc"),
              ("order_by_field { field: CREATE_TIME is_asc: true }", "ct_asc"),
              ("order_by_field { field: CREATE_TIME is_asc: false }", "ct_desc"),
              ("order_by_field { field: LAST_UPDATE_TIME is_asc: true }", "lu_asc"),
              ("order_by_field { field: LAST_UPDATE_TIME is_asc: false }", "lu_desc")]
    for order, oname in orders:
        for size in (1, 7, 20, 100):
            add(f"Artifacts_{oname}_{size}", "GetArtifacts",
                f"options {{ max_result_size: {size} {order} }}", paged=True)
        for size in (2, 3):
            add(f"Executions_{oname}_{size}", "GetExecutions",
                f"options {{ max_result_size: {size} {order} }}", paged=True)
            add(f"Contexts_{oname}_{size}", "GetContexts",
                f"options {{ max_result_size: {size} {order} }}", paged=True)
            add(f"ArtifactsByContext_{oname}_{size}", "GetArtifactsByContext",
                f"context_id: 2 options {{ max_result_size: {size} {order} }}", paged=True)
            add(f"ExecutionsByContext_{oname}_{size}", "GetExecutionsByContext",
                f"context_id: 1 options {{ max_result_size: {size} {order} }}", paged=True)
            add(f"ArtifactsByType_{oname}_{size}", "GetArtifactsByType",
                f'type_name: "Dataset" options {{ max_result_size: {size} {order} }}', paged=True)
            add(f"ExecutionsByType_{oname}_{size}", "GetExecutionsByType",
                f'type_name: "Plain" options {{ max_result_size: {size} {order} }}', paged=True)
            add(f"ContextsByType_{oname}_{size}", "GetContextsByType",
                f'type_name: "Run" type_version: "r1" options {{ max_result_size: {size} {order} }}',
                paged=True)
    add("Artifacts_default_options", "GetArtifacts", "options {}", paged=True)
    add("Artifacts_bare_type_100", "GetArtifactsByType",
        'type_name: "Bare" options { max_result_size: 100 }', paged=True)
    add("Artifacts_over_cap", "GetArtifacts", "options { max_result_size: 150 }", paged=True)
    add("Artifacts_over_cap_desc", "GetArtifacts",
        "options { max_result_size: 101 order_by_field { field: CREATE_TIME is_asc: false } }", paged=True)
    # Errors in options.
    add("Artifacts_zero_size", "GetArtifacts", "options { max_result_size: 0 }")
    add("Artifacts_unspecified_field", "GetArtifacts",
        "options { order_by_field { field: FIELD_UNSPECIFIED } }")
    add("Artifacts_bad_token", "GetArtifacts", 'options { next_page_token: "not a token!" }')
    add("Artifacts_garbage_token", "GetArtifacts", 'options { next_page_token: "AAAA" }')
    add("ArtifactsByContext_bad_token_empty_ctx", "GetArtifactsByContext",
        'context_id: 6 options { next_page_token: "not a token!" }')
    return reads


def build_reference_fixture(workdir: str | os.PathLike, ref_python: str) -> Fixture:
    """Writes ``mlmd.sqlite`` and the official answers into ``workdir``."""
    workdir = Path(workdir)
    db_path = workdir / "mlmd.sqlite"
    reads_path = workdir / "reads.json"
    out_path = workdir / "answers.json"
    script_path = workdir / "ref_script.py"
    script_path.write_text(_REF_SCRIPT)
    reads_path.write_text(json.dumps([r.__dict__ for r in reference_reads()]))
    if db_path.exists():
        db_path.unlink()
    env = dict(os.environ, PYTHONPATH="", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([ref_python, str(script_path), str(db_path), str(reads_path),
                           str(out_path)], capture_output=True, text=True, timeout=300, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"reference script failed:\n{done.stderr[-4000:]}")
    return Fixture(str(db_path), json.loads(out_path.read_text()))
