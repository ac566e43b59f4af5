"""Nothing enters the log that cannot be read back, and a bad record already in a log is
one rejected outcome, never a dead store (DESIGN.md invariant 7)."""
from __future__ import annotations

import math

import pytest
from google.protobuf import struct_pb2

import mlmd_log
from mlmd_log import errors
from mlmd_log.consumer.replay import replay
from mlmd_log.locations import open_projection
from mlmd_log.producer import FileLog
from mlmd_log.producer.records import MAX_NESTING, RecordFactory, encode_record, parse_record
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.proto import metadata_store_service_pb2 as svc
from mlmd_log.client import StoreConfig

from dbdump import dump_tables
from hostile import nested_list_struct as nested_lists
from hostile import nested_struct as nested_structs

# The deepest property struct ml-metadata 1.17 accepts in put_artifacts (one level more is
# InvalidArgumentError "Could not parse proto"), nested as structs and as lists: protobuf's
# recursion limit of 100 counted on the PutArtifactsRequest.
DEEPEST_STRUCT, DEEPEST_LIST = 32, 47


def artifact_with(struct: struct_pb2.Struct, type_id: int) -> pb.Artifact:
    artifact = pb.Artifact(type_id=type_id)
    artifact.custom_properties["s"].struct_value.CopyFrom(struct)
    return artifact


def artifacts_request(struct: struct_pb2.Struct, type_id: int) -> svc.PutArtifactsRequest:
    """Built in place: protobuf copies a message given to a constructor by parsing it, and
    refuses one nested too deep there already."""
    request = svc.PutArtifactsRequest()
    artifact = request.artifacts.add(type_id=type_id)
    artifact.custom_properties["s"].struct_value.CopyFrom(struct)
    return request


def open_dir(directory) -> mlmd_log.MetadataStore:
    return mlmd_log.MetadataStore(StoreConfig.from_directory(str(directory), durability="none"))


def fake_store() -> mlmd_log.MetadataStore:
    config = pb.ConnectionConfig()
    config.fake_database.SetInParent()
    return mlmd_log.MetadataStore(config)


def replayed_tables(directory, tmp_path) -> dict:
    """The tables of a fresh replay of the store's log."""
    rebuilt = tmp_path / "replayed.sqlite"
    log = FileLog(str(directory / "log"), readonly=True)
    db = open_projection(f"sqlite:///{rebuilt}")
    replay(log, db)
    db.close()
    log.close()
    return dump_tables(str(rebuilt))


# -- nesting --------------------------------------------------------------------------
@pytest.mark.parametrize("nest, deepest", [(nested_structs, DEEPEST_STRUCT), (nested_lists, DEEPEST_LIST)])
def test_the_deepest_struct_ml_metadata_accepts_is_stored_and_read_back(tmp_path, nest, deepest):
    """One level short of the limit inside the envelope: it must decode on every replay."""
    directory = tmp_path / "store"
    with open_dir(directory) as store:
        type_id = store.put_artifact_type(pb.ArtifactType(name="T"))
        [artifact_id] = store.put_artifacts([artifact_with(nest(deepest), type_id)])
    with open_dir(directory) as store:
        [got] = store.get_artifacts_by_id([artifact_id])
        assert got.custom_properties["s"].struct_value == nest(deepest)
        assert store.put_artifacts([pb.Artifact(type_id=type_id)]) == [artifact_id + 1]
    assert replayed_tables(directory, tmp_path) == dump_tables(str(directory / "mlmd.sqlite"))


@pytest.mark.parametrize("nest, depth", [(nested_structs, DEEPEST_STRUCT + 1), (nested_lists, DEEPEST_LIST + 1),
                                         (nested_structs, 150)])
