"""The public put/get API of ``mlmd_log.MetadataStore``, success and error paths.

Every expectation here (return values, ids, error classes, key message fragments)
was checked against the official ml-metadata 1.17.1 (``.venv-ref``) on the same
calls. Where we differ, the test asserts MLMD's behaviour and is marked
``xfail(strict=True, reason="BUG: ...")``. Error messages are matched on the
fragments both libraries share (ours omit MLMD's SQL text and query dumps).
"""
from __future__ import annotations

import time

import pytest

import mlmd_log
from mlmd_log import errors
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.client import StoreConfig

STRING, INT, DOUBLE = pb.STRING, pb.INT, pb.DOUBLE
Event = pb.Event
ListOptions, OrderByField = mlmd_log.ListOptions, mlmd_log.OrderByField
SIMPLE_TYPE_COUNT = 9  # mlmd.Dataset ... mlmd.Deploy take type ids 1..9 in every store


# -- helpers -----------------------------------------------------------------
def fake_store() -> mlmd_log.MetadataStore:
    config = pb.ConnectionConfig()
    config.fake_database.SetInParent()
    return mlmd_log.MetadataStore(config)


def artifact_type(name: str = "DataSet", **properties: int) -> pb.ArtifactType:
    t = pb.ArtifactType(name=name)
    for key, value_type in properties.items():
        t.properties[key] = value_type
    return t


def set_props(node, **values) -> None:
    for key, value in values.items():
        if isinstance(value, str):
            node.properties[key].string_value = value
        elif isinstance(value, float):
            node.properties[key].double_value = value
        else:
            node.properties[key].int_value = value


@pytest.fixture
def store():
    s = fake_store()
    yield s
    s.close()


@pytest.fixture
def ids(store):
    """A store with one type of each kind (property p: STRING, q: INT); returns their ids."""
    a = store.put_artifact_type(artifact_type("A", p=STRING, q=INT))
    et = pb.ExecutionType(name="E")
    et.properties["p"] = STRING
    e = store.put_execution_type(et)
    ct = pb.ContextType(name="C")
    ct.properties["p"] = STRING
    c = store.put_context_type(ct)
    return {"artifact": a, "execution": e, "context": c}


def new_artifact(ids, **kw) -> pb.Artifact:
    props = kw.pop("props", {})
    a = pb.Artifact(type_id=ids["artifact"], **kw)
    set_props(a, **props)
    return a


def new_execution(ids, **kw) -> pb.Execution:
    return pb.Execution(type_id=ids["execution"], **kw)


def new_context(ids, name: str, **kw) -> pb.Context:
    return pb.Context(type_id=ids["context"], name=name, **kw)


