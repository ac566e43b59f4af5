"""The pipelined direct projector (consumer/pipelined.py): batches of steps written by a
thread while the next is decided must leave exactly what the ordinary projector leaves,
also when a write fails, rows clash, or records are retried across batches."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from mlmd_log.consumer.pipelined import PipelinedApplier
from mlmd_log.consumer.writer_process import WriterProcess
from mlmd_log.producer import MemoryLog
from mlmd_log.producer.records import RecordFactory, as_retry
from mlmd_log.projections.mysql import MySqlBackend
from mlmd_log.projections.projector import Projector
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.proto import metadata_store_service_pb2 as svc

from dbdump import MLMD_TABLES, normalised
from mysqldb import drop, dump_mysql, fresh_database
from test_steps import apply, history

pytestmark = pytest.mark.mysql

TABLES = MLMD_TABLES + ("mlmdlog_artifact_pb", "mlmdlog_execution_pb", "mlmdlog_context_pb", "mlmdlog_checkpoint",
                        "mlmdlog_outcome")


def pipeline_history(workers: int = 4, steps: int = 240, late_context: bool = True) -> list[bytes]:
    """Setup records (types, a seed artifact and a run context per worker), then pipeline
    steps naming their worker's seed, with a few producer retries (the same record again,
    soon and much later) and one put the general path must take (a new context)."""
    factory = RecordFactory()
    out: list[bytes] = []

    def add(rpc, request):
        record = factory.make(rpc, request)
        out.append(record.SerializeToString())
        return record

    add("PutArtifactType", svc.PutArtifactTypeRequest(artifact_type=pb.ArtifactType(
        name="Model", properties={"version": pb.INT})))
    add("PutExecutionType", svc.PutExecutionTypeRequest(execution_type=pb.ExecutionType(
        name="Trainer", properties={"step": pb.INT})))
    add("PutContextType", svc.PutContextTypeRequest(context_type=pb.ContextType(name="Run")))
    model, trainer, run = 10, 11, 12  # (after the 9 system types)
    for w in range(workers):
        add("PutArtifacts", svc.PutArtifactsRequest(artifacts=[pb.Artifact(
            type_id=model, uri=f"seed://{w}", properties={"version": pb.Value(int_value=0)})]))
    retried = []
    for i in range(steps):
        w = i % workers
        req = svc.PutExecutionRequest(execution=pb.Execution(
            type_id=trainer, last_known_state=pb.Execution.COMPLETE, properties={"step": pb.Value(int_value=i)}))
        seed = req.artifact_event_pairs.add()
        seed.artifact.CopyFrom(pb.Artifact(id=1 + w, type_id=model, uri=f"seed://{w}",
                                           properties={"version": pb.Value(int_value=0)}))
        seed.event.type = pb.Event.INPUT
        made = req.artifact_event_pairs.add()
        made.artifact.CopyFrom(pb.Artifact(type_id=model, uri=f"m://{i}", properties={"version": pb.Value(int_value=i)}))
        made.event.type = pb.Event.OUTPUT
        name = "run-late" if late_context and i == steps // 2 else f"run-{w}"  # (the general path creates it)
        req.contexts.add(type_id=run, name=name)
        req.options.reuse_context_if_already_exist = True
        record = add("PutExecution", req)
        if i % 37 == 5:
            retried.append(record)
        if i % 50 == 10 and retried:
            out.append(as_retry(retried[0].SerializeToString()))  # (a retry of a record from far back)
        if i % 23 == 7:
            out.append(as_retry(record.SerializeToString()))  # (a retry right after it)
    return out


def run_pipelined(target, records: list[bytes], batch_size: int, fail=None):
    """Applies ``records`` as ProjectorService would (re-reading from next_offset after an
    error); returns outcomes by offset, the table dump and the applier's counts."""
    db, reader = MySqlBackend(target), MySqlBackend(target)
    db.create_schema()
    pipeline = PipelinedApplier(Projector(db), reader)
    outcomes = {}
    numbered = list(enumerate(records))
    errors_seen = 0
    try:
        while pipeline.projector.next_offset < len(records) or pipeline.in_flight:
            start = pipeline.projector.next_offset
            try:
                if start >= len(records):
                    pipeline.drain()
                    continue
                for outcome in pipeline.apply_batch(numbered[start:start + batch_size]):
                    outcomes[outcome.offset] = outcome
            except Exception:  # noqa: BLE001  (what the service retries)
                errors_seen += 1
                assert errors_seen < 5
        pipeline.close()
        dump = dump_mysql(db, TABLES)
    finally:
        db.close()
        reader.close()
    return [outcomes[i] for i in range(len(records))], dump, dict(pipeline.counts), errors_seen


