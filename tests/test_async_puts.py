"""Asynchronous puts: futures resolve with each put's own outcome, in log order, and flush
waits for all of them."""
from __future__ import annotations

import pytest

import mlmd_log as mlmd
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.proto import metadata_store_service_pb2 as svc
from mlmd_log import client as mlmd_service
from mlmd_log.client import StoreConfig


def test_futures_carry_ids_and_errors(tmp_path):
    store = mlmd.MetadataStore(StoreConfig.from_directory(str(tmp_path)))
    try:
        type_id = store.put_artifact_type(pb.ArtifactType(name="T"))
        puts = store.async_puts(max_batch=64)
        futures = [puts.submit("PutArtifacts", svc.PutArtifactsRequest(
            artifacts=[pb.Artifact(type_id=type_id, name=f"a{i}")])) for i in range(500)]
        duplicate = puts.submit("PutArtifacts", svc.PutArtifactsRequest(artifacts=[pb.Artifact(type_id=type_id,
                                                                                               name="a7")]))
        puts.flush()
        assert all(f.done() for f in futures + [duplicate])
        assert [f.result().artifact_ids[0] for f in futures] == list(range(1, 501))
        assert isinstance(duplicate.exception(), mlmd.errors.AlreadyExistsError)
        with pytest.raises(mlmd.errors.InvalidArgumentError):
            puts.submit("GetArtifacts", svc.GetArtifactsRequest())
        puts.close()
        assert len(store.get_artifacts()) == 500
    finally:
        store.close()


def test_a_failing_log_ends_every_future_and_flush_returns(tmp_path):
    """A log that fails in an unexpected way (not an MLMD error) still resolves the futures
    with an MLMD error, so flush() does not wait forever."""
    store = mlmd.MetadataStore(StoreConfig.from_directory(str(tmp_path)))
    try:
        type_id = store.put_artifact_type(pb.ArtifactType(name="T"))
        transport = store._transport

        def broken_append(payloads):
            raise OSError("disk on fire")

        transport.append = broken_append
        puts = store.async_puts()
        futures = [puts.submit("PutArtifacts", svc.PutArtifactsRequest(artifacts=[pb.Artifact(type_id=type_id)]))
                   for _ in range(3)]
        puts.flush(timeout=10)
        for future in futures:
            assert isinstance(future.exception(timeout=1), mlmd.errors.InternalError)
            assert "disk on fire" in future.exception().message
    finally:
        store.close()


def _record_ids(payloads) -> list[str]:
    """The record ids of appended payloads, as a projection would store them with their outcomes."""
    from mlmd_log.schemas import log_record_pb2

    return [log_record_pb2.LogRecord.FromString(payload).record_id for payload in payloads]


class _SlowProjection:
    """A transport whose first outcome wait holds until released, so that later batches
    queue up behind it; records each wait's offsets."""

    where = "slow projection"

    def __init__(self, fail_second_wait: bool = False):
        import threading

        self.release = threading.Event()
        self.waits: list[list[int]] = []
        self.next_offset = 0
        self.fail_second_wait = fail_second_wait
        self.record_ids: list[str] = []

    def append(self, payloads):
        offsets = list(range(self.next_offset, self.next_offset + len(payloads)))
        self.next_offset += len(payloads)
        self.record_ids += _record_ids(payloads)
        return offsets

    def wait_for_outcomes(self, offsets, usual=None):
        from mlmd_log.projections.bookkeeping import Outcome

        self.waits.append(list(offsets))
        if len(self.waits) == 1:
            assert self.release.wait(10)
        elif self.fail_second_wait and len(self.waits) == 2:
            raise mlmd.errors.DeadlineExceededError("no projector")
        return [Outcome(offset, self.record_ids[offset]) for offset in offsets]

    @staticmethod
    def response(rpc, outcome):
        return outcome.offset