# -- put_*_type ----------------------------------------------------------------
class TestPutTypes:
    def test_new_type_gets_first_id_after_simple_types(self, store):
        assert store.put_artifact_type(artifact_type("A", p=STRING)) == SIMPLE_TYPE_COUNT + 1

    def test_same_type_again_returns_same_id(self, store):
        first = store.put_artifact_type(artifact_type("A", p=STRING))
        assert store.put_artifact_type(artifact_type("A", p=STRING)) == first

    def test_more_properties_need_can_add_fields(self, store):
        type_id = store.put_artifact_type(artifact_type("A", p=STRING))
        with pytest.raises(errors.AlreadyExistsError, match="can_add_fields is false"):
            store.put_artifact_type(artifact_type("A", p=STRING, q=INT))
        assert store.put_artifact_type(artifact_type("A", p=STRING, q=INT), can_add_fields=True) == type_id
        assert dict(store.get_artifact_type("A").properties) == {"p": STRING, "q": INT}

    def test_fewer_properties_need_can_omit_fields(self, store):
        type_id = store.put_artifact_type(artifact_type("A", p=STRING, q=INT))
        with pytest.raises(errors.AlreadyExistsError, match="can_omit_fields is false"):
            store.put_artifact_type(artifact_type("A", p=STRING))
        assert store.put_artifact_type(artifact_type("A", p=STRING), can_omit_fields=True) == type_id
        # omitting does not delete the stored property
        assert dict(store.get_artifact_type("A").properties) == {"p": STRING, "q": INT}

    def test_conflicting_property_type_is_rejected_even_with_both_flags(self, store):
        store.put_artifact_type(artifact_type("A", p=STRING))
        with pytest.raises(errors.AlreadyExistsError, match="Conflicting property value type"):
            store.put_artifact_type(artifact_type("A", p=INT), can_add_fields=True, can_omit_fields=True)
        assert dict(store.get_artifact_type("A").properties) == {"p": STRING}

    def test_version_makes_a_distinct_type(self, store):
        plain = store.put_artifact_type(artifact_type("A"))
        v1 = store.put_artifact_type(pb.ArtifactType(name="A", version="v1"))
        assert v1 == plain + 1
        assert store.get_artifact_type("A", "v1").id == v1
        assert store.get_artifact_type("A", "v1").version == "v1"
        assert store.get_artifact_type("A").id == plain
        with pytest.raises(errors.NotFoundError, match="v9"):
            store.get_artifact_type("A", "v9")

    def test_base_type_set_kept_and_change_unimplemented(self, store):
        type_id = store.put_artifact_type(pb.ArtifactType(name="M", base_type=pb.ArtifactType.MODEL))
        assert store.put_artifact_type(pb.ArtifactType(name="M", base_type=pb.ArtifactType.MODEL)) == type_id
        assert store.put_artifact_type(pb.ArtifactType(name="M")) == type_id  # omitted: no change
        with pytest.raises(errors.UnimplementedError, match="base_type update is not supported"):
            store.put_artifact_type(pb.ArtifactType(name="M", base_type=pb.ArtifactType.DATASET))
        assert store.get_artifact_type("M").base_type == pb.ArtifactType.MODEL

    def test_execution_type_base_type(self, store):
        type_id = store.put_execution_type(pb.ExecutionType(name="T", base_type=pb.ExecutionType.TRAIN))
        assert store.get_execution_type("T").base_type == pb.ExecutionType.TRAIN
        assert store.get_execution_types_by_id([type_id])[0].name == "T"

    @pytest.mark.parametrize("put, type_class", [
        ("put_artifact_type", pb.ArtifactType),
        ("put_execution_type", pb.ExecutionType),
        ("put_context_type", pb.ContextType),
    ])
    def test_type_without_name_is_invalid(self, store, put, type_class):
        with pytest.raises(errors.InvalidArgumentError, match="No type name is specified"):
            getattr(store, put)(type_class())

    def test_unknown_property_type_is_invalid(self, store):
        with pytest.raises(errors.InvalidArgumentError, match="UNKNOWN"):
            store.put_artifact_type(artifact_type("B", p=pb.UNKNOWN))
        with pytest.raises(errors.NotFoundError):
            store.get_artifact_type("B")

    def test_external_id_is_stored_and_unique(self, store):
        type_id = store.put_artifact_type(pb.ArtifactType(name="E", external_id="ext-E"))
        assert [t.id for t in store.get_artifact_types_by_external_ids(["ext-E", "nope"])] == [type_id]
        with pytest.raises(errors.AlreadyExistsError, match="external_id"):
            store.put_artifact_type(pb.ArtifactType(name="E2", external_id="ext-E"))

    def test_type_kinds_have_separate_namespaces_but_share_ids(self, store):
        a = store.put_artifact_type(pb.ArtifactType(name="X"))
        e = store.put_execution_type(pb.ExecutionType(name="X"))
        c = store.put_context_type(pb.ContextType(name="X"))
        assert (e, c) == (a + 1, a + 2)
        assert store.get_context_type("X").id == c

    def test_execution_and_context_types_follow_the_same_rules(self, store):
        et = pb.ExecutionType(name="E")
        et.properties["p"] = INT
        store.put_execution_type(et)
        et.properties["p"] = DOUBLE
        with pytest.raises(errors.AlreadyExistsError, match="Conflicting property value type"):
            store.put_execution_type(et)
        ct = pb.ContextType(name="C")
        ct.properties["p"] = INT
        type_id = store.put_context_type(ct)
        other = pb.ContextType(name="C")
        other.properties["q"] = pb.PROTO
        with pytest.raises(errors.AlreadyExistsError, match="can_omit_fields is false"):
            store.put_context_type(other)
        assert store.put_context_type(other, can_add_fields=True, can_omit_fields=True) == type_id
        assert dict(store.get_context_type("C").properties) == {"p": INT, "q": pb.PROTO}

    def test_get_missing_type_is_not_found(self, store):
        with pytest.raises(errors.NotFoundError, match="ZZ"):
            store.get_artifact_type("ZZ")
        with pytest.raises(errors.NotFoundError):
            store.get_execution_type("ZZ")
        with pytest.raises(errors.NotFoundError):
            store.get_context_type("ZZ")

    def test_listing_types_leaves_out_simple_types(self, store):
        store.put_artifact_type(artifact_type("A"))
        store.put_execution_type(pb.ExecutionType(name="T"))
        store.put_context_type(pb.ContextType(name="C"))
        assert [t.name for t in store.get_artifact_types()] == ["A"]
        assert [t.name for t in store.get_execution_types()] == ["T"]
        assert [t.name for t in store.get_context_types()] == ["C"]

    def test_types_by_id_include_simple_types_and_skip_unknown(self, store):
        a = store.put_artifact_type(artifact_type("A"))
        names = [t.name for t in store.get_artifact_types_by_id([1, 2, a, 999])]
        assert names == ["mlmd.Dataset", "mlmd.Model", "A"]
        assert store.get_context_types_by_id([a]) == []  # an artifact type is not a context type

    def test_types_by_external_ids_for_each_kind(self, store):
        store.put_execution_type(pb.ExecutionType(name="T", external_id="t"))
        store.put_context_type(pb.ContextType(name="C", external_id="c"))
        assert [t.name for t in store.get_execution_types_by_external_ids(["t"])] == ["T"]
        assert [t.name for t in store.get_context_types_by_external_ids(["c"])] == ["C"]
        with pytest.raises(errors.NotFoundError, match="No types found for external_ids"):  # MLMD: not []
            store.get_context_types_by_external_ids(["t"])


