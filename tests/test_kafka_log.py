"""KafkaLog against a real Apache Kafka broker (KRaft), started by compose/kafka.sh.

The session fixture uses the broker on 127.0.0.1:9092 if it is up (as .ci/run leaves
it), else starts it and stops it again at the end. The outage test runs its own
broker on free ports, so stopping it never disturbs the shared one.
"""
from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

kafka = pytest.importorskip("kafka")

from mlmd_log.errors import (  # noqa: E402
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    UnavailableError,
)
from mlmd_log.producer.kafka_log import KafkaLog, parse_kafka_url  # noqa: E402

from contracts import LogContract  # noqa: E402

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parent.parent
KAFKA_SH = ROOT / "compose" / "kafka.sh"
BOOTSTRAP = f"127.0.0.1:{os.environ.get('MLMD_KAFKA_PORT', '9092')}"


def kafka_sh(command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(KAFKA_SH), command], capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=300,
    )


def broker_problem() -> str | None:
    for tool in ("java", "mvn"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            return f"{tool} is not installed (needed to run the Kafka broker)"
    return None


@pytest.fixture(scope="session")
def bootstrap() -> str:
    """The shared broker's address; starts it if needed (fails in CI rather than skipping)."""
    if kafka_sh("status").returncode == 0:
        yield BOOTSTRAP
        return
    problem = broker_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    started = kafka_sh("start")
    assert started.returncode == 0, f"compose/kafka.sh start failed:\n{started.stderr}"
    yield BOOTSTRAP
    kafka_sh("stop")


@pytest.fixture
def topic() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def log(bootstrap: str, topic: str):
    with KafkaLog(bootstrap, topic, timeout_s=10) as log:
        yield log


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TestKafkaLogContract(LogContract):
    """A fresh topic per test (the ``log`` fixture above)."""

    concurrent_writers = 6
    concurrent_calls = 30


# ---------------------------------------------------------------------------- topic


def test_new_topic_has_one_partition_and_keeps_history(bootstrap: str, log: KafkaLog) -> None:
    assert log.end_offset() == 0
    assert list(log.read(0)) == []
    admin = kafka.KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        [described] = admin.describe_topics([log.topic])
        assert len(described["partitions"]) == 1
        resource = kafka.admin.ConfigResource(kafka.admin.ConfigResourceType.TOPIC, log.topic)
        configs = admin.describe_configs([resource])["topic"][log.topic]
    finally:
        admin.close()
    assert configs["retention.ms"]["value"] == "-1"
    assert configs["retention.bytes"]["value"] == "-1"
    assert configs["flush.messages"]["value"] == "1"  # durability="fsync"


def test_durability_replication_leaves_flushing_to_the_broker(bootstrap: str, topic: str) -> None:
    with KafkaLog(bootstrap, topic, durability="replication", timeout_s=10) as log:
        assert log.append([b"x"]) == [0]
    admin = kafka.KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        resource = kafka.admin.ConfigResource(kafka.admin.ConfigResourceType.TOPIC, topic)
        configs = admin.describe_configs([resource])["topic"][topic]
    finally:
        admin.close()
    assert configs.get("flush.messages", {}).get("value") != "1"  # only changed settings are listed
    with pytest.raises(InvalidArgumentError, match="durability"):
        KafkaLog(bootstrap, topic, durability="sometimes")


def test_topic_with_several_partitions_is_refused(bootstrap: str, topic: str) -> None:
    admin = kafka.KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}},
                            wait_for_metadata=True)
    finally:
        admin.close()
    with pytest.raises(FailedPreconditionError, match="3 partitions"):
        KafkaLog(bootstrap, topic, timeout_s=10)


def test_missing_topic_without_create_is_not_found(bootstrap: str, topic: str) -> None:
    with pytest.raises(NotFoundError, match=topic):
        KafkaLog(bootstrap, topic, create=False, timeout_s=10)


def test_from_url(bootstrap: str, topic: str) -> None:
    assert parse_kafka_url("kafka://h1:9092,h2:9092/mlmd") == ("h1:9092,h2:9092", "mlmd")
    for bad in ("kafka://host:9092", "kafka:///topic", "mysql://host/topic", "kafka://h/a/b"):
        with pytest.raises(InvalidArgumentError):
            parse_kafka_url(bad)
    with KafkaLog.from_url(f"kafka://{bootstrap}/{topic}", timeout_s=10) as log:
        assert log.append([b"x"]) == [0]


# ---------------------------------------------------------------------------- append / read


