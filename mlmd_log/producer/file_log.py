"""``FileLog``: the embedded, durable log: a directory of segment files.

Layout (Kafka-style)::

    <dir>/LOCK                          writer lock (flock) holding the writer's pid
    <dir>/00000000000000000000.log      segment whose first record has offset 0
    <dir>/00000000000000001234.log      next segment, first record has offset 1234

Each segment starts with a 16-byte header::

    b"MLMDLOG" | version (1 byte, = 1) | base offset (u64, big-endian)

followed by frames, one per record::

    length (u32 BE) | crc (u32 BE) | payload (length bytes)

where ``crc = zlib.crc32(payload, zlib.crc32(length_bytes))``: the CRC covers the
length field too, so a flipped length bit is caught rather than misframing the rest.

Durability policies:

* ``"fsync"`` (default): ``append`` returns after ``os.fdatasync`` of the segment.
  Group commit: concurrent appenders queue their frames; one of them (the leader)
  writes everything queued with one ``write`` and syncs once, then releases all of
  them, so throughput grows with concurrency instead of being capped at one sync
  per call. New segment files and the directory are fsynced when created.
* ``"group"``: an alias of ``"fsync"`` (group commit is always on); kept as a name
  so configurations can say what they mean.
* ``"none"``: ``append`` returns once the bytes are handed to the OS (no sync). A
  process crash loses nothing; an OS crash or power loss may lose the tail.

Readers inside the writing process only see records that are durable under the
policy (a projection must never run ahead of what the log keeps after a crash).

Recovery: opening for writing scans the last segment. A torn tail (incomplete
frame, or bad frames with nothing valid after them) is what a crash mid-append
leaves, and is truncated. A bad frame followed by a valid one is real corruption
and raises ``DataLossError``: data is never dropped silently. Other segments are
verified as they are read.
"""
from __future__ import annotations

import bisect
import errno
import fcntl
import logging
import mmap
import os
import re
import struct
import threading
import zlib
from typing import BinaryIO, Iterator, Sequence