# -- put_artifacts / put_executions / put_contexts -------------------------------
class TestPutNodes:
    def test_create_returns_consecutive_ids_and_stores_fields(self, store, ids):
        assert store.put_artifacts([new_artifact(ids, uri="u1", props={"p": "x", "q": 1}),
                                    new_artifact(ids, uri="u2")]) == [1, 2]
        [a] = store.get_artifacts_by_id([1])
        assert (a.type_id, a.type, a.uri, a.properties["p"].string_value, a.properties["q"].int_value) == \
            (ids["artifact"], "A", "u1", "x", 1)
        assert a.create_time_since_epoch > 0
        assert a.last_update_time_since_epoch >= a.create_time_since_epoch

    def test_update_by_id_replaces_the_node(self, store, ids):
        [aid] = store.put_artifacts([new_artifact(ids, uri="u1", props={"p": "x"})])
        assert store.put_artifacts([new_artifact(ids, id=aid, uri="FULL")]) == [aid]
        [a] = store.get_artifacts_by_id([aid])
        assert a.uri == "FULL"
        assert "p" not in a.properties  # a full update drops what the new node leaves out

    def test_update_without_type_id_keeps_the_type(self, store, ids):
        [aid] = store.put_artifacts([new_artifact(ids, uri="u1")])
        assert store.put_artifacts([pb.Artifact(id=aid, uri="nt")]) == [aid]
        [a] = store.get_artifacts_by_id([aid])
        assert (a.type_id, a.uri) == (ids["artifact"], "nt")

    def test_field_mask_updates_only_masked_property(self, store, ids):
        [aid] = store.put_artifacts([new_artifact(ids, uri="u1", props={"p": "x", "q": 1})])
        update = new_artifact(ids, id=aid, uri="NEW", props={"p": "y", "q": 2})
        update.custom_properties["c"].string_value = "cc"
        assert store.put_artifacts([update], field_mask_paths=["properties.p"]) == [aid]
        [a] = store.get_artifacts_by_id([aid])
        assert (a.uri, a.properties["p"].string_value, a.properties["q"].int_value) == ("u1", "y", 1)
        assert "c" not in a.custom_properties

    def test_field_mask_updates_only_masked_field(self, store, ids):
        [aid] = store.put_artifacts([new_artifact(ids, uri="u1", props={"p": "x"})])
        store.put_artifacts([new_artifact(ids, id=aid, uri="NEW2")], field_mask_paths=["uri"])
        [a] = store.get_artifacts_by_id([aid])
        assert (a.uri, a.properties["p"].string_value) == ("NEW2", "x")

    def test_execution_field_mask(self, store, ids):
        [eid] = store.put_executions([new_execution(ids, name="e1")])
        store.put_executions([new_execution(ids, id=eid, name="zz", last_known_state=pb.Execution.RUNNING)],
                             field_mask_paths=["last_known_state"])
        [e] = store.get_executions_by_id([eid])
        assert (e.name, e.last_known_state) == ("e1", pb.Execution.RUNNING)

    @pytest.mark.parametrize("kind", ["artifacts", "executions", "contexts"])
    def test_unknown_type_is_not_found(self, store, ids, kind):
        node = {"artifacts": pb.Artifact, "executions": pb.Execution, "contexts": pb.Context}[kind]
        kwargs = {"name": "x"} if kind == "contexts" else {}
        with pytest.raises(errors.NotFoundError, match="Cannot find type for type_id: 999"):
            getattr(store, "put_" + kind)([node(type_id=999, **kwargs)])

    @pytest.mark.parametrize("kind", ["artifacts", "executions"])
    def test_missing_type_id_is_invalid(self, store, ids, kind):
        node = {"artifacts": pb.Artifact, "executions": pb.Execution}[kind]
        with pytest.raises(errors.InvalidArgumentError, match="Type id is missing"):
            getattr(store, "put_" + kind)([node()])

    def test_unknown_property_is_invalid(self, store, ids):
        a = new_artifact(ids)
        a.properties["nope"].string_value = "x"
        with pytest.raises(errors.InvalidArgumentError, match="Found unknown property: nope"):
            store.put_artifacts([a])

    def test_wrong_property_value_type_is_invalid(self, store, ids):
        a = new_artifact(ids, props={"p": 3})  # p is a STRING property
        with pytest.raises(errors.InvalidArgumentError, match="Found unmatched property type: p"):
            store.put_artifacts([a])

    def test_type_of_another_kind_is_not_found(self, store, ids):
        with pytest.raises(errors.NotFoundError, match=f"Cannot find type for type_id: {ids['execution']}"):
            store.put_artifacts([pb.Artifact(type_id=ids["execution"])])
        with pytest.raises(errors.NotFoundError, match=f"Cannot find type for type_id: {ids['artifact']}"):
            store.put_contexts([pb.Context(type_id=ids["artifact"], name="x")])

    def test_custom_properties_need_no_declaration(self, store, ids):
        a = new_artifact(ids)
        a.custom_properties["anything"].double_value = 0.5
        [aid] = store.put_artifacts([a])
        assert store.get_artifacts_by_id([aid])[0].custom_properties["anything"].double_value == 0.5

    @pytest.mark.parametrize("kind", ["artifacts", "executions", "contexts"])
    def test_duplicate_name_within_type_already_exists(self, store, ids, kind):
        make = {"artifacts": lambda: new_artifact(ids, name="n"), "executions": lambda: new_execution(ids, name="n"),
                "contexts": lambda: new_context(ids, "n")}[kind]
        put = getattr(store, "put_" + kind)
        assert put([make()]) == [1]
        with pytest.raises(errors.AlreadyExistsError, match="Given node already exists"):
            put([make()])
        assert put([{"artifacts": lambda: new_artifact(ids, name="m"),
                     "executions": lambda: new_execution(ids, name="m"),
                     "contexts": lambda: new_context(ids, "m")}[kind]()]) == [2]  # no id was used up

    def test_same_name_in_another_type_is_fine(self, store, ids):
        other = store.put_artifact_type(artifact_type("Other"))
        assert store.put_artifacts([new_artifact(ids, name="n"), pb.Artifact(type_id=other, name="n")]) == [1, 2]

    def test_duplicate_external_id_already_exists(self, store, ids):
        store.put_artifacts([new_artifact(ids, external_id="X")])
        with pytest.raises(errors.AlreadyExistsError):
            store.put_artifacts([new_artifact(ids, external_id="X")])

    @pytest.mark.parametrize("kind", ["artifacts", "executions", "contexts"])
    def test_update_of_unknown_id_is_invalid(self, store, ids, kind):
        node = {"artifacts": lambda: new_artifact(ids, id=77), "executions": lambda: new_execution(ids, id=77),
                "contexts": lambda: new_context(ids, "x", id=77)}[kind]()
        with pytest.raises(errors.InvalidArgumentError, match="Cannot find the given id 77"):
            getattr(store, "put_" + kind)([node])

    def test_change_of_type_id_is_invalid(self, store, ids):
        [aid] = store.put_artifacts([new_artifact(ids)])
        other = store.put_artifact_type(artifact_type("Other"))
        with pytest.raises(errors.InvalidArgumentError, match=f"Given type_id {other} is different"):
            store.put_artifacts([pb.Artifact(id=aid, type_id=other)])

    def test_context_without_name_is_invalid(self, store, ids):
        with pytest.raises(errors.InvalidArgumentError, match="Context name should not be empty"):
            store.put_contexts([pb.Context(type_id=ids["context"])])

    def test_context_update_by_id(self, store, ids):
        assert store.put_contexts([new_context(ids, "c1"), new_context(ids, "c2")]) == [1, 2]
        assert store.put_contexts([new_context(ids, "c1r", id=1)]) == [1]
        assert store.get_contexts_by_id([1])[0].name == "c1r"

    def test_rejected_batch_writes_nothing(self, store, ids):
        bad = new_artifact(ids)
        bad.properties["nope"].int_value = 1
        with pytest.raises(errors.InvalidArgumentError):
            store.put_artifacts([new_artifact(ids, uri="good"), bad])
        assert store.get_artifacts() == []
        assert store.put_artifacts([new_artifact(ids)]) == [1]


