"""FileLog: framing, segments, recovery, locking, concurrency and group commit."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time

import pytest

from mlmd_log.errors import (
    DataLossError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from mlmd_log.producer import FileLog
from mlmd_log.producer import file_log as file_log_module
from mlmd_log.producer.file_log import (
    FRAME_HEADER_SIZE,
    HEADER_SIZE,
    LOCK_FILE,
    encode_frame,
    segment_name,
)

from contracts import LogContract

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def segments(path) -> list[str]:
    return sorted(n for n in os.listdir(path) if n.endswith(".log"))


def last_segment(path) -> str:
    return os.path.join(path, segments(path)[-1])


def record(i: int) -> bytes:
    return f"record-{i:05d}".encode()


def flip_byte(path: str, pos: int) -> None:
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0xFF]))


def frame_pos(index: int, payload_len: int) -> int:
    """Byte position of the index-th frame in a segment of equal-size records."""
    return HEADER_SIZE + index * (FRAME_HEADER_SIZE + payload_len)


# ----------------------------------------------------------------- basics


class TestFileLogContract(LogContract):
    """Small segments, so the contract's reads and appends cross segment boundaries."""

    concurrent_writers = 16
    concurrent_calls = 30

    @pytest.fixture
    def log(self, tmp_path):
        with FileLog(tmp_path / "log", segment_bytes=4096) as log:
            yield log


def test_layout_is_one_segment_named_by_base_offset_and_a_lock(tmp_path):
    with FileLog(tmp_path) as log:
        log.append([b"xyz"])
    assert sorted(os.listdir(tmp_path)) == [segment_name(0), LOCK_FILE]
    assert segment_name(0) == "00000000000000000000.log"
    data = (tmp_path / segment_name(0)).read_bytes()
    assert data[:7] == b"MLMDLOG"
    assert data[HEADER_SIZE:] == encode_frame(b"xyz")


def test_unknown_durability_is_an_argument_error(tmp_path):
    with pytest.raises(InvalidArgumentError, match="durability"):
        FileLog(tmp_path / "a", durability="sometimes")


def test_closed_log_refuses_appends_and_releases_lock(tmp_path):
    log = FileLog(tmp_path)
    log.append([b"a"])
    log.close()
    log.close()  # idempotent
    with pytest.raises(FailedPreconditionError, match="closed"):
        log.append([b"b"])
    with FileLog(tmp_path) as again:  # lock was released
        assert again.end_offset() == 1


# ----------------------------------------------------------------- segments


def test_segments_roll_and_reads_cross_them(tmp_path):
    with FileLog(tmp_path, segment_bytes=200) as log:
        for i in range(50):
            assert log.append([record(i)]) == [i]
        assert list(log.read(0)) == [(i, record(i)) for i in range(50)]
        assert list(log.read(37, max_records=5)) == [(i, record(i)) for i in range(37, 42)]
    names = segments(tmp_path)
    assert len(names) > 5
    assert names[0] == segment_name(0)
    for name in names:
        assert os.path.getsize(tmp_path / name) <= 200
    # every segment's name is the offset of its first record
    with FileLog(tmp_path, readonly=True) as reader:
        for name in names[1:]:
            base = int(name[:-4])
            assert next(reader.read(base)) == (base, record(base))


def test_records_of_one_call_may_span_segments(tmp_path):
    with FileLog(tmp_path, segment_bytes=100) as log:
        assert log.append([record(i) for i in range(20)]) == list(range(20))
        assert [r for _, r in log.read(0)] == [record(i) for i in range(20)]
    assert len(segments(tmp_path)) > 1


def test_reopen_continues_offsets(tmp_path):
    with FileLog(tmp_path, segment_bytes=150) as log:
        log.append([record(i) for i in range(10)])
    with FileLog(tmp_path, segment_bytes=150) as log:
        assert log.end_offset() == 10
        assert log.append([record(10)]) == [10]
    with FileLog(tmp_path) as log:
        assert list(log.read(0)) == [(i, record(i)) for i in range(11)]


