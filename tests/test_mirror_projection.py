"""The mirrored MySQL projection: the log applied to a SQLite staging projection and mirrored
into MariaDB batch by batch gives the same rows as the direct MySQL projector and SQLite."""
from __future__ import annotations

import multiprocessing
import os
import threading
import time

import pytest

import mlmd_log as mlmd
from mlmd_log.consumer.replay import replay
from mlmd_log.producer import FileLog
from mlmd_log.producer.memory_log import MemoryLog
from mlmd_log.producer.records import RecordFactory
from mlmd_log.projections import mirror as mirror_module
from mlmd_log.projections.backend import SqliteBackend
from mlmd_log.projections.mirror import MirroredProjection, follow
from mlmd_log.projections.mysql import MySqlBackend
from mlmd_log.projections.projector import Projector
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.proto import metadata_store_service_pb2 as svc
from mlmd_log.client import StoreConfig
from mlmd_log.dialects import MYSQL
from mlmd_log.query.reader import Reader
from mlmd_log.schema import NODE_KINDS

from contracts import ProjectionContract
from dbdump import MLMD_TABLES, dump_tables, normalised
from faults import failing_on_call, stage_ahead
from mysqldb import CASE_SENSITIVE_LIKE, drop as _drop, dump_mysql as _dump_mysql
from mysqldb import fresh_database as _fresh_database
from test_mysql_projection import _write_some_history

pytestmark = pytest.mark.mysql

TABLES = MLMD_TABLES + ("mlmdlog_checkpoint", "mlmdlog_outcome")


def _write_updates(data_dir: str) -> None:
    """Updates of existing nodes and properties (so later batches rewrite earlier nodes),
    a deleted property, a parent context and links, a rejected cycle."""
    store = mlmd.MetadataStore(StoreConfig.from_directory(data_dir))
    try:
        artifacts = store.get_artifacts()
        first = artifacts[0]
        if first.custom_properties:
            del first.custom_properties[sorted(first.custom_properties)[0]]
        first.custom_properties["reviewed"].bool_value = True
        first.state = pb.Artifact.DELETED
        store.put_artifacts([first])
        second = artifacts[1]
        second.uri = "/moved/1"
        store.put_artifacts([second])
        execution = store.get_executions()[0]
        execution.last_known_state = pb.Execution.FAILED
        execution.custom_properties["retry"].int_value = 2
        store.put_executions([execution])
        ctx_type = store.put_context_type(pb.ContextType(name="Run"))
        [parent, child] = store.put_contexts([pb.Context(type_id=ctx_type, name="p"),
                                             pb.Context(type_id=ctx_type, name="c's \"quoted\"")])
        store.put_parent_contexts([pb.ParentContext(parent_id=parent, child_id=child)])
        with pytest.raises(mlmd.errors.StatusError):
            store.put_parent_contexts([pb.ParentContext(parent_id=child, child_id=parent)])
        store.put_attributions_and_associations([pb.Attribution(context_id=child, artifact_id=first.id)],
                                                [pb.Association(context_id=child, execution_id=execution.id)])
        for i in range(4):
            a = store.get_artifacts_by_id([artifacts[i % 2].id])[0]
            a.custom_properties["pass"].int_value = i
            store.put_artifacts([a])
    finally:
        store.close()


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("store"))
    _write_some_history(data_dir)
    _write_updates(data_dir)
    return data_dir


@pytest.fixture
def target(mysql_url):
    target = _fresh_database(mysql_url)
    yield target
    _drop(target)


@pytest.fixture
def log(history):
    """The history's log, read-only."""
    history_log = FileLog(os.path.join(history, "log"), readonly=True)
    yield history_log
    history_log.close()


def _live(history: str) -> dict:
    return normalised(dump_tables(os.path.join(history, "mlmd.sqlite"), TABLES))


def _mirrored(target, staging: str) -> MirroredProjection:
    return MirroredProjection(MySqlBackend(target), staging)


