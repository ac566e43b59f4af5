"""The scale-out deployment under load and failure: many worker processes writing through
Kafka, one projector service (``mlmd-log project``) applying into MySQL.

* 8 workers write concurrently: every acknowledged put is applied exactly once, every
  rejected put keeps its error, and MySQL, SQLite and a second MySQL database rebuilt
  from the same topic hold the same rows and answer the same reads the same way.
* kill -9 of the projector mid-run, several times: the restarted service ends equal to a
  fresh replay of the topic.
* The broker stops mid-run: a synchronous writer gets a retryable ``UnavailableError``
  (never a kafka-python exception), reads keep working, writes resume after the broker
  is back and nothing acknowledged before the outage is lost.

The shared broker (127.0.0.1:9092, compose/kafka.sh) serves the first two tests, with a
topic of their own; the outage test runs a throwaway broker on free ports.
"""
from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

pytest.importorskip("kafka")
pymysql = pytest.importorskip("pymysql")

import mlmd_log as mlmd  # noqa: E402
from mysqldb import drop as _drop, dump_mysql, fresh_database  # noqa: E402
from mlmd_log.consumer.replay import replay  # noqa: E402
from mlmd_log.dialects import DUCKDB  # noqa: E402
from mlmd_log.locations import open_log, open_projection  # noqa: E402
from mlmd_log.projections.mysql import MySqlBackend, MySqlTarget  # noqa: E402
from mlmd_log.proto import metadata_store_pb2 as pb  # noqa: E402
from mlmd_log.query.service_reads import ReadService  # noqa: E402
from mlmd_log.client import SharedLogConfig  # noqa: E402
from mlmd_log.store import ListOptions, OrderByField  # noqa: E402

from dbdump import MLMD_TABLES, OUR_TABLES, dump_tables, normalised  # noqa: E402
from test_kafka_log import bootstrap, broker_problem, free_port, kafka_sh  # noqa: E402,F401  (fixture)
from test_projector_service import _write_log  # noqa: E402

pytestmark = [pytest.mark.kafka, pytest.mark.mysql]

HERE = Path(__file__).resolve().parent
WORKER = HERE / "support" / "scaleout_worker.py"
ALL_TABLES = MLMD_TABLES + OUR_TABLES


# ---------------------------------------------------------------------------- helpers


def _fresh_database(url: str) -> MySqlTarget:
    return fresh_database(url, "mlmdlog_scaleout")


def _dump_mysql(db: MySqlBackend) -> dict:
    return dump_mysql(db, ALL_TABLES)


def _url(target: MySqlTarget) -> str:
    return target.url


@pytest.fixture
def databases(mysql_url: str):
    """Fresh MySQL databases on demand (``databases()``), all dropped at the end."""
    made: list[MySqlTarget] = []

    def make() -> MySqlTarget:
        made.append(_fresh_database(mysql_url))
        return made[-1]

    yield make
    for target in made:
        _drop(target)


def _scalar(target: MySqlTarget, sql: str) -> Any:
    """One value, read on a new connection (no stale snapshot); None while the database,
    its tables or the row do not exist yet."""
    try:
        conn = pymysql.connect(host=target.host, port=target.port, user=target.user, password=target.password,
                               database=target.database, autocommit=True, connect_timeout=5)
    except pymysql.err.MySQLError:  # the projector has not created the database yet
        return None
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            row = cur.fetchone()
            return row[0] if row else None
    except pymysql.err.MySQLError:  # tables not created yet
        return None
    finally:
        conn.close()


def _applied(target: MySqlTarget) -> int:
    """The projection's checkpoint (the next offset to apply)."""
    return _scalar(target, "SELECT `applied_offset` FROM `mlmdlog_checkpoint` WHERE `id` = 0") or 0


def _schema_ready(target: MySqlTarget) -> bool:
    """True once the projector has created the schema (its tables and simple types are committed)."""
    return (_scalar(target, "SELECT COUNT(*) FROM `Type`") or 0) > 0 and \
        _scalar(target, "SELECT COUNT(*) FROM `mlmdlog_outcome`") is not None


