"""A log you can trust: every reader is loud on damage, segments belong to their log and
link to the one before them, a torn tail is cut only with its bytes saved, recovery is
linear, and `verify` / `repair` find and cut damage from the command line."""
from __future__ import annotations

import glob
import os
import shutil
import struct
import subprocess
import sys
import time

import pytest

import mlmd_log
from mlmd_log.errors import DataLossError, FailedPreconditionError
from mlmd_log.producer import FileLog
from mlmd_log.producer.file_log import (
    FRAME_HEADER_SIZE,
    HEADER_SIZE,
    encode_frame,
    repair_log,
    segment_name,
    verify_log,
)
from mlmd_log.producer.records import RecordFactory
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.proto import metadata_store_service_pb2 as svc
from mlmd_log.client import StoreConfig

from test_file_log import flip_byte as flip

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHORT = b"record-00000"  # every short record has this length
SHORT_FRAME = FRAME_HEADER_SIZE + len(SHORT)
THREE_PER_SEGMENT = HEADER_SIZE + 3 * SHORT_FRAME


def short(i: int) -> bytes:
    return f"record-{i:05d}".encode()


def segment_files(path) -> list[str]:
    return sorted(glob.glob(os.path.join(path, "*.log")))


def write_log(path, records: list[bytes], segment_bytes: int) -> list[str]:
    with FileLog(path, segment_bytes=segment_bytes) as log:
        log.append(records)
    return segment_files(path)


def read_all(path) -> list[tuple[int, bytes]]:
    """What `replay` does with a log: open it readonly and read it to its end."""
    with FileLog(path, readonly=True) as log:
        return list(log.read(0))



def type_records(n: int) -> list[bytes]:
    """Valid log records (PutArtifactType), so a replay can apply them."""
    factory = RecordFactory("integrity-test")
    return [factory.make("PutArtifactType", svc.PutArtifactTypeRequest(
        artifact_type=pb.ArtifactType(name=f"T{i}"))).SerializeToString() for i in range(n)]


def write_v1_segment(path: str, base: int, records: list[bytes]) -> None:
    """A segment as versions before 2 wrote it: 16-byte header, no log id, no link."""
    with open(os.path.join(path, segment_name(base)), "wb") as f:
        f.write(struct.pack(">7sBQ", b"MLMDLOG", 1, base) + b"".join(encode_frame(r) for r in records))


# ----------------------------------------------------------------- every flipped byte


def test_every_flipped_byte_is_detected_by_verify_and_by_readers(tmp_path, report_figure):
    records = [short(i) for i in range(6)]
    files = write_log(tmp_path, records, THREE_PER_SEGMENT)
    assert len(files) == 2
    assert read_all(tmp_path) == list(enumerate(records))
    checked = 0
    for path in files:
        original = open(path, "rb").read()
        for pos in range(len(original)):
            flip(path, pos)
            where = f"{os.path.basename(path)} byte {pos}"
            with pytest.raises(DataLossError):
                verify_log(tmp_path)
                pytest.fail(f"verify passed over a flipped {where}")
            with pytest.raises(DataLossError):
                read_all(tmp_path)
                pytest.fail(f"a readonly reader passed over a flipped {where}")
            with open(path, "wb") as f:
                f.write(original)
            checked += 1
    assert checked == 2 * THREE_PER_SEGMENT
    report_figure("flipped bytes", f"{checked} of {checked} positions of a 2-segment log detected by verify "
                                   "and by a readonly read")
    assert verify_log(tmp_path).records == 6