class TestMirroredProjectionContract(ProjectionContract):
    """The MySQL target mirrored from a SQLite staging projection, batch by batch."""

    known_differences = CASE_SENSITIVE_LIKE

    def open_target(self, directory, request):
        target = _fresh_database(request.getfixturevalue("mysql_url"))
        return target, _mirrored(target, os.path.join(directory, "staging.sqlite"))

    def project(self, target, log):
        records = rejected = 0
        while True:  # (at least one apply: applying a caught-up log is part of the contract)
            stats = target[1].apply(log, batch_size=self.batch_size)
            records, rejected = records + stats.records, rejected + stats.rejected
            if target[1].applied_offset() >= log.end_offset():
                return records, rejected

    def dump(self, target, tables):
        return _dump_mysql(target[1].db, tables)

    def reader(self, target):
        return Reader(target[1].db.conn, MYSQL)

    def close_target(self, target):
        target[1].close()
        _drop(target[0])


def test_mirror_equals_direct_mysql_and_sqlite(history, log, target, mysql_url, tmp_path):
    direct_target = _fresh_database(mysql_url)
    try:
        projection = _mirrored(target, str(tmp_path / "staging.sqlite"))
        batches = 0
        while projection.applied_offset() < log.end_offset():
            projection.apply(log, batch_size=3)
            batches += 1
        assert batches > 5
        assert projection.apply(log, batch_size=3).copied == {}  # nothing new: a no-op
        mirrored = _dump_mysql(projection.db, TABLES)
        direct = MySqlBackend(direct_target)
        direct.create_schema()
        replay(log, direct, batch_size=7)
        expected = _dump_mysql(direct, TABLES)
        direct.close()
        live = _live(history)
        for table in TABLES:
            assert mirrored[table] == expected[table], f"{table}: mirror differs from the direct MySQL projector"
            assert mirrored[table] == live[table], f"{table}: mirror differs from the SQLite projection"
        assert mirrored["mlmdlog_checkpoint"][0][1] == log.end_offset()
        projection.close()
    finally:
        _drop(direct_target)


def test_crashes_between_staging_and_mysql_are_repaired(history, log, target, tmp_path, monkeypatch):
    """Staging ahead of MySQL, a mirror failing half-way and a lost staging file all end equal."""
    staging = str(tmp_path / "staging.sqlite")
    projection = _mirrored(target, staging)
    for _ in range(5):
        projection.apply(log, batch_size=4)
    stage_ahead(projection, log)  # (two batches that never reach MySQL)
    assert projection.applied_offset() < projection.projector.next_offset
    # The next mirror fails after writing some rows: nothing of it stays.
    failing_insert = failing_on_call(mirror_module.MySqlMirrorTarget.insert, 4, RuntimeError("connection lost"))
    before = _dump_mysql(projection.db, TABLES + ("mlmdlog_mirror_state",))
    monkeypatch.setattr(mirror_module.MySqlMirrorTarget, "insert", failing_insert)
    with pytest.raises(RuntimeError):
        projection.mirror()
    monkeypatch.undo()
    assert len(failing_insert.calls) == 4
    assert _dump_mysql(projection.db, TABLES + ("mlmdlog_mirror_state",)) == before
    projection.apply(log, batch_size=4)
    projection.close()
    # The staging file is lost: it is replayed up to MySQL's offset, then mirroring goes on.
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(staging + suffix):
            os.remove(staging + suffix)
    projection = _mirrored(target, staging)
    assert projection.projector.next_offset == 0
    projection.catch_up(log, batch_size=7)
    assert _dump_mysql(projection.db, TABLES) == _live(history)
    projection.close()


def test_a_statement_failing_inside_the_mirrors_batched_query_leaves_the_target_as_it_was(
        history, log, target, tmp_path, monkeypatch):
    """The mirror sends its writes several statements to a query; when the server fails one in
    the middle (after others of the same query ran), the whole mirror is rolled back."""
    projection = _mirrored(target, str(tmp_path / "staging.sqlite"))
    projection.apply(log, batch_size=10)
    stage_ahead(projection, log, batches=1, size=10)
    before = _dump_mysql(projection.db, TABLES + ("mlmdlog_mirror_state",))
    real_mark = mirror_module.MySqlMirrorTarget.write_mark

    def failing_mark(self, *args):
        self._queue("INSERT INTO `mlmdlog_no_such_table` VALUES (1)")  # after the rows, before the mark
        return real_mark(self, *args)

    monkeypatch.setattr(mirror_module.MySqlMirrorTarget, "write_mark", failing_mark)
    with pytest.raises(Exception, match="mlmdlog_no_such_table"):
        projection.mirror()
    monkeypatch.undo()
    assert _dump_mysql(projection.db, TABLES + ("mlmdlog_mirror_state",)) == before
    projection.catch_up(log, batch_size=10)
    assert _dump_mysql(projection.db, TABLES) == _live(history)
    projection.close()