def test_sparse_index_seeks_to_the_right_record(tmp_path, monkeypatch):
    monkeypatch.setattr(file_log_module, "INDEX_INTERVAL_BYTES", 64)
    with FileLog(tmp_path, segment_bytes=2000) as log:
        log.append([record(i) for i in range(300)])
        for start in (0, 1, 17, 150, 299):
            assert next(log.read(start)) == (start, record(start))
    with FileLog(tmp_path, readonly=True) as reader:
        assert list(reader.read(0)) == [(i, record(i)) for i in range(300)]
        for start in (298, 3, 120):
            assert next(reader.read(start)) == (start, record(start))


# ----------------------------------------------------------------- recovery


def test_torn_tail_cut_in_half_is_truncated(tmp_path):
    with FileLog(tmp_path) as log:
        log.append([record(i) for i in range(5)])
    path = last_segment(tmp_path)
    full = os.path.getsize(path)
    os.truncate(path, full - 6)  # half of the last frame is gone
    with FileLog(tmp_path) as log:
        assert log.end_offset() == 4
        assert list(log.read(0)) == [(i, record(i)) for i in range(4)]
        assert log.append([b"new"]) == [4]
        assert list(log.read(3)) == [(3, record(3)), (4, b"new")]
    assert os.path.getsize(path) == full - len(record(4)) + len(b"new")


def test_garbage_tail_is_truncated(tmp_path):
    with FileLog(tmp_path) as log:
        log.append([record(i) for i in range(3)])
    path = last_segment(tmp_path)
    good_size = os.path.getsize(path)
    with open(path, "ab") as f:
        f.write(b"\x00" * 3 + os.urandom(40) + b"\x00" * 100)
    with FileLog(tmp_path) as log:
        assert log.end_offset() == 3
        assert os.path.getsize(path) == good_size
        assert log.append([b"after"]) == [3]


def test_bad_crc_in_final_frame_is_truncated(tmp_path):
    with FileLog(tmp_path) as log:
        log.append([record(i) for i in range(4)])
    path = last_segment(tmp_path)
    flip_byte(path, os.path.getsize(path) - 1)
    with FileLog(tmp_path) as log:
        assert log.end_offset() == 3
        assert [r for _, r in log.read(0)] == [record(i) for i in range(3)]


def test_corruption_in_the_middle_refuses_to_open(tmp_path):
    payload_len = len(record(0))
    with FileLog(tmp_path) as log:
        log.append([record(i) for i in range(6)])
    path = last_segment(tmp_path)
    size = os.path.getsize(path)
    flip_byte(path, frame_pos(2, payload_len) + FRAME_HEADER_SIZE + 3)
    with pytest.raises(DataLossError) as err:
        FileLog(tmp_path)
    assert "offset 2" in str(err.value)
    assert segment_name(0) in str(err.value)
    assert os.path.getsize(path) == size  # nothing was truncated
    with FileLog(tmp_path, readonly=True) as reader:  # the lock was released on failure
        assert [o for o, _ in reader.read(0, max_records=2)] == [0, 1]


def test_corrupt_length_field_in_the_middle_refuses_to_open(tmp_path):
    payload_len = len(record(0))
    with FileLog(tmp_path) as log:
        log.append([record(i) for i in range(6)])
    flip_byte(last_segment(tmp_path), frame_pos(1, payload_len))  # high byte of length
    with pytest.raises(DataLossError, match="offset 1"):
        FileLog(tmp_path)


def test_bad_frame_in_an_older_segment_is_detected_on_read(tmp_path):
    with FileLog(tmp_path, segment_bytes=120) as log:
        log.append([record(i) for i in range(20)])
    first = os.path.join(tmp_path, segments(tmp_path)[0])
    flip_byte(first, frame_pos(1, len(record(0))) + FRAME_HEADER_SIZE)
    with FileLog(tmp_path) as log:  # open scans only the last segment
        assert log.end_offset() == 20
        it = log.read(0)
        assert next(it) == (0, record(0))
        with pytest.raises(DataLossError) as err:
            next(it)
    assert "offset 1" in str(err.value) and segment_name(0) in str(err.value)