def _submit_batches(puts, transport, batches: int) -> list:
    """One put per batch: each is appended before the next is submitted."""
    import time

    futures = []
    for _ in range(batches):
        futures.append(puts.submit("PutArtifacts", svc.PutArtifactsRequest()))
        deadline = time.monotonic() + 10
        while transport.next_offset < len(futures) and time.monotonic() < deadline:
            time.sleep(0.001)
    return futures


def test_batches_appended_during_a_wait_are_awaited_together_in_order():
    from mlmd_log.client import AsyncPuts

    transport = _SlowProjection()
    puts = AsyncPuts(transport, max_batch=1)
    futures = _submit_batches(puts, transport, 6)
    transport.release.set()
    puts.flush(timeout=10)
    assert [f.result(timeout=1) for f in futures] == list(range(6))
    assert transport.waits[0] == [0]
    assert transport.waits[1] == [1, 2, 3, 4, 5]  # one wait for the five batches queued behind the first
    puts.close()


def test_a_failed_wait_fails_every_put_of_its_group_and_the_next_ones_go_on():
    from mlmd_log.client import AsyncPuts

    transport = _SlowProjection(fail_second_wait=True)
    puts = AsyncPuts(transport, max_batch=1)
    futures = _submit_batches(puts, transport, 4)
    transport.release.set()
    puts.flush(timeout=10)
    assert futures[0].result(timeout=1) == 0
    for future in futures[1:]:
        assert isinstance(future.exception(timeout=1), mlmd.errors.DeadlineExceededError)
    later = puts.submit("PutArtifacts", svc.PutArtifactsRequest())
    puts.flush(timeout=10)
    assert later.result(timeout=1) == 4
    puts.close()


def test_outcomes_of_scattered_offsets_are_read_alone(tmp_path):
    """A writer whose batches other writers' records separate reads only its own outcomes:
    one offset range per batch, not everything from its first offset to its last."""
    from mlmd_log.consumer.replay import replay
    from mlmd_log.locations import open_log, open_projection
    from mlmd_log.producer.records import RecordFactory
    from mlmd_log.client.remote import RemoteTransport, _offset_ranges

    log_path, projection_url = str(tmp_path / "log"), f"sqlite:///{tmp_path / 'p.sqlite'}"
    transport = RemoteTransport(log_path, projection_url, wait_timeout_s=10)
    records = RecordFactory("test")
    type_offset = transport.append([records.make("PutArtifactType", svc.PutArtifactTypeRequest(
        artifact_type=pb.ArtifactType(name="T"))).SerializeToString()])[0]
    offsets = transport.append([records.make("PutArtifacts", svc.PutArtifactsRequest(
        artifacts=[pb.Artifact(type_id=999 if i == 5 else 10)])).SerializeToString() for i in range(12)])
    reader = open_log(log_path, readonly=True)
    projection = open_projection(projection_url)
    replay(reader, projection)
    projection.close()
    reader.close()
    wanted = [offsets[1], offsets[2], offsets[5], offsets[9], offsets[10]]
    assert [where.count("BETWEEN") for where, _ in _offset_ranges(wanted)] == [3]
    assert [params for _, params in _offset_ranges(wanted, per_query=2)] == [
        [offsets[1], offsets[2], offsets[5], offsets[5]], [offsets[9], offsets[10]]]
    found = transport.wait_for_outcomes(wanted)
    assert [o.offset for o in found] == wanted
    assert [o.error_code for o in found] == [0, 0, mlmd.errors.NOT_FOUND, 0, 0]
    created = svc.PutArtifactsResponse.FromString(found[3].response)
    assert list(created.artifact_ids) == [9]  # the rejected put took no id
    assert type_offset == offsets[0] - 1
    transport.close()