from mlmd_log.errors import (
    DataLossError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from mlmd_log.producer.base import Log, check_read_args, check_records

logger = logging.getLogger(__name__)

SEGMENT_MAGIC = b"MLMDLOG"
SEGMENT_VERSION = 1
SEGMENT_HEADER = struct.Struct(">7sBQ")  # magic, version, base offset
HEADER_SIZE = SEGMENT_HEADER.size  # 16
FRAME_HEADER = struct.Struct(">II")  # length, crc
FRAME_HEADER_SIZE = FRAME_HEADER.size  # 8
LOCK_FILE = "LOCK"
SEGMENT_SUFFIX = ".log"
_SEGMENT_NAME = re.compile(r"^(\d{20})\.log$")
DURABILITY_POLICIES = ("fsync", "group", "none")
#: Distance in bytes between sparse index entries (offset -> file position).
INDEX_INTERVAL_BYTES = 16 * 1024


# --------------------------------------------------------------------------- framing


def frame_crc(length_bytes: bytes, payload: bytes | memoryview) -> int:
    """CRC32 over the length field and the payload (see module docstring)."""
    return zlib.crc32(payload, zlib.crc32(length_bytes))


def encode_frame(payload: bytes) -> bytes:
    """One record as it sits on disk: length, crc, payload."""
    length_bytes = struct.pack(">I", len(payload))
    return length_bytes + struct.pack(">I", frame_crc(length_bytes, payload)) + payload


def encode_segment_header(base_offset: int) -> bytes:
    return SEGMENT_HEADER.pack(SEGMENT_MAGIC, SEGMENT_VERSION, base_offset)


def segment_name(base_offset: int) -> str:
    """File name of the segment starting at ``base_offset``; sorts like the offsets."""
    return f"{base_offset:020d}{SEGMENT_SUFFIX}"


class _BadFrame(Exception):
    """A frame that cannot be read. ``torn`` means it is cut short (EOF inside it)."""

    def __init__(self, pos: int, reason: str, torn: bool):
        super().__init__(reason)
        self.pos = pos
        self.reason = reason
        self.torn = torn


class _EndOfSegment(Exception):
    """EOF exactly at a frame boundary: no more records in this segment (for now)."""


def read_frame(f: BinaryIO, pos: int) -> tuple[bytes, int]:
    """Read and verify the frame at ``pos`` of file ``f``; return (payload, next pos).

    Raises ``_EndOfSegment`` at a clean EOF and ``_BadFrame`` for a short or
    corrupt frame, leaving the decision (truncate, stop, or DataLossError) to the
    caller, which knows whether this is the tail of the log.
    """
    f.seek(pos)
    header = f.read(FRAME_HEADER_SIZE)
    if not header:
        raise _EndOfSegment()
    if len(header) < FRAME_HEADER_SIZE:
        raise _BadFrame(pos, f"incomplete frame header ({len(header)} of 8 bytes)", torn=True)
    length, crc = FRAME_HEADER.unpack(header)
    payload = f.read(length)
    if len(payload) < length:
        raise _BadFrame(
            pos, f"incomplete frame: {len(payload)} of {length} payload bytes", torn=True
        )
    if frame_crc(header[:4], payload) != crc:
        raise _BadFrame(pos, "CRC mismatch", torn=False)
    return payload, pos + FRAME_HEADER_SIZE + length


def find_valid_frame_after(path: str, pos: int) -> int | None:
    """Position of the first byte after ``pos`` where a valid frame starts, or None.

    Used on recovery to tell a torn tail (only garbage after the bad frame) from
    corruption in the middle (valid records after it). It tries every byte
    position, because a corrupt length field tells us nothing about where the next
    frame is. Cheap in practice: a crash leaves a short tail, and real corruption is
    followed by a valid frame within one record's length.
    """
    size = os.path.getsize(path)
    if size - pos <= FRAME_HEADER_SIZE:
        return None
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        view = memoryview(mm)
        try:
            for p in range(pos + 1, size - FRAME_HEADER_SIZE + 1):
                length, crc = FRAME_HEADER.unpack_from(mm, p)
                end = p + FRAME_HEADER_SIZE + length
                if end <= size and frame_crc(mm[p : p + 4], view[p + 8 : end]) == crc:
                    return p
        finally:
            view.release()
    return None


def check_segment_header(header: bytes, base: int, path: str) -> None:
    """Raise DataLossError unless ``header`` is a valid header for segment ``base``."""
    if len(header) < HEADER_SIZE:
        raise DataLossError(f"segment file {path} has an incomplete header ({len(header)} bytes)")
    magic, version, header_base = SEGMENT_HEADER.unpack(header)
    if magic != SEGMENT_MAGIC or version != SEGMENT_VERSION:
        raise DataLossError(f"segment file {path} has a bad header (magic/version)")
    if header_base != base:
        raise DataLossError(
            f"segment file {path} says its base offset is {header_base}, its name says {base}"
        )


# ------------------------------------------------------------------ filesystem helpers


def fsync_dir(path: str) -> None:
    """Make a directory entry (a new file, a new directory) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_data(fd: int) -> None:
    """fdatasync where available (enough for appended data), else fsync.

    Looked up at call time so tests can count syncs by monkeypatching ``os``.
    """
    sync = getattr(os, "fdatasync", None) or os.fsync
    sync(fd)


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (a regular-file write may be partial)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def list_segment_bases(directory: str) -> list[int]:
    """Base offsets of the segment files in ``directory``, ascending."""
    bases = []
    for name in os.listdir(directory):
        match = _SEGMENT_NAME.match(name)
        if match:
            bases.append(int(match.group(1)))
    return sorted(bases)


def try_lock_file(lock_path: str) -> tuple[int | None, int | None]:
    """Takes the exclusive lock of ``lock_path`` and writes our pid in it: (fd, None).
    When another open file holds it: (None, the holder's pid if it wrote one).

    flock locks belong to an open file description, so a second opener in the same
    process conflicts just like another process does.
    """
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        holder = _read_lock_holder(fd)
        os.close(fd)
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise
        return None, holder
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd, None


def describe_holder(holder: int | None) -> str:
    """Who holds a lock, for an error message."""
    if holder is None:
        return "an unknown process"
    return f"pid {holder}" + (" (this process)" if holder == os.getpid() else "")


def release_lock_file(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def acquire_writer_lock(directory: str) -> int:
    """Take the exclusive writer lock of a log directory; return the lock fd."""
    lock_path = os.path.join(directory, LOCK_FILE)
    fd, holder = try_lock_file(lock_path)
    if fd is None:
        hint = ": another FileLog on the same directory is open" if holder == os.getpid() else ""
        raise FailedPreconditionError(
            f"log {directory} already has a writer: lock file {lock_path} is held by {describe_holder(holder)}"
            f"{hint}; open it with readonly=True to read"
        )
    return fd


def _read_lock_holder(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------ sparse index


class SparseIndex:
    """Offset -> file position entries, about every ``INDEX_INTERVAL_BYTES`` per segment.

    Lets ``read(start)`` seek near ``start`` instead of scanning its segment from the
    beginning. Bounded: one entry per interval of log bytes (~4k entries per GiB).
    Entries are added while scanning or writing; only frames known to be valid are
    noted, so an entry always points at a frame boundary.
    """

    def __init__(self) -> None:
        self._entries: dict[int, tuple[list[int], list[int]]] = {}
        self._lock = threading.Lock()

    def note(self, base: int, offset: int, pos: int) -> None:
        with self._lock:
            offsets, positions = self._entries.setdefault(base, ([base], [HEADER_SIZE]))
            if offset > offsets[-1] and pos - positions[-1] >= INDEX_INTERVAL_BYTES:
                offsets.append(offset)
                positions.append(pos)

    def lookup(self, base: int, offset: int) -> tuple[int, int]:
        """The greatest indexed (offset, pos) in segment ``base`` with offset <= ``offset``."""
        with self._lock:
            entry = self._entries.get(base)
            if entry is None:
                return base, HEADER_SIZE
            offsets, positions = entry
            i = bisect.bisect_right(offsets, offset) - 1
            return offsets[i], positions[i]


# ---------------------------------------------------------------------------- FileLog


class FileLog(Log):
    """A durable log in a directory of segment files. See the module docstring.

    ``FileLog(path)`` opens (creating if needed) for writing, takes the writer lock
    and recovers the tail. ``FileLog(path, readonly=True)`` needs no lock, never
    modifies files, and tolerates an incomplete tail (a writer may be mid-append).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        durability: str = "fsync",
        segment_bytes: int = 64 * 2**20,
        readonly: bool = False,
    ) -> None:
        if durability not in DURABILITY_POLICIES:
            raise InvalidArgumentError(
                f"durability must be one of {DURABILITY_POLICIES}, got {durability!r}"
            )
        if segment_bytes <= HEADER_SIZE:
            raise InvalidArgumentError(f"segment_bytes must be > {HEADER_SIZE}, got {segment_bytes}")
        self.path = os.fspath(path)
        self.durability = durability
        self.segment_bytes = segment_bytes
        self.readonly = readonly
        self._sync = durability != "none"
        self._index = SparseIndex()
        self._cond = threading.Condition(threading.Lock())
        self._closed = False
        self._lock_fd: int | None = None
        self._fd: int | None = None  # current segment, writer only
        self._bases: list[int] = []  # writer only; replaced, never mutated (readers snapshot)
        if readonly:
            if not os.path.isdir(self.path):
                raise NotFoundError(f"log directory {self.path} does not exist")
        else:
            self._open_for_writing()

    # ------------------------------------------------------------------ opening

    def _open_for_writing(self) -> None:
        """Create the directory if needed, lock it, recover the tail, open for append."""
        if not os.path.isdir(self.path):
            os.makedirs(self.path, exist_ok=True)
            if self._sync:
                fsync_dir(os.path.dirname(os.path.abspath(self.path)))
        self._lock_fd = acquire_writer_lock(self.path)
        try:
            bases = list_segment_bases(self.path)
            if not bases:
                self._create_segment(0)
                bases = [0]
            base = bases[-1]
            self._bases = bases
            self._current_base = base
            count, size = self._recover_last_segment(base)
            self._fd = os.open(self._segment_path(base), os.O_WRONLY | os.O_APPEND)
            self._segment_size = size
            self._next_offset = base + count  # next offset to assign
            self._durable_end = self._next_offset  # readers see offsets below this
            self._pending: list[tuple[int, list[bytes]]] = []
            self._leader_active = False
            self._failure: BaseException | None = None
        except BaseException:
            self._release_lock()
            raise

    def _recover_last_segment(self, base: int) -> tuple[int, int]:
        """Verify the last segment, truncate a torn tail; return (records, valid bytes)."""
        path = self._segment_path(base)
        with open(path, "rb") as f:
            header = f.read(HEADER_SIZE)
            if len(header) < HEADER_SIZE and header == SEGMENT_HEADER.pack(
                SEGMENT_MAGIC, SEGMENT_VERSION, base
            )[: len(header)]:
                # Crash while creating the segment: it never held a record.
                self._rewrite_empty_segment(path, base)
                return 0, HEADER_SIZE
            check_segment_header(header, base, path)
            count, pos = 0, HEADER_SIZE
            while True:
                try:
                    _, next_pos = read_frame(f, pos)
                except _EndOfSegment:
                    return count, pos
                except _BadFrame as bad:
                    self._truncate_torn_tail(path, base + count, bad)
                    return count, pos
                self._index.note(base, base + count, pos)
                count, pos = count + 1, next_pos

    def _truncate_torn_tail(self, path: str, offset: int, bad: _BadFrame) -> None:
        """Cut a torn tail at ``bad.pos``, unless valid data follows (then DataLossError)."""
        valid_at = find_valid_frame_after(path, bad.pos)
        if valid_at is not None:
            raise DataLossError(
                f"corrupt record at offset {offset} in segment file {path} "
                f"(byte {bad.pos}: {bad.reason}), followed by a valid frame at byte "
                f"{valid_at}; refusing to truncate data"
            )
        size = os.path.getsize(path)
        logger.warning(
            "truncating torn tail of %s: %d bytes from byte %d (offset %d: %s)",
            path, size - bad.pos, bad.pos, offset, bad.reason,
        )
        fd = os.open(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, bad.pos)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _rewrite_empty_segment(self, path: str, base: int) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        try:
            write_all(fd, encode_segment_header(base))
            os.fsync(fd)
        finally:
            os.close(fd)

    def _create_segment(self, base: int) -> int:
        """Create segment ``base`` with its header; durable (file and dir) under fsync."""
        path = self._segment_path(base)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            write_all(fd, encode_segment_header(base))
            if self._sync:
                os.fsync(fd)
                fsync_dir(self.path)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _segment_path(self, base: int) -> str:
        return os.path.join(self.path, segment_name(base))

    # ------------------------------------------------------------------ appending

    def append(self, records: Sequence[bytes]) -> list[int]:
        """Queue the records and wait until a leader (maybe this thread) has written them.

        Offsets are assigned under the lock at enqueue time, in queue order, so each
        call's records are contiguous and the file order equals the offset order.
        """
        payloads = check_records(records)
        if self.readonly:
            raise FailedPreconditionError(f"log {self.path} is open readonly")
        frames = [encode_frame(p) for p in payloads]  # CRC work outside the lock
        with self._cond:
            self._check_writable()
            if not frames:
                return []
            first = self._next_offset
            self._next_offset += len(frames)
            self._pending.append((first, frames))
            while self._durable_end < first + len(frames):
                self._check_writable()
                if self._leader_active:
                    self._cond.wait()
                else:
                    self._lead()
            return list(range(first, first + len(frames)))

    def _lead(self) -> None:
        """Write (and sync) everything queued. Called and returns with the lock held.

        The lock is released during I/O so other appenders can queue the next
        group meanwhile. An I/O error poisons the log: after a failed write or
        sync the file's state is unknown, so only reopening (recovery) is safe.
        """
        batch, self._pending = self._pending, []
        batch_end = batch[-1][0] + len(batch[-1][1])
        self._leader_active = True
        self._cond.release()
        error: BaseException | None = None
        try:
            self._write_batch(batch)
        except BaseException as e:  # noqa: BLE001 - recorded and re-raised to every waiter
            error = e
        finally:
            self._cond.acquire()
            self._leader_active = False
            if error is None:
                self._durable_end = batch_end
            else:
                self._failure = error
            self._cond.notify_all()

    def _write_batch(self, batch: list[tuple[int, list[bytes]]]) -> None:
        """Write frames, rolling segments as needed, then sync once (leader only)."""
        chunk: list[bytes] = []
        chunk_size = 0
        for first, frames in batch:
            for i, frame in enumerate(frames):
                size = self._segment_size + chunk_size
                if size > HEADER_SIZE and size + len(frame) > self.segment_bytes:
                    self._flush_chunk(chunk, chunk_size)
                    chunk, chunk_size = [], 0
                    self._roll(first + i)
                    size = self._segment_size
                self._index.note(self._current_base, first + i, size)
                chunk.append(frame)
                chunk_size += len(frame)
        self._flush_chunk(chunk, chunk_size)
        if self._sync:
            sync_data(self._fd)

    def _flush_chunk(self, chunk: list[bytes], chunk_size: int) -> None:
        if chunk:
            write_all(self._fd, b"".join(chunk))
            self._segment_size += chunk_size

    def _roll(self, base: int) -> None:
        """Close the full segment (synced first) and start a new one at ``base``."""
        if self._sync:
            sync_data(self._fd)
        new_fd = self._create_segment(base)
        os.close(self._fd)
        self._fd = new_fd
        self._segment_size = HEADER_SIZE
        self._current_base = base
        with self._cond:
            self._bases = self._bases + [base]

    def _check_writable(self) -> None:
        if self._closed:
            raise FailedPreconditionError(f"log {self.path} is closed")
        if self._failure is not None:
            raise UnavailableError(
                f"log {self.path} failed on write and must be reopened to recover: "
                f"{self._failure!r}"
            )

    # ------------------------------------------------------------------ reading

    def end_offset(self) -> int:
        if self.readonly:
            return self._scan_readonly_end()
        with self._cond:
            return self._durable_end

    def read(self, start: int, max_records: int | None = None) -> Iterator[tuple[int, bytes]]:
        """Validate now; the returned generator streams frames from the segment files."""
        if self._closed:
            raise FailedPreconditionError(f"log {self.path} is closed")
        check_read_args(start, max_records, self.end_offset())
        return self._iter_records(start, max_records)

    def _visible_end(self) -> float:
        """Readers stop here: the durable end for the writer, the file tail if readonly."""
        return float("inf") if self.readonly else self._durable_end

    def _segment_bases(self) -> list[int]:
        if self.readonly:
            return list_segment_bases(self.path)
        with self._cond:
            return self._bases

    def _iter_records(self, start: int, max_records: int | None) -> Iterator[tuple[int, bytes]]:
        bases = self._segment_bases()
        if not bases:
            return
        if bases[0] > start:
            raise DataLossError(
                f"log {self.path} starts at offset {bases[0]} (first segment file "
                f"{self._segment_path(bases[0])}), records from offset {start} are missing"
            )
        base = bases[bisect.bisect_right(bases, start) - 1]
        offset, pos = self._index.lookup(base, start)
        f = self._open_segment(base)
        if f is None:
            return
        emitted = 0
        try:
            while (max_records is None or emitted < max_records) and offset < self._visible_end():
                try:
                    payload, next_pos = read_frame(f, pos)
                except _EndOfSegment:
                    f.close()
                    f = self._next_segment(base, offset)
                    if f is None:
                        return
                    base, pos = offset, HEADER_SIZE
                    continue
                except _BadFrame as bad:
                    if self._is_readonly_tail(base, bad):
                        return
                    payload, next_pos = self._reread_or_data_loss(f, base, offset, bad)
                self._index.note(base, offset, pos)
                if offset >= start:
                    yield offset, payload
                    emitted += 1
                offset, pos = offset + 1, next_pos
        finally:
            if f is not None:
                f.close()

    def _open_segment(self, base: int) -> BinaryIO | None:
        """Open a segment for reading and check its header (None: readonly, header not yet written)."""
        path = self._segment_path(base)
        f = open(path, "rb")
        header = f.read(HEADER_SIZE)
        if len(header) < HEADER_SIZE and self.readonly and base == self._segment_bases()[-1]:
            f.close()
            return None
        try:
            check_segment_header(header, base, path)
        except DataLossError:
            f.close()
            raise
        return f

    def _next_segment(self, base: int, offset: int) -> BinaryIO | None:
        """At the clean end of segment ``base``: open the one that starts at ``offset``.

        Returns None at the end of the log. A gap or overlap between segments
        (the next one not starting where this one ended) is data loss.
        """
        bases = self._segment_bases()
        later = [b for b in bases if b > base]
        if not later:
            if self.readonly:
                return None
            raise DataLossError(
                f"segment file {self._segment_path(base)} ends at offset {offset}, "
                f"before the log's end offset {self._durable_end}"
            )
        if later[0] != offset:
            raise DataLossError(
                f"segment file {self._segment_path(base)} ends at offset {offset} but the next "
                f"segment file {self._segment_path(later[0])} starts at offset {later[0]}"
            )
        return self._open_segment(offset)

    def _is_readonly_tail(self, base: int, bad: _BadFrame) -> bool:
        """Whether a readonly reader should stop quietly at this bad frame.

        Only an incomplete frame in the last segment qualifies: the writer may be
        writing it right now.
        """
        if not (self.readonly and bad.torn):
            return False
        return self._segment_bases()[-1] == base

    def _reread_or_data_loss(
        self, f: BinaryIO, base: int, offset: int, bad: _BadFrame
    ) -> tuple[bytes, int]:
        """Read a bad frame once more if a racing writer may have completed it; else DataLossError.

        A readonly reader can see an incomplete frame, then list the directory after
        the writer finished that frame and rolled to a new segment. Only if the
        frame is still bad on a second look is it corruption.
        """
        if self.readonly and bad.torn:
            try:
                return read_frame(f, bad.pos)
            except (_BadFrame, _EndOfSegment):
                pass
        raise self._data_loss(base, offset, bad)

    def _data_loss(self, base: int, offset: int, bad: _BadFrame) -> DataLossError:
        hint = ""
        if self.readonly and not bad.torn:
            hint = " (if this is a torn tail left by a crash, opening the log for writing truncates it)"
        return DataLossError(
            f"corrupt record at offset {offset} in segment file {self._segment_path(base)} "
            f"(byte {bad.pos}: {bad.reason}){hint}"
        )

    def _scan_readonly_end(self) -> int:
        """End offset seen by a readonly reader: the last complete valid frame + 1.

        Starts from the sparse index's last entry for the last segment, so repeated
        calls cost about one index interval, not a scan of the whole segment.
        """
        bases = list_segment_bases(self.path)
        if not bases:
            return 0
        base = bases[-1]
        offset, pos = self._index.lookup(base, 2**63)
        with open(self._segment_path(base), "rb") as f:
            if len(f.read(HEADER_SIZE)) < HEADER_SIZE:
                return base
            while True:
                try:
                    _, next_pos = read_frame(f, pos)
                except (_EndOfSegment, _BadFrame):
                    return offset
                self._index.note(base, offset, pos)
                offset, pos = offset + 1, next_pos

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Let queued appends finish, then close the segment and release the lock."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            if not self.readonly:
                while self._leader_active or (self._pending and self._failure is None):
                    if self._leader_active:
                        self._cond.wait()
                    else:
                        self._lead()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            release_lock_file(self._lock_fd)
            self._lock_fd = None

    def __repr__(self) -> str:
        mode = "readonly" if self.readonly else f"writer, durability={self.durability}"
        return f"FileLog({self.path!r}, {mode})"