def expected(tmp_path, records):
    general, tables, _ = apply(tmp_path / "general.sqlite", records, 1, steps=False)
    return general, normalised({t: tables[t] for t in TABLES})


def pipelined_equals_general(tmp_path, mysql_url, records: list[bytes], batch_size: int, failures: int = 0) -> dict:
    """Applies ``records`` pipelined into a fresh MySQL database; requires the outcomes and
    tables of the general path on SQLite (and ``failures`` failed batches, each applied
    again); returns the applier's counts."""
    general, tables = expected(tmp_path, records)
    target = fresh_database(mysql_url)
    try:
        outcomes, dump, counts, errors_seen = run_pipelined(target, records, batch_size)
    finally:
        drop(target)
    assert errors_seen == failures and counts["failed"] == failures
    assert outcomes == general
    for table in TABLES:
        assert dump[table] == tables[table], f"{table} differs"
    return counts


def test_pipelined_steps_leave_what_the_general_path_leaves(tmp_path, mysql_url):
    records = pipeline_history()
    counts = pipelined_equals_general(tmp_path, mysql_url, records, 25)
    assert counts["pipelined"] > 5 and counts["ordinary"] >= 2  # (setup; the new context)


def test_undecodable_records_amid_steps_are_rejected_as_on_the_general_path(tmp_path, mysql_url):
    """Payloads that are no LogRecord (from writers that did not check theirs) among the
    steps: each one rejected alone, the steps around it applied, pipelined or not."""
    records = pipeline_history()
    records[40:40] = [b"\xff\xfe not a record", b"\x8a\x01\x05\x0a\x03"]  # (garbage; a request cut short)
    (tmp_path / "check").mkdir()
    general, _ = expected(tmp_path / "check", records)
    assert [o.error_code for o in general[40:42]] == [3, 3] and not any(o.error_code for o in general[42:50])
    counts = pipelined_equals_general(tmp_path, mysql_url, records, 25)
    assert counts["pipelined"] > 5


def test_random_history_pipelined_equals_the_general_path(tmp_path, mysql_url):
    """Rejections, names, changed inputs: many records go the ordinary way (a rejection
    clears what the engine remembers), some pipelined."""
    counts = pipelined_equals_general(tmp_path, mysql_url, history(7, 300, tmp_path / "made.sqlite"), 10)
    assert counts["pipelined"] > 5


def test_batches_handed_over_while_the_writers_are_busy_join_into_one(tmp_path, mysql_url, monkeypatch):
    """Small batches decided while both writers are storing wait as one batch (one
    transaction) for the next free writer; the projection is still the general path's."""
    records = pipeline_history()
    original = WriterProcess.call
    stored = []

    def slow(writer, *message):
        if message[0] == "rows":
            stored.append(len(message[2]))  # (the batch's outcome rows: its records)
            time.sleep(0.2)
        return original(writer, *message)

    monkeypatch.setattr(WriterProcess, "call", slow)
    counts = pipelined_equals_general(tmp_path, mysql_url, records, 5)
    assert counts["joined"] > 5
    assert max(stored) > 5 and len(stored) == counts["pipelined"]


def test_a_failed_write_drops_the_batches_after_it_and_they_are_applied_again(tmp_path, mysql_url, monkeypatch):
    import pymysql

    records = pipeline_history()
    calls = {"n": 0}
    original = WriterProcess.call

    def flaky(writer, *message):
        if message[0] == "rows":
            calls["n"] += 1
            if calls["n"] == 2:
                raise pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")
        return original(writer, *message)

    monkeypatch.setattr(WriterProcess, "call", flaky)
    pipelined_equals_general(tmp_path, mysql_url, records, 25, failures=1)


def test_a_batch_failing_after_the_next_one_stored_its_rows_takes_that_one_back(tmp_path, mysql_url, monkeypatch):
    """Two writers: batch k fails at its end, when batch k+1 (the other writer) has already
    inserted its rows and waits to commit. Batch k+1 must roll back (it commits only after
    k), and both are applied again: nothing twice, nothing lost."""
    import pymysql

    records = pipeline_history(steps=200, late_context=False)
    original = WriterProcess.call
    events: list[str] = []
    lock = threading.Lock()

    def slow_failing(writer, *message):
        if message[0] == "end":
            with lock:
                events.append("end")
                ends = events.count("end")
            if ends == 3:  # (the third batch's end: wait until the fourth batch stored its rows)
                deadline = time.monotonic() + 30  # (a wait for an event, not a guess: a loaded machine is slow)
                while time.monotonic() < deadline:
                    with lock:
                        if events.count("insert") >= 4:
                            break
                    time.sleep(0.01)
                with lock:
                    events.append("failed")
                raise pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")
        original(writer, *message)
        if message[0] == "rows":
            with lock:
                events.append("insert")

    monkeypatch.setattr(WriterProcess, "call", slow_failing)
    pipelined_equals_general(tmp_path, mysql_url, records, 25, failures=1)
    failed_at = events.index("failed")
    assert events[:failed_at].count("insert") == 4  # (the batch after the failed one had stored its rows)


