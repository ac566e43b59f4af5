"""``mlmd-log export``: a log archived as Avro object container files, the long-term,
tool-neutral form of the log (DESIGN.md, "Archives"). Each row is one record: the
envelope as columns, the payload exactly as the log holds it (replay reads only that:
``avro:///DIR``, avro_log.py), and the request as protobuf JSON for people, Spark and
pandas. With a projection of the log, each row also gets the outcome applying it got.

    mlmd-log export --data-dir ./mlmd-data --to /archive/mlmd

Files roll at about ``max_file_bytes``. Each is written under a hidden temporary name,
fsynced and only then renamed to ``log-<first>-<end>-<digest>.avro``, so a crash leaves no file
that looks complete (the next export removes the temporary one). A second export goes on
where the last ended, in new files; it refuses an archive of another log.
"""
from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Optional

from google.protobuf import json_format

from mlmd_log.errors import FailedPreconditionError, InvalidArgumentError
from mlmd_log.producer.archive import range_to_copy
from mlmd_log.producer.avro_log import (
    CODEC, FORMAT_VERSION, META_ARCHIVE_ID, META_FIRST_OFFSET, META_FORMAT, META_OUTCOMES, META_PREVIOUS_SHA256,
    AvroLog, archive_schema, fastavro_module, file_digest, file_name, payload_sha256)
from mlmd_log.producer.base import Log, record_at
from mlmd_log.producer.file_log import describe_holder, fsync_dir, release_lock_file, try_lock_file
from mlmd_log.producer.records import RPC_OF_FIELD, UnreadableRecord, parse_record
from mlmd_log.projections.bookkeeping import next_offset, read_outcomes
from mlmd_log.projections.projector import check_follows
from mlmd_log.urls import without_password

DEFAULT_MAX_FILE_MB = 64
EXPORT_BATCH = 5000  # records read from the log (and outcomes from the projection) at a time
LOCK_FILE = "EXPORT.LOCK"
_TEMP_PREFIX, _TEMP_SUFFIX = ".", ".avro.partial"
_BLOCK_BYTES = 64 * 1024  # uncompressed bytes of rows per Avro block (fewer in files smaller than that)
_COMPRESSION_LEVEL = 1  # (deflate's fastest: its checksum is the point, not the ratio)



@dataclass
class ExportStats:
    first: int  # offsets exported: [first, end)
    end: int
    files: list[str] = field(default_factory=list)  # the files written, in order
    seconds: float = 0.0


@dataclass(frozen=True)
class OutcomeSource:
    """A projection of the log (a SqlBackend) whose outcome table fills the outcome
    columns; ``where`` names it in the files' headers."""

    db: Any
    where: str


def export_log(log: Log, directory: str, outcomes: Optional[OutcomeSource] = None, until: Optional[int] = None,
               max_file_bytes: int = DEFAULT_MAX_FILE_MB * 2**20,
               progress: Optional[Callable[[int, int], None]] = None) -> ExportStats:
    """Appends the records ``directory`` lacks (from its end up to ``until``, default the
    log's end; with ``outcomes``, no further than the projection has applied) as new
    files. FailedPreconditionError when the archive is not one of ``log``."""
    if max_file_bytes <= 0:
        raise InvalidArgumentError(f"The largest file size must be positive, not {max_file_bytes} bytes")
    started = time.monotonic()
    os.makedirs(directory, exist_ok=True)
    lock, holder = try_lock_file(os.path.join(directory, LOCK_FILE))
    if lock is None:
        raise FailedPreconditionError(f"Another export into {directory} is running ({describe_holder(holder)})")
    try:
        _remove_partial_files(directory)
        with AvroLog(directory) as archive:
            first, end = range_to_copy(archive, log, directory, until)
            previous = record_at(archive, first - 1) if first else None
            archive_id = archive.archive_id or uuid.uuid4().hex
        if outcomes is not None:
            end = max(first, min(end, _applied_offset(log, outcomes)))
        stats = ExportStats(first, end)
        files = _RollingFiles(directory, archive_id, previous, max_file_bytes,
                              without_password(outcomes.where) if outcomes is not None else "none")
        try:
            offset = first
            while offset < end:
                count = min(EXPORT_BATCH, end - offset)
                results = _outcomes_of(outcomes, offset, offset + count)
                for at, payload in log.read(offset, count):
                    files.write(archive_row(at, payload, results.get(at) if outcomes is not None else None))
                offset += count
                if progress is not None:
                    progress(offset, end)
            files.finish()
        finally:
            files.abandon()
        stats.files = files.written
        stats.seconds = time.monotonic() - started
        return stats
    finally:
        release_lock_file(lock)


def _applied_offset(log: Log, outcomes: OutcomeSource) -> int:
    """Where the projection stands, once it is sure to be a projection of ``log``."""
    applied = next_offset(outcomes.db)
    check_follows(log, outcomes.db, applied)
    return applied


