"""Avro archives of the log (``mlmd-log export``, producer/avro_export.py) and reading them
back as a log (``avro:///DIR``, producer/avro_log.py): a replay from the archive rebuilds the
same projection as the log; the files are plain Avro with the columns the schema promises;
exports go on where they ended and refuse another log's archive; and damage of any kind
(truncation, a flipped bit, a gap, mixed archives) is a DataLossError naming the file."""
from __future__ import annotations

import json
import os
import shutil

import pytest

fastavro = pytest.importorskip("fastavro")

from google.protobuf import json_format  # noqa: E402

import mlmd_log  # noqa: E402
from mlmd_log import cli, errors  # noqa: E402
from mlmd_log.client import StoreConfig  # noqa: E402
from mlmd_log.locations import open_log, open_projection  # noqa: E402
from mlmd_log.producer import FileLog  # noqa: E402
from mlmd_log.producer import avro_export  # noqa: E402
from mlmd_log.producer.avro_export import OutcomeSource, export_log  # noqa: E402
from mlmd_log.producer.avro_log import AvroLog, archive_schema, file_digest  # noqa: E402
from mlmd_log.producer.records import PUT_RPCS, RecordFactory, parse_record  # noqa: E402
from mlmd_log.projections.bookkeeping import read_outcomes  # noqa: E402
from mlmd_log.proto import metadata_store_pb2 as pb  # noqa: E402
from mlmd_log.proto import metadata_store_service_pb2 as svc  # noqa: E402

from dbdump import dump_tables  # noqa: E402
from test_log_semantics import workload  # noqa: E402

COLUMNS = ["offset", "record_id", "timestamp_ms", "producer_host", "producer_pid", "producer_user",
           "producer_client_name", "schema_version", "attempt", "rpc", "request_json", "error_code",
           "error_message", "payload"]


def open_store(directory) -> mlmd_log.MetadataStore:
    return mlmd_log.MetadataStore(StoreConfig.from_directory(str(directory), durability="none"))


def pipeline_steps(store: mlmd_log.MetadataStore, steps: int, tag: str = "") -> None:
    """What pipelines log: per step an execution with an input and a new output (with
    properties) in a run context, an attribution; every tenth step a rejected duplicate."""
    model_type = pb.ArtifactType(name="Model")
    model_type.properties["version"] = pb.INT
    model_type_id = store.put_artifact_type(model_type)
    trainer = store.put_execution_type(pb.ExecutionType(name="Trainer"))
    run_type = store.put_context_type(pb.ContextType(name="PipelineRun"))
    [source] = store.put_artifacts([pb.Artifact(type_id=model_type_id, uri=f"/seed{tag}", name=f"seed{tag}")])
    for step in range(steps):
        execution = pb.Execution(type_id=trainer, last_known_state=pb.Execution.COMPLETE)
        execution.custom_properties["step"].int_value = step
        model = pb.Artifact(type_id=model_type_id, uri=f"/model{tag}/{step}")
        model.properties["version"].int_value = step
        _, [_, model_id], [run_id] = store.put_execution(
            execution, [(pb.Artifact(id=source, type_id=model_type_id), pb.Event(type=pb.Event.INPUT)),
                        (model, pb.Event(type=pb.Event.OUTPUT))],
            [pb.Context(type_id=run_type, name=f"run{tag}-{step // 20}")], reuse_context_if_already_exist=True)
        store.put_attributions_and_associations([pb.Attribution(context_id=run_id, artifact_id=model_id)], [])
        if step % 10 == 0:
            with pytest.raises(errors.AlreadyExistsError):
                store.put_artifacts([pb.Artifact(type_id=model_type_id, name=f"seed{tag}")])


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """A closed embedded store: the mixed workload of test_log_semantics (with its rejected
    puts) and 60 pipeline steps. Tests copy it before they change it."""
    directory = tmp_path_factory.mktemp("history") / "store"
    with open_store(directory) as store:
        workload(store)
        pipeline_steps(store, 60)
    return directory