def test_a_reader_behind_learns_the_end_from_its_fetches(log: KafkaLog, monkeypatch) -> None:
    log.append([bytes([i]) for i in range(10)])
    assert [offset for offset, _ in log.read(0, 3)] == [0, 1, 2]
    asked = []
    ask = log._end_offset_with
    monkeypatch.setattr(log, "_end_offset_with", lambda consumer: asked.append(1) or ask(consumer))
    # The fetch answer's high watermark tells a reader at 3 that the log goes on to 10.
    assert log.end_offset_beyond(3) == 10 and asked == []
    assert [offset for offset, _ in log.read(3, 7)] == list(range(3, 10)) and asked == []
    log.append([b"x"])
    assert log.end_offset_beyond(9) == 10 and asked == []  # a lower bound, still beyond the reader
    assert log.end_offset_beyond(10) == 11 and asked == [1]  # at the known end: asks the broker
    assert log.end_offset_beyond(3) == 11 and log.end_offset() == 11


def test_a_read_after_waiting_starts_with_the_records_the_wait_fetched(log: KafkaLog, monkeypatch) -> None:
    log.append([b"a", b"b"])
    assert [record for _, record in log.read(0)] == [b"a", b"b"]
    log.append([b"c", b"d", b"e"])  # (acknowledged before the wait: its one fetch brings all three)
    assert log.wait_for_records(2, 10.0) is True
    requests = []
    fetch, ask = log._fetch, log._end_offset_with
    monkeypatch.setattr(log, "_fetch", lambda *a: requests.append("fetch") or fetch(*a))
    monkeypatch.setattr(log, "_end_offset_with", lambda c: requests.append("end") or ask(c))
    assert log.end_offset_beyond(2) == 5
    assert list(log.read(2, 2)) == [(2, b"c"), (3, b"d")] and requests == []  # (no request)
    # Kept once, for the read from the offset waited on: the next read fetches.
    assert list(log.read(4)) == [(4, b"e")] and "fetch" in requests
    log.append([b"f"])
    assert log.wait_for_records(5, 10.0) is True
    assert list(log.read(0, 3)) == [(0, b"a"), (1, b"b"), (2, b"c")]  # (another offset: not used, forgotten)
    del requests[:]
    assert list(log.read(5)) == [(5, b"f")] and "fetch" in requests


def test_a_caught_up_projector_learns_of_records_by_waiting_not_by_asking(log: KafkaLog, monkeypatch,
                                                                          tmp_path: Path) -> None:
    """Following the log, the service waits for records (a fetch the broker answers when one
    comes) and reads them from that fetch: it does not ask for the end before each wait."""
    from mlmd_log.consumer.projector_service import ProjectorService
    from mlmd_log.producer.records import RecordFactory
    from mlmd_log.projections.backend import SqliteBackend
    from mlmd_log.proto import metadata_store_pb2 as pb
    from mlmd_log.proto import metadata_store_service_pb2 as svc

    factory = RecordFactory()
    requests = []
    fetch, ask = log._fetch, log._end_offset_with
    monkeypatch.setattr(log, "_fetch", lambda *a: requests.append("fetch") or fetch(*a))
    monkeypatch.setattr(log, "_end_offset_with", lambda c: requests.append("end") or ask(c))
    db = SqliteBackend(str(tmp_path / "p.sqlite"))
    db.create_schema()
    service = ProjectorService(log, db, batch_size=10)
    follower = threading.Thread(target=service.run, kwargs={"report_every": 1e9})
    follower.start()
    try:
        for i in range(20):
            log.append([factory.make("PutArtifactType", svc.PutArtifactTypeRequest(
                artifact_type=pb.ArtifactType(name=f"T{i}"))).SerializeToString()])
            time.sleep(0.03)
        deadline = time.monotonic() + 30
        while service.status.applied_offset < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        service.stop()
        follower.join(30)
    assert service.status.applied_offset == 20
    assert {name for (name,) in db.rows("SELECT `name` FROM `Type`", ())} >= {f"T{i}" for i in range(20)}
    assert requests.count("end") <= 1, requests  # (at most the first step's, before any fetch told the end)
    assert requests.count("fetch") <= 2, requests  # (the records come with the waits)
    db.close()


def test_records_over_the_size_limit_are_refused_before_anything_is_sent(bootstrap: str, topic: str) -> None:
    with KafkaLog(bootstrap, topic, timeout_s=10, max_record_bytes=1000) as log:
        with pytest.raises(InvalidArgumentError, match="larger than"):
            log.append([b"ok", b"x" * 1001])
        assert log.end_offset() == 0
        assert log.append([b"y" * 1000]) == [0]


# ---------------------------------------------------------------------------- lifecycle


