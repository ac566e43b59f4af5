"""What the log adds to MLMD: every put is a record, replay is exact, retries apply once,
corruption is loud, one writer per log, read-only projections, and envelope timestamps."""
from __future__ import annotations

import getpass
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import mlmd_log
from mlmd_log import errors
from mlmd_log.consumer.inline import InlineApplier
from mlmd_log.consumer.replay import replay
from mlmd_log.locations import open_projection
from mlmd_log.producer import FileLog, MemoryLog
from mlmd_log.producer.records import RecordFactory
from mlmd_log.projections.backend import SqliteBackend
from mlmd_log.projections.projector import Projector
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.proto import metadata_store_service_pb2 as svc
from mlmd_log.schemas import log_record_pb2
from mlmd_log.client import StoreConfig

from dbdump import MLMD_TABLES, dump_tables

ROOT = Path(__file__).resolve().parent.parent


# -- helpers -----------------------------------------------------------------------
def fake_store() -> mlmd_log.MetadataStore:
    config = pb.ConnectionConfig()
    config.fake_database.SetInParent()
    return mlmd_log.MetadataStore(config)


def log_records(log) -> list[tuple[int, log_record_pb2.LogRecord]]:
    out = []
    for offset, payload in log.read(0):
        record = log_record_pb2.LogRecord()
        record.ParseFromString(payload)
        out.append((offset, record))
    return out


def outcome_rows(conn) -> dict[int, tuple]:
    rows = conn.execute("SELECT `log_offset`, `record_id`, `error_code`, `error_message` FROM `mlmdlog_outcome`")
    return {row[0]: row[1:] for row in rows.fetchall()}


def workload(store: mlmd_log.MetadataStore) -> list[errors.StatusError]:
    """A small mixed history: types, nodes, updates, links and rejected puts. Returns the errors seen."""
    seen = []

    def rejected(call, *args, **kwargs):
        with pytest.raises(errors.StatusError) as info:
            call(*args, **kwargs)
        seen.append(info.value)

    at = pb.ArtifactType(name="DataSet")
    at.properties["split"] = pb.STRING
    a_type = store.put_artifact_type(at)
    e_type = store.put_execution_type(pb.ExecutionType(name="Trainer"))
    c_type = store.put_context_type(pb.ContextType(name="Experiment"))
    rejected(store.put_artifact_type, pb.ArtifactType())
    data = pb.Artifact(type_id=a_type, uri="/data/1", name="d1")
    data.properties["split"].string_value = "train"
    [data_id] = store.put_artifacts([data])
    rejected(store.put_artifacts, [pb.Artifact(type_id=a_type, name="d1")])
    rejected(store.put_artifacts, [pb.Artifact(type_id=999)])
    store.put_execution(pb.Execution(type_id=e_type, last_known_state=pb.Execution.COMPLETE),
                        [(pb.Artifact(id=data_id, type_id=a_type), pb.Event(type=pb.Event.INPUT)),
                         (pb.Artifact(type_id=a_type, uri="/model/1"), pb.Event(type=pb.Event.OUTPUT))],
                        [pb.Context(type_id=c_type, name="exp1")])
    rejected(store.put_execution, pb.Execution(type_id=e_type), [], [pb.Context(type_id=c_type, name="exp1")])
    store.put_contexts([pb.Context(type_id=c_type, name="exp2")])
    store.put_parent_contexts([pb.ParentContext(parent_id=2, child_id=1)])
    rejected(store.put_parent_contexts, [pb.ParentContext(parent_id=1, child_id=2)])
    store.put_artifacts([pb.Artifact(id=data_id, type_id=a_type, uri="/data/1b")], field_mask_paths=["uri"])
    return seen