def test_bad_crc_is_detected_on_read(tmp_path):
    with FileLog(tmp_path) as log:
        log.append([record(i) for i in range(5)])
        flip_byte(last_segment(tmp_path), frame_pos(3, len(record(0))) + FRAME_HEADER_SIZE)
        assert [o for o, _ in log.read(0, max_records=3)] == [0, 1, 2]
        with pytest.raises(DataLossError, match="offset 3.*CRC"):
            list(log.read(0))
        with FileLog(tmp_path, readonly=True) as reader:
            with pytest.raises(DataLossError, match="offset 3"):
                list(reader.read(2))


def test_empty_segment_left_by_a_crash_while_rolling_is_repaired(tmp_path):
    with FileLog(tmp_path) as log:
        log.append([record(i) for i in range(3)])
    open(tmp_path / segment_name(3), "wb").close()  # created, header never written
    with FileLog(tmp_path) as log:
        assert log.end_offset() == 3
        assert log.append([b"x"]) == [3]
        assert list(log.read(2)) == [(2, record(2)), (3, b"x")]


def test_gap_between_segments_is_data_loss(tmp_path):
    with FileLog(tmp_path, segment_bytes=120) as log:
        log.append([record(i) for i in range(20)])
    names = segments(tmp_path)
    os.remove(tmp_path / names[1])
    with pytest.raises(DataLossError, match="does not follow"):
        FileLog(tmp_path)  # noticed at open: the next segment's header links to the removed one
    with pytest.raises(DataLossError, match="does not follow"):
        FileLog(tmp_path, readonly=True)


# ----------------------------------------------------------------- locking


def test_second_writer_in_same_process_is_refused(tmp_path):
    with FileLog(tmp_path):
        with pytest.raises(FailedPreconditionError) as err:
            FileLog(tmp_path)
        message = str(err.value)
        assert LOCK_FILE in message
        assert f"pid {os.getpid()}" in message and "this process" in message


_HOLD_LOCK = """
import sys
from mlmd_log.producer import FileLog
log = FileLog(sys.argv[1])
log.append([b"from child"])
print("ready", flush=True)
sys.stdin.readline()
log.close()
"""


def test_second_writer_in_another_process_is_refused(tmp_path):
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(tmp_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": REPO_ROOT},
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        with pytest.raises(FailedPreconditionError) as err:
            FileLog(tmp_path)
        assert f"pid {child.pid}" in str(err.value)
        assert os.path.join(str(tmp_path), LOCK_FILE) in str(err.value)
    finally:
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.wait(timeout=10) == 0
    with FileLog(tmp_path) as log:  # the child's exit released the lock
        assert list(log.read(0)) == [(0, b"from child")]


def test_process_trying_a_locked_log_gets_failed_precondition(tmp_path):
    code = (
        "import sys\n"
        "from mlmd_log.producer import FileLog\n"
        "from mlmd_log.errors import FailedPreconditionError\n"
        "try:\n    FileLog(sys.argv[1])\n"
        "except FailedPreconditionError as e:\n    print('refused', e); sys.exit(3)\n"
    )
    with FileLog(tmp_path):
        result = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
            cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": REPO_ROOT}, timeout=20,
        )
    assert result.returncode == 3, result.stderr
    assert f"pid {os.getpid()}" in result.stdout


def test_readonly_reader_works_while_writer_holds_lock(tmp_path):
    with FileLog(tmp_path, segment_bytes=150) as writer:
        writer.append([record(i) for i in range(5)])
        with FileLog(tmp_path, readonly=True) as reader:
            assert reader.end_offset() == 5
            assert list(reader.read(0)) == [(i, record(i)) for i in range(5)]
            writer.append([record(i) for i in range(5, 12)])
            assert reader.end_offset() == 12
            assert [o for o, _ in reader.read(4)] == list(range(4, 12))
            with pytest.raises(FailedPreconditionError, match="readonly"):
                reader.append([b"no"])


def test_readonly_stops_before_incomplete_tail_and_never_truncates(tmp_path):
    with FileLog(tmp_path) as log:
        log.append([record(i) for i in range(3)])
    path = last_segment(tmp_path)
    with open(path, "ab") as f:
        f.write(encode_frame(b"half written")[:10])  # a writer mid-append
    size = os.path.getsize(path)
    with FileLog(tmp_path, readonly=True) as reader:
        assert reader.end_offset() == 3
        assert [o for o, _ in reader.read(0)] == [0, 1, 2]
    assert os.path.getsize(path) == size


