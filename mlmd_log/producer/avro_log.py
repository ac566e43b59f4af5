"""``AvroLog``: an Avro archive of a log (``mlmd-log export``, avro_export.py), read as a
read-only ``Log``, so ``replay``, ``project`` and ``open_log("avro:///DIR")`` rebuild
projections from it exactly as from the log it was exported from.

An archive is a directory of Avro object container files (schemas/log_record.avsc), one
row a record, each file named by the offsets it holds and a digest of its bytes,
``log-<first>-<end>-<digest>.avro`` (offsets in 20 digits, so names sort by offset). A
file's header carries the archive's id (drawn by the first export, repeated by every later
one) and the SHA-256 of the payload just before its first record, the way FileLog's
segments link to the one before.

The reader trusts none of it blindly (the log's invariant 7): a gap or an overlap between
names, a file whose bytes do not match its digest (Avro's deflate blocks carry no
checksum, so without it a flipped bit could decode as another record), a header that names
another archive or another first offset, a record at the wrong offset or a count other
than the name's, a link that does not match the file before: each is a DataLossError
naming the file, never a shorter or different log. A file's digest is checked before any
of its records is returned.
"""
from __future__ import annotations

import bisect
import functools
import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

from mlmd_log.errors import DataLossError, FailedPreconditionError, NotFoundError
from mlmd_log.producer.base import Log, check_read_args

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "schemas", "log_record.avsc")
FORMAT_VERSION = "1"
CODEC = "deflate"  # (its checksum per block is what catches a flipped bit inside a file)

# header metadata keys of every file
META_FORMAT = "mlmd_log.format"
META_ARCHIVE_ID = "mlmd_log.archive_id"
META_FIRST_OFFSET = "mlmd_log.first_offset"
META_PREVIOUS_SHA256 = "mlmd_log.previous_sha256"  # (hex; "" in the file that starts at offset 0)
META_OUTCOMES = "mlmd_log.outcomes"  # where the outcome columns came from, or "none"

_FILE_NAME = re.compile(r"^log-(\d{20})-(\d{20})-([0-9a-f]{16})\.avro$")
_DIGEST_CHUNK = 2**20


def file_name(first: int, end: int, digest: str) -> str:
    """The name of a finished file holding offsets ``[first, end)``, whose bytes have ``digest``."""
    return f"log-{first:020d}-{end:020d}-{digest}.avro"