def test_a_struct_nested_beyond_the_limit_is_refused_before_the_log(tmp_path, nest, depth):
    directory = tmp_path / "store"
    with open_dir(directory) as store:
        type_id = store.put_artifact_type(pb.ArtifactType(name="T"))
        with pytest.raises(errors.InvalidArgumentError, match=f"limit of {MAX_NESTING} levels"):
            store._transport.call("PutArtifacts", artifacts_request(nest(depth), type_id))
        with pytest.raises(errors.InvalidArgumentError, match="Could not parse proto"):
            store.put_artifacts([artifact_with(nest(depth), type_id)])
        with pytest.raises(errors.InvalidArgumentError, match="Could not parse proto"):
            store.put_execution(pb.Execution(type_id=store.put_execution_type(pb.ExecutionType(name="E"))),
                                [(artifact_with(nest(depth), type_id), pb.Event(type=pb.Event.OUTPUT))], [])
        assert store.put_artifacts([pb.Artifact(type_id=type_id)]) == [1]
    log = FileLog(str(directory / "log"), readonly=True)
    assert log.end_offset() == 3  # (two types and the artifact: the refused puts never reached it)
    log.close()
    with open_dir(directory) as store:
        assert [a.id for a in store.get_artifacts()] == [1]


def test_async_puts_refuse_a_too_deep_request_at_submit_and_go_on():
    store = fake_store()
    type_id = store.put_artifact_type(pb.ArtifactType(name="T"))
    puts = store.async_puts()
    too_deep = artifacts_request(nested_structs(DEEPEST_STRUCT + 1), type_id)
    with pytest.raises(errors.InvalidArgumentError, match="Could not parse proto"):
        puts.submit("PutArtifacts", too_deep)
    fine = puts.submit("PutArtifacts", svc.PutArtifactsRequest(artifacts=[pb.Artifact(type_id=type_id)]))
    puts.close()
    assert list(fine.result().artifact_ids) == [1]
    assert len(store.get_artifacts()) == 1


def test_every_record_a_factory_writes_parses_back_as_written():
    records = RecordFactory("test")
    request = artifacts_request(nested_lists(DEEPEST_LIST), 1)
    payload, record_id = records.payload("PutArtifacts", request)
    back = parse_record(payload)
    assert (back.record_id, back.put_artifacts) == (record_id, request)
    too_deep = records.make("PutArtifacts", artifacts_request(nested_lists(DEEPEST_LIST + 1), 1))
    with pytest.raises(errors.InvalidArgumentError):
        encode_record(too_deep)


# -- NaN and infinity -----------------------------------------------------------------
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("custom", [False, True])
def test_a_non_finite_double_property_is_refused_as_ml_metadata_does(tmp_path, value, custom):
    """ml-metadata's insert fails (InternalError); stored as NULL it would break every listing."""
    directory = tmp_path / "store"
    with open_dir(directory) as store:
        artifact_type = pb.ArtifactType(name="T")
        artifact_type.properties["d"] = pb.DOUBLE
        type_id = store.put_artifact_type(artifact_type)
        bad = pb.Artifact(type_id=type_id)
        (bad.custom_properties if custom else bad.properties)["d"].double_value = value
        with pytest.raises(errors.InternalError, match="finite doubles"):
            store.put_artifacts([pb.Artifact(type_id=type_id), bad])
        [existing] = store.put_artifacts([pb.Artifact(type_id=type_id)])
        with pytest.raises(errors.InternalError, match="finite doubles"):  # (an update too)
            update = pb.Artifact()
            update.CopyFrom(bad)
            update.id = existing
            store.put_artifacts([update])
        execution_type = store.put_execution_type(pb.ExecutionType(name="E"))
        with pytest.raises(errors.InternalError, match="finite doubles"):  # (a pipeline step)
            store.put_execution(pb.Execution(type_id=execution_type), [(bad, pb.Event(type=pb.Event.OUTPUT))], [])
        assert [a.id for a in store.get_artifacts()] == [existing]
    with open_dir(directory) as store:
        assert [a.id for a in store.get_artifacts()] == [existing]
        assert len(store.get_artifacts_by_type("T")) == 1
    assert replayed_tables(directory, tmp_path) == dump_tables(str(directory / "mlmd.sqlite"))