def read_everything(store: mlmd_log.MetadataStore) -> list[bytes]:
    """Every read that has an answer here, serialized (so replayed stores can be compared)."""
    found = []
    for items in (store.get_artifact_types(), store.get_execution_types(), store.get_context_types(),
                  store.get_artifacts(), store.get_executions(), store.get_contexts(),
                  store.get_events_by_execution_ids([1]), store.get_artifacts_by_context(1),
                  store.get_executions_by_context(1), store.get_parent_contexts_by_context(1),
                  store.get_children_contexts_by_context(2), store.get_artifacts_by_uri("/data/1b")):
        found.extend(item.SerializeToString(deterministic=True) for item in items)
    return found


def readonly_store(sqlite_path: str) -> mlmd_log.MetadataStore:
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = sqlite_path
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READONLY
    return mlmd_log.MetadataStore(config)


@pytest.fixture
def store_dir(tmp_path):
    """A closed on-disk store (file log + SQLite) holding ``workload``'s history."""
    directory = tmp_path / "store"
    with mlmd_log.MetadataStore(StoreConfig.from_directory(str(directory), durability="none")) as store:
        workload(store)
    return directory


def make_record(rpc: str, request, timestamp_ms: int, record_id: str | None = None, **kw) -> bytes:
    record = RecordFactory("test").make(rpc, request, record_id=record_id, timestamp_ms=timestamp_ms)
    for key, value in kw.items():
        setattr(record, key, value)
    return record.SerializeToString()


def type_request(name: str) -> svc.PutArtifactTypeRequest:
    return svc.PutArtifactTypeRequest(artifact_type=pb.ArtifactType(name=name))


def artifacts_request(type_id: int, n: int = 1) -> svc.PutArtifactsRequest:
    return svc.PutArtifactsRequest(artifacts=[pb.Artifact(type_id=type_id) for _ in range(n)])


def memory_projector() -> tuple[MemoryLog, SqliteBackend, Projector]:
    db = SqliteBackend(":memory:")
    db.create_schema()
    return MemoryLog(), db, Projector(db)


# -- every put is a record ------------------------------------------------------------
def test_every_put_accepted_or_rejected_is_an_enveloped_record():
    store = fake_store()
    before_ms = int(time.time() * 1000)
    seen = workload(store)
    after_ms = int(time.time() * 1000)
    records = log_records(store._transport._log)
    assert len(records) == 13  # 8 accepted + 5 rejected puts, nothing else
    assert [offset for offset, _ in records] == list(range(13))
    for _, record in records:
        assert len(record.record_id) == 32 and int(record.record_id, 16) >= 0
        assert (record.producer.host, record.producer.pid, record.producer.user) == \
            (socket.gethostname(), os.getpid(), getpass.getuser())
        assert before_ms <= record.timestamp_ms <= after_ms
        assert record.schema_version == 1
        assert record.WhichOneof("request") is not None
    assert len({r.record_id for _, r in records}) == 13
    kinds = [r.WhichOneof("request") for _, r in records]
    assert kinds[:5] == ["put_artifact_type", "put_execution_type", "put_context_type", "put_artifact_type",
                         "put_artifacts"]
    assert records[3][1].put_artifact_type.artifact_type == pb.ArtifactType()  # the rejected request, verbatim
    assert list(records[-1][1].put_artifacts.update_mask.paths) == ["uri"]
    assert len(seen) == 5
    store.close()


def test_rejected_puts_have_the_callers_error_as_outcome():
    store = fake_store()
    seen = workload(store)
    rows = outcome_rows(store._transport.db.conn)
    records = dict(log_records(store._transport._log))
    failed = {offset: row for offset, row in rows.items() if row[1] != 0}
    assert len(rows) == len(records)
    assert [(row[1], row[2]) for _, row in sorted(failed.items())] == [(e.error_code, e.message) for e in seen]
    assert [type(e) for e in seen] == [errors.InvalidArgumentError, errors.AlreadyExistsError,
                                       errors.NotFoundError, errors.AlreadyExistsError, errors.InvalidArgumentError]
    for offset, (record_id, _, _) in rows.items():
        assert record_id == records[offset].record_id
    store.close()


