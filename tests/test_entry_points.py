"""MLMD's error classes, and nothing else, at every entry point: whatever a caller sends,
the answer is a result or a ``mlmd_log.errors`` StatusError, and the store still opens
and answers afterwards."""
from __future__ import annotations

import collections

import pytest
from google.protobuf import any_pb2

import mlmd_log
from mlmd_log import errors
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.proto import metadata_store_service_pb2 as svc
from mlmd_log.client import StoreConfig

import hostile
from dbdump import dump_tables
from test_log_trust import replayed_tables


def fake_store() -> mlmd_log.MetadataStore:
    config = pb.ConnectionConfig()
    config.fake_database.SetInParent()
    return mlmd_log.MetadataStore(config)


def open_dir(directory) -> mlmd_log.MetadataStore:
    return mlmd_log.MetadataStore(StoreConfig.from_directory(str(directory), durability="none"))


def seed(store: mlmd_log.MetadataStore) -> None:
    """Types and nodes with ids 1 and 2, which the hostile requests name."""
    artifact_type = pb.ArtifactType(name="a")
    artifact_type.properties["a"] = pb.STRING
    a = store.put_artifact_type(artifact_type)
    e = store.put_execution_type(pb.ExecutionType(name="a"))
    c = store.put_context_type(pb.ContextType(name="a"))
    store.put_artifacts([pb.Artifact(type_id=a, uri="/a"), pb.Artifact(type_id=a, name="b")])
    store.put_execution(pb.Execution(type_id=e), [(pb.Artifact(id=1), pb.Event(type=pb.Event.INPUT))],
                        [pb.Context(type_id=c, name="a"), pb.Context(type_id=c, name="b")])


# -- the limits of SQL ---------------------------------------------------------------
@pytest.mark.parametrize("filter_query, limit", [
    (" OR ".join(f"id = {i}" for i in range(1200)), "Expression tree is too large"),
    ("NOT " * 500 + "id = 1", "parser stack overflow"),
    (" AND ".join(f"contexts_{i}.name = 'c'" for i in range(100)), "too many FROM clause terms"),
])
def test_a_filter_past_sqlite_limits_is_invalid_argument_naming_the_limit(filter_query, limit):
    store = fake_store()
    seed(store)
    with pytest.raises(errors.InvalidArgumentError, match=limit):
        store.get_artifacts(list_options=mlmd_log.ListOptions(filter_query=filter_query))
    with pytest.raises(errors.InvalidArgumentError, match=limit):
        store.get_lineage_subgraph(pb.LineageSubgraphQueryOptions(
            starting_artifacts=pb.LineageSubgraphQueryOptions.StartingNodes(filter_query=filter_query),
            max_num_hops=1))
    assert [a.id for a in store.get_artifacts()] == [1, 2]


def test_huge_id_lists_are_answered():
    store = fake_store()
    seed(store)
    many = range(1, 40_001)
    assert [a.id for a in store.get_artifacts_by_id(many)] == [1, 2]
    assert [e.artifact_id for e in store.get_events_by_artifact_ids(many)] == [1]
    assert len(store.get_artifact_types_by_id(many)) > 1
    with pytest.raises(errors.NotFoundError):  # (as ml-metadata: none of them exists)
        store.get_artifacts_by_external_ids([f"x{i}" for i in many])


# -- a closed store ------------------------------------------------------------------
def test_every_call_on_a_closed_store_is_failed_precondition(tmp_path):
    store = open_dir(tmp_path / "store")
    seed(store)
    store.close()
    store.close()  # (idempotent)
    for call in (store.get_artifacts, store.get_artifact_types, lambda: store.get_artifacts_by_id([1]),
                 lambda: store.put_artifact_type(pb.ArtifactType(name="x")),
                 lambda: store.put_artifacts([pb.Artifact(type_id=1)])):
        with pytest.raises(errors.FailedPreconditionError, match="store is closed"):
            call()
    puts = store.async_puts()
    future = puts.submit("PutArtifactType", svc.PutArtifactTypeRequest(artifact_type=pb.ArtifactType(name="y")))
    with pytest.raises(errors.FailedPreconditionError, match="store is closed"):
        future.result(timeout=10)
    puts.close()
    with open_dir(tmp_path / "store") as again:
        assert [a.id for a in again.get_artifacts()] == [1, 2]