# -- put_events ------------------------------------------------------------------
class TestPutEvents:
    @pytest.fixture
    def nodes(self, store, ids):
        store.put_artifacts([new_artifact(ids), new_artifact(ids)])
        store.put_executions([new_execution(ids), new_execution(ids)])
        return ids

    def test_event_is_stored_with_path(self, store, nodes):
        e = Event(artifact_id=2, execution_id=1, type=Event.OUTPUT)
        e.path.steps.add().key = "out"
        e.path.steps.add().index = 3
        assert store.put_events([e]) is None
        [got] = store.get_events_by_artifact_ids([2])
        assert (got.artifact_id, got.execution_id, got.type) == (2, 1, Event.OUTPUT)
        assert [s.key or s.index for s in got.path.steps] == ["out", 3]
        assert got.milliseconds_since_epoch > 0
        assert store.get_events_by_execution_ids([1]) == [got]
        assert store.get_events_by_execution_ids([999]) == []

    def test_same_pair_different_type_is_a_new_event(self, store, nodes):
        store.put_events([Event(artifact_id=1, execution_id=1, type=Event.INPUT)])
        store.put_events([Event(artifact_id=1, execution_id=1, type=Event.OUTPUT)])
        assert sorted(e.type for e in store.get_events_by_execution_ids([1])) == [Event.INPUT, Event.OUTPUT]

    def test_duplicate_event_already_exists(self, store, nodes):
        store.put_events([Event(artifact_id=1, execution_id=1, type=Event.INPUT)])
        with pytest.raises(errors.AlreadyExistsError, match="Given event already exists"):
            store.put_events([Event(artifact_id=1, execution_id=1, type=Event.INPUT)])

    def test_duplicate_within_one_call_already_exists_and_writes_nothing(self, store, nodes):
        e = Event(artifact_id=2, execution_id=2, type=Event.INPUT)
        with pytest.raises(errors.AlreadyExistsError):
            store.put_events([e, e])
        assert store.get_events_by_execution_ids([2]) == []

    @pytest.mark.parametrize("event, message", [
        (Event(artifact_id=1, execution_id=1), "No event type is specified"),
        (Event(execution_id=1, type=Event.INPUT), "No artifact id is specified"),
        (Event(artifact_id=1, type=Event.INPUT), "No execution id is specified"),
        (Event(artifact_id=99, execution_id=1, type=Event.INPUT), "No artifact with the given id 99"),
        (Event(artifact_id=1, execution_id=99, type=Event.INPUT), "No execution with the given id 99"),
    ])
    def test_invalid_events(self, store, nodes, event, message):
        with pytest.raises(errors.InvalidArgumentError, match=message):
            store.put_events([event])