# -- timestamps come from the envelope --------------------------------------------------
def test_create_time_is_the_records_timestamp():
    store = fake_store()
    type_id = store.put_artifact_type(pb.ArtifactType(name="A"))
    [aid] = store.put_artifacts([pb.Artifact(type_id=type_id)])
    time.sleep(0.005)
    store.put_artifacts([pb.Artifact(id=aid, type_id=type_id, uri="x")])
    records = log_records(store._transport._log)
    [artifact] = store.get_artifacts_by_id([aid])
    assert artifact.create_time_since_epoch == records[1][1].timestamp_ms
    assert artifact.last_update_time_since_epoch == records[2][1].timestamp_ms
    store.close()


def test_projector_time_is_monotonic_max_of_record_times():
    log, db, projector = memory_projector()
    log.append([make_record("PutArtifactType", type_request("A"), 5_000),
                make_record("PutArtifacts", artifacts_request(10), 3_000),  # a producer with a slow clock
                make_record("PutArtifacts", artifacts_request(10), 7_000)])
    outcomes = projector.apply_batch(log.read(0))
    assert [o.error_code for o in outcomes] == [0, 0, 0]
    rows = db.conn.execute("SELECT `id`, `create_time_since_epoch`, `last_update_time_since_epoch` "
                           "FROM `Artifact` ORDER BY `id`").fetchall()
    assert rows == [(1, 5_000, 5_000), (2, 7_000, 7_000)]


# -- replay ------------------------------------------------------------------------------
def test_replay_gives_identical_tables_and_reads(store_dir, tmp_path):
    rebuilt = tmp_path / "rebuilt.sqlite"
    log = FileLog(str(store_dir / "log"), readonly=True)
    db = open_projection(f"sqlite:///{rebuilt}")
    stats = replay(log, db, batch_size=3)  # small batches: several transactions
    db.close()
    log.close()
    assert (stats.records, stats.rejected, stats.end_offset) == (13, 5, 13)
    original = dump_tables(str(store_dir / "mlmd.sqlite"))
    assert original["Artifact"] and original["mlmdlog_outcome"]
    assert dump_tables(str(rebuilt)) == original
    live, replayed = readonly_store(str(store_dir / "mlmd.sqlite")), readonly_store(str(rebuilt))
    assert read_everything(replayed) == read_everything(live)
    assert len(read_everything(live)) > 10
    live.close()
    replayed.close()


@pytest.mark.parametrize("batch_size", [2, 5, 100])
def test_rejected_records_in_a_batch_leave_what_one_by_one_application_leaves(store_dir, tmp_path, batch_size):
    """A batch is applied without a savepoint per record; a rejected record (some after
    writing rows, as a put_execution whose context already exists) rolls the batch back and
    it is applied again around it. Tables, outcomes and checkpoint must equal applying
    each record in a transaction of its own, also with producer retries of a rejected and
    an accepted record at the end of the batch."""
    source = FileLog(str(store_dir / "log"), readonly=True)
    records = list(source.read(0))
    source.close()
    live = sqlite3.connect(str(store_dir / "mlmd.sqlite"))
    codes = outcome_rows(live)
    live.close()
    rejected_offset = next(o for o in sorted(codes) if o > 3 and codes[o][1] != 0)
    retries = [records[rejected_offset][1], records[-1][1]]
    records += [(len(records) + i, payload) for i, payload in enumerate(retries)]

    def applied(path, size):
        db = SqliteBackend(str(path))
        db.create_schema()
        projector = Projector(db)
        outcomes = []
        for start in range(0, len(records), size):
            outcomes += projector.apply_batch(records[start:start + size])
        db.close()
        return outcomes, dump_tables(str(path))

    one_by_one, tables = applied(tmp_path / "one.sqlite", 1)
    batched, batched_tables = applied(tmp_path / f"batch{batch_size}.sqlite", batch_size)
    assert sum(1 for o in one_by_one if o.error_code) == 6  # five rejected puts and the retry of one
    assert one_by_one[-2].error_message == one_by_one[rejected_offset].error_message
    assert batched == one_by_one
    assert batched_tables == tables


