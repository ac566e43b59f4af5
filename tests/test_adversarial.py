"""Hostile inputs and bad luck: each test pins a break that was found and fixed, so it
stays fixed (DESIGN.md invariants 4 and 7)."""
from __future__ import annotations

import os

import pytest

from mlmd_log import errors
from mlmd_log.producer import FileLog
from mlmd_log.producer.file_log import (
    SEGMENT_MAGIC,
    V1_HEADER,
    encode_frame,
    list_segment_bases,
    segment_name,
    verify_log,
)


def small_segment_log(directory, records: int = 10) -> list[int]:
    """A v2 log of ``records`` records over several segments; its segment bases."""
    log = FileLog(str(directory), segment_bytes=200, durability="none")
    for i in range(records):
        log.append([b"record-%03d-" % i + b"p" * 50])
    log.close()
    return list_segment_bases(str(directory))


# -- segments -----------------------------------------------------------------------


def test_a_version_1_segment_after_version_2_segments_is_refused_by_every_reader(tmp_path):
    """A writer makes every new segment v2, so a v1 segment after a v2 one was put there;
    v1 headers carry no log id and no link, so nothing else would tell."""
    bases = small_segment_log(tmp_path)
    last = bases[-1]
    with open(tmp_path / segment_name(last), "wb") as f:
        f.write(V1_HEADER.pack(SEGMENT_MAGIC, 1, last) + encode_frame(b"a record of another log"))
    with pytest.raises(errors.DataLossError, match=segment_name(last)):
        verify_log(str(tmp_path))
    with pytest.raises(errors.DataLossError, match="version-1 segment after"):
        FileLog(str(tmp_path), durability="none")
    with pytest.raises(errors.DataLossError, match="version-1 segment after"):
        with FileLog(str(tmp_path), readonly=True) as log:
            list(log.read(0))


def test_a_last_segment_cut_inside_its_header_below_the_checkpoint_is_damage_not_removed(tmp_path):
    """A last segment shorter than its header looks like a crash while creating it, and is
    removed; but when the projection applied records from it, it was complete: damage,
    which must be loud and leave the file in place."""
    bases = small_segment_log(tmp_path)
    last = tmp_path / segment_name(bases[-1])
    os.truncate(last, 20)
    with pytest.raises(errors.DataLossError, match="shorter than its header"):
        FileLog(str(tmp_path), durability="none", protect_below=bases[-1] + 1)
    assert list_segment_bases(str(tmp_path)) == bases and os.path.getsize(last) == 20


def test_a_lone_segment_cut_inside_its_header_below_the_checkpoint_is_not_replaced(tmp_path):
    """The same for a log's only segment: it must not be replaced by a new, empty log."""
    log = FileLog(str(tmp_path), durability="none")
    log.append([b"a", b"b"])
    log.close()
    os.truncate(tmp_path / segment_name(0), 10)
    with pytest.raises(errors.DataLossError, match="shorter than its header"):
        FileLog(str(tmp_path), durability="none", protect_below=2)
    assert os.path.getsize(tmp_path / segment_name(0)) == 10


def test_a_readonly_reader_does_not_call_a_directory_listing_that_missed_a_segment_damage(tmp_path, monkeypatch):
    """ext4 may list a directory that files are being created in with one created during
    the listing missing and one created after it present. A reader beside a writer that
    rolls then saw a segment missing from the middle of the chain: a false DataLossError
    (verify, replay or a follower stopped on a sound log)."""
    import mlmd_log.producer.file_log as file_log

    writer = FileLog(str(tmp_path), segment_bytes=200, durability="none")
    for i in range(4):
        writer.append([b"record-%03d-" % i + b"p" * 50])
    reader = FileLog(str(tmp_path), readonly=True)
    assert reader.end_offset() == 4
    for i in range(4, 10):
        writer.append([b"record-%03d-" % i + b"p" * 50])
    bases = list_segment_bases(str(tmp_path))
    hole = bases[-2]
    real_listing, holes = file_log.list_segment_bases, iter([True, True])

    def listing_with_a_hole(directory):
        found = real_listing(directory)
        return [b for b in found if b != hole] if next(holes, False) else found

    monkeypatch.setattr(file_log, "list_segment_bases", listing_with_a_hole)
    assert reader.end_offset() == 10
    assert [offset for offset, _ in reader.read(0)] == list(range(10))
    reader.close()
    writer.close()


def test_a_readonly_reader_rereads_a_header_the_writer_finished_after_it_first_looked(tmp_path, monkeypatch):
    """A reader that read a new segment's header while the writer was still creating it,
    then listed the directory after the writer had moved on to a later segment, parsed
    the stale empty header: a false DataLossError "incomplete header"."""
    import builtins

    import mlmd_log.producer.file_log as file_log

    bases = small_segment_log(tmp_path)
    unwritten = str(tmp_path / segment_name(bases[-2]))
    real_open, first = builtins.open, [True]

    class HeaderNotWrittenYet:
        """The file as it was an instant before the writer wrote its header."""

        def __init__(self, f):
            self.f = f

        def read(self, n=-1):
            if first[0]:
                first[0] = False
                return b""
            return self.f.read(n)

        def __getattr__(self, name):
            return getattr(self.f, name)

    def opening(path, *args, **kwargs):
        f = real_open(path, *args, **kwargs)
        return HeaderNotWrittenYet(f) if path == unwritten else f

    reader = FileLog(str(tmp_path), readonly=True)
    monkeypatch.setattr(file_log, "open", opening, raising=False)
    assert [offset for offset, _ in reader.read(0)] == list(range(10))
    reader.close()


