"""The one follower: any sink over any log goes up to an offset, follows new records, stops
between batches (on stop() or a stop signal), and refuses a log that is not the sink's."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from mlmd_log import errors
from mlmd_log.consumer.follower import Follower, ProjectorSink
from mlmd_log.producer import FileLog
from mlmd_log.producer.memory_log import MemoryLog
from mlmd_log.producer.records import RecordFactory
from mlmd_log.projections.backend import SqliteBackend
from mlmd_log.projections.staged import StagedSink
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.proto import metadata_store_service_pb2 as svc

FACTORY = RecordFactory("test")


def _types(prefix: str, count: int) -> list[bytes]:
    return [FACTORY.make("PutArtifactType", svc.PutArtifactTypeRequest(
        artifact_type=pb.ArtifactType(name=f"{prefix}{i}"))).SerializeToString() for i in range(count)]


@pytest.fixture(params=["memory", "file"])
def make_log(request, tmp_path):
    logs = []

    def make(name: str = "log"):
        log = MemoryLog() if request.param == "memory" else FileLog(str(tmp_path / name), durability="none")
        logs.append(log)
        return log
    yield make
    for log in logs:
        log.close()


def _ours(rows) -> set[str]:
    return {n for (n,) in rows if not n.startswith("mlmd.")}


@pytest.fixture(params=["projector", "duckdb"])
def make_sink(request, tmp_path):
    """A fresh sink and a function that lists the type names its target holds (but MLMD's own)."""
    closing = []

    def make():
        if request.param == "projector":
            db = SqliteBackend(":memory:")
            db.create_schema()
            closing.append(db)
            return ProjectorSink(db), lambda: _ours(db.rows("SELECT `name` FROM `Type`", ()))
        pytest.importorskip("duckdb")
        from mlmd_log.projections.duckdb import DuckDbProjection

        projection = DuckDbProjection(str(tmp_path / "a.duckdb"))
        closing.append(projection)
        return StagedSink(projection), lambda: _ours(projection.con.execute('SELECT "name" FROM "Type"').fetchall())
    yield make
    for item in closing:
        item.close()


def test_until_stops_at_the_offset_and_a_second_run_goes_on_from_there(make_log, make_sink):
    log, (sink, names) = make_log(), make_sink()
    log.append(_types("A", 10))
    status = Follower(log, sink, batch_size=3).run(until=7)
    assert sink.next_offset == 7 and status.applied_offset == 7 and status.records_applied == 7
    assert names() == {f"A{i}" for i in range(7)}
    status = Follower(log, sink, batch_size=3).run(until_caught_up=True)
    assert sink.next_offset == 10 and status.records_applied == 3 and status.lag == 0
    assert names() == {f"A{i}" for i in range(10)}


def test_following_applies_records_as_they_come_until_stopped(make_log, make_sink):
    log, (sink, names) = make_log(), make_sink()
    log.append(_types("A", 5))
    follower = Follower(log, sink, batch_size=4, idle_sleep=0.01)
    thread = threading.Thread(target=follower.run, kwargs={"report_every": 1e9}, daemon=True)
    thread.start()
    try:
        log.append(_types("B", 6))
        deadline = time.monotonic() + 30
        while follower.status.applied_offset < 11 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert follower.status.applied_offset == 11
    finally:
        follower.stop()
        thread.join(10)
    assert not thread.is_alive()
    assert names() == {f"A{i}" for i in range(5)} | {f"B{i}" for i in range(6)}


def test_a_stop_signal_ends_a_follower_between_batches(make_log, make_sink):
    log, (sink, _) = make_log(), make_sink()
    log.append(_types("A", 3))
    follower = Follower(log, sink, idle_sleep=0.01)
    previous = follower.stop_on_signals()
    try:
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
        started = time.monotonic()
        status = follower.run(report_every=1e9)
        assert status.applied_offset == 3 and time.monotonic() - started < 10
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def test_a_foreign_log_is_refused_before_anything_is_applied(make_log, make_sink):
    """The record before the sink's checkpoint has another id in this log: DataLossError, for
    a follower that retries as for one that does not, and nothing of it is applied."""
    first, second, (sink, names) = make_log("first"), make_log("second"), make_sink()
    first.append(_types("A", 10))
    second.append(_types("B", 15))
    Follower(first, sink).run(until_caught_up=True)
    for retry_sleep in (None, 0.01):
        with pytest.raises(errors.DataLossError, match="holds another record at offset 9"):
            Follower(second, sink, retry_sleep=retry_sleep).run(until_caught_up=True)
    assert sink.next_offset == 10 and not any(n.startswith("B") for n in names())


def test_a_log_that_ends_before_the_checkpoint_is_refused_at_once_without_retries(make_log, make_sink):
    first, short, (sink, _) = make_log("first"), make_log("short"), make_sink()
    first.append(_types("A", 10))
    short.append(_types("A", 4))
    Follower(first, sink).run(until_caught_up=True)
    with pytest.raises(errors.DataLossError, match="up to offset 10, but the log ends at 4"):
        Follower(short, sink).run()