# -- put_execution -----------------------------------------------------------------
class TestPutExecution:
    def test_creates_execution_artifacts_events_and_context(self, store, ids):
        result = store.put_execution(new_execution(ids), [(new_artifact(ids, uri="o"), Event(type=Event.OUTPUT)),
                                                          (new_artifact(ids, uri="plain"),)],
                                     [new_context(ids, "pc")])
        assert result == (1, [1, 2], [1])
        [event] = store.get_events_by_execution_ids([1])
        assert (event.artifact_id, event.type) == (1, Event.OUTPUT)
        assert [c.id for c in store.get_contexts_by_execution(1)] == [1]
        assert [a.id for a in store.get_artifacts_by_context(1)] == [1, 2]  # attributed, event or not
        assert [e.id for e in store.get_executions_by_context(1)] == [1]

    def test_existing_context_needs_reuse_flag(self, store, ids):
        store.put_execution(new_execution(ids), [], [new_context(ids, "pc")])
        with pytest.raises(errors.AlreadyExistsError, match="Given node already exists"):
            store.put_execution(new_execution(ids), [], [new_context(ids, "pc")])
        assert store.put_execution(new_execution(ids), [], [new_context(ids, "pc")],
                                   reuse_context_if_already_exist=True) == (2, [], [1])  # no id lost

    def test_reuse_artifact_by_external_id(self, store, ids):
        assert store.put_execution(new_execution(ids), [(new_artifact(ids, uri="x", external_id="X1"),)], []) \
            == (1, [1], [])
        with pytest.raises(errors.AlreadyExistsError):
            store.put_execution(new_execution(ids), [(new_artifact(ids, uri="x", external_id="X1"),)], [])
        assert store.put_execution(new_execution(ids), [(new_artifact(ids, uri="x2", external_id="X1"),)], [],
                                   reuse_artifact_if_already_exist_by_external_id=True) == (2, [1], [])
        [a] = store.get_artifacts_by_external_ids(["X1"])
        assert (a.id, a.uri) == (1, "x2")

    def test_force_reuse_context_with_unknown_id_is_not_found(self, store, ids):
        with pytest.raises(errors.NotFoundError, match="999"):
            store.put_execution(new_execution(ids), [], [new_context(ids, "pc9", id=999)], force_reuse_context=True)
        assert store.get_executions() == []

    def test_force_reuse_context_does_not_update_it(self, store, ids):
        store.put_contexts([new_context(ids, "c1")])
        assert store.put_execution(new_execution(ids), [], [new_context(ids, "CHANGED", id=1)],
                                   force_reuse_context=True) == (1, [], [1])
        assert store.get_contexts_by_id([1])[0].name == "c1"

    def test_event_artifact_id_mismatch_is_invalid(self, store, ids):
        store.put_artifacts([new_artifact(ids), new_artifact(ids)])
        with pytest.raises(errors.InvalidArgumentError, match="event.artifact_id is not aligned"):
            store.put_execution(new_execution(ids), [(new_artifact(ids, id=1), Event(artifact_id=2, type=Event.INPUT))],
                                [])

    def test_event_execution_id_mismatch_is_invalid(self, store, ids):
        store.put_executions([new_execution(ids), new_execution(ids)])
        store.put_artifacts([new_artifact(ids)])
        with pytest.raises(errors.InvalidArgumentError, match="event.execution_id does not match"):
            store.put_execution(new_execution(ids, id=1), [(new_artifact(ids, id=1),
                                                            Event(execution_id=2, type=Event.INPUT))], [])

    def test_event_without_type_is_invalid(self, store, ids):
        with pytest.raises(errors.InvalidArgumentError, match="No event type is specified"):
            store.put_execution(new_execution(ids), [(new_artifact(ids), Event())], [])
        assert store.get_artifacts() == [] and store.get_executions() == []

    def test_update_of_unknown_execution_is_invalid(self, store, ids):
        with pytest.raises(errors.InvalidArgumentError, match="Cannot find the given id 99"):
            store.put_execution(new_execution(ids, id=99), [], [])