class Projector:
    """``mlmd-log project`` as a subprocess; its output goes to files (kafka-python logs a lot)."""

    def __init__(self, log_url: str, target: MySqlTarget, out_dir: Path, batch_size: int = 200,
                 staging: Optional[Path] = None):
        """``staging``: the mirrored projector (as the compose stack runs it): a stager process
        applies the log to that SQLite file, the projector mirrors it into MySQL in bulk."""
        out_dir.mkdir(parents=True, exist_ok=True)
        n = len(list(out_dir.glob("projector-*.out")))
        self.stdout_path = out_dir / f"projector-{n}.out"
        self.stderr_path = out_dir / f"projector-{n}.err"
        mirrored = ["--staging", str(staging)] if staging else []
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mlmd_log.cli", "project", "--log", log_url, "--into", _url(target),
                 "--batch-size", str(batch_size), "--report-every", "0.5", *mirrored],
                stdout=out, stderr=err, text=True)

    def alive(self) -> None:
        assert self.proc.poll() is None, f"projector exited early:\n{self.stderr()[-3000:]}"

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> str:
        """SIGTERM (finish the batch, then stop); returns stdout; asserts a clean exit."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        assert self.proc.returncode == 0, self.stderr()[-3000:]
        return self.stdout_path.read_text()

    def ensure_dead(self) -> None:
        if self.proc.poll() is None:
            self.kill9()


def _wait_until(condition: Callable[[], bool], timeout: float, what: str,
                check: Callable[[], None] = lambda: None) -> None:
    deadline = time.monotonic() + timeout
    pause = 0.005
    while not condition():
        check()
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _end_offset(log_url: str) -> int:
    log = open_log(log_url)
    try:
        return log.end_offset()
    finally:
        log.close()


def _replay_into(log_url: str, db: Any) -> None:
    log = open_log(log_url)
    try:
        replay(log, db, batch_size=97)  # a batch size unlike the projector's
    finally:
        log.close()


class _ReadsOnly:
    """A MetadataStore transport that answers reads straight from one projection."""

    def __init__(self, db: Any):
        if hasattr(db, "connection"):  # a DuckDbProjection
            self.reads = ReadService(db.connection, DUCKDB)
        else:
            self.reads = ReadService(db.conn, db.dialect)

    def call(self, rpc: str, request: Any) -> Any:
        return self.reads.call(rpc, request)

    def close(self) -> None:
        pass


def _reader(db: Any) -> mlmd.MetadataStore:
    """The public MetadataStore read API over ``db`` (no log, no writer)."""
    store = mlmd.MetadataStore.__new__(mlmd.MetadataStore)
    store._config, store._max_num_retries, store._transport = None, 1, _ReadsOnly(db)
    return store


def _wire(value: Any) -> Any:
    """A comparable form of a read's answer: protos as deterministic bytes."""
    if hasattr(value, "SerializeToString"):
        return value.SerializeToString(deterministic=True)
    if isinstance(value, (list, tuple)):
        return tuple(_wire(v) for v in value)
    return value