def test_puts_that_trickle_in_are_appended_together_and_a_flush_does_not_linger(tmp_path):
    """Puts submitted one at a time, a millisecond or two apart, wait up to ``linger_s``
    for the rest of their batch: a few appends (and outcome waits) for many puts, not one
    each. A flush ends the batch at once."""
    import time

    store = mlmd.MetadataStore(StoreConfig.from_directory(str(tmp_path)))
    try:
        type_id = store.put_artifact_type(pb.ArtifactType(name="T"))
        transport = store._transport
        appended: list[int] = []
        real_append = transport.append

        def counting_append(payloads):
            appended.append(len(payloads))
            return real_append(payloads)

        transport.append = counting_append
        puts = mlmd_service.AsyncPuts(transport, linger_s=0.2)
        futures = []
        for i in range(40):
            futures.append(puts.submit("PutArtifacts", svc.PutArtifactsRequest(
                artifacts=[pb.Artifact(type_id=type_id, uri=f"u://{i}")])))
            time.sleep(0.002)
        started = time.monotonic()
        puts.flush(timeout=10)
        flushed_in = time.monotonic() - started
        assert [f.result().artifact_ids[0] for f in futures] == list(range(1, 41))
        assert sum(appended) == 40 and len(appended) <= 4, appended
        assert flushed_in < 0.2  # (the flush did not wait out the linger of the last batch)
        puts.close()
        unbatched = mlmd_service.AsyncPuts(transport, linger_s=0.0)
        before = len(appended)
        for i in range(10):
            unbatched.submit("PutArtifacts", svc.PutArtifactsRequest(
                artifacts=[pb.Artifact(type_id=type_id, uri=f"v://{i}")]))
            time.sleep(0.002)
        unbatched.close()
        assert len(appended) - before >= 5  # (without a linger, nearly one append each)
    finally:
        store.close()


def test_a_full_batch_goes_at_once_and_close_sends_what_lingers():
    """A batch that reaches ``max_batch`` is appended without waiting out the linger; the
    puts after it start the next; close appends the last, lingering one and resolves it."""
    import time

    from mlmd_log.projections.bookkeeping import Outcome

    class Transport:
        where = "test projection"

        def __init__(self):
            self.appended: list[int] = []
            self.record_ids: list[str] = []

        def append(self, payloads):
            start = sum(self.appended)
            self.appended.append(len(payloads))
            self.record_ids += _record_ids(payloads)
            return list(range(start, start + len(payloads)))

        def wait_for_outcomes(self, offsets, usual=None):
            return [Outcome(offset, self.record_ids[offset]) for offset in offsets]

        @staticmethod
        def response(rpc, outcome):
            return outcome.offset

    transport = Transport()
    puts = mlmd_service.AsyncPuts(transport, max_batch=10, linger_s=30.0)
    started = time.monotonic()
    futures = [puts.submit("PutArtifacts", svc.PutArtifactsRequest()) for _ in range(25)]
    assert [f.result(timeout=10) for f in futures[:20]] == list(range(20))
    assert time.monotonic() - started < 10 and transport.appended == [10, 10]
    assert not futures[20].done()  # (five puts linger for more)
    puts.close()
    assert [f.result(timeout=10) for f in futures[20:]] == list(range(20, 25))
    assert transport.appended == [10, 10, 5] and time.monotonic() - started < 10


def test_pause_before_next_look_follows_the_projector_pace():
    from mlmd_log.client.remote import LONGEST_PAUSE_S, pause_before_next_look

    assert pause_before_next_look(0.0, 10) == 0.0005  # (at once: a prompt second look)
    assert pause_before_next_look(0.05, 10) == pytest.approx(0.005)
    assert pause_before_next_look(5.0, 10) == 0.02  # (no pace known: 20 ms at most)
    assert pause_before_next_look(5.0, 10, (0.1, 0)) == 0.02  # (a projector that did not move)
    # 1,000 records ahead of a projector that applied 500 in the last 0.1 s: about 0.2 s
    # away, so most of that (80%)
    assert pause_before_next_look(0.01, 1000, (0.1, 500)) == pytest.approx(0.16)
    assert pause_before_next_look(0.01, 100_000, (0.1, 500)) == LONGEST_PAUSE_S
    # a record or two ahead: the tenth-of-the-wait rule is the shorter, and it holds
    assert pause_before_next_look(0.05, 1, (0.01, 100)) == pytest.approx(0.005)


