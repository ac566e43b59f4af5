"""The filter-query language (ListOptions.filter_query): every clause, checked as result
sets on a seeded store, the same queries compared with the official ml-metadata 1.17.1,
and random strings fed to the parser (only InvalidArgumentError or a result).
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlmd_log as mlmd
from mlmd_log import errors
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.proto import metadata_store_service_pb2 as svc
from mlmd_log.query import filter as fq
from mlmd_log.query import filter_sql

ROOT = Path(__file__).resolve().parent.parent

# Builds the same store with either library (``mlmd``/``pb`` are given) and answers
# queries: run here with mlmd_log and in the reference venv with ml_metadata.
SEED_SCRIPT = r'''
def seed(mlmd, pb):
    c = pb.ConnectionConfig(); c.fake_database.SetInParent()
    s = mlmd.MetadataStore(c)
    dt = s.put_artifact_type(pb.ArtifactType(name="DataSet", properties={"span": pb.INT, "split": pb.STRING}))
    mt = s.put_artifact_type(pb.ArtifactType(name="Model", properties={"acc": pb.DOUBLE, "ok": pb.BOOLEAN}))
    tt = s.put_execution_type(pb.ExecutionType(name="Trainer", properties={"steps": pb.INT}))
    rt = s.put_context_type(pb.ContextType(name="Run"))
    pt = s.put_context_type(pb.ContextType(name="Pipeline"))
    arts = []
    for i in range(6):
        a = pb.Artifact(type_id=dt, uri=f"/data/{i}", name=f"d{i}")
        a.properties["span"].int_value = i
        if i % 2:
            a.properties["split"].string_value = "train" if i < 4 else "Eval"
        a.custom_properties["my key"].string_value = f"v{i % 3}"
        if i % 3 == 0:
            a.state = pb.Artifact.LIVE
        elif i % 3 == 1:
            a.state = pb.Artifact.PENDING
        if i == 5:
            a.external_id = "ext-d5"
        arts.append(a)
    for i in range(3):
        m = pb.Artifact(type_id=mt, uri=f"/model/{i}", **({"name": f"m{i}"} if i else {}))
        m.properties["acc"].double_value = 0.5 + i * 0.2
        m.properties["ok"].bool_value = i != 1
        m.custom_properties["tag"].int_value = i
        arts.append(m)
    aids = s.put_artifacts(arts)
    exes = []
    for i in range(3):
        e = pb.Execution(type_id=tt, name=f"t{i}")
        e.properties["steps"].int_value = 100 * i
        e.last_known_state = [pb.Execution.RUNNING, pb.Execution.COMPLETE, pb.Execution.FAILED][i]
        exes.append(e)
    eids = s.put_executions(exes + [pb.Execution(type_id=tt)])
    cids = s.put_contexts([pb.Context(type_id=rt, name="run1"), pb.Context(type_id=rt, name="run2"),
                           pb.Context(type_id=pt, name="pipe")])
    ev = []
    for k in range(3):
        ev.append(pb.Event(artifact_id=aids[2 * k], execution_id=eids[k], type=pb.Event.INPUT,
                           milliseconds_since_epoch=1000 + k))
        ev.append(pb.Event(artifact_id=aids[6 + k], execution_id=eids[k], type=pb.Event.OUTPUT,
                           milliseconds_since_epoch=2000 + k))
    ev.append(pb.Event(artifact_id=aids[1], execution_id=eids[0], type=pb.Event.DECLARED_INPUT))
    s.put_events(ev)
    s.put_attributions_and_associations(
        [pb.Attribution(artifact_id=aids[i], context_id=cids[0]) for i in (0, 1, 2, 6)]
        + [pb.Attribution(artifact_id=aids[i], context_id=cids[1]) for i in (2, 3, 7)]
        + [pb.Attribution(artifact_id=aids[i], context_id=cids[2]) for i in range(9)],
        [pb.Association(execution_id=eids[0], context_id=cids[0]),
         pb.Association(execution_id=eids[1], context_id=cids[1]),
         pb.Association(execution_id=eids[0], context_id=cids[2])])
    s.put_parent_contexts([pb.ParentContext(child_id=cids[0], parent_id=cids[2]),
                           pb.ParentContext(child_id=cids[1], parent_id=cids[2])])
    return s

def answer(mlmd, s, kind, query, **options):
    try:
        nodes = getattr(s, f"get_{kind}s")(list_options=mlmd.ListOptions(filter_query=query, **options))
        return [n.id for n in nodes]
    except Exception as e:
        return {"error": type(e).__name__}

def ordered_options(mlmd, s, kind, query):
    """A page of 2 by create time descending, then the rest through the token."""
    opts = mlmd.ListOptions(limit=2, order_by=mlmd.OrderByField.CREATE_TIME, is_asc=False, filter_query=query)
    try:
        return [n.id for n in getattr(s, f"get_{kind}s")(list_options=opts)]
    except Exception as e:
        return {"error": type(e).__name__}
'''
_ns: dict = {}
exec(SEED_SCRIPT, _ns)  # noqa: S102 - test helper text shared with the reference run

# (kind, query, expected ids) -- ids: artifacts 1..6 DataSets d0..d5, 7..9 Models;
# executions 1..3 t0..t2 + 4 (unnamed); contexts 1 run1, 2 run2, 3 pipe.
CASES = [
    # attributes
    ("artifact", "id = 3", [3]),
    ("artifact", "id != 3 AND id < 5", [1, 2, 4]),
    ("artifact", "id > 7", [8, 9]),
    ("artifact", "id >= 8 OR id <= 1", [1, 8, 9]),
    ("artifact", "id IN (1, 5, 99)", [1, 5]),
    ("artifact", "id NOT IN (1, 2, 3, 4, 5)", [6, 7, 8, 9]),
    ("artifact", "type = 'Model'", [7, 8, 9]),
    ("artifact", "type_id = 11", [7, 8, 9]),
    ("artifact", "name = 'd2'", [3]),
    ("artifact", 'name = "d2"', [3]),
    ("artifact", "name LIKE 'm%'", [8, 9]),
    ("artifact", "name NOT LIKE 'd%'", [8, 9]),
    ("artifact", "name IS NULL", [7]),
    ("artifact", "uri LIKE '/model/%'", [7, 8, 9]),
    ("artifact", "uri IS NOT NULL AND uri = '/data/4'", [5]),
    ("artifact", "external_id = 'ext-d5'", [6]),
    ("artifact", "external_id IS NOT NULL", [6]),
    ("artifact", "state = LIVE", [1, 4]),
    ("artifact", "state != LIVE", [2, 3, 5, 6, 7, 8, 9]),
    ("artifact", "state IN (LIVE, PENDING)", [1, 2, 4, 5]),
    ("artifact", "state NOT IN (PENDING)", [1, 3, 4, 6, 7, 8, 9]),
    ("artifact", "state IS NULL", [3, 6, 7, 8, 9]),
    ("artifact", "create_time_since_epoch > 0 AND last_update_time_since_epoch > 0 AND id < 3", [1, 2]),
    ("execution", "last_known_state = COMPLETE", [2]),
    ("execution", "last_known_state != RUNNING", [2, 3, 4]),
    ("execution", "last_known_state IN (RUNNING, FAILED)", [1, 3]),
    ("execution", "name IS NULL", [4]),
    ("context", "type = 'Run'", [1, 2]),
    ("context", "name LIKE 'run%' AND NOT name = 'run2'", [1]),
    # properties and custom properties
    ("artifact", "properties.span.int_value >= 4", [5, 6]),
    ("artifact", "properties.split.string_value = 'train'", [2, 4]),
    ("artifact", "properties.split.string_value IS NULL", []),
    ("artifact", "properties.acc.double_value > 0.6", [8, 9]),
    ("artifact", "properties.ok.bool_value = true", [7, 9]),
    ("artifact", "properties.ok.bool_value", [7, 9]),
    ("artifact", "NOT properties.ok.bool_value", [8]),
    ("artifact", "custom_properties.`my key`.string_value = 'v1'", [2, 5]),
    ("artifact", "custom_properties.tag.int_value IN (0, 2)", [7, 9]),
    ("artifact", "custom_properties.tag.int_value > 0.5", [8, 9]),
    ("execution", "properties.steps.int_value < 150", [1, 2]),
    # neighbours
    ("artifact", "contexts_a.name = 'run1'", [1, 2, 3, 7]),
    ("artifact", "contexts_a.name = 'run1' AND contexts_b.name = 'run2'", [3]),
    ("artifact", "contexts_a.name = 'run1' AND contexts_a.name = 'run2'", []),
    ("artifact", "contexts_a.type = 'Pipeline' AND type = 'Model'", [7, 8, 9]),
    ("artifact", "contexts_0.id = 2", [3, 4, 8]),
    ("artifact", "NOT contexts_a.name = 'pipe'", [1, 2, 3, 4, 7, 8]),
    ("artifact", "contexts_a.name = 'run2' OR id = 9", [3, 4, 8, 9]),
    ("artifact", "events_a.type = INPUT", [1, 3, 5]),
    ("artifact", "events_a.type != INPUT", [2, 7, 8, 9]),
    ("artifact", "events_a.type IN (OUTPUT, DECLARED_INPUT)", [2, 7, 8, 9]),
    ("artifact", "events_a.execution_id = 1", [1, 2, 7]),
    ("artifact", "events_a.milliseconds_since_epoch >= 2001", [2, 8, 9]),  # 2: time of put
    ("execution", "events_x.artifact_id = 8", [2]),
    ("execution", "events_x.type = OUTPUT AND events_y.type = DECLARED_INPUT", [1]),
    ("execution", "contexts_c.name = 'pipe'", [1]),
    ("context", "artifacts_a.name = 'd3'", [2, 3]),
    ("context", "artifacts_a.state = LIVE AND artifacts_b.type = 'Model'", [1, 2, 3]),
    ("context", "executions_e.name = 't1'", [2]),
    ("context", "executions_e.last_known_state IN (RUNNING)", [1, 3]),
    ("context", "parent_contexts_p.name = 'pipe'", [1, 2]),
    ("context", "child_contexts_c.name = 'run1'", [3]),
    ("context", "child_contexts_c.type = 'Run' AND parent_contexts_p.id = 3", []),
    # boolean structure, parentheses, literals
    ("artifact", "(id = 1 OR id = 2) AND NOT (id = 2)", [1]),
    ("artifact", "NOT (id < 8 OR name = 'm1')", [9]),
    ("artifact", "id = 1 or ID = 2", [1, 2]),
    ("artifact", "TRUE AND id < 2", [1]),
    ("artifact", "id BETWEEN 2 AND 3", [2, 3]),
    ("artifact", "name = 'd\\x31'", [2]),
    ("artifact", "id = -1", []),
]

ERRORS = [
    ("artifact", "id = 'x'"), ("artifact", "name = 1"), ("artifact", "id"), ("artifact", "NULL"),
    ("artifact", "NOT NULL"), ("artifact", "state = 2"), ("artifact", "state = live"),
    ("artifact", "events_a.type = 1"), ("artifact", "id = 1 AND"), ("artifact", "(id = 1"),
    ("artifact", "nope = 1"), ("artifact", "last_known_state = RUNNING"), ("execution", "uri = 'x'"),
    ("context", "contexts_a.name = 'x'"), ("artifact", "artifacts_a.name = 'x'"),
    ("artifact", "properties.x.float_value = 1"), ("artifact", "name LIKE 1"),
    ("artifact", "properties.ok.bool_value = 1"), ("artifact", "state IN ()"), ("artifact", "'unclosed"),
    ("context", "artifacts_a.state != LIVE"), ("artifact", "name IS TRUE"), ("artifact", "id IN (1, 'a')"),
    ("artifact", "contexts_a.uri = 'x'"), ("artifact", "id = 99999999999999999999"),
]


@pytest.fixture(scope="module")
def store():
    return _ns["seed"](mlmd, pb)


def ids(store, kind, query):
    return _ns["answer"](mlmd, store, kind, query)


@pytest.mark.parametrize("kind,query,expected", CASES, ids=[c[1] for c in CASES])
def test_clause_result_set(store, kind, query, expected):
    assert ids(store, kind, query) == expected


@pytest.mark.parametrize("kind,query", ERRORS, ids=[e[1] for e in ERRORS])
def test_invalid_query_is_invalid_argument(store, kind, query):
    assert ids(store, kind, query) == {"error": "InvalidArgumentError"}


def test_error_names_position_and_expectation():
    with pytest.raises(errors.InvalidArgumentError, match=r"expected AND, OR .* got 'ORR' at position 8"):
        fq.parse("id = 1 ORR id = 2", "artifact")
    with pytest.raises(errors.InvalidArgumentError, match="expected"):
        fq.parse("id = ", "artifact")


def test_literals_are_bound_parameters():
    compiled = filter_sql.compile_text("name = 'x\\' OR 1=1 --' AND custom_properties.`a\"b`.int_value = 3",
                                       "artifact")
    assert "x'" not in compiled.where and "a\"b" not in compiled.where
    assert "x' OR 1=1 --" in compiled.params and "a\"b" in compiled.params and 3 in compiled.params


def test_neighbour_fields_mlmd_cannot_read_fail_as_internal(store):
    assert ids(store, "context", "artifacts_a.external_id = 'x'") == {"error": "InternalError"}


def test_filter_works_with_ordering_paging_and_type_and_context_lists(store):
    assert _ns["ordered_options"](mlmd, store, "artifact", "type = 'DataSet' AND id > 1") == [6, 5]
    run1 = store.get_artifacts_by_context(1, list_options=mlmd.ListOptions(filter_query="type = 'Model'"))
    assert [a.id for a in run1] == [7]
    execs = store.get_executions_by_context(3, list_options=mlmd.ListOptions(filter_query="name = 't0'"))
    assert [e.id for e in execs] == [1]
    request = svc.GetArtifactsByTypeRequest(type_name="DataSet")
    request.options.max_result_size = 1
    request.options.filter_query = "properties.span.int_value < 3"
    seen = []
    while True:
        response = store._call("GetArtifactsByType", request)
        seen += [a.id for a in response.artifacts]
        if not response.next_page_token:
            break
        request.options.next_page_token = response.next_page_token
    assert seen == [1, 2, 3]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(
        ["id", "name", "state", "type", "=", "!=", "<", ">=", "LIKE", "IN", "NOT", "IS", "NULL",
         "AND", "OR", "(", ")", ",", "'a'", '"b"', "1", "2.5", "-", "LIVE", "TRUE", "contexts_a.name",
         "properties.p.int_value", "custom_properties.`x y`.string_value", "events_e.type", "INPUT",
         "BETWEEN", ".", "`", "'", "\\"]), max_size=12).map(" ".join)))
def test_random_strings_give_a_result_or_invalid_argument(store, text):
    for kind in ("artifact", "execution", "context"):
        try:
            getattr(store, f"get_{kind}s")(list_options=mlmd.ListOptions(filter_query=text))
        except errors.InvalidArgumentError:
            pass
        except errors.InternalError as e:  # only MLMD's unreadable neighbour fields
            assert "no such column" in str(e)


# ------------------------------------------------------------------ the reference
def _ref_python() -> str | None:
    python = os.environ.get("MLMD_REF_PYTHON") or str(ROOT / ".venv-ref" / "bin" / "python")
    return python if Path(python).exists() else None


@pytest.mark.reference
def test_same_answers_as_official_ml_metadata(store):
    python = _ref_python()
    if python is None:
        pytest.skip("reference ml-metadata venv missing: run scripts/ref_venv.sh")
    queries = [(k, q) for k, q, _ in CASES] + ERRORS
    program = SEED_SCRIPT + r'''
import json, sys
import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2 as pb
queries = json.loads(sys.stdin.read())
s = seed(mlmd, pb)
out = [answer(mlmd, s, k, q) for k, q in queries]
out.append(ordered_options(mlmd, s, "artifact", "type = 'DataSet' AND id > 1"))
print(json.dumps(out))
'''
    run = subprocess.run([python, "-c", program], input=json.dumps(queries), capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    expected = json.loads(run.stdout.strip().splitlines()[-1])
    ours = [ids(store, k, q) for k, q in queries]
    ours.append(_ns["ordered_options"](mlmd, store, "artifact", "type = 'DataSet' AND id > 1"))
    mismatches = [(q, e, o) for q, e, o in zip(queries + [("ordered", "")], expected, ours) if e != o]
    assert not mismatches, mismatches


# Clauses over every kind of source (attributes, the type, properties, custom properties,
# one or two neighbour aliases, events), combined at random below.
CLAUSES = {
    "artifact": ["type = 'DataSet'", "type = 'Model'", "uri LIKE '/data/%'", "name = 'd1'", "state = LIVE",
                 "uri LIKE '%/1'", "uri LIKE '%DEL/2'", "uri LIKE '%a/_'",
                 "id > 3", "external_id IS NULL", "name LIKE 'd%'", "properties.span.int_value >= 2",
                 "properties.split.string_value = 'train'", "properties.split.string_value IS NOT NULL",
                 "properties.acc.double_value > 0.6", "custom_properties.`my key`.string_value = 'v1'",
                 "custom_properties.tag.int_value IN (0, 2)", "contexts_a.name = 'run1'",
                 "contexts_a.type = 'Pipeline'", "contexts_b.name = 'run2'", "events_e.type = INPUT",
                 "events_e.milliseconds_since_epoch > 1001"],
    "execution": ["type = 'Trainer'", "name = 't1'", "last_known_state = COMPLETE", "id != 2", "name IS NULL",
                  "properties.steps.int_value > 50", "contexts_a.name = 'run1'", "contexts_a.type = 'Run'",
                  "contexts_b.type = 'Pipeline'", "events_e.type = OUTPUT", "events_e.artifact_id > 3"],
    "context": ["type = 'Run'", "name LIKE 'run%'", "id < 3", "artifacts_a.name = 'd2'",
                "artifacts_a.uri LIKE '/model/%'", "executions_e.name = 't0'", "child_contexts_c.name = 'run1'",
                "parent_contexts_p.name = 'pipe'"],
}


def _random_filter(rng, kind: str, depth: int = 0) -> str:
    roll = rng.random()
    if depth >= 2 or roll < 0.3:
        return rng.choice(CLAUSES[kind])
    if roll < 0.4:
        return f"NOT ({_random_filter(rng, kind, depth + 1)})"
    op = "AND" if roll < 0.8 else "OR"
    items = [_random_filter(rng, kind, depth + 1) for _ in range(rng.randint(2, 3))]
    return "(" + f" {op} ".join(items) + ")" if depth else f" {op} ".join(items)


@pytest.mark.reference
def test_generated_combinations_match_official_ml_metadata(store):
    """300 seeded random boolean combinations of clauses over several sources (same alias
    twice, two aliases, properties with neighbours ...): the same ids as the official
    library, and for 100 of them the same pages in create-time order."""
    python = _ref_python()
    if python is None:
        pytest.skip("reference ml-metadata venv missing: run scripts/ref_venv.sh")
    import random
    rng = random.Random(20261125)
    queries = [(kind, _random_filter(rng, kind)) for kind in ("artifact", "execution", "context")
               for _ in range(100)]
    program = SEED_SCRIPT + r'''
import json, sys
import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2 as pb
queries = json.loads(sys.stdin.read())
s = seed(mlmd, pb)
paged = [ordered_options(mlmd, s, k, q) for k, q in queries[::3]]
print(json.dumps([answer(mlmd, s, k, q) for k, q in queries] + paged))
'''
    run = subprocess.run([python, "-c", program], input=json.dumps(queries), capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    expected = json.loads(run.stdout.strip().splitlines()[-1])
    # Every third query again in pages of 2, newest first, through next_page_token.
    ours = [_ns["answer"](mlmd, store, k, q) for k, q in queries] + \
        [_ns["ordered_options"](mlmd, store, k, q) for k, q in queries[::3]]
    queries = queries + [(k, "paged: " + q) for k, q in queries[::3]]
    mismatches = [(q, e, o) for q, e, o in zip(queries, expected, ours) if e != o]
    assert not mismatches, [m[0][1] for m in mismatches]
    # The combinations are not degenerate: many match something, and not everything.
    sizes = [len(e) for e in expected if isinstance(e, list)]
    assert sum(1 for n in sizes if n) > 100 and sum(1 for n in sizes if not n) > 20


def test_uri_suffix_filters_use_reversed_uris_and_mean_the_same():
    """`uri LIKE '%suffix'` reads mlmdlog_artifact_ruri (a prefix seek on reversed uris):
    the same answers as LIKE over the uris themselves, case-insensitive as SQLite's LIKE,
    and following updates of the uri."""
    config = pb.ConnectionConfig()
    config.fake_database.SetInParent()
    s = mlmd.MetadataStore(config)
    t = s.put_artifact_type(pb.ArtifactType(name="T"))
    uris = ["/a/model.pb", "/b/MODEL.PB", "/c/model.pbx", "", "/d/données/é", "/e/x_y", "/f/model.pb/",
            "model.pb", "/g/100%", "/h/mod"]
    ids = s.put_artifacts([pb.Artifact(type_id=t, uri=u) for u in uris])
    moved = pb.Artifact(id=ids[-1], type_id=t, uri="/h/moved/model.pb")  # an update changes the uri
    s.put_artifacts([moved])
    uris[-1] = moved.uri
    masked = pb.Artifact(id=ids[2], uri="/c/masked/model.pb", name="ignored")  # a masked update too
    s.put_artifacts([masked], field_mask_paths=["uri"])
    uris[2] = masked.uri

    def like(pattern):  # SQLite's LIKE without wildcards but the leading %: ASCII case folded
        suffix = pattern[1:]
        fold = lambda text: "".join(c.lower() if c.isascii() else c for c in text)  # noqa: E731
        return [i for i, u in zip(ids, uris) if fold(u).endswith(fold(suffix))]

    for pattern in ["%model.pb", "%MODEL.pb", "%.pbx", "%/", "%é", "%É", "%/h/mod", "%/d/données/é"]:
        got = [a.id for a in s.get_artifacts(list_options=mlmd.ListOptions(filter_query=f"uri LIKE '{pattern}'"))]
        assert got == like(pattern), pattern
        assert "mlmdlog_artifact_ruri" in filter_sql.compile_text(
            f"uri LIKE '{pattern}'", "artifact", reversed_uris=True).where
    # Other patterns keep the plain LIKE, with the same meaning.
    for pattern, expected in [("%x_y", [ids[5]]), ("%model%", [ids[0], ids[1], ids[2], ids[6], ids[7], ids[9]])]:
        assert "mlmdlog_artifact_ruri" not in filter_sql.compile_text(
            f"uri LIKE '{pattern}'", "artifact", reversed_uris=True).where
        got = [a.id for a in s.get_artifacts(list_options=mlmd.ListOptions(filter_query=f"uri LIKE '{pattern}'"))]
        assert got == expected, pattern
    not_like = [a.id for a in s.get_artifacts(list_options=mlmd.ListOptions(filter_query="uri NOT LIKE '%model.pb'"))]
    assert not_like == [i for i in ids if i not in like("%model.pb")]


def test_uri_suffix_filters_on_projections_without_reversed_uris(tmp_path):
    """A projection written before mlmdlog_artifact_ruri existed is backfilled when it is
    opened for writing; a reader facing a table behind the newest artifact (a writer that
    does not keep it) falls back to LIKE over the uris. Either way no artifact goes missing."""
    import sqlite3
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = str(tmp_path / "p.sqlite")
    s = mlmd.MetadataStore(config)
    t = s.put_artifact_type(pb.ArtifactType(name="T"))
    ids = s.put_artifacts([pb.Artifact(type_id=t, uri=f"/x/{i}/model.pb") for i in range(5)])
    s.close()
    query = mlmd.ListOptions(filter_query="uri LIKE '%/model.pb'")

    conn = sqlite3.connect(config.sqlite.filename_uri)
    conn.execute("DROP TABLE mlmdlog_artifact_ruri")  # as an older mlmd-log left it
    conn.execute("DROP TABLE mlmdlog_meta")
    conn.commit()
    conn.close()
    s = mlmd.MetadataStore(config)
    assert [a.id for a in s.get_artifacts(list_options=query)] == ids
    s.close()
    conn = sqlite3.connect(config.sqlite.filename_uri)
    assert conn.execute("SELECT COUNT(*) FROM mlmdlog_artifact_ruri").fetchone() == (5,)
    conn.execute("DELETE FROM mlmdlog_artifact_ruri WHERE id = ?", (ids[-1],))  # newest artifact unknown
    conn.commit()
    conn.close()
    config.sqlite.connection_mode = config.sqlite.READONLY
    reader = mlmd.MetadataStore(config)
    assert [a.id for a in reader.get_artifacts(list_options=query)] == ids
