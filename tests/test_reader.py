"""The Reader answers like official MLMD: same messages, order, pages, tokens, errors.

Reference tests open a SQLite store written by the official ml-metadata 1.17.1 and
compare our answer to the official service's answer for every request in
``ref_fixture.reference_reads()``. Unit tests pin down error cases without it.
"""
from __future__ import annotations

import base64
import sqlite3

import pytest

from mlmd_log import errors
from mlmd_log.projections.ddl import SIMPLE_TYPES, SQLITE_MLMD
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.proto import metadata_store_service_pb2 as svc
from mlmd_log.query import paging
from mlmd_log.query.reader import Page, Reader

import ref_fixture
from google.protobuf import text_format


# ----------------------------------------------------------------- request adapter
def _opt(request, field):
    return getattr(request, field) if request.HasField(field) else None


def _version(request):
    return request.type_version if request.HasField("type_version") else None


def _page_into(response, items_field, page: Page):
    getattr(response, items_field).extend(page.items)
    if page.next_page_token is not None:
        response.next_page_token = page.next_page_token


def answer(reader: Reader, method: str, request):
    """Our response to one service request (what a server built on Reader returns)."""
    resp = getattr(svc, method + "Response")()
    kinds = {"Artifact": "artifact", "Execution": "execution", "Context": "context"}
    for kind, low in kinds.items():
        if method == f"Get{kind}Type":
            getattr(resp, f"{low}_type").CopyFrom(
                getattr(reader, f"get_{low}_type")(request.type_name, _version(request)))
            return resp
        if method == f"Get{kind}Types":
            getattr(resp, f"{low}_types").extend(getattr(reader, f"get_{low}_types")())
            return resp
        if method == f"Get{kind}TypesByID":
            getattr(resp, f"{low}_types").extend(
                reader.get_types_by_id(getattr(pb, f"{kind}Type"), request.type_ids))
            return resp
        if method == f"Get{kind}TypesByExternalIds":
            getattr(resp, f"{low}_types").extend(
                reader.get_types_by_external_ids(getattr(pb, f"{kind}Type"), request.external_ids))
            return resp
        if method == f"Get{kind}sByExternalIds":
            getattr(resp, f"{low}s").extend(
                getattr(reader, f"get_{low}s_by_external_ids")(request.external_ids))
            return resp
        if method == f"Get{kind}s":
            _page_into(resp, f"{low}s", getattr(reader, f"get_{low}s")(_opt(request, "options")))
            return resp
        if method == f"Get{kind}sByType":
            _page_into(resp, f"{low}s", getattr(reader, f"get_{low}s_by_type")(
                request.type_name, _version(request), _opt(request, "options")))
            return resp
        if method == f"Get{kind}ByTypeAndName":
            node = getattr(reader, f"get_{low}_by_type_and_name")(
                request.type_name, getattr(request, f"{low}_name"), _version(request))
            if node is not None:
                getattr(resp, low).CopyFrom(node)
            return resp
    if method == "GetArtifactsByID":
        if request.populate_artifact_types:
            arts, types = reader.get_artifacts_and_types_by_artifact_ids(request.artifact_ids)
            resp.artifacts.extend(arts)
            resp.artifact_types.extend(types)
        else:
            resp.artifacts.extend(reader.get_artifacts_by_id(request.artifact_ids))
    elif method == "GetExecutionsByID":
        resp.executions.extend(reader.get_executions_by_id(request.execution_ids))
    elif method == "GetContextsByID":
        resp.contexts.extend(reader.get_contexts_by_id(request.context_ids))
    elif method == "GetArtifactsByURI":
        resp.artifacts.extend(reader.get_artifacts_by_uri(request.uris))
    elif method == "GetContextsByArtifact":
        resp.contexts.extend(reader.get_contexts_by_artifact(request.artifact_id))
    elif method == "GetContextsByExecution":
        resp.contexts.extend(reader.get_contexts_by_execution(request.execution_id))
    elif method == "GetArtifactsByContext":
        _page_into(resp, "artifacts",
                   reader.get_artifacts_by_context(request.context_id, _opt(request, "options")))
    elif method == "GetExecutionsByContext":
        _page_into(resp, "executions",
                   reader.get_executions_by_context(request.context_id, _opt(request, "options")))
    elif method == "GetParentContextsByContext":
        resp.contexts.extend(reader.get_parent_contexts_by_context(request.context_id))
    elif method == "GetChildrenContextsByContext":
        resp.contexts.extend(reader.get_children_contexts_by_context(request.context_id))
    elif method == "GetParentContextsByContexts":
        for child, parents in reader.get_parent_contexts_by_contexts(request.context_ids).items():
            resp.contexts[child].parent_contexts.extend(parents)
    elif method == "GetChildrenContextsByContexts":
        for parent, children in reader.get_children_contexts_by_contexts(request.context_ids).items():
            resp.contexts[parent].children_contexts.extend(children)
    elif method == "GetEventsByExecutionIDs":
        resp.events.extend(reader.get_events_by_execution_ids(request.execution_ids))
    elif method == "GetEventsByArtifactIDs":
        resp.events.extend(reader.get_events_by_artifact_ids(request.artifact_ids))
    else:
        raise AssertionError(f"no adapter for {method}")
    return resp