def test_a_flipped_byte_is_a_torn_tail_for_the_writer_only_in_the_last_frame(tmp_path):
    records = [short(i) for i in range(6)]
    pristine = tmp_path / "pristine"
    files = write_log(pristine, records, THREE_PER_SEGMENT)
    last_frame_starts = os.path.getsize(files[-1]) - SHORT_FRAME
    for index, name in enumerate(os.path.basename(p) for p in files):
        for pos in range(THREE_PER_SEGMENT):
            work = tmp_path / f"w{index}-{pos}"
            shutil.copytree(pristine, work)
            flip(str(work / name), pos)
            in_last_frame = index == len(files) - 1 and pos >= last_frame_starts
            try:
                with FileLog(work, segment_bytes=THREE_PER_SEGMENT) as log:
                    if in_last_frame:  # a torn tail: cut, its bytes kept
                        assert log.end_offset() == 5
                        [saved] = glob.glob(str(work / "torn-*.bin"))
                        assert len(open(saved, "rb").read()) == SHORT_FRAME
                    else:  # opening is cheap: damage inside a full segment shows on reading
                        with pytest.raises(DataLossError):
                            list(log.read(0))
            except DataLossError:
                assert not glob.glob(str(work / "torn-*.bin"))
                assert open(work / name, "rb").read() != open(pristine / name, "rb").read()  # not cut
            shutil.rmtree(work)


# ----------------------------------------------------------------- segments of the wrong log


def segmented_log(path, n: int = 6) -> list[str]:
    """A log of valid records, one per segment."""
    return write_log(path, type_records(n), HEADER_SIZE + 1)


def damage_foreign(files, other) -> str:
    shutil.copy(segmented_log(other)[2], files[2])
    return files[2]


def damage_swap(files, other) -> str:
    a, b = open(files[2], "rb").read(), open(files[3], "rb").read()
    open(files[2], "wb").write(b)
    open(files[3], "wb").write(a)
    return files[2]


def damage_missing(files, other) -> str:
    os.remove(files[2])
    return files[3]


def damage_truncated(files, other) -> str:
    os.truncate(files[2], os.path.getsize(files[2]) - 3)
    return files[3]


def damage_extended(files, other) -> str:
    with open(files[2], "ab") as f:
        f.write(encode_frame(b"extra"))
    return files[3]


def damage_random(files, other) -> str:
    open(files[2], "wb").write(os.urandom(os.path.getsize(files[2])))
    return files[2]


DAMAGE = [damage_foreign, damage_swap, damage_missing, damage_truncated, damage_extended, damage_random]


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlmd_log.cli", *argv], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=120)


def assert_one_line_failure(run: subprocess.CompletedProcess, names: str) -> None:
    assert run.returncode == 1, (run.returncode, run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlmd-log: DataLossError: "), run.stderr
    assert names in lines[0], run.stderr


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda d: d.__name__[len("damage_"):])
def test_a_damaged_chain_of_segments_is_loud_at_open_and_from_the_cli(tmp_path, damage):
    log_dir = tmp_path / "data" / "log"
    named = os.path.basename(damage(segmented_log(log_dir), tmp_path / "other"))
    with pytest.raises(DataLossError, match=named):
        FileLog(log_dir)
    with pytest.raises(DataLossError, match=named):
        FileLog(log_dir, readonly=True)
    assert_one_line_failure(run_cli("replay", "--log", str(log_dir), "--into",
                                    f"sqlite:///{tmp_path / 'replayed.sqlite'}", "--quiet"), named)
    assert_one_line_failure(run_cli("info", "--data-dir", str(tmp_path / "data")), named)
    assert_one_line_failure(run_cli("verify", "--log", str(log_dir)), named)


def test_random_bytes_as_the_only_segment_is_not_an_empty_log(tmp_path):
    os.makedirs(tmp_path / "log")
    (tmp_path / "log" / segment_name(0)).write_bytes(os.urandom(300))
    with pytest.raises(DataLossError, match="not a log segment"):
        read_all(tmp_path / "log")
    assert_one_line_failure(run_cli("replay", "--log", str(tmp_path / "log"), "--into",
                                    f"sqlite:///{tmp_path / 'r.sqlite'}", "--quiet"), segment_name(0))