# -- ml-metadata's answer for an unknown type ----------------------------------------
@pytest.mark.parametrize("type_url", ["type.googleapis.com/ml_metadata.Artifact", "", "type.googleapis.com/no.Such"])
def test_an_unknown_type_is_not_found_whatever_its_any_holds(type_url):
    store = fake_store()
    artifact = pb.Artifact(type_id=999)
    artifact.custom_properties["p"].proto_value.CopyFrom(any_pb2.Any(type_url=type_url, value=b"\xff\xff"))
    with pytest.raises(errors.NotFoundError, match="Cannot find type for type_id: 999"):
        store.put_artifacts([artifact])


# -- every RPC, hostile requests -----------------------------------------------------
def test_every_rpc_answers_hostile_requests_with_results_or_mlmd_errors(tmp_path, report_figure):
    """All 52 RPCs of the service, each with an empty, a plausible and many hostile
    requests (one field made hostile at a time: unknown, negative and huge ids, huge
    lists, NaN and infinity, structs nested past protobuf's limit, NUL-bearing and huge
    strings, wrong property types, broken filters and page tokens). Only results and
    MLMD errors may come back; the store answers after each call, opens again after each
    RPC, and its projection equals a replay of its log at the end."""
    directory = tmp_path / "store"
    store = open_dir(directory)
    seed(store)
    assert len(hostile.RPCS) == 52
    calls, outcomes, leaks = 0, collections.Counter(), []
    for rpc in hostile.RPCS:
        for what, request in hostile.variants(hostile.request_class(rpc)):
            calls += 1
            try:
                store._transport.call(rpc, request)
                outcomes["result"] += 1
            except errors.StatusError as exc:
                outcomes[type(exc).__name__] += 1
            except Exception as exc:  # noqa: BLE001 - what the test is looking for
                leaks.append(f"{rpc} {what}: {type(exc).__name__}: {str(exc)[:200]}")
            assert store.get_artifact_types(), f"no answer after {rpc} {what}"
        for other in (hostile.RPCS[hostile.RPCS.index(rpc) - 1], "GetLineageGraph"):  # (another RPC's request)
            calls += 1
            try:
                store._transport.call(rpc, hostile.fill(hostile.request_class(other)()))
                outcomes["result"] += 1
            except errors.StatusError as exc:
                outcomes[type(exc).__name__] += 1
            except Exception as exc:  # noqa: BLE001
                leaks.append(f"{rpc} given a {other}Request: {type(exc).__name__}: {str(exc)[:200]}")
        store.close()
        store = open_dir(directory)
        assert [a.id for a in store.get_artifacts_by_id([1, 2])] == [1, 2], f"after {rpc}"
    store.close()
    report_figure("every-RPC walk", f"{calls} hostile calls over {len(hostile.RPCS)} RPCs: {dict(outcomes)}, "
                                    f"{len(leaks)} other errors")
    assert not leaks, "\n".join(leaks[:20])
    assert calls > 2000 and outcomes["result"] > 100 and outcomes["InvalidArgumentError"] > 100
    assert replayed_tables(directory, tmp_path) == dump_tables(str(directory / "mlmd.sqlite"))


def test_a_filter_past_mysql_limits_is_invalid_argument_naming_the_limit(mysql_url):
    from mysqldb import drop, fresh_database

    target = fresh_database(mysql_url)
    store = mlmd_log.MetadataStore(StoreConfig(None, ":memory:", "none", projection_url=target.url))
    try:
        seed(store)
        many_aliases = " AND ".join(f"contexts_{i}.name = 'a'" for i in range(70))
        with pytest.raises(errors.InvalidArgumentError, match="(?i)too many tables"):
            store.get_artifacts(list_options=mlmd_log.ListOptions(filter_query=many_aliases))
        assert [a.id for a in store.get_artifacts()] == [1, 2]
    finally:
        store.close()
        drop(target)


def test_every_command_has_help_with_an_example_and_usage_errors_exit_2():
    import argparse

    from mlmd_log.cli import build_parser, main

    parser = build_parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(commands.choices) >= 14
    for name, command in commands.choices.items():
        shown = f"{command.description or ''}\n{command.epilog or ''}"
        assert "mlmd-log " + name in shown and "xample" in shown, name
        with pytest.raises(SystemExit) as usage:
            main([name, "--no-such-option"])
        assert usage.value.code == 2, name


def test_info_prints_json(tmp_path, capsys):
    import json

    from mlmd_log.cli import main
    from mlmd_log.store import MetadataStore
    from mlmd_log.proto import metadata_store_pb2 as pb

    with MetadataStore(str(tmp_path)) as store:
        store.put_artifact_type(pb.ArtifactType(name="Data"))
    assert main(["info", "--data-dir", str(tmp_path), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["records"] == 1 and found["projection"]["applied_offset"] == 1