def test_cli_replay_gives_identical_mlmd_tables(store_dir, tmp_path):
    rebuilt = tmp_path / "cli.sqlite"
    done = subprocess.run([sys.executable, "-m", "mlmd_log.cli", "replay", "--log", str(store_dir / "log"),
                           "--into", f"sqlite:///{rebuilt}", "--quiet"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "replayed 13 records (5 rejected" in done.stdout
    assert dump_tables(str(rebuilt), MLMD_TABLES) == dump_tables(str(store_dir / "mlmd.sqlite"), MLMD_TABLES)


def test_replay_into_a_projection_that_is_up_to_date_changes_nothing(store_dir, tmp_path):
    before = dump_tables(str(store_dir / "mlmd.sqlite"))
    log = FileLog(str(store_dir / "log"), readonly=True)
    db = open_projection(str(store_dir / "mlmd.sqlite"))
    stats = replay(log, db)
    db.close()
    log.close()
    assert stats.records == 0 and stats.end_offset == 13
    assert dump_tables(str(store_dir / "mlmd.sqlite")) == before


# -- idempotency -------------------------------------------------------------------------
def test_same_record_twice_applies_once_with_the_first_outcome():
    store = fake_store()
    type_id = store.put_artifact_type(pb.ArtifactType(name="A"))
    applier = store._transport._applier
    payload = make_record("PutArtifacts", artifacts_request(type_id, 2), int(time.time() * 1000),
                          record_id="a" * 32)
    first = applier.submit(payload)
    second = applier.submit(payload)  # a producer retry after a lost ack
    assert (first.offset, second.offset) == (1, 2)
    assert first.error_code == second.error_code == 0
    assert second.response == first.response
    response = svc.PutArtifactsResponse()
    response.ParseFromString(second.response)
    assert list(response.artifact_ids) == [1, 2]
    assert [a.id for a in store.get_artifacts()] == [1, 2]
    assert store.put_artifacts([pb.Artifact(type_id=type_id)]) == [3]  # the retry took no id
    assert store._transport._log.end_offset() == 4  # both copies stay in the log
    store.close()


def test_retried_rejected_record_gets_the_same_error():
    log, db, projector = memory_projector()
    bad = make_record("PutArtifacts", artifacts_request(999), 1_000, record_id="b" * 32)
    log.append([bad, make_record("PutArtifactType", type_request("A"), 1_000), bad])
    outcomes = projector.apply_batch(log.read(0))
    assert [o.error_code for o in outcomes] == [errors.NOT_FOUND, 0, errors.NOT_FOUND]
    assert outcomes[2].error_message == outcomes[0].error_message
    assert outcomes[2].record_id == outcomes[0].record_id == "b" * 32
    assert [row[1] for _, row in sorted(outcome_rows(db.conn).items())] == [errors.NOT_FOUND, 0, errors.NOT_FOUND]


def test_retry_in_a_later_batch_is_still_recognised():
    log, db, projector = memory_projector()
    log.append([make_record("PutArtifactType", type_request("A"), 1_000),
                make_record("PutArtifacts", artifacts_request(10), 1_000, record_id="c" * 32)])
    projector.apply_batch(log.read(0))
    log.append([make_record("PutArtifacts", artifacts_request(10), 2_000, record_id="c" * 32)])
    # a new projector over the same database, as after a restart
    [outcome] = Projector(db).apply_batch(log.read(2))
    assert outcome.error_code == 0
    assert db.conn.execute("SELECT COUNT(*) FROM `Artifact`").fetchone() == (1,)


# -- corrupt and future records ---------------------------------------------------------
def test_corrupt_record_is_a_rejected_outcome_naming_its_offset():
    """A payload that is no LogRecord (written before writers checked theirs) is rejected on
    its own, as every replay rejects it; the records around it are applied."""
    log, db, projector = memory_projector()
    log.append([make_record("PutArtifactType", type_request("A"), 1_000),
                b"not a log record",
                make_record("PutArtifactType", type_request("B"), 1_000)])
    outcomes = projector.apply_batch(log.read(0))
    assert [o.error_code for o in outcomes] == [0, errors.INVALID_ARGUMENT, 0]
    assert outcomes[1].record_id == "" and "offset 1 is not a valid LogRecord" in outcomes[1].error_message
    assert projector.next_offset == 3
    assert [r[0] for r in db.conn.execute("SELECT `name` FROM `Type` WHERE `id` > 9 ORDER BY `id`")] == ["A", "B"]
    assert outcome_rows(db.conn)[1] == ("", errors.INVALID_ARGUMENT, outcomes[1].error_message)
    # applied again one by one (a replay in other batches): the same outcomes
    _, other_db, other = memory_projector()
    assert [other.apply_batch([record])[0] for record in log.read(0)] == outcomes


def test_store_on_a_log_with_a_corrupt_record_opens_and_goes_on(tmp_path):
    log = FileLog(str(tmp_path / "log"), durability="none")
    log.append([make_record("PutArtifactType", type_request("A"), 1_000), b"\xff\xff\xff garbage"])
    log.close()
    with mlmd_log.MetadataStore(StoreConfig.from_directory(str(tmp_path), durability="none")) as store:
        assert [t.name for t in store.get_artifact_types()] == ["A"]
        assert store.put_artifact_type(pb.ArtifactType(name="B")) == store.get_artifact_type("A").id + 1
    conn = sqlite3.connect(str(tmp_path / "mlmd.sqlite"))
    [(code, message)] = conn.execute("SELECT `error_code`, `error_message` FROM `mlmdlog_outcome` "
                                     "WHERE `log_offset` = 1").fetchall()
    conn.close()
    assert code == errors.INVALID_ARGUMENT and "offset 1 is not a valid LogRecord" in message


def test_record_from_a_newer_schema_version_is_refused():
    log, db, projector = memory_projector()
    log.append([make_record("PutArtifactType", type_request("A"), 1_000, schema_version=2)])
    with pytest.raises(errors.FailedPreconditionError, match="schema version 2"):
        projector.apply_batch(log.read(0))
    assert projector.next_offset == 0
    assert db.conn.execute("SELECT COUNT(*) FROM `Type` WHERE `name` = 'A'").fetchone() == (0,)


def test_inline_applier_refuses_a_projection_ahead_of_its_log():
    log, db, projector = memory_projector()
    log.append([make_record("PutArtifactType", type_request("A"), 1_000)])
    projector.apply_batch(log.read(0))
    with pytest.raises(errors.DataLossError, match="log ends at 0"):
        InlineApplier(MemoryLog(), Projector(db))


def test_a_second_projector_on_the_same_projection_is_refused_not_applied_twice(tmp_path):
    """Two projectors on one SQLite projection (a mistake, or a stager outliving its process):
    the one whose checkpoint moved under it refuses its next batch, and nothing is applied twice."""
    log = MemoryLog()
    log.append([make_record("PutArtifactType", type_request(f"T{i}"), 1_000 + i) for i in range(6)])
    path = str(tmp_path / "p.sqlite")
    first_db, second_db = SqliteBackend(path), SqliteBackend(path)
    first_db.create_schema()
    first, second = Projector(first_db), Projector(second_db)
    first.apply_batch(log.read(0, 3))
    with pytest.raises(errors.FailedPreconditionError, match="another projector"):
        second.apply_batch(log.read(0, 3))
    assert second.next_offset == 0 and not second.in_transaction
    first.apply_batch(log.read(3, 3))  # the first goes on; the refused one left no lock behind
    assert first_db.one("SELECT COUNT(*) FROM `Type` WHERE `name` LIKE 'T%'")[0] == 6
    assert Projector(SqliteBackend(path)).next_offset == 6
    first_db.close()
    second_db.close()


# -- one writer, read-only mode, bad configs ----------------------------------------------
def test_second_writer_process_gets_failed_precondition(tmp_path):
    with mlmd_log.MetadataStore(StoreConfig.from_directory(str(tmp_path), durability="none")) as store:
        store.put_artifact_type(pb.ArtifactType(name="A"))
        script = textwrap.dedent(f"""
            import mlmd_log
            from mlmd_log.client import StoreConfig
            try:
                mlmd_log.MetadataStore(StoreConfig.from_directory({str(tmp_path)!r}))
            except Exception as exc:
                print(type(exc).__name__, isinstance(exc, RuntimeError), exc)
            else:
                print("opened")
        """)
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert done.stdout.startswith("FailedPreconditionError True "), done.stdout + done.stderr
        assert "already has a writer" in done.stdout and str(os.getpid()) in done.stdout
        # the first writer is unaffected
        assert store.put_artifact_type(pb.ArtifactType(name="B")) == 11


def test_readonly_sqlite_reads_but_refuses_puts(tmp_path):
    path = str(tmp_path / "mlmd.sqlite")
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = path
    with mlmd_log.MetadataStore(config) as store:
        type_id = store.put_artifact_type(pb.ArtifactType(name="A"))
        store.put_artifacts([pb.Artifact(type_id=type_id, uri="/x")])
    assert os.path.isdir(path + ".log")
    ro = readonly_store(path)
    assert [a.uri for a in ro.get_artifacts()] == ["/x"]
    assert ro.get_artifact_type("A").id == type_id
    with pytest.raises(errors.FailedPreconditionError, match="read-only"):
        ro.put_artifacts([pb.Artifact(type_id=type_id)])
    with pytest.raises(errors.FailedPreconditionError):
        ro.put_artifact_type(pb.ArtifactType(name="B"))
    ro.close()
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM `Artifact`").fetchone() == (1,)


def test_readonly_on_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(errors.NotFoundError) as info:
        readonly_store(str(tmp_path / "absent.sqlite"))
    assert isinstance(info.value, RuntimeError)


def test_empty_connection_config_is_an_mlmd_error_and_a_runtime_error():
    with pytest.raises(errors.StatusError) as info:
        mlmd_log.MetadataStore(pb.ConnectionConfig())
    assert isinstance(info.value, RuntimeError)  # what ml-metadata raises ("Unset")
    assert isinstance(info.value, errors.InvalidArgumentError)


def test_read_only_view_of_a_missing_or_foreign_projection_fails_clearly(tmp_path):
    """ProjectionConfig on nothing, or on a database without MLMD's tables, is an MLMD error
    at construction (and leaves no file behind), not a SQL error at the first read."""
    import sqlite3

    from mlmd_log.client import ProjectionConfig

    missing = tmp_path / "missing.sqlite"
    with pytest.raises(errors.NotFoundError):
        mlmd_log.MetadataStore(ProjectionConfig(f"sqlite:///{missing}"))
    assert not missing.exists()
    foreign = tmp_path / "foreign.sqlite"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(errors.FailedPreconditionError):
        mlmd_log.MetadataStore(ProjectionConfig(f"sqlite:///{foreign}"))


# -- first attempts and retries (LogRecord.attempt) ----------------------------------------
def test_only_retried_records_are_looked_up_and_a_retry_in_a_later_batch_applies_once(tmp_path, monkeypatch):
    """A record whose id its producer just made (attempt 1) cannot repeat an earlier one,
    so the projector does not look its id up; a record sent again (attempt 2) is looked up,
    in a later batch too, and gets the first outcome."""
    from mlmd_log.producer.records import as_retry
    from mlmd_log.projections import projector as projector_module

    looked_up = []
    original = projector_module.read_outcomes

    def counting(db, where, params):
        looked_up.append(list(params))
        return original(db, where, params)

    monkeypatch.setattr(projector_module, "read_outcomes", counting)
    factory = RecordFactory()
    made = [factory.make("PutArtifactType", svc.PutArtifactTypeRequest(artifact_type=pb.ArtifactType(name="T")))]
    made += [factory.make("PutArtifacts", svc.PutArtifactsRequest(artifacts=[pb.Artifact(type_id=10, uri=f"u{i}")]))
             for i in range(3)]
    assert {record.attempt for record in made} == {1}
    db = SqliteBackend(str(tmp_path / "p.sqlite"))
    db.create_schema()
    projector = Projector(db)
    first = projector.apply_batch([(i, record.SerializeToString()) for i, record in enumerate(made)])
    assert looked_up == []
    retry = as_retry(made[2].SerializeToString())
    assert log_record_pb2.LogRecord.FromString(retry).attempt == 2
    [again] = projector.apply_batch([(4, retry)])
    assert looked_up == [[made[2].record_id]]
    assert (again.error_code, again.response) == (first[2].error_code, first[2].response)
    assert db.one("SELECT COUNT(*) FROM `Artifact`") == (3,)
    db.close()


def test_a_writer_sends_records_again_marked_as_retries(tmp_path):
    """RemoteTransport.append after an unavailable log: the same records, the same ids,
    attempt 2 (so the projector looks them up)."""
    from mlmd_log.client import RemoteTransport

    class FlakyLog:
        def __init__(self):
            self.calls = []

        def append(self, payloads):
            self.calls.append(list(payloads))
            if len(self.calls) == 1:
                raise errors.UnavailableError("broker away")
            return list(range(len(payloads)))

    transport = RemoteTransport(str(tmp_path / "log"), f"sqlite:///{tmp_path / 'p.sqlite'}",
                                block_on_unavailable_s=5)
    real, flaky = transport.log, FlakyLog()
    transport.log = flaky
    payloads = [RecordFactory().make("PutArtifacts", svc.PutArtifactsRequest()).SerializeToString()
                for _ in range(2)]
    try:
        assert transport.append(payloads) == [0, 1]
    finally:
        transport.log = real
        transport.close()
    first, second = flaky.calls
    assert first == payloads
    decoded = [log_record_pb2.LogRecord.FromString(p) for p in second]
    assert [r.record_id for r in decoded] == [log_record_pb2.LogRecord.FromString(p).record_id for p in payloads]
    assert [r.attempt for r in decoded] == [2, 2]


def test_record_ids_differ_across_factories_and_forked_children():
    """Record ids are a random prefix per factory and a counter: two factories, or a factory
    and its copy in a forked child, never hand out the same id."""
    request = svc.PutArtifactTypeRequest(artifact_type=pb.ArtifactType(name="T"))
    first, second = RecordFactory("a"), RecordFactory("b")
    ids = [first.make("PutArtifactType", request).record_id for _ in range(3)]
    ids += [second.make("PutArtifactType", request).record_id for _ in range(3)]
    assert len(set(ids)) == 6 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert ids[0][:16] == ids[2][:16] != ids[3][:16]  # (one prefix per factory)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, through the pipe
        os.close(read)
        os.write(write, ",".join(first.make("PutArtifactType", request).record_id
                                 for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child_ids = pipe.read().split(",")
    os.waitpid(pid, 0)
    parent_ids = [first.make("PutArtifactType", request).record_id for _ in range(3)]
    assert len(child_ids) == 3 and not set(child_ids) & set(parent_ids + ids)
    assert child_ids[0][:16] != ids[0][:16]