def outcome(reader: Reader, method: str, request) -> dict:
    try:
        return {"response": answer(reader, method, request)}
    except errors.StatusError as exc:
        return {"error": type(exc).__name__, "message": exc.message}


# ----------------------------------------------------------------- reference tests
READS = {r.key: r for r in ref_fixture.reference_reads()}


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    python = ref_fixture.reference_python()
    if python is None:
        pytest.skip("the reference virtualenv (scripts/ref_venv.sh) cannot be created")
    return ref_fixture.build_reference_fixture(tmp_path_factory.mktemp("ref"), python)


@pytest.fixture(scope="module")
def ref_reader(ref):
    conn = sqlite3.connect(f"file:{ref.db_path}?mode=ro", uri=True)
    yield Reader(conn)
    conn.close()


def _official(method: str, answer_: dict) -> dict:
    if "error" in answer_:
        return answer_
    resp = getattr(svc, method + "Response")()
    resp.ParseFromString(base64.b64decode(answer_["response"]))
    return {"response": resp}


def _sorted_by_id(resp):
    for field in ("artifacts", "executions", "contexts"):
        if hasattr(resp, field):
            items = sorted(getattr(resp, field), key=lambda n: n.id)
            resp.ClearField(field)
            getattr(resp, field).extend(items)
    return resp


def _assert_same(ours: dict, official: dict, unordered: bool = False):
    if "error" in official:
        assert ours.get("error") == official["error"], ours
        assert ours.get("message") == official["message"]
        return
    assert "error" not in ours, ours
    mine, theirs = ours["response"], official["response"]
    if unordered:
        mine, theirs = _sorted_by_id(mine), _sorted_by_id(theirs)
    assert mine == theirs, (
        f"\nours:\n{text_format.MessageToString(mine)}\nofficial:\n"
        f"{text_format.MessageToString(theirs)}")


@pytest.mark.reference
@pytest.mark.parametrize("key", sorted(READS))
def test_matches_official(key, ref, ref_reader):
    read = READS[key]
    official = ref.answers[key]
    assert "unavailable" not in official and "unavailable" not in (official.get("pages") or [{}])[0], \
        f"the reference could not answer {read.method}"
    request = getattr(svc, read.method + "Request")()
    text_format.Parse(read.request, request)
    if not read.paged:
        _assert_same(outcome(ref_reader, read.method, request), _official(read.method, official),
                     read.unordered)
        return
    pages = official["pages"]
    for official_page in pages:  # equal responses include equal tokens
        ours = outcome(ref_reader, read.method, request)
        _assert_same(ours, _official(read.method, official_page))
        if "error" in ours:
            break
        request.options.next_page_token = ours["response"].next_page_token