def test_rows_that_clash_send_the_batch_the_ordinary_way_without_steps(tmp_path, mysql_url):
    """An Event row put in behind the projector's back: the pipelined batch fails at the
    writer, and that batch is applied again without the step writer, rejecting the record
    that meets the clash as the general path does."""
    records = pipeline_history(steps=120, late_context=False)
    target = fresh_database(mysql_url)

    def run(pipelined: bool):
        db = MySqlBackend(target)
        db.create_schema()
        db.execute("DELETE FROM `mlmdlog_checkpoint`")
        projector = Projector(db)
        reader = MySqlBackend(target)
        applier = PipelinedApplier(projector, reader) if pipelined else projector
        numbered = list(enumerate(records))
        out = {}
        for o in applier.apply_batch(numbered[:40]):
            out[o.offset] = o
        if pipelined:
            applier.drain()
        next_event = projector.engine.snapshot()["Event"]
        db.execute("INSERT INTO `Event` (`id`, `artifact_id`, `execution_id`, `type`, `milliseconds_since_epoch`) "
                   "VALUES (?, 1, 1, 1, 0)", (next_event + 3,))
        while projector.next_offset < len(records) or (pipelined and applier.in_flight):
            start = projector.next_offset
            if start >= len(records):
                applier.drain()  # (a failed write moves next_offset back)
                continue
            for o in applier.apply_batch(numbered[start:start + 40]):
                out[o.offset] = o  # (a batch applied again replaces the outcomes it had)
        if pipelined:
            applier.close()
            assert applier.counts["failed"] == 1
        dump = dump_mysql(db, TABLES)
        reader.close()
        db.close()
        return [out[i] for i in range(len(records))], dump

    try:
        ordinary, ordinary_dump = run(False)
        drop(target)
        pipelined, pipelined_dump = run(True)
    finally:
        drop(target)
    assert any("event already exists" in o.error_message for o in ordinary)
    assert pipelined == ordinary
    assert pipelined_dump == ordinary_dump



class ServiceRun:
    """A pipelined ProjectorService following ``log`` into a fresh MySQL database, in a
    thread, with an admin connection to watch its checkpoint."""

    def __init__(self, mysql_url, log, **service_options):
        from mlmd_log.consumer.projector_service import ProjectorService

        self.target = fresh_database(mysql_url)
        self.db, self.reader, self.admin = MySqlBackend(self.target), MySqlBackend(self.target), MySqlBackend(self.target)
        self.db.create_schema()
        self.service = ProjectorService(log, self.db, reader=self.reader, **service_options)
        self.thread = threading.Thread(target=self.service.run, kwargs={"report_every": 1e9}, daemon=True)

    def __enter__(self) -> "ServiceRun":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        for conn in (self.db, self.reader, self.admin):
            conn.close()
        drop(self.target)

    def applied(self) -> int:
        row = self.admin.one("SELECT `applied_offset` FROM `mlmdlog_checkpoint` WHERE `id` = 0")
        return row[0] if row else 0

    @staticmethod
    def wait_until(condition, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.005)

    def finish(self, records: int) -> dict:
        """Once all ``records`` are applied: stops the service; returns the tables."""
        self.wait_until(lambda: self.applied() >= records, 90)
        self.service.stop()
        self.thread.join(30)
        self.last_writers = [w.pid for w in self.service.pipeline._writers]  # (before close ends them)
        self.service.close()
        assert self.applied() == records
        return dump_mysql(self.admin, TABLES)


def test_service_reconnects_after_its_connections_are_killed_and_ends_as_the_general_path(tmp_path, mysql_url):
    """The server drops both connections of a running (pipelined) projector service, twice;
    it connects again, starts over from the projection's checkpoint, and ends with what the
    general path leaves."""
    records = pipeline_history(steps=1500)
    general, tables = expected(tmp_path, records)
    log = MemoryLog()
    log.append(records)
    with ServiceRun(mysql_url, log, batch_size=20, retry_sleep=0.05) as run:
        for kill in (300, 900):
            run.wait_until(lambda: run.applied() >= kill)
            assert run.applied() < len(records), "the projector finished before the connections were killed"
            for conn in (run.db, run.reader):
                run.admin.execute(f"KILL CONNECTION {int(conn.conn.thread_id())}")
        dump = run.finish(len(records))
    assert [o.error_code for o in general].count(0) == len(records)
    for table in TABLES:
        assert dump[table] == tables[table], f"{table} differs"