# -- put_lineage_subgraph -------------------------------------------------------------
class TestPutLineageSubgraph:
    def test_index_edges(self, store, ids):
        result = store.put_lineage_subgraph([new_execution(ids)], [new_artifact(ids), new_artifact(ids)],
                                            [new_context(ids, "lc")],
                                            [(0, 0, Event(type=Event.INPUT)), (0, 1, Event(type=Event.OUTPUT))])
        assert result == ([1], [1, 2], [1])
        assert sorted((e.artifact_id, e.type) for e in store.get_events_by_execution_ids([1])) == \
            [(1, Event.INPUT), (2, Event.OUTPUT)]
        assert [a.id for a in store.get_artifacts_by_context(1)] == [1, 2]

    def test_id_edges(self, store, ids):
        store.put_executions([new_execution(ids)])
        store.put_artifacts([new_artifact(ids)])
        assert store.put_lineage_subgraph([], [], [], [(None, None, Event(execution_id=1, artifact_id=1,
                                                                              type=Event.INPUT))]) == ([], [], [])
        assert [e.artifact_id for e in store.get_events_by_execution_ids([1])] == [1]

    @pytest.mark.parametrize("edge, error, message", [
        ((5, 0, Event(type=Event.INPUT)), errors.OutOfRangeError, "execution_index 5 that is outside the bounds"),
        ((0, 5, Event(type=Event.INPUT)), errors.OutOfRangeError, "artifact_index 5 that is outside the bounds"),
        ((0, 0, Event(execution_id=1, type=Event.INPUT)), errors.InvalidArgumentError, "Missing execution ID"),
        ((0, 0, Event(artifact_id=1, type=Event.INPUT)), errors.InvalidArgumentError, "Missing artifact ID"),
        ((None, 0, Event(type=Event.INPUT)), errors.InvalidArgumentError, "Event_edge is missing an execution"),
    ])
    def test_bad_edges(self, store, ids, edge, error, message):
        with pytest.raises(error, match=message):
            store.put_lineage_subgraph([new_execution(ids)], [new_artifact(ids)], [], [edge])
        assert store.get_executions() == [] and store.get_artifacts() == []

    def test_existing_context_needs_reuse_flag(self, store, ids):
        store.put_contexts([new_context(ids, "lc")])
        with pytest.raises(errors.AlreadyExistsError):
            store.put_lineage_subgraph([], [], [new_context(ids, "lc")], [])
        assert store.put_lineage_subgraph([], [], [new_context(ids, "lc")], [],
                                          reuse_context_if_already_exist=True) == ([], [], [1])


# -- attributions, associations, parent contexts --------------------------------------
class TestRelations:
    @pytest.fixture
    def nodes(self, store, ids):
        store.put_artifacts([new_artifact(ids)])
        store.put_executions([new_execution(ids)])
        store.put_contexts([new_context(ids, "c1"), new_context(ids, "c2"), new_context(ids, "c3")])
        return ids

    def test_attributions_and_associations_are_idempotent(self, store, nodes):
        links = ([pb.Attribution(artifact_id=1, context_id=2)], [pb.Association(execution_id=1, context_id=2)])
        assert store.put_attributions_and_associations(*links) is None
        store.put_attributions_and_associations(*links)  # again: no error, no duplicate
        assert [c.id for c in store.get_contexts_by_artifact(1)] == [2]
        assert [c.id for c in store.get_contexts_by_execution(1)] == [2]
        assert [a.id for a in store.get_artifacts_by_context(2)] == [1]
        assert [e.id for e in store.get_executions_by_context(2)] == [1]

    @pytest.mark.parametrize("attributions, associations, message", [
        ([pb.Attribution(artifact_id=999, context_id=2)], [], "Artifact id not found"),
        ([pb.Attribution(artifact_id=1, context_id=999)], [], "Context id not found"),
        ([], [pb.Association(execution_id=999, context_id=2)], "Execution id not found"),
        ([pb.Attribution(artifact_id=1)], [], "(?i)context id"),
    ])
    def test_unknown_ids_are_invalid(self, store, nodes, attributions, associations, message):
        with pytest.raises(errors.InvalidArgumentError, match=message):
            store.put_attributions_and_associations(attributions, associations)
        assert store.get_artifacts_by_context(2) == [] and store.get_executions_by_context(2) == []

    def test_parent_contexts(self, store, nodes):
        assert store.put_parent_contexts([pb.ParentContext(parent_id=1, child_id=2),
                                          pb.ParentContext(parent_id=2, child_id=3)]) is None
        assert [c.id for c in store.get_parent_contexts_by_context(2)] == [1]
        assert [c.id for c in store.get_children_contexts_by_context(1)] == [2]
        assert store.get_parent_contexts_by_context(1) == []
        assert store.get_parent_contexts_by_context(999) == []

    @pytest.mark.parametrize("link, error, message", [
        (pb.ParentContext(parent_id=1, child_id=2), errors.AlreadyExistsError, "parent_context already exists"),
        (pb.ParentContext(parent_id=2, child_id=2), errors.InvalidArgumentError, "cannot be found"),
        (pb.ParentContext(parent_id=3, child_id=1), errors.InvalidArgumentError, "cycle"),
        (pb.ParentContext(parent_id=1, child_id=999), errors.InvalidArgumentError, "cannot be found"),
        (pb.ParentContext(parent_id=1), errors.InvalidArgumentError, "Missing parent / child id"),
    ])
    def test_bad_parent_contexts(self, store, nodes, link, error, message):
        store.put_parent_contexts([pb.ParentContext(parent_id=1, child_id=2),
                                   pb.ParentContext(parent_id=2, child_id=3)])
        with pytest.raises(error, match=message):
            store.put_parent_contexts([link])
        assert [c.id for c in store.get_children_contexts_by_context(1)] == [2]