def file_digest(path: str) -> str:
    """What a file's name says of its bytes: the first 64 bits of their SHA-256, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_DIGEST_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def payload_sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def fastavro_module() -> Any:
    """fastavro, or a FailedPreconditionError saying how to get it (it is an optional extra)."""
    try:
        import fastavro
    except ImportError:
        raise FailedPreconditionError(
            "Avro archives need fastavro: pip install 'mlmd-log[avro]' (or fastavro>=1.9)") from None
    return fastavro


@functools.lru_cache(maxsize=None)
def archive_schema() -> dict:
    """schemas/log_record.avsc, parsed by fastavro (once)."""
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        return fastavro_module().parse_schema(json.load(f))


@functools.lru_cache(maxsize=None)
def _replay_schema() -> dict:
    """The archive's schema cut to what a replay reads, so fastavro skips the other columns
    instead of building them."""
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        full = json.load(f)
    full["fields"] = [field for field in full["fields"] if field["name"] in ("offset", "payload")]
    return fastavro_module().parse_schema(full)


@dataclass(frozen=True)
class ArchiveFile:
    """One finished file of an archive, as its name and header describe it."""

    path: str
    first: int
    end: int
    digest: str
    archive_id: str
    previous_sha256: str


def read_header(path: str, first: int, end: int, digest: str) -> ArchiveFile:
    """The file's header, checked against its name; DataLossError if it is not an archive
    file of ours or claims other offsets."""
    fastavro = fastavro_module()
    try:
        with open(path, "rb") as fo:
            metadata = fastavro.reader(fo).metadata
    except OSError:
        raise
    except Exception as exc:  # (fastavro raises several kinds on a damaged header)
        raise DataLossError(f"The archive file {path} has an unreadable Avro header: {exc}") from None
    if metadata.get(META_FORMAT) != FORMAT_VERSION or META_ARCHIVE_ID not in metadata:
        raise DataLossError(f"The archive file {path} is not an mlmd-log archive file of format {FORMAT_VERSION} "
                            f"(its header has {META_FORMAT}={metadata.get(META_FORMAT)!r})")
    if metadata.get(META_FIRST_OFFSET) != str(first):
        raise DataLossError(f"The archive file {path} says it starts at offset {metadata.get(META_FIRST_OFFSET)}, "
                            f"its name at {first}: it was renamed")
    return ArchiveFile(path, first, end, digest, metadata[META_ARCHIVE_ID], metadata.get(META_PREVIOUS_SHA256, ""))


class AvroLog(Log):
    """The records of an Avro archive directory. Read-only: ``append`` raises.

    The directory is listed again at each ``read`` and ``end_offset``, so a reader (a
    projector following the archive) sees files a later export adds. A reader that goes on
    where its last read ended continues in the open file instead of decoding it again
    from its start."""

    may_drop_old_records = False

    def __init__(self, directory: str):
        if not os.path.isdir(directory):
            raise NotFoundError(f"No Avro archive at {directory} (not a directory)")
        self.directory = directory
        self._lock = threading.Lock()
        self._headers: dict[str, ArchiveFile] = {}
        self._files: list[ArchiveFile] = []
        self._cursor: Optional[_Cursor] = None
        self._closed = False
        self._refresh()

    def __repr__(self) -> str:
        return f"AvroLog({self.directory!r})"

    # -- what the archive holds --------------------------------------------------------
    @property
    def archive_id(self) -> Optional[str]:
        """The id every file of this archive carries; None while it has no file."""
        with self._lock:
            return self._files[0].archive_id if self._files else None

    def files(self) -> list[ArchiveFile]:
        with self._lock:
            self._refresh()
            return list(self._files)

    def end_offset(self) -> int:
        with self._lock:
            self._check_open()
            self._refresh()
            return self._end()

    def _end(self) -> int:
        return self._files[-1].end if self._files else 0

    def _refresh(self) -> None:
        """Lists the files again and checks that they follow on one another, from offset 0,
        all of one archive, and that none the last listing saw has gone."""
        named = []
        for name in os.listdir(self.directory):
            match = _FILE_NAME.match(name)
            if match:
                named.append((int(match.group(1)), int(match.group(2)), match.group(3), name))
        named.sort()
        files, expected, before = [], 0, None
        for first, end, digest, name in named:
            path = os.path.join(self.directory, name)
            if first != expected:
                where = f"after {before}" if before else "at the start"
                raise DataLossError(
                    f"The Avro archive {self.directory} has a gap or an overlap {where}: {path} starts at offset "
                    f"{first}, the records before it end at {expected}")
            if end <= first:
                raise DataLossError(f"The archive file {path} names no records (offsets {first}..{end})")
            header = self._headers.get(name) or read_header(path, first, end, digest)
            if files and header.archive_id != files[0].archive_id:
                raise DataLossError(
                    f"The archive file {path} belongs to another archive (id {header.archive_id}, not "
                    f"{files[0].archive_id} as {files[0].path}): files of two logs are mixed in {self.directory}")
            self._headers[name] = header
            files.append(header)
            expected, before = end, path
        if expected < self._end():
            raise DataLossError(f"The Avro archive {self.directory} now ends at offset {expected}, it ended at "
                                f"{self._end()}: files were removed")
        self._files = files

    # -- reading -------------------------------------------------------------------------
    def read(self, start: int, max_records: int | None = None) -> Iterator[tuple[int, bytes]]:
        with self._lock:
            self._check_open()
            self._refresh()
            check_read_args(start, max_records, self._end())
            cursor, self._cursor = self._cursor, None
        if cursor is None or cursor.next_offset != start:
            if cursor is not None:
                cursor.close()
            cursor = _Cursor(start, self._records_from(start))
        return self._read(cursor, max_records)

    def _read(self, cursor: "_Cursor", max_records: int | None) -> Iterator[tuple[int, bytes]]:
        """Up to ``max_records`` from the cursor; the cursor is kept for the next read."""
        count, usable = 0, True
        try:
            while max_records is None or count < max_records:
                try:
                    item = next(cursor.records, None)
                except BaseException:  # (damage: a later read must meet it again, not an ended cursor)
                    usable = False
                    raise
                if item is None:  # (at the end as listed: a later read lists again, with a new cursor)
                    usable = False
                    break
                cursor.next_offset = item[0] + 1
                yield item
                count += 1
        finally:
            with self._lock:
                keep = usable and not self._closed
                drop, self._cursor = (self._cursor, cursor) if keep else (cursor, self._cursor)
            if drop is not None:
                drop.close()

    def _records_from(self, start: int) -> Iterator[tuple[int, bytes]]:
        """Every record from ``start`` on, file after file, each file checked as it is read
        and against the last record of the file before (when that was read too)."""
        offset, previous = start, None
        while True:
            entry = self._file_holding(offset)
            if entry is None:
                with self._lock:  # (the end as listed: list again, for files exported meanwhile)
                    self._refresh()
                entry = self._file_holding(offset)
            if entry is None:
                return
            if previous is not None and payload_sha256(previous) != entry.previous_sha256:
                raise DataLossError(
                    f"The archive file {entry.path} does not follow the file before it: the record at offset "
                    f"{entry.first - 1} differs from the one it was exported after (files of two logs mixed?)")
            for item in _file_records(entry, offset):
                yield item
                previous = item[1]
            offset = entry.end

    def _file_holding(self, offset: int) -> Optional[ArchiveFile]:
        with self._lock:
            index = bisect.bisect_right([f.first for f in self._files], offset) - 1
            return self._files[index] if 0 <= index and offset < self._files[index].end else None

    def append(self, records: Sequence[bytes]) -> list[int]:
        raise FailedPreconditionError(
            f"The Avro archive {self.directory} is read-only: append to the live log, then run `mlmd-log export` again")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            cursor, self._cursor = self._cursor, None
        if cursor is not None:
            cursor.close()

    def _check_open(self) -> None:
        if self._closed:
            raise FailedPreconditionError(f"{self!r} is closed")


class _Cursor:
    """A read in progress: the records from ``next_offset`` on (an open file)."""

    def __init__(self, next_offset: int, records: Iterator[tuple[int, bytes]]):
        self.next_offset, self.records = next_offset, records

    def close(self) -> None:
        self.records.close()  # type: ignore[attr-defined]  (a generator)


def _file_records(entry: ArchiveFile, start: int) -> Iterator[tuple[int, bytes]]:
    """(offset, payload) of one file from ``start`` on; DataLossError where its bytes do not
    match its digest, it holds a record at the wrong offset, or fewer or more records than
    its name says. Blocks wholly before ``start`` are counted, not decoded (a reader that
    starts at the end of a file does not decode all of it)."""
    fastavro = fastavro_module()
    if file_digest(entry.path) != entry.digest:
        raise DataLossError(f"The archive file {entry.path} is damaged: its bytes do not match the digest in its "
                            "name (a flipped bit, or truncated)")
    expected = entry.first
    with open(entry.path, "rb") as fo:
        try:
            blocks = iter(fastavro.block_reader(fo, reader_schema=_replay_schema()))
        except Exception as exc:  # (fastavro raises several kinds on damage)
            raise DataLossError(f"The archive file {entry.path} has an unreadable Avro header: {exc}") from None
        while True:
            try:
                block = next(blocks, None)
            except Exception as exc:
                raise _damaged(entry, expected, exc) from None
            if block is None:
                break
            if expected + block.num_records <= start:
                expected += block.num_records
                continue
            rows = iter(block)
            while True:
                try:
                    row = next(rows, None)
                except Exception as exc:
                    raise _damaged(entry, expected, exc) from None
                if row is None:
                    break
                if row["offset"] != expected or expected >= entry.end:
                    raise DataLossError(f"The archive file {entry.path} holds offset {row['offset']} where "
                                        f"{expected} belongs (its name says {entry.first}..{entry.end})")
                expected += 1
                if row["offset"] >= start:
                    yield row["offset"], row["payload"]
    if expected != entry.end:
        raise DataLossError(f"The archive file {entry.path} ends at offset {expected}, its name says {entry.end}: "
                            "it is truncated")


def _damaged(entry: ArchiveFile, expected: int, exc: Exception) -> DataLossError:
    return DataLossError(f"The archive file {entry.path} does not decode after offset {expected - 1} "
                         f"({type(exc).__name__}: {exc})")