def test_what_every_step_names_stays_remembered_past_the_bounds(tmp_path, mysql_url, monkeypatch):
    """The engine's memory is bounded (recent.py), far below the nodes a run writes. The
    run's context, its seed input and their link are named by every step and must stay
    remembered: with bounds of 30 entries, no more records go the ordinary way (which
    waits for the writer) than with the usual bounds."""
    from mlmd_log.projections import memory

    records = pipeline_history(workers=4, steps=240, late_context=False)
    (tmp_path / "usual").mkdir()
    (tmp_path / "tight").mkdir()
    usual = pipelined_equals_general(tmp_path / "usual", mysql_url, records, 25)
    for bound in ("FORMS_KEPT", "LINKS_KEPT", "CONTEXT_IDS_KEPT"):
        monkeypatch.setattr(memory, bound, 30)
    tight = pipelined_equals_general(tmp_path / "tight", mysql_url, records, 25)
    # (no batch failed in either: pipelined_equals_general checks; how many hand-overs
    # joined a batch waiting for a writer depends on timing)
    assert tight["ordinary"] == usual["ordinary"]
    assert usual["ordinary"] <= 5  # (the setup batch, and each run's first step creates its context)


def test_a_caught_up_service_decides_new_records_while_the_writers_store_the_last(tmp_path, mysql_url, monkeypatch):
    """Caught up with batches still being stored, the service does not wait for the writers:
    records appended meanwhile are decided at once (the writers commit in the background),
    and the projection ends as the general path leaves it."""
    records = pipeline_history(steps=120, late_context=False)
    general, tables = expected(tmp_path, records)
    original = WriterProcess.call

    def slow(writer, *message):
        if message[0] == "rows":
            time.sleep(1.0)
        return original(writer, *message)

    monkeypatch.setattr(WriterProcess, "call", slow)
    log = MemoryLog()
    setup, first = 20, 80
    log.append(records[:setup])  # (types, seeds, each run's first step: the ordinary way)
    with ServiceRun(mysql_url, log, batch_size=1000, idle_sleep=0.001) as run:
        projector = lambda: run.service.projector  # noqa: E731  (a restart would replace it)
        run.wait_until(lambda: run.applied() >= setup)
        log.append(records[setup:first])
        run.wait_until(lambda: projector().next_offset >= first)
        assert run.service.pipeline.in_flight  # (the last batch of the first records is being stored)
        log.append(records[first:])
        run.wait_until(lambda: projector().next_offset >= len(records), 0.5)
        decided_ahead = projector().next_offset >= len(records) and run.applied() < first
        dump = run.finish(len(records))
    assert decided_ahead
    for table in TABLES:
        assert dump[table] == tables[table], f"{table} differs"


def test_a_killed_writer_process_is_a_lost_connection_the_service_recovers_from(tmp_path, mysql_url):
    """kill -9 of a writer child mid-run: its batch is lost with its connection, the service
    connects again (new writers) from the checkpoint, and ends as the general path."""
    records = pipeline_history(steps=1500)
    general, tables = expected(tmp_path, records)
    log = MemoryLog()
    log.append(records)
    with ServiceRun(mysql_url, log, batch_size=20, retry_sleep=0.05) as run:
        first_writers = [w.pid for w in run.service.pipeline._writers]
        run.wait_until(lambda: run.applied() >= 400)
        assert run.applied() < len(records), "the projector finished before the writer was killed"
        os.kill(first_writers[1], signal.SIGKILL)
        dump = run.finish(len(records))
    assert run.last_writers and not set(run.last_writers) & set(first_writers)  # (the service started new ones)
    for table in TABLES:
        assert dump[table] == tables[table], f"{table} differs"


def test_a_writer_that_cannot_connect_raises_unavailable_and_leaves_no_process(mysql_url, monkeypatch):
    """The child's own connection failing (here: a wrong password) reaches the parent as
    UnavailableError, which the service retries, and the child has exited."""
    import subprocess
    from dataclasses import replace
    from types import SimpleNamespace

    from mlmd_log import errors

    started = []
    real_popen = subprocess.Popen

    def recording_popen(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    target = fresh_database(mysql_url)
    db = MySqlBackend(target)
    try:
        handle = SimpleNamespace(target=replace(target, password="not-" + target.password), lost=db.lost)
        monkeypatch.setattr(subprocess, "Popen", recording_popen)
        with pytest.raises(errors.UnavailableError, match="Cannot connect to MySQL"):
            WriterProcess(handle)
        monkeypatch.undo()
        assert len(started) == 1
        assert started[0].wait(timeout=10) == 1  # (it exited after reporting)
    finally:
        db.close()
        drop(target)