# -- gets -----------------------------------------------------------------------------
class TestGets:
    @pytest.fixture
    def eight(self, store, ids):
        """Eight artifacts, ids 1..8, one put each (so each has its own record time)."""
        for i in range(8):
            time.sleep(0.002)  # distinct millisecond timestamps, so time orders are not ties
            store.put_artifacts([new_artifact(ids, uri=f"u{i % 2}", name=f"a{i + 1}", external_id=f"x{i + 1}")])
        return ids

    def test_get_without_options_lists_all_in_id_order(self, store, eight):
        assert [a.id for a in store.get_artifacts()] == list(range(1, 9))

    def test_limit(self, store, eight):
        assert [a.id for a in store.get_artifacts(list_options=ListOptions(limit=2))] == [1, 2]

    def test_limit_larger_than_a_page(self, store, ids):
        store.put_artifacts([new_artifact(ids) for _ in range(250)])
        assert len(store.get_artifacts(list_options=ListOptions(limit=201))) == 201
        assert len(store.get_artifacts(list_options=ListOptions(order_by=OrderByField.ID))) == 250

    def test_time_order_pages_through_ties(self, store, ids):
        store.put_artifacts([new_artifact(ids) for _ in range(120)])  # 120 artifacts with one create time
        time.sleep(0.002)
        store.put_artifacts([new_artifact(ids) for _ in range(130)])
        got = [a.id for a in store.get_artifacts(list_options=ListOptions(order_by=OrderByField.CREATE_TIME,
                                                                          is_asc=False))]
        assert got == list(range(250, 0, -1))  # ties broken by id, no duplicates across pages
        got = [a.id for a in store.get_artifacts(list_options=ListOptions(order_by=OrderByField.CREATE_TIME,
                                                                          limit=150))]
        assert got == list(range(1, 151))

    @pytest.mark.parametrize("order_by", [OrderByField.ID, OrderByField.CREATE_TIME, OrderByField.UPDATE_TIME])
    def test_order_by_descending(self, store, eight, order_by):
        got = [a.id for a in store.get_artifacts(list_options=ListOptions(order_by=order_by, is_asc=False, limit=3))]
        assert got == [8, 7, 6]

    def test_order_by_update_time_follows_updates(self, store, eight):
        time.sleep(0.002)
        store.put_artifacts([new_artifact(eight, id=3, name="a3")])
        [a3] = store.get_artifacts_by_id([3])
        assert a3.last_update_time_since_epoch > a3.create_time_since_epoch
        got = [a.id for a in store.get_artifacts(
            list_options=ListOptions(order_by=OrderByField.UPDATE_TIME, is_asc=False, limit=1))]
        assert got == [3]

    def test_order_by_ascending(self, store, eight):
        got = [a.id for a in store.get_artifacts(list_options=ListOptions(order_by=OrderByField.ID, limit=3))]
        assert got == [1, 2, 3]

    def test_negative_limit_is_invalid(self, store, eight):
        with pytest.raises(errors.InvalidArgumentError, match="list_options.limit"):
            store.get_artifacts(list_options=ListOptions(limit=-1))

    def test_zero_limit_means_no_limit(self, store, eight):
        # ml-metadata's client checks `if list_options.limit and list_options.limit < 1`
        assert len(store.get_artifacts(list_options=ListOptions(limit=0))) == 8

    def test_list_options_on_executions_and_contexts(self, store, ids):
        store.put_executions([new_execution(ids) for _ in range(3)])
        store.put_contexts([new_context(ids, f"c{i}") for i in range(3)])
        desc = ListOptions(order_by=OrderByField.ID, is_asc=False, limit=2)
        assert [e.id for e in store.get_executions(list_options=desc)] == [3, 2]
        assert [c.id for c in store.get_contexts(list_options=desc)] == [3, 2]

    def test_list_options_on_nodes_by_context(self, store, ids):
        store.put_execution(new_execution(ids), [(new_artifact(ids),), (new_artifact(ids),)], [new_context(ids, "c")])
        assert [a.id for a in store.get_artifacts_by_context(1, list_options=ListOptions(limit=1))] == [1]
        assert [a.id for a in store.get_artifacts_by_context(
            1, list_options=ListOptions(order_by=OrderByField.ID, is_asc=False))] == [2, 1]
        assert store.get_artifacts_by_context(999) == [] and store.get_executions_by_context(999) == []

    def test_filter_query_selects(self, store, eight):
        found = store.get_artifacts(list_options=ListOptions(filter_query="uri = 'u1'"))
        assert [a.id for a in found] == [2, 4, 6, 8]
        with pytest.raises(errors.InvalidArgumentError):
            store.get_artifacts(list_options=ListOptions(filter_query="uri = = 'u1'"))

    def test_by_id_skips_unknown_ids(self, store, eight):
        assert [a.id for a in store.get_artifacts_by_id([2, 999, 1])] == [1, 2]
        assert store.get_executions_by_id([1]) == [] and store.get_contexts_by_id([1]) == []

    def test_artifacts_and_types_by_artifact_ids(self, store, eight):
        artifacts, types = store.get_artifacts_and_types_by_artifact_ids([1, 2, 999])
        assert [a.id for a in artifacts] == [1, 2]
        assert [t.name for t in types] == ["A"]

    def test_by_type(self, store, eight):
        other = store.put_artifact_type(artifact_type("Other"))
        store.put_artifacts([pb.Artifact(type_id=other)])
        assert [a.id for a in store.get_artifacts_by_type("A")] == list(range(1, 9))
        assert [a.id for a in store.get_artifacts_by_type("Other")] == [9]
        assert store.get_artifacts_by_type("ZZ") == []
        assert store.get_executions_by_type("E") == [] and store.get_contexts_by_type("C") == []

    def test_by_type_and_name(self, store, eight):
        assert store.get_artifact_by_type_and_name("A", "a3").id == 3
        assert store.get_artifact_by_type_and_name("A", "zz") is None
        assert store.get_artifact_by_type_and_name("ZZ", "a3") is None
        store.put_executions([new_execution(eight, name="e")])
        store.put_contexts([new_context(eight, "c")])
        assert store.get_execution_by_type_and_name("E", "e").id == 1
        assert store.get_execution_by_type_and_name("E", "zz") is None
        assert store.get_context_by_type_and_name("C", "c").id == 1
        assert store.get_context_by_type_and_name("C", "zz") is None

    def test_by_uri_and_external_ids(self, store, eight):
        assert [a.id for a in store.get_artifacts_by_uri("u1")] == [2, 4, 6, 8]
        assert store.get_artifacts_by_uri("nope") == []
        assert [a.id for a in store.get_artifacts_by_external_ids(["x2", "x5", "nope"])] == [2, 5]
        store.put_executions([new_execution(eight, external_id="ex")])
        store.put_contexts([new_context(eight, "c", external_id="cx")])
        assert [e.id for e in store.get_executions_by_external_ids(["ex"])] == [1]
        assert [c.id for c in store.get_contexts_by_external_ids(["cx"])] == [1]
        with pytest.raises(errors.NotFoundError, match="No artifacts found for external_ids"):  # MLMD: not []
            store.get_artifacts_by_external_ids(["nope"])
        with pytest.raises(errors.NotFoundError, match="No executions found for external_ids"):
            store.get_executions_by_external_ids(["nope"])

    def test_contexts_by_artifact_or_execution_without_any_is_not_found(self, store, eight):
        # MLMD's behaviour: NotFoundError, not an empty list
        with pytest.raises(errors.NotFoundError, match="No contexts found for artifact_id: 1"):
            store.get_contexts_by_artifact(1)
        with pytest.raises(errors.NotFoundError, match="No contexts found for execution_id: 999"):
            store.get_contexts_by_execution(999)

    def test_lineage_subgraph_of_an_unconnected_artifact_is_itself(self, store, eight):
        options = pb.LineageSubgraphQueryOptions(
            starting_artifacts=pb.LineageSubgraphQueryOptions.StartingNodes(filter_query="id = 1"), max_num_hops=1)
        graph = store.get_lineage_subgraph(options)
        assert [a.id for a in graph.artifacts] == [1] and not graph.events and not graph.executions


