"""Log archives (producer/archive.py) between FileLogs: copying at the same offsets, going
on where an archive ended, refusing an archive of another log, and reading an archive and
a live log as one. The Kafka side (trimming a topic, a projection rebuilt through the
archive) is in test_kafka_log.py."""
from __future__ import annotations

import pytest

from mlmd_log.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError, OutOfRangeError
from mlmd_log.locations import open_log
from mlmd_log.producer import FileLog
from mlmd_log.producer.archive import ArchivedLog, archive_records, check_continues


def records(first: int, count: int, tag: str = "r") -> list[bytes]:
    return [f"{tag}{i}".encode() for i in range(first, first + count)]


@pytest.fixture
def live(tmp_path):
    log = FileLog(str(tmp_path / "live"))
    yield log
    log.close()


def test_archive_copies_records_at_their_offsets_and_goes_on_where_it_ended(tmp_path, live, monkeypatch):
    from mlmd_log.producer import archive as archive_module

    monkeypatch.setattr(archive_module, "ARCHIVE_BATCH", 7)  # (several batches, the last one short)
    live.append(records(0, 30))
    target = FileLog(str(tmp_path / "archive"))
    seen = []
    assert archive_records(live, target, "A", until=20, progress=lambda done, end: seen.append((done, end))) == (0, 20)
    assert seen == [(7, 20), (14, 20), (20, 20)]
    assert target.end_offset() == 20
    live.append(records(30, 5))
    assert archive_records(live, target, "A") == (20, 35)
    assert archive_records(live, target, "A") == (35, 35)  # (nothing new)
    assert list(target.read(0)) == list(live.read(0))
    for until in (36, -1):
        with pytest.raises(InvalidArgumentError, match="is not an offset of the log .it ends at 35"):
            archive_records(live, target, "A", until=until)
    assert archive_records(live, target, "A", until=10) == (35, 35)  # (already archived beyond it)
    target.close()


def test_an_archive_of_another_log_is_refused(tmp_path, live):
    live.append(records(0, 10))
    other = FileLog(str(tmp_path / "other"))
    other.append(records(0, 4, tag="x"))
    with pytest.raises(FailedPreconditionError, match="differs from the log at offset 3"):
        archive_records(live, other, "OTHER")
    longer = FileLog(str(tmp_path / "longer"))
    longer.append(records(0, 12))
    with pytest.raises(FailedPreconditionError, match="holds 12 records, the log only 10"):
        check_continues(longer, live, "LONGER")
    with pytest.raises(FailedPreconditionError, match="not an archive of this log"):
        ArchivedLog(longer, live, "LONGER")
    assert other.end_offset() == 4 and longer.end_offset() == 12  # (nothing appended to either)
    other.close()
    longer.close()


def test_an_archive_and_its_log_read_as_one(tmp_path, live):
    live.append(records(0, 10))
    target = FileLog(str(tmp_path / "archive"))
    archive_records(live, target, "A", until=6)
    both = ArchivedLog(FileLog(str(tmp_path / "archive"), readonly=True), live, "A")
    everything = list(live.read(0))
    assert list(both.read(0)) == everything
    assert list(both.read(4, 4)) == everything[4:8]  # (across the split)
    assert list(both.read(2, 3)) == everything[2:5]  # (within the archive)
    assert list(both.read(6, 2)) == everything[6:8]  # (within the live log)
    assert list(both.read(5, 1)) == everything[5:6]
    assert list(both.read(10)) == []
    with pytest.raises(OutOfRangeError):
        both.read(11)
    with pytest.raises(InvalidArgumentError):
        both.read(-1)
    assert both.end_offset() == 10 and both.end_offset_beyond(0) == 10
    assert both.wait_for_records(3, 0.0)  # (the archive holds it: no wait)
    # The archive grows while the reader is open (mlmd-log archive beside a projector).
    archive_records(live, target, "A")
    assert list(both.read(7, 2)) == everything[7:9]
    assert both.append([b"new"]) == [10]  # (appends go to the live log)
    assert live.end_offset() == 11
    both.close()
    target.close()


def test_kafka_urls_take_only_an_archive_that_exists(tmp_path):
    # (each is refused before any broker is asked)
    with pytest.raises(InvalidArgumentError, match="takes one, \\?archive=DIR"):
        open_log("kafka://127.0.0.1:1/t?archiv=/x")
    with pytest.raises(InvalidArgumentError, match="takes one"):
        open_log("kafka://127.0.0.1:1/t?archive=")
    with pytest.raises(InvalidArgumentError, match="takes one"):
        open_log(f"kafka://127.0.0.1:1/t?archive={tmp_path}&archive={tmp_path}")
    with pytest.raises(NotFoundError, match="No log archive at"):
        open_log(f"kafka://127.0.0.1:1/t?archive={tmp_path / 'missing'}")


def test_the_archive_command_refuses_what_it_cannot_do(tmp_path, live, capsys):
    from mlmd_log.cli import main

    live.append(records(0, 3))
    live_dir = str(tmp_path / "live")
    assert main(["archive", "--log", live_dir, "--to", str(tmp_path / "a"), "--trim"]) == 1
    assert "--trim drops records from a Kafka topic" in capsys.readouterr().err
    assert main(["archive", "--log", f"kafka://127.0.0.1:1/t?archive={tmp_path}", "--to", str(tmp_path / "a")]) == 1
    assert "names the live log alone" in capsys.readouterr().err
    assert main(["archive", "--log", live_dir, "--to", str(tmp_path / "a"), "--quiet"]) == 0
    assert "archived offsets 0..3 (3 records)" in capsys.readouterr().out
    copied = FileLog(str(tmp_path / "a"), readonly=True)
    assert list(copied.read(0)) == list(live.read(0))
    copied.close()


def test_records_in_neither_the_archive_nor_the_log_are_data_loss(tmp_path, live):
    """An archive that ends before the (trimmed) log starts: reading across the gap says so."""
    from mlmd_log.errors import DataLossError
    from mlmd_log.producer.memory_log import MemoryLog

    live.append(records(0, 10))
    target = FileLog(str(tmp_path / "archive"))
    archive_records(live, target, "A", until=4)

    class Trimmed(MemoryLog):  # (a log whose records below 7 were dropped, as DeleteRecords does)
        def read(self, start, max_records=None):
            if start < 7:
                raise DataLossError(f"no longer holds offset {start}")
            return super().read(start, max_records)

    trimmed = Trimmed()
    trimmed.append(records(0, 10))
    both = ArchivedLog(target, trimmed, "A")
    reader = both.read(2)
    assert [next(reader), next(reader)] == [(2, b"r2"), (3, b"r3")]
    with pytest.raises(DataLossError, match="ends at offset 4, and the log no longer holds that offset"):
        next(reader)
    assert list(both.read(7, 2)) == [(7, b"r7"), (8, b"r8")]
    target.close()