def _outcomes_of(outcomes: Optional[OutcomeSource], first: int, end: int) -> dict[int, Any]:
    if outcomes is None:
        return {}
    return {o.offset: o for o in read_outcomes(outcomes.db, "`log_offset` >= ? AND `log_offset` < ?", (first, end))}


def archive_row(offset: int, payload: bytes, outcome: Any = None) -> dict:
    """The archive's row of one record (schemas/log_record.avsc): the payload as it is; the
    columns decoded from it, null where it lacks a field or does not decode; the outcome's
    columns from ``outcome`` (a bookkeeping.Outcome), null without one."""
    row: dict[str, Any] = {"offset": offset, "payload": payload, "error_code": None, "error_message": None}
    if outcome is not None:
        row["error_code"] = outcome.error_code
        row["error_message"] = outcome.error_message or None
    try:
        record = parse_record(payload)
    except UnreadableRecord:
        return row
    producer = record.producer if record.HasField("producer") else None
    case = record.WhichOneof("request")
    row.update(
        record_id=_field(record, "record_id"), timestamp_ms=_field(record, "timestamp_ms"),
        producer_host=_field(producer, "host"), producer_pid=_field(producer, "pid"),
        producer_user=_field(producer, "user"), producer_client_name=_field(producer, "client_name"),
        schema_version=_field(record, "schema_version"), attempt=_field(record, "attempt"),
        rpc=RPC_OF_FIELD.get(case, case), request_json=_request_json(getattr(record, case)) if case else None)
    return row


def _field(message: Any, name: str) -> Any:
    return getattr(message, name) if message is not None and message.HasField(name) else None


def _request_json(request: Any) -> Optional[str]:
    """The request as one line of protobuf JSON; None when json_format cannot write it (an
    Any of a type this process does not know): the payload still holds it."""
    try:
        return json_format.MessageToJson(request, indent=None)
    except (json_format.Error, TypeError, ValueError, RecursionError):
        return None


def _remove_partial_files(directory: str) -> None:
    """Files an export that crashed left under their temporary names (never read)."""
    for name in os.listdir(directory):
        if name.startswith(_TEMP_PREFIX) and name.endswith(_TEMP_SUFFIX):
            os.remove(os.path.join(directory, name))


class _RollingFiles:
    """Rows into files of about ``max_bytes`` each. A file is complete (renamed to its
    name, which says its offsets) only once fsynced; ``written`` lists those."""

    def __init__(self, directory: str, archive_id: str, previous: Optional[bytes], max_bytes: int, outcomes: str):
        self.directory, self.archive_id, self.max_bytes, self.outcomes = directory, archive_id, max_bytes, outcomes
        self.previous = previous  # (the last record written, which the next file links to)
        self.written: list[str] = []
        self._fo: Optional[BinaryIO] = None
        self._writer: Any = None
        self._first = self._next = 0

    def write(self, row: dict) -> None:
        if self._writer is None:
            self._open(row["offset"])
        self._writer.write(row)
        self._next, self.previous = row["offset"] + 1, row["payload"]
        if self._fo.tell() >= self.max_bytes:  # (the blocks flushed so far: within a block of the size)
            self.finish()

    def _open(self, first: int) -> None:
        metadata = {META_FORMAT: FORMAT_VERSION, META_ARCHIVE_ID: self.archive_id, META_FIRST_OFFSET: str(first),
                    META_PREVIOUS_SHA256: payload_sha256(self.previous) if self.previous is not None else "",
                    META_OUTCOMES: self.outcomes}
        self._first = first
        self._fo = open(self._temp_path(), "wb")
        self._writer = fastavro_module().write.Writer(
            self._fo, archive_schema(), codec=CODEC, metadata=metadata, compression_level=_COMPRESSION_LEVEL,
            sync_interval=min(_BLOCK_BYTES, self.max_bytes))  # (a file can only end where a block does)

    def finish(self) -> None:
        """Completes the open file, if any: its last block, fsync, then the name that says its
        offsets and digest (read back from the page cache), and an fsync of the directory."""
        if self._writer is None:
            return
        self._writer.flush()
        self._fo.flush()
        os.fsync(self._fo.fileno())
        self._fo.close()
        name = file_name(self._first, self._next, file_digest(self._temp_path()))
        os.rename(self._temp_path(), os.path.join(self.directory, name))
        fsync_dir(self.directory)
        self._fo = self._writer = None
        self.written.append(name)

    def abandon(self) -> None:
        """Removes an unfinished file (the export failed): what was finished stays."""
        if self._fo is not None:
            self._fo.close()
            os.remove(self._temp_path())
            self._fo = self._writer = None

    def _temp_path(self) -> str:
        return os.path.join(self.directory, f"{_TEMP_PREFIX}log-{self._first:020d}{_TEMP_SUFFIX}")