def test_reopening_sees_the_same_log(bootstrap: str, topic: str) -> None:
    with KafkaLog(bootstrap, topic, timeout_s=10) as first:
        first.append([b"a", b"b"])
    with KafkaLog(bootstrap, topic, create=False, timeout_s=10) as second:
        assert second.end_offset() == 2
        assert list(second.read(0)) == [(0, b"a"), (1, b"b")]
        assert second.append([b"c"]) == [2]


def test_two_logs_on_one_topic_interleave_without_gaps(bootstrap: str, topic: str) -> None:
    with KafkaLog(bootstrap, topic, timeout_s=10) as a, KafkaLog(bootstrap, topic, timeout_s=10) as b:
        got = [a.append([b"a1"]), b.append([b"b1"]), a.append([b"a2"])]
        assert got == [[0], [1], [2]]
        assert [r for _, r in b.read(0)] == [b"a1", b"b1", b"a2"]


def test_wait_for_records_blocks_until_one_is_appended_or_the_timeout(log: KafkaLog) -> None:
    """A follower of a quiet log waits in a fetch the broker holds open: it returns False
    after the timeout, True as soon as another thread appends, True at once for a record
    that is already there."""
    log.append([b"first"])
    started = time.monotonic()
    assert log.wait_for_records(1, 0.3) is False
    assert 0.25 <= time.monotonic() - started < 5
    timer = threading.Timer(0.2, lambda: log.append([b"second"]))
    timer.start()
    started = time.monotonic()
    try:
        assert log.wait_for_records(1, 10.0) is True
        assert time.monotonic() - started < 5  # woken by the record, not by the timeout
    finally:
        timer.join()
    started = time.monotonic()
    assert log.wait_for_records(0, 10.0) is True
    assert time.monotonic() - started < 5
    assert [payload for _, payload in log.read(0)] == [b"first", b"second"]  # the waits consumed nothing


def test_closed_log_refuses_every_call(bootstrap: str, topic: str) -> None:
    """Beyond the contract: a closed KafkaLog also refuses end_offset and waits."""
    log = KafkaLog(bootstrap, topic, timeout_s=10)
    log.close()
    for call in (lambda: log.append([b"x"]), log.end_offset, lambda: log.read(0),
                 lambda: log.wait_for_records(0, 0.1)):
        with pytest.raises(FailedPreconditionError):
            call()


# ---------------------------------------------------------------------------- outages


def test_no_broker_at_the_address_is_unavailable() -> None:
    started = time.monotonic()
    with pytest.raises(UnavailableError, match="unreachable") as info:
        KafkaLog(f"127.0.0.1:{free_port()}", "t", timeout_s=2)
    assert time.monotonic() - started < 15
    assert "retry" in str(info.value)


def test_stopped_broker_gives_unavailable_and_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """A broker of its own (free ports), stopped and restarted under an open KafkaLog."""
    if broker_problem():
        pytest.skip(broker_problem())
    port = free_port()
    env = {
        "MLMD_KAFKA_PORT": str(port),
        "MLMD_KAFKA_CTRL_PORT": str(free_port()),
        "MLMD_KAFKA_HOME": str(tmp_path / "broker"),
        "MLMD_KAFKA_JVM_OPTS": "-XX:TieredStopAtLevel=1",  # starts sooner; throughput is no matter here
    }
    bootstrap = f"127.0.0.1:{port}"
    started = kafka_sh("start", env)
    assert started.returncode == 0, started.stderr
    try:
        log = KafkaLog(bootstrap, "outage", timeout_s=2)
        acknowledged = log.append([b"r0", b"r1", b"r2"])
        assert kafka_sh("stop", env).returncode == 0

        with pytest.raises(UnavailableError, match=f"{bootstrap}.*appending"):
            log.append([b"lost?"])
        with pytest.raises(UnavailableError, match=bootstrap):
            log.end_offset()
        with pytest.raises(UnavailableError, match=bootstrap):
            list(log.read(0))

        restarted = kafka_sh("start", env)
        assert restarted.returncode == 0, restarted.stderr
        after = log.append([b"r3"])  # the same KafkaLog works again
        records = dict(log.read(0))
        assert [records[o] for o in acknowledged] == [b"r0", b"r1", b"r2"]
        assert records[after[0]] == b"r3"
        log.close()
    finally:
        kafka_sh("clean", env)