@pytest.mark.reference
def test_official_tokens_resume_our_pages(ref, ref_reader):
    """A token minted by official MLMD, handed to us, yields official MLMD's next page."""
    read = READS["Artifacts_ct_desc_7"]
    pages = [_official(read.method, p)["response"] for p in ref.answers[read.key]["pages"]]
    request = getattr(svc, read.method + "Request")()
    text_format.Parse(read.request, request)
    for before, after in zip(pages, pages[1:]):
        request.options.next_page_token = before.next_page_token
        assert answer(ref_reader, read.method, request) == after


@pytest.mark.reference
def test_batched_linked_contexts_agree_with_single_reads(ref_reader):
    """The ...ByContexts variants (not exposed by the official Python extension) agree
    with the per-context reads the official library answers. Both lists are ascending
    by id: the order every backend can give (MySQL keeps no link insertion order)."""
    ids = [1, 2, 3, 4, 5, 6, 99]
    parents = ref_reader.get_parent_contexts_by_contexts(ids)
    children = ref_reader.get_children_contexts_by_contexts(ids)
    for c in ids:
        single_parents = ref_reader.get_parent_contexts_by_context(c)
        single_children = ref_reader.get_children_contexts_by_context(c)
        assert parents.get(c, []) == single_parents
        assert children.get(c, []) == single_children
    # Links were inserted as (r4,c1), (r1,c1), (r3,c1); they are listed by id.
    assert [x.id for x in children[1]] == [3, 5, 6]


# ----------------------------------------------------------------- unit tests
@pytest.fixture()
def reader():
    conn = sqlite3.connect(":memory:")
    for stmt in SQLITE_MLMD:
        conn.execute(stmt)
    for name, kind in SIMPLE_TYPES:
        conn.execute("INSERT INTO `Type`(`name`, `type_kind`) VALUES (?, ?)", (name, kind))
    conn.execute("INSERT INTO `Type`(`name`, `type_kind`, `version`) VALUES ('DS', 1, NULL)")
    conn.execute("INSERT INTO `ParentType` VALUES (10, 1)")
    conn.execute("INSERT INTO `TypeProperty` VALUES (10, 'p', 3)")
    for i in range(1, 6):
        conn.execute("INSERT INTO `Artifact`(`type_id`, `uri`, `create_time_since_epoch`, "
                     "`last_update_time_since_epoch`) VALUES (10, ?, ?, ?)", (f"u{i}", 7, 9))
    conn.execute("INSERT INTO `ArtifactProperty`(`artifact_id`, `name`, `is_custom_property`, "
                 "`string_value`) VALUES (1, 'p', 0, 'x')")
    yield Reader(conn)
    conn.close()


def test_missing_type_is_not_found(reader):
    with pytest.raises(errors.NotFoundError, match="name: `Nope`, version: `nullopt`"):
        reader.get_artifact_type("Nope")
    with pytest.raises(errors.NotFoundError):
        reader.get_execution_type("DS")  # an artifact type is not an execution type


def test_type_carries_properties_and_base_type(reader):
    t = reader.get_artifact_type("DS")
    assert t == pb.ArtifactType(id=10, name="DS", properties={"p": pb.STRING},
                                base_type=pb.ArtifactType.DATASET)
    assert [x.name for x in reader.get_artifact_types()] == ["DS"]  # simple types hidden


def test_missing_nodes_are_skipped_or_none(reader):
    assert [a.id for a in reader.get_artifacts_by_id([5, 1, 42, 1])] == [1, 5]
    assert reader.get_artifact_by_type_and_name("DS", "nope") is None
    assert reader.get_artifacts_by_type("Nope").items == []
    assert reader.get_artifacts_by_id([1])[0].properties["p"].string_value == "x"