def test_a_long_wait_for_outcomes_looks_at_the_projection_a_few_times(tmp_path, monkeypatch):
    """Outcomes 2,000 records ahead of a projector applying 10,000 records/s: the writer
    looks about as often as the projector's pace needs, not every 0.5-20 ms (about 25 times
    in those 0.2 s), and returns only once the projection holds them."""
    import time

    from mlmd_log.consumer.replay import replay
    from mlmd_log.locations import open_log, open_projection
    from mlmd_log.producer.records import RecordFactory
    from mlmd_log.client import RemoteTransport

    log_path, projection_url = str(tmp_path / "log"), f"sqlite:///{tmp_path / 'p.sqlite'}"
    transport = RemoteTransport(log_path, projection_url, wait_timeout_s=10)
    records = RecordFactory("test")
    [offset] = transport.append([records.make("PutArtifactType", svc.PutArtifactTypeRequest(
        artifact_type=pb.ArtifactType(name="T"))).SerializeToString()])
    reader, projection = open_log(log_path, readonly=True), open_projection(projection_url)
    replay(reader, projection)
    projection.close()
    reader.close()
    real_applied = transport.applied_offset()
    assert real_applied == offset + 1
    started = time.monotonic()
    looks = []

    def simulated_applied() -> int:  # (2,000 records from the wanted one, at 10,000 a second)
        looks.append(time.monotonic() - started)
        return min(real_applied, offset - 2000 + int(10_000 * (time.monotonic() - started)))

    monkeypatch.setattr(transport, "applied_offset", simulated_applied)
    [found] = transport.wait_for_outcomes([offset])
    assert found.offset == offset and found.error_code == 0
    assert looks[-1] >= 0.2  # (it returned after the projector got there, not before)
    assert len(looks) <= 12, looks
    transport.close()


def test_a_projection_of_another_log_gives_no_response_of_its_records(tmp_path):
    """Writers whose projection URL names a projection kept from another log: at their
    offsets it holds other records' outcomes. Neither a put nor an async put returns those;
    both fail with FailedPreconditionError naming the mismatch."""
    from mlmd_log.consumer.replay import replay
    from mlmd_log.locations import open_log, open_projection
    from mlmd_log.producer.records import RecordFactory
    from mlmd_log.client import SharedLogConfig

    other = open_log(str(tmp_path / "other"))
    factory = RecordFactory("other")
    other.append([factory.make("PutArtifactType", svc.PutArtifactTypeRequest(
        artifact_type=pb.ArtifactType(name=f"O{i}"))).SerializeToString() for i in range(5)])
    projection_url = f"sqlite:///{tmp_path / 'p.db'}"
    db = open_projection(projection_url)
    replay(other, db)
    db.close()
    other.close()
    store = mlmd.MetadataStore(SharedLogConfig(str(tmp_path / "ours"), projection_url))
    try:
        with pytest.raises(mlmd.errors.FailedPreconditionError, match="at log offset 0, the outcome of record .* "
                                                                      "not of the record appended there"):
            store.put_artifact_type(pb.ArtifactType(name="Mine"))
        puts = store.async_puts()
        future = puts.submit("PutArtifactType", svc.PutArtifactTypeRequest(artifact_type=pb.ArtifactType(name="M2")))
        puts.flush(timeout=30)
        assert isinstance(future.exception(timeout=0), mlmd.errors.FailedPreconditionError)
        assert "kept from another log" in str(future.exception(timeout=0))
        puts.close()
    finally:
        store.close()