def _answers(store: mlmd.MetadataStore) -> dict[str, Any]:
    """A spread of MLMD reads: types, listings with paging/order/filters, by type, by name,
    by uri, by context, events, neighbour contexts and a lineage subgraph."""
    out: dict[str, Any] = {}

    def read(label: str, fn: Callable[[], Any]) -> Any:
        try:
            value = fn()
        except mlmd.errors.StatusError as exc:
            value = (type(exc).__name__, exc.message)
        out[label] = _wire(value)
        return value

    read("artifact types", store.get_artifact_types)
    read("execution types", store.get_execution_types)
    read("context types", store.get_context_types)
    read("type Data", lambda: store.get_artifact_type("Data"))
    read("no such type", lambda: store.get_artifact_type("Nope"))
    artifacts = read("artifacts", store.get_artifacts)
    executions = read("executions", store.get_executions)
    contexts = read("contexts", store.get_contexts)
    read("newest 7 artifacts", lambda: store.get_artifacts(
        list_options=ListOptions(limit=7, order_by=OrderByField.CREATE_TIME, is_asc=False)))
    read("executions by id desc", lambda: store.get_executions(
        list_options=ListOptions(limit=150, order_by=OrderByField.ID, is_asc=False)))
    read("filter property", lambda: store.get_executions(
        list_options=ListOptions(filter_query="properties.tag.string_value = 'w3-2'")))
    read("filter uri like", lambda: store.get_artifacts(
        list_options=ListOptions(filter_query="uri LIKE '/out/w1-%'")))
    read("filter context", lambda: store.get_artifacts(
        list_options=ListOptions(filter_query="contexts_a.name = 'pipeline-1' AND type = 'Data'")))
    read("filter events", lambda: store.get_executions(
        list_options=ListOptions(filter_query="events_0.type = INPUT AND id < 40")))
    read("by type", lambda: store.get_artifacts_by_type("Data"))
    read("executions by type", lambda: store.get_executions_by_type("Trainer"))
    read("contexts by type", lambda: store.get_contexts_by_type("Pipeline"))
    read("context by name", lambda: store.get_context_by_type_and_name("Pipeline", "pipeline-2"))
    read("artifact by name", lambda: store.get_artifact_by_type_and_name("Data", "model-w0-0"))
    read("by uri", lambda: store.get_artifacts_by_uri("/in/w5-3"))
    for context in contexts:
        read(f"artifacts of {context.name}", lambda: store.get_artifacts_by_context(context.id))
        read(f"executions of {context.name}", lambda: store.get_executions_by_context(context.id))
    for artifact in artifacts[:40:7]:
        read(f"contexts of artifact {artifact.id}", lambda: store.get_contexts_by_artifact(artifact.id))
    for execution in executions[:40:9]:
        read(f"contexts of execution {execution.id}", lambda: store.get_contexts_by_execution(execution.id))
    return out


def _event_answers(store: mlmd.MetadataStore) -> dict[str, Any]:
    """Reads that load event paths or child-context links (and lineage, which reads events)."""
    executions, artifacts, contexts = store.get_executions(), store.get_artifacts(), store.get_contexts()
    return {
        "events by executions": _wire(store.get_events_by_execution_ids([e.id for e in executions])),
        "events by artifacts": _wire(store.get_events_by_artifact_ids([a.id for a in artifacts])),
        "children": _wire([store.get_children_contexts_by_context(c.id) for c in contexts]),
        "parents": _wire([store.get_parent_contexts_by_context(c.id) for c in contexts]),
        "lineage": _wire(store.get_lineage_subgraph(
            pb.LineageSubgraphQueryOptions(starting_artifacts=pb.LineageSubgraphQueryOptions.StartingNodes(
                filter_query="uri = '/s/7'"), max_num_hops=4))),
    }


def _worker_reports(procs: list[subprocess.Popen]) -> list[dict]:
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"worker failed:\n{err[-3000:]}"
        assert "Traceback" not in err, err[-3000:]
        reports.extend(json.loads(line) for line in out.splitlines() if line.startswith("{"))
    return reports


# ---------------------------------------------------------------------------- many writers