@pytest.mark.parametrize("token, message", [
    ("not a token!", "Failed to decode"),
    ("AAAA", "Failed to parse"),
])
def test_bad_page_token_is_invalid_argument(reader, token, message):
    with pytest.raises(errors.InvalidArgumentError, match=message):
        reader.get_artifacts(pb.ListOperationOptions(next_page_token=token))


def test_token_from_other_ordering_is_rejected(reader):
    first = reader.get_artifacts(pb.ListOperationOptions(max_result_size=2))
    assert [a.id for a in first.items] == [1, 2] and first.next_page_token
    other = pb.ListOperationOptions(max_result_size=2, next_page_token=first.next_page_token)
    other.order_by_field.field = other.order_by_field.CREATE_TIME
    with pytest.raises(errors.InvalidArgumentError, match="mismatch"):
        reader.get_artifacts(other)


def test_paging_walks_every_row_once(reader):
    options = pb.ListOperationOptions(max_result_size=2)
    seen = []
    while True:
        page = reader.get_artifacts(options)
        seen += [a.id for a in page.items]
        if not page.next_page_token:
            break
        options.next_page_token = page.next_page_token
    assert seen == [1, 2, 3, 4, 5]


def test_last_update_time_ties_longer_than_a_page_cycle_like_mlmd(reader):
    """MLMD's LAST_UPDATE_TIME token only excludes the previous page's tied ids, so a
    tie group longer than a page comes back around (official MLMD pages forever too;
    the reference test with page size 1 and 7 pins the same cycle)."""
    options = pb.ListOperationOptions(max_result_size=2)
    options.order_by_field.field = options.order_by_field.LAST_UPDATE_TIME
    pages = []
    for _ in range(3):
        page = reader.get_artifacts(options)
        pages.append([a.id for a in page.items])
        options.next_page_token = page.next_page_token
    assert pages == [[1, 2], [3, 4], [1, 2]]


def test_token_format_is_websafe_base64_of_the_token_message(reader):
    page = reader.get_artifacts(pb.ListOperationOptions(max_result_size=3))
    token = paging.decode_token(page.next_page_token)
    assert "=" not in page.next_page_token
    assert token.id_offset == 3 and token.field_offset == 3
    assert token.set_options == pb.ListOperationOptions(max_result_size=3)
    assert paging.encode_token(token) == page.next_page_token


def test_size_and_order_field_are_validated(reader):
    with pytest.raises(errors.InvalidArgumentError, match="greater than 0"):
        reader.get_artifacts(pb.ListOperationOptions(max_result_size=0))
    options = pb.ListOperationOptions()
    options.order_by_field.field = options.order_by_field.FIELD_UNSPECIFIED
    with pytest.raises(errors.InvalidArgumentError, match="Unsupported field"):
        reader.get_artifacts(options)


def test_filter_query_is_applied_not_ignored(reader):
    everything = reader.get_artifacts(pb.ListOperationOptions(max_result_size=100)).items
    uri = everything[0].uri
    filtered = reader.get_artifacts(pb.ListOperationOptions(max_result_size=100, filter_query=f"uri = '{uri}'")).items
    assert filtered and [a.id for a in filtered] == [a.id for a in everything if a.uri == uri]
    with pytest.raises(errors.InvalidArgumentError):
        reader.get_artifacts(pb.ListOperationOptions(filter_query="uri = "))


def test_empty_external_id_and_empty_context_list(reader):
    with pytest.raises(errors.InvalidArgumentError):
        reader.get_artifacts_by_external_ids(["a", ""])
    with pytest.raises(errors.NotFoundError):
        reader.get_artifacts_by_external_ids(["a"])
    with pytest.raises(errors.InvalidArgumentError):
        reader.get_parent_contexts_by_contexts([])


def test_big_id_lists_are_chunked(reader):
    ids = list(range(1, 2000))
    assert [a.id for a in reader.get_artifacts_by_id(ids)] == [1, 2, 3, 4, 5]