def test_takes_over_a_database_of_the_direct_projector(history, log, target, tmp_path):
    """A MySQL projection written by the direct projector (no mirror state) is taken over by a full copy."""
    direct = MySqlBackend(target)
    direct.create_schema()
    Projector(direct).apply_batch(list(log.read(0, log.end_offset() // 2)))
    direct.close()
    projection = _mirrored(target, str(tmp_path / "staging.sqlite"))
    stats = projection.catch_up(log, batch_size=5)
    assert stats.applied_offset == log.end_offset()
    assert _dump_mysql(projection.db, TABLES) == _live(history)
    projection.close()


def test_a_mirror_from_staging_behind_the_target_is_refused(history, log, target, tmp_path):
    """Mirroring a staging file older than the target would turn the target back; it is
    refused, the target is left as it is, and apply() replays staging up to it first."""
    projection = _mirrored(target, str(tmp_path / "staging.sqlite"))
    projection.catch_up(log, batch_size=5)
    projection.close()
    behind = _mirrored(target, str(tmp_path / "older-staging.sqlite"))
    behind.projector.apply_batch(list(log.read(0, 3)))
    before = _dump_mysql(behind.db, TABLES + ("mlmdlog_mirror_state",))
    with pytest.raises(mlmd.errors.FailedPreconditionError, match="is behind the target"):
        behind.mirror()
    assert _dump_mysql(behind.db, TABLES + ("mlmdlog_mirror_state",)) == before
    assert behind.apply(log, batch_size=5).applied_offset == log.end_offset()
    assert _dump_mysql(behind.db, TABLES) == _live(history)
    behind.close()


def _wait_for_offset(target, offset: int, timeout: float = 60.0) -> None:
    watcher = MySqlBackend(target)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = watcher.one("SELECT `applied_offset` FROM `mlmdlog_checkpoint` WHERE `id` = 0")
            if row and row[0] >= offset:
                return
            time.sleep(0.05)
        raise AssertionError(f"the target did not reach offset {offset} in {timeout}s")
    finally:
        watcher.close()


def test_follow_applies_until_stopped(history, log, target, tmp_path):
    projection = _mirrored(target, str(tmp_path / "staging.sqlite"))
    stop = threading.Event()
    thread = threading.Thread(target=follow, args=(log, projection, stop, 6), daemon=True)
    thread.start()
    _wait_for_offset(target, log.end_offset())
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    watcher = MySqlBackend(target)  # its own connection: the follower thread owned the projection's
    assert _dump_mysql(watcher, TABLES) == _live(history)
    watcher.close()
    projection.close()


# -- three ways into MySQL give the same rows (bench/bench_mirror.py measures their speeds) ---
def _pipeline_log(steps: int) -> MemoryLog:
    """Types, a seed artifact, then ``steps`` put_execution records (input seed, output model, a run context)."""
    log, records = MemoryLog(), RecordFactory("mirror-ways")
    at = pb.ArtifactType(name="Examples", properties={"span": pb.INT})
    mt = pb.ArtifactType(name="Model", properties={"version": pb.INT})
    et = pb.ExecutionType(name="Trainer", properties={"step": pb.INT})
    log.append([records.make("PutTypes", svc.PutTypesRequest(
        artifact_types=[at, mt], execution_types=[et],
        context_types=[pb.ContextType(name="PipelineRun")])).SerializeToString()])
    scratch = SqliteBackend(":memory:")
    scratch.create_schema()
    projector = Projector(scratch)
    types = svc.PutTypesResponse.FromString(projector.apply_batch(list(log.read(0, 1)))[0].response)
    ex_type, model_type = types.artifact_type_ids
    [trainer_type], [run_type] = types.execution_type_ids, types.context_type_ids
    seed = pb.Artifact(type_id=ex_type, uri="bench://examples", properties={"span": pb.Value(int_value=1)})
    log.append([records.make("PutArtifacts", svc.PutArtifactsRequest(artifacts=[seed])).SerializeToString()])
    seed.id = svc.PutArtifactsResponse.FromString(projector.apply_batch(list(log.read(1, 1)))[0].response) \
        .artifact_ids[0]
    scratch.close()
    payloads = []
    for step in range(1, steps + 1):
        request = svc.PutExecutionRequest(
            execution=pb.Execution(type_id=trainer_type, last_known_state=pb.Execution.COMPLETE))
        request.execution.properties["step"].int_value = step
        pair = request.artifact_event_pairs.add()
        pair.artifact.CopyFrom(seed)
        pair.event.type = pb.Event.INPUT
        pair = request.artifact_event_pairs.add()
        pair.artifact.type_id = model_type
        pair.artifact.uri = f"bench://w{step % 8}/model/{step}"
        pair.artifact.properties["version"].int_value = step
        pair.event.type = pb.Event.OUTPUT
        request.contexts.add(type_id=run_type, name=f"run-{step % 8}")
        request.options.reuse_context_if_already_exist = True
        payloads.append(records.make("PutExecution", request).SerializeToString())
    log.append(payloads)
    return log


def test_mirror_follow_and_direct_projector_give_the_same_rows(target, mysql_url, tmp_path):
    """A longer log of pipeline steps in large batches (bench/bench_mirror.py times the same three ways)."""
    log = _pipeline_log(1500)
    records = log.end_offset()
    direct_target, follow_target = _fresh_database(mysql_url), _fresh_database(mysql_url)
    try:
        projection = _mirrored(target, str(tmp_path / "staging.sqlite"))
        stats = projection.catch_up(log, batch_size=2000)
        assert stats.applied_offset == records
        mirrored = _dump_mysql(projection.db, TABLES)
        projection.close()

        projection = _mirrored(follow_target, str(tmp_path / "follow.sqlite"))
        stats = follow(log, projection, threading.Event(), batch_size=2000, until_caught_up=True)
        assert stats.applied_offset == records and stats.records == records
        assert _dump_mysql(projection.db, TABLES) == mirrored
        projection.close()

        direct = MySqlBackend(direct_target)
        direct.create_schema()
        replay(log, direct, batch_size=2000)
        assert _dump_mysql(direct, TABLES) == mirrored
        direct.close()
    finally:
        _drop(direct_target)
        _drop(follow_target)


def test_two_mirrors_of_one_target_take_turns_and_a_mirror_trusts_only_its_own_last_state(
        history, log, target, tmp_path, monkeypatch):
    """A mirror remembers what its last mirror left in the target and then does not ask the
    target again; once another mirror has moved the target on, it asks. Taking turns, two
    mirrors with their own staging files end with the target equal to the live store."""
    asked: list[str] = []
    real_max_key = mirror_module.MySqlMirrorTarget.max_key

    def counting_max_key(self, table, column):
        asked.append(table)
        return real_max_key(self, table, column)

    monkeypatch.setattr(mirror_module.MySqlMirrorTarget, "max_key", counting_max_key)
    first = _mirrored(target, str(tmp_path / "first.sqlite"))
    second = _mirrored(target, str(tmp_path / "second.sqlite"))
    first.apply(log, batch_size=3)
    first.apply(log, batch_size=3)
    asked.clear()
    first.apply(log, batch_size=3)  # its own state is still the target's: no max_key asked
    assert asked == []
    turns = 0
    while first.applied_offset() < log.end_offset():
        for projection in (second, first):
            projection.apply(log, batch_size=3)
        turns += 1
    assert turns > 2 and asked  # after the other's turn, the target is asked again
    assert _dump_mysql(first.db, TABLES) == _live(history)
    first.close()
    second.close()


# -- every value reaches MySQL exactly, whoever renders it ----------------------------------
TRICKY_STRINGS = ["back\\slash", "quote'", "both\\'", "nul\x00inside", "\x00", "ünïcødé ✓ 𝔘", "%_", "trailing\\",
                  "\\n not a newline", "", "ctrl\x1a\x7f\r\n\t", "''", "\\\\", "x\\'; DROP TABLE `Artifact`; --"]
TRICKY_DOUBLES = [0.0, -0.0, 1e-300, 0.1 + 0.2, 1.7976931348623157e308, -5e-324, 123456.789, -2.5]


def _write_tricky_values(data_dir: str) -> None:
    store = mlmd.MetadataStore(StoreConfig.from_directory(data_dir))
    try:
        type_id = store.put_artifact_type(pb.ArtifactType(
            name="Tricky", properties={"s": pb.STRING, "d": pb.DOUBLE, "i": pb.INT}))
        ctx_type = store.put_context_type(pb.ContextType(name="Ctx"))
        artifacts = []
        for n, text in enumerate(TRICKY_STRINGS):
            a = pb.Artifact(type_id=type_id, uri=f"/u/{text}", name=f"n{n}-{text}")
            a.properties["s"].string_value = text
            a.properties["d"].double_value = TRICKY_DOUBLES[n % len(TRICKY_DOUBLES)]
            a.properties["i"].int_value = [-2 ** 31, 2 ** 31 - 1, 0, -1][n % 4]
            a.custom_properties["c"].string_value = text[::-1]
            a.custom_properties["z"].double_value = -0.0 if n % 2 else 0.0
            a.custom_properties["b"].bool_value = bool(n % 2)
            a.custom_properties["st"].struct_value.update({"k": text, "n": n})
            a.custom_properties["pr"].proto_value.Pack(pb.Value(string_value=text))
            artifacts.append(a)
        ids = store.put_artifacts(artifacts)
        store.put_contexts([pb.Context(type_id=ctx_type, name=text or "empty") for text in TRICKY_STRINGS])
        # An update rewrites nodes holding these values (the mirror deletes and re-inserts them).
        moved = store.get_artifacts_by_id(ids[:5])
        for a in moved:
            a.custom_properties["c"].string_value += "\\'"
        store.put_artifacts(moved)
    finally:
        store.close()


def _exact_rows(db: MySqlBackend, tables) -> dict:
    """Rows as repr text: -0.0 and 0.0 differ, as do bytes and text."""
    return {t: sorted(repr(r) for r in db.rows(f"SELECT * FROM `{t}`")) for t in tables}


@pytest.mark.parametrize("no_backslash_escapes", [False, True])
def test_mirror_copies_every_value_exactly(tmp_path, mysql_url, target, no_backslash_escapes):
    """Rows the mirror writes with its own multi-row INSERT text (strings with quotes,
    backslashes and NULs, zeros, extreme doubles, blobs) are the rows the direct projector
    writes through PyMySQL's parameters, in either string escaping mode of the server."""
    data_dir = str(tmp_path / "store")
    _write_tricky_values(data_dir)
    log = FileLog(os.path.join(data_dir, "log"), readonly=True)
    direct_target = _fresh_database(mysql_url)
    tables = TABLES + tuple(kind.read_form_table for kind in NODE_KINDS)
    try:
        projection = _mirrored(target, str(tmp_path / "staging.sqlite"))
        if no_backslash_escapes:
            projection.db.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
        from pymysql.constants import SERVER_STATUS
        mode = projection.db.conn.server_status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES
        assert bool(mode) is no_backslash_escapes
        projection.catch_up(log, batch_size=2)
        direct = MySqlBackend(direct_target)
        direct.create_schema()
        replay(log, direct)
        mirrored, expected = _exact_rows(projection.db, tables), _exact_rows(direct, tables)
        for table in tables:
            assert mirrored[table] == expected[table], f"{table}: mirror differs from the direct projector"
        stored = {r[0] for r in projection.db.rows("SELECT `string_value` FROM `ArtifactProperty` "
                                                     "WHERE `name` = 's'")}
        assert {s.encode() if isinstance(s, str) else s for s in stored} >= {t.encode() for t in TRICKY_STRINGS}
        assert _dump_mysql(projection.db, TABLES) == _live(data_dir)
        direct.close()
        projection.close()
    finally:
        log.close()
        _drop(direct_target)


# -- the stager in a child process (as `mlmd-log project --staging` runs it) ---------------
def test_follow_with_the_stager_in_a_child_process_and_again_after_a_stop(history, log, target, tmp_path):
    log_dir = os.path.join(history, "log")
    projection = _mirrored(target, str(tmp_path / "staging.sqlite"))
    # First run: stopped part way (a small ahead-bound keeps the stager close to the mirror).
    stop = threading.Event()
    thread = threading.Thread(target=follow, args=(log, projection, stop, 3),
                              kwargs={"log_url": log_dir, "max_ahead": 3}, daemon=True)
    thread.start()
    _wait_for_offset(target, 6)
    stop.set()
    thread.join(60)
    assert not thread.is_alive()
    assert not [p for p in multiprocessing.active_children() if "stager" in p.name]
    # The parent's view of staging follows what the child applied, so a second run goes on
    # from there instead of replaying staging from an old offset.
    assert projection.projector.next_offset >= projection.applied_offset()
    stats = follow(log, projection, threading.Event(), 4, until_caught_up=True, log_url=log_dir)
    assert stats.applied_offset == log.end_offset()
    assert _dump_mysql(projection.db, TABLES) == _live(history)
    projection.close()


def test_a_child_stager_that_fails_is_raised_by_follow(history, log, target, tmp_path):
    projection = _mirrored(target, str(tmp_path / "staging.sqlite"))
    with pytest.raises(mlmd.errors.InvalidArgumentError, match="Unsupported log URL"):
        follow(log, projection, threading.Event(), 4, until_caught_up=True, log_url="nosuch://log")
    projection.close()


def test_a_child_stager_that_dies_is_an_internal_error_of_follow(history, log, target, tmp_path):
    """A stager killed from outside (the OOM killer, say) ends follow() with a clear error
    instead of a projector that waits forever for batches."""
    import signal

    log_dir = os.path.join(history, "log")
    raised: list = []
    projection = _mirrored(target, str(tmp_path / "staging.sqlite"))

    def run() -> None:
        try:
            follow(log, projection, threading.Event(), 2, log_url=log_dir)
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not [p for p in multiprocessing.active_children()
                                               if "stager" in p.name]:
        time.sleep(0.01)
    [stager] = [p for p in multiprocessing.active_children() if "stager" in p.name]
    os.kill(stager.pid, signal.SIGKILL)
    thread.join(60)
    assert not thread.is_alive()
    assert len(raised) == 1 and isinstance(raised[0], mlmd.errors.InternalError), raised
    assert "staging process exited" in raised[0].message
    projection.close()


def test_one_stager_per_staging_file(history, log, target, tmp_path, monkeypatch):
    """A second projector on the same staging file waits for the first stager's lock, and
    fails with a clear error when it is not let go (two stagers would apply records twice)."""
    staging = str(tmp_path / "staging.sqlite")
    first = _mirrored(target, staging)
    second_target = _fresh_database(os.environ["MLMD_TEST_MYSQL_URL"])
    try:
        stop = threading.Event()
        thread = threading.Thread(target=follow, args=(log, first, stop, 3), daemon=True)
        thread.start()
        _wait_for_offset(target, 3)
        monkeypatch.setattr(mirror_module, "STAGING_LOCK_WAIT_S", 0.5)
        second = _mirrored(second_target, staging)
        with pytest.raises(mlmd.errors.FailedPreconditionError, match="in use by another stager"):
            follow(log, second, threading.Event(), 3, until_caught_up=True)
        second.close()
        stop.set()
        thread.join(30)
        assert not thread.is_alive()
        # Let go: the next projector on that staging file goes on where the first stopped.
        stats = follow(log, first, threading.Event(), 5, until_caught_up=True)
        assert stats.applied_offset == log.end_offset()
        assert _dump_mysql(first.db, TABLES) == _live(history)
        first.close()
    finally:
        _drop(second_target)


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_cli_projector_kill9_takes_its_stager_along_and_a_restart_ends_equal(history, target, tmp_path):
    """`mlmd-log project --staging` killed with -9 mid-run: its stager process exits too (no
    orphan writing staging), and a restarted projector ends with the live projection's rows."""
    import signal
    import subprocess
    import sys

    log_dir = os.path.join(history, "log")
    url = target.url
    staging = str(tmp_path / "staging.sqlite")
    cmd = [sys.executable, "-m", "mlmd_log.cli", "project", "--log", log_dir, "--into", url,
           "--staging", staging, "--batch-size", "2", "--report-every", "1000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not _children(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        children = _children(proc.pid)
        assert children, "the projector started a stager process"
        _wait_for_offset(target, 2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        deadline = time.monotonic() + 30
        while any(_alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(c) for c in children), "the stager outlived its projector"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for child in children if "children" in locals() else []:
            if _alive(child):
                os.kill(child, signal.SIGKILL)
    done = subprocess.run(cmd + ["--until-caught-up"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    watcher = MySqlBackend(target)
    try:
        assert _dump_mysql(watcher, TABLES) == _live(history)
    finally:
        watcher.close()