# -- rejected puts leave no trace ---------------------------------------------------
def _reject_some_and_create(store, ids) -> list:
    """A mix of rejected and accepted puts; returns the ids of the accepted ones."""
    got = []
    got += store.put_artifacts([new_artifact(ids, name="a1")])
    for bad in ([new_artifact(ids, name="a1")], [pb.Artifact(type_id=999)], [new_artifact(ids, props={"p": 1})]):
        with pytest.raises(errors.StatusError):
            store.put_artifacts(bad)
    got += store.put_artifacts([new_artifact(ids, name="a2")])
    assert store.put_contexts([new_context(ids, "c")]) == [1]
    with pytest.raises(errors.AlreadyExistsError):  # context "c" exists and reuse was not asked for
        store.put_execution(new_execution(ids), [(new_artifact(ids, name="a3"),)], [new_context(ids, "c")])
    got += store.put_artifacts([new_artifact(ids, name="a3")])
    got += [store.put_executions([new_execution(ids)])[0]]
    return got


def test_rejected_puts_leave_no_gaps_in_ids(store, ids):
    # the rejected put_execution would have taken execution 1 and artifact 3
    assert _reject_some_and_create(store, ids) == [1, 2, 3, 1]
    assert [a.name for a in store.get_artifacts()] == ["a1", "a2", "a3"]


def test_rejected_puts_stay_rejected_after_reopen(tmp_path):
    config = StoreConfig.from_directory(str(tmp_path), durability="none")
    with mlmd_log.MetadataStore(config) as store:
        a = store.put_artifact_type(artifact_type("A", p=STRING, q=INT))
        e = store.put_execution_type(pb.ExecutionType(name="E"))
        c = store.put_context_type(pb.ContextType(name="C"))
        ids = {"artifact": a, "execution": e, "context": c}
        _reject_some_and_create(store, ids)
        before = [a.SerializeToString() for a in store.get_artifacts()]
    # reopen: the projection is as it was
    with mlmd_log.MetadataStore(config) as store:
        assert [a.SerializeToString() for a in store.get_artifacts()] == before
        assert store.put_artifacts([new_artifact(ids, name="a4")]) == [4]
    # replay from the log alone (projection deleted): still the same, rejected puts still rejected
    (tmp_path / "mlmd.sqlite").unlink()
    for extra in ("mlmd.sqlite-wal", "mlmd.sqlite-shm"):
        if (tmp_path / extra).exists():
            (tmp_path / extra).unlink()
    with mlmd_log.MetadataStore(config) as store:
        assert [a.SerializeToString() for a in store.get_artifacts()][:3] == before
        assert [a.name for a in store.get_artifacts()] == ["a1", "a2", "a3", "a4"]
        assert [c.name for c in store.get_contexts()] == ["c"]
        assert len(store.get_executions()) == 1