# -- the embedded store -------------------------------------------------------------


def test_an_embedded_store_refuses_a_longer_log_that_is_not_its_projections(tmp_path):
    """A projection opened with another log at its log path (one restored or copied over
    it) must not apply that log's records past its checkpoint, mixing two histories."""
    import mlmd_log
    from mlmd_log.proto import metadata_store_pb2 as pb
    from mlmd_log.client import StoreConfig

    def store(log_dir: str, sqlite: str) -> mlmd_log.MetadataStore:
        return mlmd_log.MetadataStore(StoreConfig(str(tmp_path / log_dir), str(tmp_path / sqlite), "none"))

    ours = store("ours", "ours.sqlite")
    type_id = ours.put_artifact_type(pb.ArtifactType(name="Ours"))
    ours.put_artifacts([pb.Artifact(type_id=type_id, uri="ours")])
    ours.close()
    theirs = store("theirs", "theirs.sqlite")
    type_id = theirs.put_artifact_type(pb.ArtifactType(name="Theirs"))
    for i in range(3):
        theirs.put_artifacts([pb.Artifact(type_id=type_id, uri=f"theirs-{i}")])
    theirs.close()
    with pytest.raises(errors.DataLossError, match="not the log this projection was built from"):
        store("theirs", "ours.sqlite")
    reopened = store("ours", "ours.sqlite")
    assert [a.uri for a in reopened.get_artifacts()] == ["ours"]
    reopened.close()


@pytest.mark.parametrize("where", ["log path is a file", "projection path is a folder", "segment name is a folder"])
def test_a_store_that_cannot_be_opened_raises_an_mlmd_error_that_is_a_runtime_error(tmp_path, where):
    """ml-metadata raises RuntimeError when it cannot open its database; ours must be an
    MLMD error class (and a RuntimeError), never a bare OSError or sqlite3 error."""
    import mlmd_log
    from mlmd_log.client import StoreConfig

    log_dir, sqlite = tmp_path / "log", tmp_path / "mlmd.sqlite"
    if where == "log path is a file":
        log_dir.write_text("not a log")
    elif where == "projection path is a folder":
        sqlite.mkdir()
    else:
        (log_dir / segment_name(0)).mkdir(parents=True)
    with pytest.raises(errors.InternalError) as raised:
        mlmd_log.MetadataStore(StoreConfig(str(log_dir), str(sqlite), "none"))
    assert isinstance(raised.value, RuntimeError)


# -- Kafka --------------------------------------------------------------------------


def test_a_kafka_record_with_no_value_is_one_rejected_outcome_not_a_dead_projector(tmp_path):
    """A tombstone (a record whose value is null) that another producer wrote to the topic
    must be rejected alone, like any record carrying no request; it made replay and the
    projector fail with a TypeError on every start."""
    import uuid

    from kafka import KafkaProducer

    import test_kafka_log
    from dbdump import dump_tables
    from mlmd_log.consumer.replay import replay
    from mlmd_log.locations import open_projection
    from mlmd_log.producer.kafka_log import KafkaLog
    from mlmd_log.producer.records import RecordFactory
    from mlmd_log.proto import metadata_store_pb2 as pb
    from mlmd_log.proto import metadata_store_service_pb2 as svc

    if test_kafka_log.kafka_sh("status").returncode != 0:
        pytest.skip("no Kafka broker running (compose/kafka.sh start)")
    topic = f"test-adversarial-{uuid.uuid4().hex[:10]}"
    factory = RecordFactory()

    def put_type(name: str) -> bytes:
        return factory.payload("PutArtifactType", svc.PutArtifactTypeRequest(artifact_type=pb.ArtifactType(name=name)))[0]

    with KafkaLog.from_url(f"kafka://{test_kafka_log.BOOTSTRAP}/{topic}", create=True, timeout_s=10) as log:
        log.append([put_type("Before")])
        producer = KafkaProducer(bootstrap_servers=test_kafka_log.BOOTSTRAP)
        producer.send(topic, key=b"k", value=None)
        producer.flush()
        producer.close()
        log.append([put_type("After")])
        assert [payload for _, payload in log.read(1, 1)] == [b""]
        db = open_projection(f"sqlite:///{tmp_path}/p.sqlite")
        assert replay(log, db).end_offset == 3
        db.close()
    tables = dump_tables(f"{tmp_path}/p.sqlite")
    assert {row[0]: row[2] for row in tables["mlmdlog_outcome"]} == {0: 0, 1: errors.INVALID_ARGUMENT, 2: 0}