@pytest.mark.parametrize("mirrored", [False, True], ids=["direct", "mirrored"])
def test_eight_workers_through_kafka_every_ack_applied_once_and_projections_agree(
        bootstrap: str, databases, tmp_path: Path, mirrored: bool) -> None:
    workers, steps = 8, 10
    log_url = f"kafka://{bootstrap}/scaleout-{uuid.uuid4().hex[:12]}"
    live = databases()
    projector = Projector(log_url, live, tmp_path, batch_size=50,
                          staging=tmp_path / "staging.sqlite" if mirrored else None)
    try:
        # The schema exists before the workers open the projection (see the concurrent-open test).
        _wait_until(lambda: _schema_ready(live), 60, "the projector's schema", projector.alive)
        procs = [subprocess.Popen([sys.executable, str(WORKER), log_url, _url(live), str(w), str(steps)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for w in range(workers)]
        try:
            reports = _worker_reports(procs)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
        end = _end_offset(log_url)
        _wait_until(lambda: _applied(live) >= end, 60, "the projector to catch up", projector.alive)
        assert f"stopped at offset {end}" in projector.stop()
    finally:
        projector.ensure_dead()

    by_op = collections.defaultdict(list)
    for report in reports:
        by_op[report["op"]].append(report)
    assert not by_op["unexpectedly-accepted"]
    assert len(by_op["exec"]) == workers * steps
    assert len(by_op["async"]) == workers * 12
    assert len(by_op["reject"]) == workers * 2 * len([i for i in range(steps) if i % 4 == 1])
    # Types: one definition, same ids for every worker, first put or re-put.
    assert len({tuple(r["ids"]) for r in by_op["types"]}) == 1 and len(by_op["types"]) == 2 * workers
    data_type, trainer_type, pipeline_type = by_op["types"][0]["ids"]

    db = MySqlBackend(live)
    try:
        rows = lambda sql: db.rows(sql)  # noqa: E731
        user_types = rows("SELECT `id`, `name` FROM `Type` WHERE `name` IN ('Data', 'Trainer', 'Pipeline')")
        assert sorted(user_types) == sorted([(data_type, "Data"), (trainer_type, "Trainer"),
                                             (pipeline_type, "Pipeline")])

        # Every acknowledged execution is in the projection exactly once, with the acknowledged ids.
        acked_executions = {r["execution_id"]: r["tag"] for r in by_op["exec"]}
        assert len(acked_executions) == workers * steps, "two puts were acknowledged with the same id"
        stored = rows("SELECT e.`id`, p.`string_value` FROM `Execution` e JOIN `ExecutionProperty` p "
                      "ON p.`execution_id` = e.`id` AND p.`name` = 'tag'")
        assert len(stored) == len(rows("SELECT `id` FROM `Execution`"))
        assert sorted(stored) == sorted(acked_executions.items())
        assert len({tag for _, tag in stored}) == len(stored), "an execution was applied twice"

        uris = dict(rows("SELECT `id`, `uri` FROM `Artifact`"))
        expected_uris = {}
        for r in by_op["exec"]:
            source, model = r["artifact_ids"]
            expected_uris[source], expected_uris[model] = f"/in/{r['tag']}", f"/out/{r['tag']}"
        for r in by_op["async"]:
            [artifact_id] = r["artifact_ids"]
            expected_uris[artifact_id] = r["uri"]
        assert uris == expected_uris, "artifacts differ from the acknowledged ones (lost or duplicated)"

        events = collections.defaultdict(set)
        for execution_id, artifact_id, kind in rows("SELECT `execution_id`, `artifact_id`, `type` FROM `Event`"):
            events[execution_id].add((artifact_id, kind))
        for r in by_op["exec"]:
            source, model = r["artifact_ids"]
            assert events[r["execution_id"]] == {(source, pb.Event.INPUT), (model, pb.Event.OUTPUT)}

        # Contexts were reused across processes: three, each with its executions attributed.
        contexts = dict(rows("SELECT `id`, `name` FROM `Context`"))
        assert sorted(contexts.values()) == ["pipeline-0", "pipeline-1", "pipeline-2"]
        associations = set(rows("SELECT `context_id`, `execution_id` FROM `Association`"))
        attributions = set(rows("SELECT `context_id`, `artifact_id` FROM `Attribution`"))
        assert associations == {(r["context_ids"][0], r["execution_id"]) for r in by_op["exec"]}
        assert attributions == {(r["context_ids"][0], a) for r in by_op["exec"] for a in r["artifact_ids"]}
        for r in by_op["exec"]:
            assert contexts[r["context_ids"][0]] == f"pipeline-{int(r['tag'].split('-')[1]) % 3}"

        # Rejected puts are records too: their outcomes hold exactly the errors the workers got.
        outcomes = rows("SELECT `log_offset`, `error_code`, `error_message` FROM `mlmdlog_outcome`")
        assert sorted(o for o, _, _ in outcomes) == list(range(end)), "an offset has no outcome, or two"
        assert collections.Counter((code, message) for _, code, message in outcomes if code) == \
            collections.Counter((r["code"], r["message"]) for r in by_op["reject"])
        assert {r["error"] for r in by_op["reject"] if r["kind"] == "duplicate-name"} == {"AlreadyExistsError"}
        assert all(r["code"] != 0 for r in by_op["reject"])
        live_dump = _dump_mysql(db)
        live_reads = _answers(_reader(db))
    finally:
        db.close()

    # The same topic replayed into SQLite, into a second MySQL database and into DuckDB.
    from mlmd_log.projections.duckdb import DuckDbProjection

    rebuilt = MySqlBackend(databases())
    rebuilt.create_schema()
    sqlite_db = open_projection(f"sqlite:///{tmp_path / 'rebuilt.sqlite'}")
    duck = DuckDbProjection(str(tmp_path / "rebuilt.duckdb"))
    try:
        _replay_into(log_url, rebuilt)
        _replay_into(log_url, sqlite_db)
        sqlite_db.conn.commit()
        kafka_log = open_log(log_url)
        try:
            assert duck.catch_up(kafka_log, batch_size=97).applied_offset == end
        finally:
            kafka_log.close()
        mysql_dump = _dump_mysql(rebuilt)
        sqlite_dump = normalised(dump_tables(str(tmp_path / "rebuilt.sqlite"), ALL_TABLES))
        duck_dump = normalised({t: duck.connection.execute(f'SELECT * FROM "{t}"').fetchall() for t in MLMD_TABLES})
        for table in ALL_TABLES:
            assert live_dump[table] == mysql_dump[table], f"{table}: live MySQL differs from a MySQL replay"
            assert live_dump[table] == sqlite_dump[table], f"{table}: MySQL differs from a SQLite replay"
        for table in MLMD_TABLES:
            assert live_dump[table] == duck_dump[table], f"{table}: MySQL differs from the DuckDB projection"
        assert len(live_dump["Artifact"]) == len(expected_uris)
        mysql_reads, sqlite_reads = _answers(_reader(rebuilt)), _answers(_reader(sqlite_db))
        duck_reads = _answers(_reader(duck))
    finally:
        rebuilt.close()
        sqlite_db.close()
        duck.close()
    assert live_reads.keys() == mysql_reads.keys() == sqlite_reads.keys() == duck_reads.keys()
    for label in live_reads:
        assert live_reads[label] == mysql_reads[label], f"read {label!r}: live MySQL vs MySQL replay"
        assert live_reads[label] == sqlite_reads[label], f"read {label!r}: MySQL vs SQLite"
        assert live_reads[label] == duck_reads[label], f"read {label!r}: MySQL vs DuckDB"
    assert len(live_reads["executions"]) == workers * steps and len(live_reads["contexts"]) == 3


def test_mysql_and_duckdb_answer_event_context_and_lineage_reads_like_sqlite(databases, tmp_path: Path) -> None:
    _write_log(str(tmp_path), 30)
    store = mlmd.MetadataStore(str(tmp_path))  # the same directory: add parent/child context links
    try:
        run = store.get_context_type("Run").id
        [parent] = store.put_contexts([pb.Context(type_id=run, name="all runs")])
        children = [c.id for c in store.get_contexts_by_type("Run") if c.id != parent]
        store.put_parent_contexts([pb.ParentContext(child_id=c, parent_id=parent) for c in children])
    finally:
        store.close()
    sqlite_db = open_projection(f"sqlite:///{tmp_path / 'rebuilt.sqlite'}")
    mysql_db = MySqlBackend(databases())
    try:
        mysql_db.create_schema()
        for db in (sqlite_db, mysql_db):
            log = open_log(str(tmp_path / "log"), readonly=True)
            replay(log, db)
            log.close()
        expected = _event_answers(_reader(sqlite_db))
        assert expected["events by executions"] and expected["children"] != ((),) * len(expected["children"])
        assert _event_answers(_reader(mysql_db)) == expected
        from mlmd_log.projections.duckdb import DuckDbProjection

        with DuckDbProjection(str(tmp_path / "rebuilt.duckdb")) as duck:
            log = open_log(str(tmp_path / "log"), readonly=True)
            duck.catch_up(log)
            log.close()
            assert _event_answers(_reader(duck)) == expected
    finally:
        sqlite_db.close()
        mysql_db.close()


_OPEN_AT = """
import sys, time
from mlmd_log.locations import open_projection
url, at = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, at - time.time()))
open_projection(url, create=True).close()
"""


def test_workers_and_projector_may_open_a_fresh_mysql_projection_at_the_same_time(databases) -> None:
    failures: list[str] = []
    for _ in range(3):  # a race: up to three fresh databases, so a lucky interleaving does not hide it
        url = _url(databases())
        at = time.time() + 2.5  # after every interpreter has imported mlmd_log
        procs = [subprocess.Popen([sys.executable, "-c", _OPEN_AT, url, str(at)], stderr=subprocess.PIPE,
                                  text=True) for _ in range(8)]
        failures += [err.strip().splitlines()[-1] for proc in procs for err in [proc.communicate(timeout=60)[1]]
                     if proc.returncode]
        if failures:
            break
    assert failures == []


# ---------------------------------------------------------------------------- kill -9


def _copy_into_kafka(records: list[bytes], log_url: str) -> None:
    log = open_log(log_url)
    try:
        for start in range(0, len(records), 400):
            log.append(records[start:start + 400])
    finally:
        log.close()


@pytest.mark.parametrize("mirrored", [False, True], ids=["direct", "mirrored"])
def test_projector_kill9_over_kafka_into_mysql_ends_equal_to_a_fresh_replay(
        bootstrap: str, databases, tmp_path: Path, mirrored: bool) -> None:
    """Killed with -9 four times while applying; the mirrored projector keeps its staging file
    across the restarts (staging ahead of MySQL, a stager finishing its last batch)."""
    staging = tmp_path / "staging.sqlite" if mirrored else None
    batch = 5  # (small batches: both projectors take steps in bulk, and the kills must land mid-log)
    _write_log(str(tmp_path), 900)  # put_execution records with some rejected puts, in a FileLog
    source = open_log(str(tmp_path / "log"), readonly=True)
    records = [payload for _, payload in source.read(0)]
    source.close()
    log_url = f"kafka://{bootstrap}/scaleout-kill-{uuid.uuid4().hex[:12]}"
    half = len(records) // 2
    _copy_into_kafka(records[:half], log_url)
    target = databases()
    rng = random.Random(11)
    kills, last = 0, 0
    while kills < 4:  # kill -9 right after observed progress, while it is applying batches
        projector = Projector(log_url, target, tmp_path, batch_size=batch, staging=staging)
        try:
            _wait_until(lambda: _applied(target) > last, 60, "progress after a restart", projector.alive)
            time.sleep(rng.uniform(0, 0.05))
        finally:
            projector.kill9()
        kills += 1
        now = _applied(target)
        assert now > last
        if kills == 1:
            _copy_into_kafka(records[half:], log_url)  # the log grows while the projector is down
        assert now < len(records), "the projector finished before the kills landed mid-log"
        last = now
    projector = Projector(log_url, target, tmp_path, batch_size=batch, staging=staging)
    try:
        _wait_until(lambda: _applied(target) >= len(records), 90, "the restarted projector to catch up",
                    projector.alive)
        assert f"stopped at offset {len(records)}" in projector.stop()
    finally:
        projector.ensure_dead()

    fresh = MySqlBackend(databases())
    resumed = MySqlBackend(target)
    try:
        fresh.create_schema()
        _replay_into(log_url, fresh)
        after_kills, rebuilt = _dump_mysql(resumed), _dump_mysql(fresh)
    finally:
        fresh.close()
        resumed.close()
    for table in ALL_TABLES:
        assert after_kills[table] == rebuilt[table], f"{table} differs from a fresh replay of the topic"
    assert len(after_kills["Artifact"]) == 900
    assert len(after_kills["mlmdlog_outcome"]) == len(records)


# ---------------------------------------------------------------------------- broker outage


@pytest.fixture
def own_broker(tmp_path: Path):
    """A throwaway broker on free ports: (bootstrap, env for kafka_sh)."""
    if broker_problem():
        pytest.skip(broker_problem())
    port = free_port()
    env = {"MLMD_KAFKA_PORT": str(port), "MLMD_KAFKA_CTRL_PORT": str(free_port()),
           "MLMD_KAFKA_HOME": str(tmp_path / "broker"), "MLMD_KAFKA_JVM_OPTS": "-XX:TieredStopAtLevel=1"}
    started = kafka_sh("start", env)
    assert started.returncode == 0, started.stderr
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        kafka_sh("clean", env)


def test_broker_outage_gives_writers_a_retryable_error_and_loses_nothing_acknowledged(
        own_broker, databases, tmp_path: Path) -> None:
    bootstrap_, env = own_broker
    topic = "outage"
    log_url = f"kafka://{bootstrap_}/{topic}"
    target = databases()
    projector = Projector(log_url, target, tmp_path, batch_size=50)
    try:
        _wait_until(lambda: _schema_ready(target), 60, "the projector's schema", projector.alive)
        store = mlmd.MetadataStore(SharedLogConfig(log_url, _url(target), wait_timeout_s=30, log_timeout_s=3))
        type_id = store.put_artifact_type(pb.ArtifactType(name="Data"))
        acknowledged = {f"before-{i}": store.put_artifacts([pb.Artifact(type_id=type_id, name=f"before-{i}")])[0]
                        for i in range(20)}

        # A writer configured to block and resume instead of failing (opened while the broker is up).
        blocking = mlmd.MetadataStore(SharedLogConfig(log_url, _url(target), wait_timeout_s=60, log_timeout_s=3,
                                                      block_on_unavailable_s=90))
        assert kafka_sh("stop", env).returncode == 0
        started = time.monotonic()
        with pytest.raises((mlmd.errors.UnavailableError, mlmd.errors.DeadlineExceededError)) as info:
            store.put_artifacts([pb.Artifact(type_id=type_id, name="during-outage")])
        assert time.monotonic() - started < 20
        error = info.value
        assert isinstance(error, mlmd.errors.StatusError)
        if isinstance(error, mlmd.errors.UnavailableError):
            assert bootstrap_ in error.message and "retry" in error.message
        rendered = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        assert "kafka.errors" not in rendered and error.__cause__ is None, rendered
        # Reads come from the projection, which is still up.
        assert {a.name: a.id for a in store.get_artifacts_by_type("Data")} == acknowledged
        projector.alive()  # the projector waits for the broker instead of dying

        # The other configuration: block and resume. This put waits through the outage.
        blocked: dict = {}
        waiter = threading.Thread(target=lambda: blocked.update(ids=blocking.put_artifacts(
            [pb.Artifact(type_id=type_id, name="blocked-through-outage")])))
        waiter.start()
        time.sleep(4)
        assert waiter.is_alive() and not blocked, "a blocking put should wait for the broker"

        restarted = kafka_sh("start", env)
        assert restarted.returncode == 0, restarted.stderr
        waiter.join(120)
        assert not waiter.is_alive() and blocked.get("ids"), "the blocking put did not resume"
        acknowledged["blocked-through-outage"] = blocked["ids"][0]
        blocking.close()
        resumed_at = time.monotonic()
        while True:  # what a caller does with a retryable error: retry until the broker is back
            try:
                [after] = store.put_artifacts([pb.Artifact(type_id=type_id, name="after-outage")])
                break
            except mlmd.errors.UnavailableError:
                assert time.monotonic() - resumed_at < 60, "writes did not resume after the broker restarted"
                time.sleep(0.5)
        acknowledged["after-outage"] = after
        for i in range(5):
            acknowledged[f"later-{i}"] = store.put_artifacts([pb.Artifact(type_id=type_id, name=f"later-{i}")])[0]
        assert {a.name: a.id for a in store.get_artifacts_by_type("Data")} == acknowledged
        store.close()
        end = _end_offset(log_url)
        _wait_until(lambda: _applied(target) >= end, 60, "the projector to catch up", projector.alive)
        assert f"stopped at offset {end}" in projector.stop()
        assert "Traceback" not in projector.stderr()
    finally:
        projector.ensure_dead()

    # The record whose append failed never reached the (stopped) broker: not in the log, not applied.
    rebuilt_path = tmp_path / "after-outage.sqlite"
    rebuilt = open_projection(f"sqlite:///{rebuilt_path}")
    _replay_into(log_url, rebuilt)
    rebuilt.close()
    replayed = normalised(dump_tables(str(rebuilt_path), ALL_TABLES))
    live = MySqlBackend(target)
    try:
        live_rows = _dump_mysql(live)
        live_names = {name: id_ for id_, name in live.rows("SELECT `id`, `name` FROM `Artifact`")}
    finally:
        live.close()
    assert live_names == acknowledged, "an acknowledged put was lost, or the failed one was applied"
    for table in ALL_TABLES:
        assert live_rows[table] == replayed[table], f"{table}: the live projection differs from a replay"