def test_an_archived_and_trimmed_topic_rebuilds_a_projection_through_its_archive(
        bootstrap: str, log: KafkaLog, topic: str, tmp_path: Path, capsys) -> None:
    """``mlmd-log archive --trim`` copies the topic to a FileLog and drops those records from
    it. A reader from offset 0 of the topic alone then gets DataLossError that names the way
    out; a projector given ``?archive=DIR`` builds the same projection as the whole history."""
    from dbdump import dump_tables

    from mlmd_log.cli import main
    from mlmd_log.errors import DataLossError
    from mlmd_log.locations import open_log
    from mlmd_log.producer import FileLog
    from mlmd_log.producer.records import RecordFactory
    from mlmd_log.proto import metadata_store_pb2 as pb
    from mlmd_log.proto import metadata_store_service_pb2 as svc

    factory = RecordFactory()

    def puts(first: int, count: int) -> list[bytes]:
        out = []
        for i in range(first, first + count):
            if i == 0:
                request = svc.PutArtifactTypeRequest(artifact_type=pb.ArtifactType(name="T"))
                out.append(factory.make("PutArtifactType", request).SerializeToString())
            else:  # (the type's id is 1 on a fresh projection; a few puts are rejected: type 99)
                artifact = pb.Artifact(type_id=99 if i % 17 == 0 else 1, uri=f"u{i}")
                out.append(factory.make("PutArtifacts", svc.PutArtifactsRequest(artifacts=[artifact]))
                           .SerializeToString())
        return out

    everything = puts(0, 120)
    log.append(everything[:80])
    url, archive_dir = f"kafka://{bootstrap}/{topic}", str(tmp_path / "archive")
    assert main(["archive", "--log", url, "--to", archive_dir, "--trim", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "archived offsets 0..80 (80 records)" in out and "now starts at offset 80" in out
    assert log.start_offset() == 80
    log.append(everything[80:])
    with pytest.raises(DataLossError, match=r"no longer holds offset 0 \(it starts at 80\).*\?archive=DIR"):
        list(log.read(0))

    reference = FileLog(str(tmp_path / "whole"))  # (the same records, never trimmed)
    reference.append(everything)
    reference.close()
    assert main(["replay", "--log", str(tmp_path / "whole"), "--into", f"sqlite:///{tmp_path / 'a.db'}",
                 "--quiet"]) == 0
    assert main(["project", "--log", f"{url}?archive={archive_dir}", "--into", f"sqlite:///{tmp_path / 'b.db'}",
                 "--until-caught-up", "--report-every", "1000"]) == 0
    whole, rebuilt = dump_tables(str(tmp_path / "a.db")), dump_tables(str(tmp_path / "b.db"))
    assert len(whole["Artifact"]) == 119 - 119 // 17 and len(whole["mlmdlog_outcome"]) == 120
    assert rebuilt == whole
    # A second archive run copies only what came since, and the archived URL reads it all.
    assert main(["archive", "--log", url, "--to", archive_dir, "--quiet"]) == 0
    assert "archived offsets 80..120 (40 records)" in capsys.readouterr().out
    with open_log(f"{url}?archive={archive_dir}", readonly=True) as both:
        assert [payload for _, payload in both.read(0)] == everything


def test_a_follower_ahead_of_the_topic_stops_with_data_loss(bootstrap: str, log: KafkaLog, tmp_path: Path,
                                                            monkeypatch) -> None:
    """Waiting for records past the topic's end is OutOfRangeError, not a broker outage; a
    projector whose checkpoint is past the end (the topic was deleted and created again)
    stops with DataLossError once the grace has passed."""
    from mlmd_log.consumer import follower as follower_module
    from mlmd_log.consumer.replay import replay
    from mlmd_log.consumer.projector_service import ProjectorService
    from mlmd_log.errors import DataLossError
    from mlmd_log.locations import open_projection
    from mlmd_log.producer import FileLog
    from mlmd_log.producer.records import RecordFactory
    from mlmd_log.proto import metadata_store_pb2 as pb
    from mlmd_log.proto import metadata_store_service_pb2 as svc

    factory = RecordFactory()

    def types(prefix: str, count: int) -> list[bytes]:
        return [factory.make("PutArtifactType", svc.PutArtifactTypeRequest(
            artifact_type=pb.ArtifactType(name=f"{prefix}{i}"))).SerializeToString() for i in range(count)]

    log.append(types("B", 5))
    with pytest.raises(OutOfRangeError, match="offset 20 is past its end .5."):
        log.wait_for_records(20, 1.0)
    earlier = FileLog(str(tmp_path / "earlier"))  # (what the topic held before it was created again)
    earlier.append(types("A", 20))
    db = open_projection(f"sqlite:///{tmp_path / 'p.db'}")
    replay(earlier, db)
    monkeypatch.setattr(follower_module, "LOG_BEHIND_GRACE_S", 0.3)
    service = ProjectorService(log, db)
    with pytest.raises(DataLossError, match="up to offset 20, but the log ends at 5 .*KafkaLog"):
        service.run(report_every=1e9)
    service.close()
    db.close()
    earlier.close()