def test_a_flipped_bit_mid_log_fails_replay_instead_of_replaying_half(tmp_path):
    files = write_log(tmp_path / "log", type_records(9), 2**20)
    flip(files[0], os.path.getsize(files[0]) // 2)  # inside a record in the middle of the log
    run = run_cli("replay", "--log", str(tmp_path / "log"), "--into", f"sqlite:///{tmp_path / 'r.sqlite'}")
    assert_one_line_failure(run, "offset 4")
    assert "byte" in run.stderr and "replayed" not in run.stdout


def test_a_foreign_segment_appearing_while_a_reader_follows_is_caught(tmp_path):
    files = segmented_log(tmp_path / "log", 3)
    other = segmented_log(tmp_path / "other", 4)
    with FileLog(tmp_path / "log", readonly=True) as reader:
        assert reader.end_offset() == 3
        shutil.copy(other[3], tmp_path / "log" / segment_name(3))
        with pytest.raises(DataLossError, match="another log"):
            reader.end_offset()
        with pytest.raises(DataLossError, match="another log"):
            list(reader.read(0))
    assert len(files) == 3


# ----------------------------------------------------------------- torn tail or damage


def test_torn_tail_is_cut_and_its_bytes_saved(tmp_path):
    write_log(tmp_path, [short(i) for i in range(3)], 2**20)
    [path] = segment_files(tmp_path)
    good = os.path.getsize(path)
    torn = encode_frame(b"half written record")[:15]
    with open(path, "ab") as f:
        f.write(torn)
    with FileLog(tmp_path) as log:
        assert log.end_offset() == 3
    assert os.path.getsize(path) == good
    [saved] = glob.glob(str(tmp_path / "torn-*.bin"))
    assert os.path.basename(saved) == f"torn-{segment_name(0)[:-4]}-{good}.bin"
    assert open(saved, "rb").read() == torn


def test_complete_last_record_with_bad_crc_below_protect_below_is_refused_not_cut(tmp_path):
    write_log(tmp_path, [short(i) for i in range(4)], 2**20)
    [path] = segment_files(tmp_path)
    flip(path, os.path.getsize(path) - 1)
    before = open(path, "rb").read()
    with pytest.raises(DataLossError, match="offset 3.*CRC.*nothing was cut"):
        FileLog(tmp_path, protect_below=4)
    assert open(path, "rb").read() == before
    assert not glob.glob(str(tmp_path / "torn-*.bin"))


def test_embedded_store_refuses_to_cut_a_record_its_projection_applied(tmp_path):
    store = mlmd_log.MetadataStore(StoreConfig.from_directory(str(tmp_path)))
    for name in ("A", "B", "C"):
        store.put_artifact_type(pb.ArtifactType(name=name))
    store.close()
    [path] = segment_files(tmp_path / "log")
    flip(path, os.path.getsize(path) - 1)  # the last record: complete, applied, now damaged
    before = open(path, "rb").read()
    with pytest.raises(DataLossError, match="nothing was cut"):
        mlmd_log.MetadataStore(StoreConfig.from_directory(str(tmp_path)))
    assert open(path, "rb").read() == before


def crafted_garbage(size: int) -> bytes:
    """Frame headers at every 4th byte, each with a length that fits inside the file and
    a wrong CRC: a byte-by-byte scan that CRCs each candidate frame is quadratic here."""
    return struct.pack(">I", size // 64) * (size // 4)


def timed_open(path, garbage: bytes) -> float:
    shutil.rmtree(path, ignore_errors=True)
    write_log(path, [short(i) for i in range(3)], 64 * 2**20)
    [segment] = segment_files(path)
    with open(segment, "ab") as f:
        f.write(garbage)
    started = time.perf_counter()
    try:
        FileLog(path).close()  # recovers (cuts the tail, saved) or refuses: either in bounded time
    except DataLossError as refused:
        assert "repair" in refused.message or "valid frame" in refused.message
        assert os.path.getsize(segment) == HEADER_SIZE + 3 * SHORT_FRAME + len(garbage)
    return time.perf_counter() - started


def test_recovery_from_crafted_tail_garbage_is_linear(tmp_path, report_figure):
    small = min(timed_open(tmp_path / "s", crafted_garbage(256 * 2**10)) for _ in range(3))
    large = min(timed_open(tmp_path / "l", crafted_garbage(2**20)) for _ in range(3))
    report_figure("tail recovery", f"crafted garbage: 256 KiB {small * 1000:.1f} ms, 1 MiB {large * 1000:.1f} ms")
    assert large < 0.5
    assert large < max(8 * small, 0.05)  # 4x the bytes: about 4x the time, not 16x


def test_a_zero_filled_tail_is_recovered_quickly(tmp_path):
    assert timed_open(tmp_path, bytes(2**20)) < 0.5
    assert FileLog(tmp_path, readonly=True).end_offset() == 3


# ----------------------------------------------------------------- version-1 logs


def test_a_version_1_log_is_read_and_continues_in_version_2_segments(tmp_path):
    os.makedirs(tmp_path / "log")
    write_v1_segment(str(tmp_path / "log"), 0, [short(i) for i in range(3)])
    write_v1_segment(str(tmp_path / "log"), 3, [short(i) for i in range(3, 5)])
    assert read_all(tmp_path / "log") == [(i, short(i)) for i in range(5)]
    with FileLog(tmp_path / "log", segment_bytes=THREE_PER_SEGMENT) as log:
        assert log.end_offset() == 5
        assert log.append([short(i) for i in range(5, 12)]) == list(range(5, 12))
    files = segment_files(tmp_path / "log")
    assert [open(f, "rb").read(8)[7] for f in files] == [1, 1, 2, 2]  # new segments are version 2
    assert read_all(tmp_path / "log") == [(i, short(i)) for i in range(12)]
    assert verify_log(tmp_path / "log").records == 12
    with open(files[1], "ab") as f:  # the v1 segment the first v2 one links to
        f.write(encode_frame(b"sneaked in"))
    with pytest.raises(DataLossError, match="does not follow"):
        FileLog(tmp_path / "log", readonly=True)
    os.makedirs(tmp_path / "gap")  # between v1 segments only the base offsets tell, on reading
    write_v1_segment(str(tmp_path / "gap"), 0, [short(i) for i in range(3)])
    write_v1_segment(str(tmp_path / "gap"), 5, [short(i) for i in range(5, 7)])
    with pytest.raises(DataLossError, match="next segment"):
        read_all(tmp_path / "gap")




# ----------------------------------------------------------------- verify and repair


def test_verify_reports_what_it_checked(tmp_path):
    files = write_log(tmp_path, [short(i) for i in range(7)], THREE_PER_SEGMENT)
    report = verify_log(tmp_path)
    assert (report.records, report.segments, report.bytes) == (7, 3, sum(map(os.path.getsize, files)))
    run = run_cli("verify", "--log", str(tmp_path))
    assert run.returncode == 0 and "7 records, 3 segments" in run.stdout, run.stderr


def test_verify_calls_an_unrecovered_torn_tail_damage_unless_a_writer_is_appending(tmp_path):
    write_log(tmp_path, [short(i) for i in range(3)], 2**20)
    [path] = segment_files(tmp_path)
    with open(path, "ab") as f:
        f.write(encode_frame(b"half written")[:10])
    with pytest.raises(DataLossError, match="no writer"):
        verify_log(tmp_path)
    assert [o for o, _ in read_all(tmp_path)] == [0, 1, 2]  # a live reader may be racing a writer
    os.truncate(path, os.path.getsize(path) - 10)
    with FileLog(tmp_path):
        with open(path, "ab") as f:
            f.write(encode_frame(b"being appended")[:10])
        report = verify_log(tmp_path)
        assert report.writer_active and report.records == 3


def test_repair_cuts_to_an_offset_and_keeps_what_it_cut(tmp_path):
    files = write_log(tmp_path, [short(i) for i in range(8)], THREE_PER_SEGMENT)
    before = {f: open(f, "rb").read() for f in files}
    flip(files[1], HEADER_SIZE + SHORT_FRAME + 9)  # offset 4 damaged
    with pytest.raises(DataLossError, match="offset 4"):
        verify_log(tmp_path)
    with pytest.raises(DataLossError, match="offset 4"):
        repair_log(tmp_path, 5)  # a cut past the damage cannot be reached
    report = repair_log(tmp_path, 4)
    [folder] = glob.glob(str(tmp_path / "repaired-*"))
    assert report.saved_in == folder
    cut_at = HEADER_SIZE + SHORT_FRAME
    assert sorted(os.listdir(folder)) == sorted([f"{os.path.basename(files[1])}-from-byte-{cut_at}.bin",
                                                os.path.basename(files[2])])
    assert open(os.path.join(folder, os.path.basename(files[2])), "rb").read() == before[files[2]]
    assert verify_log(tmp_path).records == 4
    with FileLog(tmp_path, segment_bytes=THREE_PER_SEGMENT) as log:
        assert log.append([b"after repair"]) == [4]
    assert verify_log(tmp_path).records == 5


def test_repair_refuses_while_a_writer_holds_the_lock(tmp_path):
    with FileLog(tmp_path) as log:
        log.append([short(0), short(1)])
        with pytest.raises(FailedPreconditionError):
            repair_log(tmp_path, 1)
        run = run_cli("repair", "--log", str(tmp_path), "--to-offset", "1")
        assert run.returncode == 1 and "already has a writer" in run.stderr
    assert verify_log(tmp_path).records == 2


def test_repair_from_the_cli_prints_where_it_saved(tmp_path):
    write_log(tmp_path, [short(i) for i in range(6)], THREE_PER_SEGMENT)
    run = run_cli("repair", "--log", str(tmp_path), "--to-offset", "2")
    assert run.returncode == 0, run.stderr
    assert "repaired-" in run.stdout and "from byte" in run.stdout
    assert verify_log(tmp_path).records == 2


def test_verify_and_repair_help_show_an_example():
    for command in ("verify", "repair"):
        run = run_cli(command, "--help")
        assert run.returncode == 0 and "Example: mlmd-log " + command in run.stdout.replace("\n", " ")


def test_info_is_loud_when_the_log_is_shorter_than_the_projection(tmp_path):
    store = mlmd_log.MetadataStore(StoreConfig.from_directory(str(tmp_path)))
    for name in ("A", "B", "C"):
        store.put_artifact_type(pb.ArtifactType(name=name))
    store.close()
    end = FileLog(tmp_path / "log", readonly=True).end_offset()
    repair_log(tmp_path / "log", end - 1)
    run = run_cli("info", "--data-dir", str(tmp_path))
    assert_one_line_failure(run, f"ends at {end - 1}")
    assert_one_line_failure(run_cli("verify", "--data-dir", str(tmp_path)), f"ends at {end - 1}")


def test_a_damaged_record_at_the_checkpoint_is_not_taken_for_a_trimmed_one(tmp_path):
    from mlmd_log.projections.backend import SqliteBackend
    from mlmd_log.projections.projector import Projector, check_follows

    records = type_records(9)
    files = write_log(tmp_path / "log", records, HEADER_SIZE + 3 * (FRAME_HEADER_SIZE + len(records[0])))
    assert len(files) == 3
    db = SqliteBackend(str(tmp_path / "p.sqlite"))
    db.create_schema()
    with FileLog(tmp_path / "log", readonly=True) as log:
        Projector(db).apply_batch(list(log.read(0, 5)))
    data = open(files[1], "rb").read()
    flip(files[1], data.index(records[4]) + 5)  # the record the checkpoint names, mid-segment
    with FileLog(tmp_path / "log", readonly=True) as log:
        with pytest.raises(DataLossError, match="offset 4"):
            check_follows(log, db, 5)
    db.close()