def test_readonly_on_missing_directory_is_not_found(tmp_path):
    with pytest.raises(NotFoundError):
        FileLog(tmp_path / "nope", readonly=True)


# ----------------------------------------------------------------- concurrency


def test_reads_while_appending_see_only_complete_records(tmp_path):
    stop = threading.Event()
    errors: list[BaseException] = []
    with FileLog(tmp_path, segment_bytes=2048, durability="none") as log:

        def reader() -> None:
            try:
                while not stop.is_set():
                    seen = [(o, r) for o, r in log.read(0)]
                    assert [o for o, _ in seen] == list(range(len(seen)))
                    assert all(r == record(o) for o, r in seen)
            except BaseException as e:  # reported to the test thread
                errors.append(e)

        readers = [threading.Thread(target=reader) for _ in range(2)]
        for th in readers:
            th.start()
        for i in range(400):
            log.append([record(i)])
        stop.set()
        for th in readers:
            th.join()
        assert log.end_offset() == 400
    assert errors == []


# ----------------------------------------------------------------- durability


class SyncCounter:
    """Counts data syncs and directory fsyncs; sleeps like a real disk so batching shows."""

    def __init__(self, monkeypatch, delay: float = 0.0):
        self.data_syncs = 0
        self.dir_syncs = 0
        self.delay = delay
        self._real_fsync = os.fsync
        self._real_fdatasync = os.fdatasync
        monkeypatch.setattr(os, "fdatasync", self.fdatasync)
        monkeypatch.setattr(os, "fsync", self.fsync)

    def fdatasync(self, fd: int) -> None:
        self.data_syncs += 1
        time.sleep(self.delay)
        self._real_fdatasync(fd)

    def fsync(self, fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            self.dir_syncs += 1
        else:
            self.data_syncs += 1
        self._real_fsync(fd)


def test_fsync_policy_syncs_before_append_returns(tmp_path, monkeypatch):
    with FileLog(tmp_path) as log:
        counter = SyncCounter(monkeypatch)
        for i in range(5):
            log.append([record(i)])
            assert counter.data_syncs == i + 1


def test_group_commit_batches_concurrent_appends(tmp_path, monkeypatch):
    with FileLog(tmp_path, durability="fsync") as log:
        counter = SyncCounter(monkeypatch, delay=0.002)

        def worker(t: int) -> None:
            for i in range(50):
                log.append([f"{t}-{i}".encode()])

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert log.end_offset() == 800
    assert 0 < counter.data_syncs <= 800 // 4, counter.data_syncs


def test_group_is_an_alias_of_fsync(tmp_path, monkeypatch):
    with FileLog(tmp_path, durability="group") as log:
        counter = SyncCounter(monkeypatch)
        log.append([b"a"])
        assert counter.data_syncs == 1


def test_none_policy_never_syncs(tmp_path, monkeypatch):
    with FileLog(tmp_path, durability="none", segment_bytes=100) as log:
        counter = SyncCounter(monkeypatch)
        log.append([record(i) for i in range(30)])
        assert counter.data_syncs == 0 and counter.dir_syncs == 0
        assert log.end_offset() == 30


def test_new_segments_and_directory_are_synced(tmp_path, monkeypatch):
    with FileLog(tmp_path, segment_bytes=100) as log:
        counter = SyncCounter(monkeypatch)
        log.append([record(0)])
        assert counter.dir_syncs == 0
        log.append([record(i) for i in range(1, 12)])
        new_segments = len(segments(tmp_path)) - 1
        assert new_segments >= 2
        assert counter.dir_syncs == new_segments


def test_failed_sync_poisons_the_log_until_reopened(tmp_path, monkeypatch):
    log = FileLog(tmp_path)
    log.append([b"ok"])

    def broken_sync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken_sync)
    with pytest.raises(UnavailableError, match="reopened"):
        log.append([b"lost?"])
    with pytest.raises(UnavailableError):
        log.append([b"after"])
    assert log.end_offset() == 1  # readers never saw the unsynced record
    log.close()
    monkeypatch.undo()
    with FileLog(tmp_path) as again:
        assert next(again.read(0)) == (0, b"ok")