def test_nan_inside_a_struct_is_kept_as_ml_metadata_keeps_it():
    store = fake_store()
    type_id = store.put_artifact_type(pb.ArtifactType(name="T"))
    artifact = pb.Artifact(type_id=type_id)
    artifact.custom_properties["s"].struct_value.fields["x"].number_value = math.nan
    [artifact_id] = store.put_artifacts([artifact])
    [got] = store.get_artifacts()
    assert got.id == artifact_id and math.isnan(got.custom_properties["s"].struct_value.fields["x"].number_value)


# -- a log that already holds damage -----------------------------------------------------
def _unchecked_record(rpc: str, request) -> bytes:
    """A record serialized the way writers did before they checked: nothing refuses it."""
    return RecordFactory("old-writer").make(rpc, request).SerializeToString()


def test_a_log_with_undecodable_records_opens_and_goes_on(tmp_path):
    directory = tmp_path / "store"
    with open_dir(directory) as store:
        type_id = store.put_artifact_type(pb.ArtifactType(name="T"))
    too_deep = _unchecked_record("PutArtifacts", artifacts_request(nested_structs(DEEPEST_STRUCT + 1), type_id))
    with pytest.raises(errors.InvalidArgumentError):
        parse_record(too_deep)
    log = FileLog(str(directory / "log"), durability="none")
    log.append([b"\xff\xff\xff not a LogRecord", too_deep,
                _unchecked_record("PutArtifacts", svc.PutArtifactsRequest(artifacts=[pb.Artifact(type_id=type_id)]))])
    log.close()
    for _ in range(2):  # (opened again: the same outcomes, nothing applied twice)
        with open_dir(directory) as store:
            assert [a.id for a in store.get_artifacts()] == [1]
    with open_dir(directory) as store:
        assert store.put_artifacts([pb.Artifact(type_id=type_id)]) == [2]
        assert [a.id for a in store.get_artifacts()] == [1, 2]
    tables = dump_tables(str(directory / "mlmd.sqlite"))
    outcomes = {row[0]: row for row in tables["mlmdlog_outcome"]}
    assert outcomes[1][1:4] == ("", errors.INVALID_ARGUMENT, outcomes[1][3])
    assert "offset 1 is not a valid LogRecord" in outcomes[1][3]
    assert outcomes[2][2] == errors.INVALID_ARGUMENT and f"limit of {MAX_NESTING} levels" in outcomes[2][3]
    assert outcomes[3][2] == 0 and outcomes[4][2] == 0
    assert replayed_tables(directory, tmp_path) == tables


# -- a second writer -------------------------------------------------------------------
def test_a_second_writer_of_a_busy_store_is_told_at_once(tmp_path):
    """The log's writer lock answers before SQLite's busy timeout (30 s) could be waited out."""
    import sqlite3
    import subprocess
    import sys
    import time

    directory = tmp_path / "store"
    with open_dir(directory) as store:
        store.put_artifact_type(pb.ArtifactType(name="T"))
        busy = sqlite3.connect(str(directory / "mlmd.sqlite"), isolation_level=None)
        busy.execute("BEGIN IMMEDIATE")  # (the first writer mid-transaction)
        second = ("import mlmd_log, sys\nfrom mlmd_log.client import StoreConfig\n"
                  f"try:\n    mlmd_log.MetadataStore(StoreConfig.from_directory({str(directory)!r}))\n"
                  "except mlmd_log.errors.FailedPreconditionError as exc:\n    print(exc); sys.exit(3)\n")
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-c", second], capture_output=True, text=True, timeout=60)
        took = time.monotonic() - started
        busy.rollback()
        busy.close()
    assert result.returncode == 3, result.stderr
    assert "already has a writer" in result.stdout
    assert took < 10