@pytest.fixture
def store_dir(history, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(history, copy)
    return copy


def records_of(log_dir) -> list[tuple[int, bytes]]:
    with FileLog(str(log_dir), readonly=True) as log:
        return list(log.read(0))


def archive_rows(directory) -> list[dict]:
    rows = []
    for name in sorted(n for n in os.listdir(directory) if n.endswith(".avro")):
        with open(os.path.join(directory, name), "rb") as fo:
            rows.extend(fastavro.reader(fo))
    return rows


def replayed(log_url: str, into) -> dict:
    assert cli.main(["replay", "--log", log_url, "--into", f"sqlite:///{into}", "--batch-size", "7", "--quiet"]) == 0
    return dump_tables(str(into))


def export(*argv: str) -> int:
    return cli.main(["export", "--quiet", *argv])


# -- what an archive holds ---------------------------------------------------------------------------
def test_a_replay_of_the_archive_is_the_replay_of_the_log(store_dir, tmp_path):
    assert export("--data-dir", str(store_dir), "--to", str(tmp_path / "archive"), "--max-file-mb", "0.004") == 0
    assert len(os.listdir(tmp_path / "archive")) > 3  # (several files: the replay reads across them)
    from_log = replayed(str(store_dir / "log"), tmp_path / "from_log.sqlite")
    from_archive = replayed(f"avro://{tmp_path}/archive", tmp_path / "from_archive.sqlite")
    assert from_archive == from_log
    assert len(from_log["Artifact"]) > 60 and len(from_log["Event"]) > 120 and from_log["Attribution"]
    assert any(row[2] for row in from_log["mlmdlog_outcome"])  # (rejected puts replayed as rejected)


def test_the_project_command_follows_an_archive(store_dir, tmp_path):
    archive = tmp_path / "archive"
    assert export("--log", str(store_dir / "log"), "--to", str(archive)) == 0
    into = tmp_path / "projected.sqlite"
    assert cli.main(["project", "--log", f"avro://{archive}", "--into", f"sqlite:///{into}",
                     "--until-caught-up", "--report-every", "0"]) == 0
    assert dump_tables(str(into)) == replayed(str(store_dir / "log"), tmp_path / "from_log.sqlite")


def test_the_files_are_plain_avro_with_the_envelope_request_and_outcome_as_columns(store_dir, tmp_path):
    assert export("--data-dir", str(store_dir), "--to", str(tmp_path / "archive")) == 0
    [name] = [n for n in os.listdir(tmp_path / "archive") if n.endswith(".avro")]
    with open(tmp_path / "archive" / name, "rb") as fo:
        reader = fastavro.reader(fo)
        assert [f["name"] for f in reader.writer_schema["fields"]] == COLUMNS
        assert reader.metadata["mlmd_log.outcomes"].endswith("mlmd.sqlite")
        rows = list(reader)
    logged = records_of(store_dir / "log")
    assert name.startswith(f"log-{0:020d}-{len(logged):020d}-")
    assert [(r["offset"], r["payload"]) for r in rows] == logged
    db = open_projection(str(store_dir / "mlmd.sqlite"), create=False, readonly=True)
    outcomes = {o.offset: o for o in read_outcomes(db, "1 = 1", ())}
    db.close()
    rpcs = {case: rpc for rpc, case in PUT_RPCS.items()}
    for row in rows:
        record = parse_record(row["payload"])
        case = record.WhichOneof("request")
        assert (row["record_id"], row["timestamp_ms"], row["schema_version"], row["attempt"]) == (
            record.record_id, record.timestamp_ms, record.schema_version, record.attempt)
        assert (row["producer_host"], row["producer_pid"], row["producer_user"], row["producer_client_name"]) == (
            record.producer.host, record.producer.pid, record.producer.user, record.producer.client_name)
        assert row["rpc"] == rpcs[case]
        request = json_format.Parse(row["request_json"], type(getattr(record, case))())
        assert request == getattr(record, case)
        outcome = outcomes[row["offset"]]
        assert (row["error_code"], row["error_message"]) == (outcome.error_code, outcome.error_message or None)
    rejected = [r for r in rows if r["error_code"]]
    assert len(rejected) == sum(1 for o in outcomes.values() if o.error_code) >= 10
    assert {r["error_code"] for r in rejected} >= {errors.ALREADY_EXISTS, errors.INVALID_ARGUMENT}
    assert all(r["error_message"] for r in rejected)
    assert any(r["rpc"] == "PutExecution" and "artifactEventPairs" in json.loads(r["request_json"]) for r in rows)


def test_pandas_reads_the_archive(store_dir, tmp_path):
    pandas = pytest.importorskip("pandas")
    export_log(FileLog(str(store_dir / "log"), readonly=True), str(tmp_path / "archive"))
    frame = pandas.DataFrame.from_records(archive_rows(tmp_path / "archive"))
    assert list(frame.columns) == COLUMNS and frame["offset"].tolist() == list(range(len(frame)))


def test_with_the_log_alone_the_outcome_columns_are_null(store_dir, tmp_path):
    assert export("--log", str(store_dir / "log"), "--to", str(tmp_path / "archive")) == 0
    rows = archive_rows(tmp_path / "archive")
    assert len(rows) == len(records_of(store_dir / "log"))
    assert all(r["error_code"] is None and r["error_message"] is None for r in rows)
    assert all(r["record_id"] and r["request_json"] for r in rows)


def test_a_record_that_does_not_decode_is_archived_as_it_is(tmp_path):
    with FileLog(str(tmp_path / "log")) as log:
        log.append([b"\xff not a record", RecordFactory("t").payload("PutArtifactType", svc.PutArtifactTypeRequest(
            artifact_type=pb.ArtifactType(name="T")))[0]])
        export_log(log, str(tmp_path / "archive"))
        [odd, typed] = archive_rows(tmp_path / "archive")
        assert odd["payload"] == b"\xff not a record" and odd["record_id"] is None and odd["rpc"] is None
        assert typed["rpc"] == "PutArtifactType" and typed["producer_client_name"] == "t"
        with AvroLog(str(tmp_path / "archive")) as archive:
            assert list(archive.read(0)) == list(log.read(0))


def test_with_a_projection_only_what_it_applied_is_exported(store_dir, tmp_path):
    applied = len(records_of(store_dir / "log"))
    with FileLog(str(store_dir / "log")) as log:  # (appended behind the store's back: not applied)
        log.append([RecordFactory().payload("PutContextType", svc.PutContextTypeRequest(
            context_type=pb.ContextType(name="Later")))[0]])
    archive = tmp_path / "archive"
    assert export("--data-dir", str(store_dir), "--to", str(archive)) == 0
    assert AvroLog(str(archive)).end_offset() == applied
    assert export("--log", str(store_dir / "log"), "--to", str(archive)) == 0  # (the rest, outcomes null)
    rows = archive_rows(archive)
    assert len(rows) == applied + 1 and rows[-1]["error_code"] is None and rows[-2]["error_code"] == 0


def test_a_projection_of_another_log_gives_no_outcomes(store_dir, tmp_path):
    other = tmp_path / "other"
    with open_store(other) as store:
        pipeline_steps(store, 3, tag="x")
    db = open_projection(str(other / "mlmd.sqlite"), create=False, readonly=True)
    try:
        with FileLog(str(store_dir / "log"), readonly=True) as log, pytest.raises(errors.DataLossError):
            export_log(log, str(tmp_path / "archive"), OutcomeSource(db, "other"))
    finally:
        db.close()
    assert not [n for n in os.listdir(tmp_path / "archive") if n.endswith(".avro")]


# -- going on, rolling, crashing ------------------------------------------------------------------
def test_a_second_export_goes_on_in_new_files_and_leaves_the_old_ones_alone(store_dir, tmp_path):
    archive = tmp_path / "archive"
    assert export("--data-dir", str(store_dir), "--to", str(archive), "--until", "40") == 0
    [first] = [n for n in os.listdir(archive) if n.endswith(".avro")]
    assert first.startswith(f"log-{0:020d}-{40:020d}-")
    before = (archive / first).read_bytes()
    with open_store(store_dir) as store:
        pipeline_steps(store, 5, tag="-later")
    assert export("--data-dir", str(store_dir), "--to", str(archive)) == 0
    names = sorted(n for n in os.listdir(archive) if n.endswith(".avro"))
    logged = records_of(store_dir / "log")
    assert names[0] == first and names[1].startswith(f"log-{40:020d}-{len(logged):020d}-") and len(names) == 2
    assert (archive / first).read_bytes() == before
    assert list(AvroLog(str(archive)).read(0)) == logged
    assert export("--data-dir", str(store_dir), "--to", str(archive)) == 0  # (nothing new: no file)
    assert sorted(n for n in os.listdir(archive) if n.endswith(".avro")) == names


def test_files_roll_by_size_and_read_as_one_log(store_dir, tmp_path):
    archive = tmp_path / "archive"
    stats = export_log(FileLog(str(store_dir / "log"), readonly=True), str(archive), max_file_bytes=4000)
    assert len(stats.files) > 5 and stats.files == sorted(stats.files)
    assert sorted(n for n in os.listdir(archive) if n.endswith(".avro")) == stats.files
    assert all(os.path.getsize(archive / name) < 2 * 4000 for name in stats.files)  # (within a block past it)
    logged = records_of(store_dir / "log")
    log = AvroLog(str(archive))
    assert log.end_offset() == len(logged) and [f.first for f in log.files()][0] == 0
    assert list(log.read(0)) == logged
    batches, offset = [], 0
    while offset < len(logged):  # (in batches, as a follower reads: each one goes on in the open file)
        batches.extend(log.read(offset, 13))
        offset += 13
    assert batches == logged
    for start, count in ((1, 3), (log.files()[2].first - 2, 5), (len(logged) - 1, 9)):
        assert list(log.read(start, count)) == logged[start:start + count]
    assert list(log.read(len(logged))) == []
    with pytest.raises(errors.OutOfRangeError):
        log.read(len(logged) + 1)
    with pytest.raises(errors.FailedPreconditionError, match="read-only"):
        log.append([b"x"])
    log.close()


def test_a_read_from_the_middle_of_a_file_skips_the_blocks_before_it(store_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(avro_export, "_BLOCK_BYTES", 2000)  # (one file of many blocks)
    [name] = export_log(FileLog(str(store_dir / "log"), readonly=True), str(tmp_path / "archive")).files
    with open(tmp_path / "archive" / name, "rb") as fo:
        assert sum(1 for _ in fastavro.block_reader(fo)) > 10
    logged = records_of(store_dir / "log")
    with AvroLog(str(tmp_path / "archive")) as log:
        for start in range(0, len(logged), 17):
            assert list(log.read(start, 3)) == logged[start:start + 3]


def test_an_archive_reads_as_a_log(store_dir, tmp_path):
    """The Log contract's reading half (support/contracts.py appends; an archive cannot)."""
    logged = records_of(store_dir / "log")
    with FileLog(str(store_dir / "log"), readonly=True) as source:
        export_log(source, str(tmp_path / "archive"), until=20)
        log = open_log(f"avro://{tmp_path}/archive")
        reader = log.read(0)
        assert next(reader) == logged[0]
        export_log(source, str(tmp_path / "archive"))  # (while a reader iterates: it sees the new file)
        assert list(reader) == logged[1:]
    with pytest.raises(errors.OutOfRangeError, match="past the end"):
        log.read(len(logged) + 1)
    for bad in ((-1,), (0, -1), ("0",)):
        with pytest.raises(errors.InvalidArgumentError):
            log.read(*bad)
    for _ in range(3):  # (abandoned readers leave it usable)
        abandoned = log.read(5)
        next(abandoned)
        abandoned.close()
    assert list(log.read(18, 4)) == logged[18:22]
    log.close()
    log.close()
    with pytest.raises(errors.FailedPreconditionError, match="closed"):
        log.read(0)
    with pytest.raises(errors.FailedPreconditionError, match="closed"):
        log.end_offset()


def test_a_failed_export_leaves_no_file_that_looks_complete(store_dir, tmp_path, monkeypatch):
    archive = tmp_path / "archive"
    real_row, rows = avro_export.archive_row, []

    def failing_row(*args):
        if len(rows) == 50:
            raise OSError("disk full")
        rows.append(args[0])
        return real_row(*args)

    monkeypatch.setattr(avro_export, "archive_row", failing_row)
    with pytest.raises(OSError, match="disk full"):
        export_log(FileLog(str(store_dir / "log"), readonly=True), str(archive), max_file_bytes=4000)
    finished = sorted(n for n in os.listdir(archive) if n.endswith(".avro"))
    assert finished and not [n for n in os.listdir(archive) if n.endswith(".partial")]
    (archive / f".log-{10**6:020d}.avro.partial").write_bytes(b"what a crash left")  # (a kill, not an exception)
    assert 0 < AvroLog(str(archive)).end_offset() <= 50
    monkeypatch.setattr(avro_export, "archive_row", real_row)
    export_log(FileLog(str(store_dir / "log"), readonly=True), str(archive))
    assert not [n for n in os.listdir(archive) if n.endswith(".partial")]
    assert list(AvroLog(str(archive)).read(0)) == records_of(store_dir / "log")


# -- refusals and damage ---------------------------------------------------------------------------
def one_line_failure(argv: list[str], capsys, *words: str) -> None:
    assert cli.main(argv) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlmd-log: "), lines
    for word in words:
        assert word in lines[0], lines[0]


def test_an_archive_of_another_log_is_refused(store_dir, tmp_path, capsys):
    archive = tmp_path / "archive"
    other = tmp_path / "other"
    with open_store(other) as store:
        pipeline_steps(store, 3, tag="x")
    assert export("--log", str(other / "log"), "--to", str(archive)) == 0
    names = os.listdir(archive)
    one_line_failure(["export", "--log", str(store_dir / "log"), "--to", str(archive)], capsys,
                     "FailedPreconditionError", "archive of another log")
    longer = tmp_path / "longer"
    assert export("--log", str(store_dir / "log"), "--to", str(longer)) == 0
    one_line_failure(["export", "--log", str(other / "log"), "--to", str(longer)], capsys,
                     "FailedPreconditionError", "not an archive of this log")
    assert os.listdir(archive) == names


@pytest.fixture
def rolled(store_dir, tmp_path):
    """An archive of several files; the log it was exported from."""
    archive = tmp_path / "archive"
    export_log(FileLog(str(store_dir / "log"), readonly=True), str(archive), max_file_bytes=4000)
    return archive, sorted(n for n in os.listdir(archive) if n.endswith(".avro"))


def read_all(archive) -> list:
    with open_log(f"avro://{archive}") as log:
        return list(log.read(0))


def test_a_truncated_file_is_data_loss(rolled, capsys):
    archive, names = rolled
    path = archive / names[1]
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(errors.DataLossError, match=names[1]):
        read_all(archive)
    one_line_failure(["replay", "--log", f"avro://{archive}", "--into", f"sqlite:///{archive}.db"], capsys,
                     "DataLossError", names[1])


def test_a_file_cut_at_a_block_boundary_is_data_loss(rolled):
    """A valid, shorter Avro file: its digest tells, and, were it renamed to match, its count."""
    archive, names = rolled
    path = archive / names[0]
    data = path.read_bytes()
    sync = data[-16:]  # (every block ends with the file's sync marker, and so does the header)
    path.write_bytes(data[:data.rindex(sync, 0, len(data) - 16) + 16])
    with pytest.raises(errors.DataLossError, match=f"{names[0]} is damaged: its bytes do not match the digest"):
        read_all(archive)
    renamed = archive / (names[0][:-len("0123456789abcdef.avro")] + file_digest(str(path)) + ".avro")
    path.rename(renamed)
    with pytest.raises(errors.DataLossError, match=f"{renamed.name} ends at offset .*it is truncated"):
        read_all(archive)


def test_a_flipped_bit_anywhere_in_a_file_is_data_loss(rolled):
    """Header, block counts, sync markers, compressed rows: deflate alone would decode some
    of these flips as other records; the digest in the name catches every one."""
    archive, names = rolled
    path = archive / names[2]
    data = path.read_bytes()
    for at in range(0, len(data), max(1, len(data) // 25)):
        damaged = bytearray(data)
        damaged[at] ^= 0x04
        path.write_bytes(bytes(damaged))
        with pytest.raises(errors.DataLossError, match=names[2]):
            read_all(archive)
    path.write_bytes(data)
    assert len(read_all(archive)) == AvroLog(str(archive)).end_offset()


def test_a_missing_file_is_a_gap(rolled):
    archive, names = rolled
    os.remove(archive / names[2])
    with pytest.raises(errors.DataLossError, match=f"gap .*after .*{names[1]}"):
        open_log(f"avro://{archive}")
    os.remove(archive / names[0])
    with pytest.raises(errors.DataLossError, match="gap or an overlap at the start"):
        open_log(f"avro://{archive}")


def test_a_file_removed_under_a_reader_is_data_loss(rolled):
    archive, names = rolled
    with open_log(f"avro://{archive}") as log:
        log.end_offset()
        os.remove(archive / names[-1])
        with pytest.raises(errors.DataLossError, match="files were removed"):
            log.end_offset()


def test_files_of_two_archives_mixed_are_data_loss(store_dir, tmp_path, monkeypatch):
    """Same offsets, other records: the archive id tells them apart, and where two exports
    drew the same id, the link to the record before does."""
    other = tmp_path / "other"
    with open_store(other) as store:
        pipeline_steps(store, 30, tag="x")

    def two_files(log_dir, archive):
        with FileLog(str(log_dir), readonly=True) as log:
            export_log(log, str(archive), until=30)
            export_log(log, str(archive), until=60)
        return sorted(n for n in os.listdir(archive) if n.endswith(".avro"))

    def swap_second(ours, theirs):
        """Their second file (same offsets) in our archive, in place of ours."""
        assert [p.name[:46] for p in ours] == [p.name[:46] for p in theirs]  # (log-FIRST-END-)
        os.remove(ours[1])
        shutil.copy(theirs[1], ours[1].parent)

    ours, theirs = two_files(store_dir / "log", tmp_path / "a"), two_files(other / "log", tmp_path / "b")
    swap_second([tmp_path / "a" / n for n in ours], [tmp_path / "b" / n for n in theirs])
    with pytest.raises(errors.DataLossError, match="belongs to another archive"):
        open_log(f"avro://{tmp_path}/a")

    class SameId:
        hex = "0" * 32

    monkeypatch.setattr(avro_export.uuid, "uuid4", lambda: SameId)
    ours, theirs = two_files(store_dir / "log", tmp_path / "c"), two_files(other / "log", tmp_path / "d")
    swap_second([tmp_path / "c" / n for n in ours], [tmp_path / "d" / n for n in theirs])
    with pytest.raises(errors.DataLossError, match=f"{theirs[1]} does not follow the file before it"):
        read_all(tmp_path / "c")


def test_the_schema_file_is_the_one_fastavro_reads(tmp_path):
    assert [f["name"] for f in archive_schema()["fields"]] == COLUMNS


def test_export_usage_mistakes(store_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as usage:
        cli.main(["export", "--log", str(store_dir / "log")])  # (no --to)
    assert usage.value.code == 2 and "--to" in capsys.readouterr().err
    one_line_failure(["export", "--data-dir", str(store_dir), "--projection", "sqlite:///x.db", "--to", str(tmp_path)],
                     capsys, "InvalidArgumentError", "--projection goes with --log")
    one_line_failure(["export", "--log", str(store_dir / "log"), "--to", str(tmp_path / "a"), "--max-file-mb", "0"],
                     capsys, "InvalidArgumentError", "must be positive")
    one_line_failure(["export", "--data-dir", str(tmp_path / "nowhere"), "--to", str(tmp_path / "a")], capsys,
                     "nowhere")