# -- from a gRPC client ----------------------------------------------------------------
def test_a_grpc_client_cannot_brick_the_store_with_a_deep_struct_or_a_nan(tmp_path):
    from mlmd_log.server import MetadataStoreServer, ServeConfig

    directory = tmp_path / "store"
    config = StoreConfig.from_directory(str(directory), durability="none")
    server = MetadataStoreServer(ServeConfig(config, port=0)).start()
    try:
        client = mlmd_log.MetadataStore(pb.MetadataStoreClientConfig(host="127.0.0.1", port=server.port))
        type_id = client.put_artifact_type(pb.ArtifactType(name="T"))
        with pytest.raises(errors.InvalidArgumentError, match="Could not parse proto"):
            client.put_artifacts([artifact_with(nested_lists(DEEPEST_LIST + 1), type_id)])
        outcome = None
        try:  # (sent as it is: the server cannot parse it, and must say so in MLMD's terms)
            client._transport.call("PutArtifacts", artifacts_request(nested_lists(DEEPEST_LIST + 1), type_id))
        except errors.StatusError as exc:
            outcome = exc
        assert outcome is not None and outcome.error_code != errors.UNKNOWN, outcome
        nan = pb.Artifact(type_id=type_id)
        nan.custom_properties["d"].double_value = math.nan
        with pytest.raises(errors.InternalError, match="finite doubles"):
            client.put_artifacts([nan])
        deepest = artifact_with(nested_lists(DEEPEST_LIST), type_id)
        assert client.put_artifacts([deepest]) == [1]
        assert [a.id for a in client.get_artifacts()] == [1]
        client.close()
    finally:
        server.stop()
    with open_dir(directory) as store:  # (the server's store opens again, its log replays)
        assert [a.id for a in store.get_artifacts()] == [1]
    assert replayed_tables(directory, tmp_path) == dump_tables(str(directory / "mlmd.sqlite"))


# -- the shared log ------------------------------------------------------------------
def test_a_kafka_topic_with_undecodable_records_projects_past_them_and_writers_check_theirs(tmp_path):
    """Through the real broker: a remote writer refuses a too-deep put before the topic, and
    the projector service rejects the garbage an older writer left there, then goes on."""
    import threading
    import uuid

    import test_kafka_log
    from mlmd_log.consumer.projector_service import ProjectorService
    from mlmd_log.locations import open_log
    from mlmd_log.producer.kafka_log import KafkaLog
    from mlmd_log.client import SharedLogConfig

    if test_kafka_log.kafka_sh("status").returncode != 0:
        pytest.skip("no Kafka broker running (compose/kafka.sh start)")
    log_url = f"kafka://{test_kafka_log.BOOTSTRAP}/test-trust-{uuid.uuid4().hex[:10]}"
    projection_url = f"sqlite:///{tmp_path}/p.sqlite"
    with KafkaLog.from_url(log_url, create=True, timeout_s=10) as topic:
        topic.append([b"\xff\xff not a record", _unchecked_record("PutArtifacts", artifacts_request(
            nested_structs(DEEPEST_STRUCT + 1), 1))])
    writer = mlmd_log.MetadataStore(SharedLogConfig(log_url, projection_url, wait_timeout_s=30))
    projector = ProjectorService(open_log(log_url), open_projection(projection_url))
    follower = threading.Thread(target=projector.run, kwargs={"report_every": 1e9}, daemon=True)
    follower.start()
    try:
        type_id = writer.put_artifact_type(pb.ArtifactType(name="T"))
        with pytest.raises(errors.InvalidArgumentError, match=f"limit of {MAX_NESTING} levels"):
            writer._transport.call("PutArtifacts", artifacts_request(nested_structs(DEEPEST_STRUCT + 1), type_id))
        assert writer.put_artifacts([artifact_with(nested_lists(DEEPEST_LIST), type_id)]) == [1]
        assert writer.get_artifacts_by_id([1])[0].custom_properties["s"].struct_value == nested_lists(DEEPEST_LIST)
        writer.close()
        with pytest.raises(errors.FailedPreconditionError, match="store is closed"):
            writer.get_artifacts()
    finally:
        projector.stop()
        follower.join(30)
    with KafkaLog.from_url(log_url, timeout_s=10) as topic:
        assert topic.end_offset() == 4  # (two old records, the type, the artifact: nothing refused got in)
    outcomes = {row[0]: row[2] for row in dump_tables(f"{tmp_path}/p.sqlite")["mlmdlog_outcome"]}
    assert outcomes == {0: errors.INVALID_ARGUMENT, 1: errors.INVALID_ARGUMENT, 2: 0, 3: 0}
