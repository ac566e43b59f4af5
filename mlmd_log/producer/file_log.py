"""``FileLog``: the embedded, durable log: a directory of segment files.

Layout (Kafka-style)::

    <dir>/LOCK                          writer lock (flock) holding the writer's pid
    <dir>/00000000000000000000.log      segment whose first record has offset 0
    <dir>/00000000000000001234.log      next segment, first record has offset 1234
    <dir>/torn-<segment>-<byte>.bin     bytes a recovery cut off (kept as evidence)
    <dir>/repaired-<time>/              what ``mlmd-log repair`` cut off

Each segment starts with a 60-byte header (version 2)::

    b"MLMDLOG" | version (u8, = 2) | base offset (u64)
    | log id (16 random bytes, drawn when the log is created; the same in every segment)
    | link to the previous segment: its size in bytes (u64), the byte position of its
      last frame (u64, 0 when it has none), blake2b-8 of that frame's payload (8 bytes)
    | crc32 of the 56 bytes before it (u32)

(all integers big-endian), followed by frames, one per record::

    length (u32 BE) | crc (u32 BE) | payload (length bytes)

where ``crc = zlib.crc32(payload, zlib.crc32(length_bytes))``: the CRC covers the
length field too, so a flipped length bit is caught rather than misframing the rest.

Version-1 segments (16-byte header: magic, version = 1, base offset; no id, no link),
written by older versions, are still read. A writer appends to a v1 last segment as
before and creates every new segment as v2. A v1 log gets its identity when its
writer first rolls: the log id is drawn then and carried by every v2 segment from
there on; the first v2 segment links to the last v1 one, and v1 segments among
themselves are checked by their base offsets only.

Integrity. Every reader (writer or readonly) checks the chain of segments when it
opens, cheaply (each header, and one frame per segment): each header is valid
(magic, version, CRC), its base offset is its file name's, every v2 segment has the
log id of the first, and the size and last frame of each segment are what the next
header's link says. A reader crossing into the next segment checks the link
against what it has just read. Any bad frame (CRC mismatch, a length running past
the end of a segment that is not the last), gap, overlap, foreign or damaged
segment raises ``DataLossError`` naming the file and byte. The only place a
readonly reader stops quietly is an incomplete frame at the very end of the last
segment that could be a writer's append in progress (nothing valid after it, and
not a complete frame whose length field was damaged); ``complete=True`` (what
``verify_log`` uses when no writer holds the lock) calls even that damage.

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

Recovery: opening for writing checks the chain and scans the last segment. A torn
tail (a bad frame with nothing valid after it) is what a crash mid-append leaves:
its bytes are first saved to ``torn-<segment>-<byte>.bin`` (fsynced), then cut, with
a warning. A bad frame followed by a valid one is corruption: ``DataLossError``, and
nothing is cut. So is a bad frame below ``protect_below`` (the caller knows records
up to there were applied, so they were complete). Telling the two apart costs CRC
work bounded by a multiple of the tail's size; a tail that needs more (crafted
garbage) is refused with ``DataLossError`` rather than guessed: ``verify_log`` finds
the first damage and ``repair_log`` cuts the log there, keeping what it cuts.
"""
from __future__ import annotations

import bisect
import errno
import fcntl
import hashlib
import logging
import mmap
import os
import re
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator, NamedTuple, Sequence

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
SEGMENT_VERSION = 2
V1_HEADER = struct.Struct(">7sBQ")  # magic, version, base offset
V1_HEADER_SIZE = V1_HEADER.size  # 16
#: magic, version, base offset, log id, previous segment's size, its last frame's position and hash
SEGMENT_HEADER = struct.Struct(">7sBQ16sQQ8s")
HEADER_CRC = struct.Struct(">I")
HEADER_SIZE = SEGMENT_HEADER.size + HEADER_CRC.size  # 60
LOG_ID_BYTES = 16
LINK_HASH_BYTES = 8
FRAME_HEADER = struct.Struct(">II")  # length, crc
FRAME_HEADER_SIZE = FRAME_HEADER.size  # 8
LOCK_FILE = "LOCK"
SEGMENT_SUFFIX = ".log"
_SEGMENT_NAME = re.compile(r"^(\d{20})\.log$")
DURABILITY_POLICIES = ("fsync", "group", "none")
#: Distance in bytes between sparse index entries (offset -> file position).
INDEX_INTERVAL_BYTES = 16 * 1024
#: Work allowed when telling a torn tail from corruption (``find_valid_frame_after``):
#: a fixed allowance plus this many bytes of CRC per byte of tail; each candidate
#: position examined counts as ``SCAN_CANDIDATE_COST`` bytes on top of the CRC it needs.
SCAN_BUDGET_FIXED = 4 * 2**20
SCAN_BUDGET_PER_BYTE = 32
SCAN_CANDIDATE_COST = 64
_NONZERO = re.compile(rb"[^\x00]")
_COPY_CHUNK = 2**20


# --------------------------------------------------------------------------- framing


def frame_crc(length_bytes: bytes, payload: bytes | memoryview) -> int:
    """CRC32 over the length field and the payload (see module docstring)."""
    return zlib.crc32(payload, zlib.crc32(length_bytes))


def encode_frame(payload: bytes) -> bytes:
    """One record as it sits on disk: length, crc, payload."""
    length_bytes = struct.pack(">I", len(payload))
    return length_bytes + struct.pack(">I", frame_crc(length_bytes, payload)) + payload


def payload_hash(payload: bytes | memoryview) -> bytes:
    """The short hash by which the next segment's header names a segment's last record."""
    return hashlib.blake2b(payload, digest_size=LINK_HASH_BYTES).digest()


class SegmentLink(NamedTuple):
    """What a v2 header says of the segment before it (all zero for the first segment)."""

    size: int  # the previous segment's size in bytes
    last_pos: int  # byte position of its last frame; 0 when it holds none
    last_hash: bytes  # payload_hash of that frame's payload


NO_LINK = SegmentLink(0, 0, bytes(LINK_HASH_BYTES))


@dataclass(frozen=True)
class SegmentHeader:
    version: int
    base: int
    size: int  # header bytes: frames start here
    log_id: bytes | None = None  # v2 only
    link: SegmentLink | None = None  # v2 only


def encode_segment_header(base_offset: int, log_id: bytes, link: SegmentLink = NO_LINK) -> bytes:
    body = SEGMENT_HEADER.pack(SEGMENT_MAGIC, SEGMENT_VERSION, base_offset, log_id, *link)
    return body + HEADER_CRC.pack(zlib.crc32(body))


def segment_name(base_offset: int) -> str:
    """File name of the segment starting at ``base_offset``; sorts like the offsets."""
    return f"{base_offset:020d}{SEGMENT_SUFFIX}"


def parse_segment_header(data: bytes, base: int, path: str) -> SegmentHeader:
    """The header of segment ``base`` from its first bytes; DataLossError unless valid."""
    if len(data) < V1_HEADER_SIZE:
        raise DataLossError(f"segment file {path} has an incomplete header ({len(data)} bytes)")
    magic, version, header_base = V1_HEADER.unpack_from(data)
    if magic != SEGMENT_MAGIC:
        raise DataLossError(f"segment file {path} is not a log segment: bad magic at byte 0")
    if version == 1:
        header = SegmentHeader(1, header_base, V1_HEADER_SIZE)
    elif version == SEGMENT_VERSION:
        if len(data) < HEADER_SIZE:
            raise DataLossError(f"segment file {path} has an incomplete header ({len(data)} of {HEADER_SIZE} bytes)")
        body = data[: SEGMENT_HEADER.size]
        if zlib.crc32(body) != HEADER_CRC.unpack_from(data, SEGMENT_HEADER.size)[0]:
            raise DataLossError(
                f"segment file {path} has a damaged header: CRC mismatch over bytes 0-{HEADER_SIZE - 1}"
            )
        _, _, header_base, log_id, *link = SEGMENT_HEADER.unpack(body)
        header = SegmentHeader(version, header_base, HEADER_SIZE, log_id, SegmentLink(*link))
    else:
        raise DataLossError(f"segment file {path} has an unknown format version {version} (byte 7)")
    if header_base != base:
        raise DataLossError(
            f"segment file {path} says its base offset is {header_base}, its name says {base} "
            "(a segment renamed or swapped with another)"
        )
    return header


def is_unwritten_header(data: bytes, base: int) -> bool:
    """Whether ``data`` is what a crash while creating segment ``base`` leaves: shorter
    than the header and a prefix of it, so the segment never held a record."""
    if len(data) >= HEADER_SIZE or (len(data) >= V1_HEADER_SIZE and data[7] == 1):
        return False  # (a complete header, of either version)
    n = min(len(data), V1_HEADER_SIZE)
    return any(data[:n] == V1_HEADER.pack(SEGMENT_MAGIC, version, base)[:n] for version in (1, SEGMENT_VERSION))


def read_segment_header(path: str, base: int) -> SegmentHeader | None:
    """The checked header of a segment file; None when it is an unwritten header."""
    with open(path, "rb") as f:
        data = f.read(HEADER_SIZE)
    if is_unwritten_header(data, base):
        return None
    return parse_segment_header(data, base, path)


def link_found(prev_path: str, claimed: SegmentLink) -> SegmentLink:
    """What segment ``prev_path`` is, looked at where a next header says its last frame is.

    One frame read: the frame at ``claimed.last_pos`` must be valid and end the file.
    A position with no such frame is reported as -1, so it never matches a claim.
    """
    size = os.path.getsize(prev_path)
    if claimed.last_pos == 0:
        return SegmentLink(size, 0, NO_LINK.last_hash)
    with open(prev_path, "rb") as f:
        try:
            payload, end = read_frame(f, claimed.last_pos)
        except (_BadFrame, _EndOfSegment):
            return SegmentLink(size, -1, NO_LINK.last_hash)
    if end != size:
        return SegmentLink(size, -1, NO_LINK.last_hash)
    return SegmentLink(size, claimed.last_pos, payload_hash(payload))


def check_link(header: SegmentHeader, path: str, prev_path: str, found: SegmentLink) -> None:
    """DataLossError unless segment ``path`` follows ``prev_path`` as its header says."""
    claimed = header.link
    if claimed is None or found == claimed:
        return
    if found.size != claimed.size:
        problem = (f"{prev_path} is {found.size} bytes, the header of {path} says {claimed.size} "
                   "(a segment truncated, extended, missing or swapped)")
    elif found.last_pos != claimed.last_pos:
        problem = (f"the header of {path} names the frame at byte {claimed.last_pos} of {prev_path} as its last "
                   f"(offset {header.base - 1}), and there is no valid last frame there (a damaged record, or a "
                   "segment changed)")
    else:
        problem = (f"the last record of {prev_path} (byte {claimed.last_pos}) is not the one the header of "
                   f"{path} names as offset {header.base - 1} (a segment missing or swapped, one of another log, "
                   "or a damaged record)")
    raise DataLossError(f"segment file {path} does not follow segment file {prev_path}: {problem}")


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


def _next_candidate(mm: mmap.mmap, p: int, last: int, size: int) -> int | None:
    """The first position >= ``p`` (and <= ``last``) where a frame could start.

    A frame whose length fits in the rest of the file has as many leading zero bytes
    in its length field as the rest is short of 2**24, 2**16, 2**8: found with one
    ``find`` in C, not a Python step per byte. Eight zero bytes (length 0, crc 0) are
    never a valid frame, so runs of zeros are skipped whole.
    """
    while p <= last:
        rest = size - p - FRAME_HEADER_SIZE
        zeros = 3 if rest < 2**8 else 2 if rest < 2**16 else 1 if rest < 2**24 else 0
        if zeros:
            p = mm.find(b"\x00" * zeros, p, last + zeros)
            if p < 0:
                return None
        if mm[p : p + FRAME_HEADER_SIZE] != bytes(FRAME_HEADER_SIZE):
            return p
        nonzero = _NONZERO.search(mm, p)
        if nonzero is None:
            return None
        p = max(p + 1, nonzero.start() - FRAME_HEADER_SIZE + 1)
    return None


def find_valid_frame_after(path: str, pos: int) -> int | None:
    """Position of the first byte after ``pos`` where a valid frame starts, or None.

    Tells a torn tail (only garbage after the bad frame) from corruption in the
    middle (valid records after it). A corrupt length field says nothing about
    where the next frame is, so every plausible position is tried, with CRC work
    bounded by a multiple of the tail's size (linear time however the tail was
    crafted); past that budget DataLossError: undecided, so nothing may be cut.
    """
    size = os.path.getsize(path)
    if size - pos <= FRAME_HEADER_SIZE:
        return None
    budget = SCAN_BUDGET_FIXED + SCAN_BUDGET_PER_BYTE * (size - pos)
    last = size - FRAME_HEADER_SIZE
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        view = memoryview(mm)
        try:
            p: int | None = pos + 1
            while p is not None and p <= last:
                p = _next_candidate(mm, p, last, size)
                if p is None:
                    return None
                length, crc = FRAME_HEADER.unpack_from(mm, p)
                end = p + FRAME_HEADER_SIZE + length
                budget -= SCAN_CANDIDATE_COST
                if end <= size:
                    budget -= length
                    if budget < 0:
                        break
                    if frame_crc(mm[p : p + 4], view[p + FRAME_HEADER_SIZE : end]) == crc:
                        return p
                p += 1
        finally:
            view.release()
    if p is None or p > last:
        return None
    raise DataLossError(
        f"segment file {path} has a bad frame at byte {pos} followed by {size - pos} bytes that cannot be "
        "told from corruption within the scan budget; nothing was cut. Run `mlmd-log verify` to find the "
        "first damage and `mlmd-log repair --to-offset N` to cut the log there (it keeps what it cuts)"
    )


def complete_frame_with_bad_length(path: str, pos: int) -> bool:
    """Whether the frame at ``pos`` would be valid if its length ran exactly to EOF.

    A frame that seems cut short (its length runs past the end of the file) is
    what a reader sees while a writer appends, unless its CRC matches with that
    length: then it is a complete record whose length field was damaged.
    """
    size = os.path.getsize(path)
    if size - pos < FRAME_HEADER_SIZE:
        return False
    length_bytes = struct.pack(">I", size - pos - FRAME_HEADER_SIZE)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        with memoryview(mm) as view:
            return frame_crc(length_bytes, view[pos + FRAME_HEADER_SIZE : size]) == FRAME_HEADER.unpack_from(mm, pos)[1]


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


def save_bytes_from(src_path: str, start: int, dest_path: str) -> int:
    """Copy ``src_path`` from byte ``start`` to its end into a new file ``dest_path``,
    durably (file and directory fsynced), before anything is cut; return the bytes copied."""
    copied = 0
    fd = os.open(dest_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with open(src_path, "rb") as src:
            src.seek(start)
            while chunk := src.read(_COPY_CHUNK):
                write_all(fd, chunk)
                copied += len(chunk)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(os.path.dirname(os.path.abspath(dest_path)))
    return copied


def truncate_durably(path: str, size: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def list_segment_bases(directory: str) -> list[int]:
    """Base offsets of the segment files in ``directory``, ascending."""
    bases = []
    for name in os.listdir(directory):
        match = _SEGMENT_NAME.match(name)
        if match:
            bases.append(int(match.group(1)))
    return sorted(bases)


#: Listings a readonly reader takes at most while waiting for two in a row to agree.
_LISTING_ATTEMPTS = 100


def list_segment_bases_consistently(directory: str) -> list[int]:
    """``list_segment_bases`` as of one instant, for a reader beside a writer that rolls.

    A directory read while files are created in it may miss one created during the read
    and yet return one created after it (ext4 returns entries in hash order): a reader
    would see a segment missing from the middle of the chain and call it damage. An entry
    created before a read starts is always returned, so two reads in a row that agree
    miss nothing older than what they return."""
    bases = list_segment_bases(directory)
    for _ in range(_LISTING_ATTEMPTS):
        again = list_segment_bases(directory)
        if again == bases:
            break
        bases = again
    return bases


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


def writer_lock_held(directory: str) -> bool:
    """Whether a writer holds the log's lock, asked without taking it (a probe could make
    a writer opening at that instant fail): from /proc/locks where there is one."""
    lock_path = os.path.join(directory, LOCK_FILE)
    try:
        st = os.stat(lock_path)
    except FileNotFoundError:
        return False
    try:
        with open("/proc/locks") as locks:
            lines = locks.read().splitlines()
    except OSError:  # (no /proc: a shared lock for an instant, the lock file unchanged)
        fd = os.open(lock_path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    return any(wanted in line.split() for line in lines if "FLOCK" in line)


# ------------------------------------------------------------------------ sparse index


class SparseIndex:
    """Offset -> file position entries, about every ``INDEX_INTERVAL_BYTES`` per segment.

    Lets ``read(start)`` seek near ``start`` instead of scanning its segment from the
    beginning. Bounded: one entry per interval of log bytes (~4k entries per GiB).
    Entries are added while scanning or writing, which always begins at a segment's
    first frame; only frames known to be valid are noted, so an entry always points
    at a frame boundary.
    """

    def __init__(self) -> None:
        self._entries: dict[int, tuple[list[int], list[int]]] = {}
        self._lock = threading.Lock()

    def note(self, base: int, offset: int, pos: int) -> None:
        with self._lock:
            entry = self._entries.get(base)
            if entry is None:
                self._entries[base] = ([offset], [pos])
                return
            offsets, positions = entry
            if offset > offsets[-1] and pos - positions[-1] >= INDEX_INTERVAL_BYTES:
                offsets.append(offset)
                positions.append(pos)

    def lookup(self, base: int, offset: int, first_pos: int) -> tuple[int, int]:
        """The greatest indexed (offset, pos) in segment ``base`` with offset <= ``offset``;
        (base, ``first_pos``: where its frames start) when there is none."""
        with self._lock:
            entry = self._entries.get(base)
            if entry is not None:
                offsets, positions = entry
                i = bisect.bisect_right(offsets, offset) - 1
                if i >= 0:
                    return offsets[i], positions[i]
            return base, first_pos

    def forget(self, base: int) -> None:
        with self._lock:
            self._entries.pop(base, None)


# ---------------------------------------------------------------------------- FileLog

#: The frame a reader read last in a segment: (byte position, payload).
_LastFrame = tuple[int, bytes]
_SAME_SEGMENT = object()  # (from _next_segment: the current segment grew; read on in it)


class FileLog(Log):
    """A durable log in a directory of segment files. See the module docstring.

    ``FileLog(path)`` opens (creating if needed) for writing, takes the writer lock,
    checks the chain of segments and recovers the tail; ``protect_below=N`` says records
    below offset N are known complete (a projection applied them), so a bad frame there
    is DataLossError, never a torn tail to cut. ``FileLog(path, readonly=True)`` needs no
    lock, never modifies files, and tolerates an incomplete last frame (a writer may be
    mid-append) unless ``complete=True`` says no writer is.
    """

    may_drop_old_records = False

    def __init__(
        self,
        path: str | os.PathLike,
        durability: str = "fsync",
        segment_bytes: int = 64 * 2**20,
        readonly: bool = False,
        protect_below: int = 0,
        complete: bool = False,
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
        self.protect_below = protect_below
        self.complete = complete
        self._sync = durability != "none"
        self._index = SparseIndex()
        self._cond = threading.Condition(threading.Lock())
        self._closed = False
        self._lock_fd: int | None = None
        self._fd: int | None = None  # current segment, writer only
        self._bases: list[int] = []  # writer only; replaced, never mutated (readers snapshot)
        self._log_id: bytes | None = None  # the first v2 segment's; None until one is seen
        self._first_v2: int | None = None  # base of the lowest v2 segment seen: no v1 segment may follow it
        self._checked: list[int] = []  # readonly: bases whose header and link were checked
        if readonly:
            if not os.path.isdir(self.path):
                raise NotFoundError(f"log directory {self.path} does not exist")
            self._check_new_segments(list_segment_bases(self.path))
        else:
            self._open_for_writing()

    # ------------------------------------------------------------------ opening

    def _open_for_writing(self) -> None:
        """Create the directory if needed, lock it, check the chain, recover the tail."""
        if not os.path.isdir(self.path):
            os.makedirs(self.path, exist_ok=True)
            if self._sync:
                fsync_dir(os.path.dirname(os.path.abspath(self.path)))
        self._lock_fd = acquire_writer_lock(self.path)
        try:
            bases = self._drop_unwritten_last_segment(list_segment_bases(self.path))
            headers = self._check_chain(bases, 0)
            if self._log_id is None:  # a new log, or a v1 log: its identity starts here
                self._log_id = os.urandom(LOG_ID_BYTES)
            if not bases:
                bases = [0]
                os.close(self._create_segment(0, NO_LINK))
                headers = [SegmentHeader(SEGMENT_VERSION, 0, HEADER_SIZE, self._log_id, NO_LINK)]
            base = bases[-1]
            self._bases = bases
            self._current_base = base
            count, size, last = self._recover_last_segment(base, headers[-1])
            self._fd = os.open(self._segment_path(base), os.O_WRONLY | os.O_APPEND)
            self._segment_size = size
            self._last_frame: tuple[int, bytes | memoryview] | None = last
            self._next_offset = base + count  # next offset to assign
            self._durable_end = self._next_offset  # readers see offsets below this
            self._pending: list[tuple[int, list[bytes]]] = []
            self._leader_active = False
            self._failure: BaseException | None = None
        except BaseException:
            self._release_lock()
            raise

    def _drop_unwritten_last_segment(self, bases: list[int]) -> list[int]:
        """A last segment whose header a crash cut short never held a record: remove it
        (the segment before it is the last again; a lone one is created anew)."""
        if not bases:
            return bases
        path = self._segment_path(bases[-1])
        with open(path, "rb") as f:
            if not is_unwritten_header(f.read(HEADER_SIZE), bases[-1]):
                return bases
        if bases[-1] < self.protect_below:
            raise DataLossError(
                f"segment file {path} is shorter than its header, but it held records: offset {bases[-1]} was "
                f"applied (records up to offset {self.protect_below} were), so this is damage, not a crash while "
                "creating it, and nothing was removed. Run `mlmd-log verify`; `mlmd-log repair` cuts the log"
            )
        logger.warning("removing segment file %s: a crash cut its header short, it holds no record", path)
        os.remove(path)
        fsync_dir(self.path)
        if len(bases) > 1:
            return bases[:-1]
        self._log_id = os.urandom(LOG_ID_BYTES)  # (no segment carried the old one)
        os.close(self._create_segment(bases[0], NO_LINK))
        return bases

    def _check_chain(self, bases: list[int], start: int) -> list[SegmentHeader]:
        """Check segments ``bases[start:]`` against each other and the one before them:
        headers, log id and links (one frame read per segment). Returns their headers;
        a readonly reader's last segment may still be unwritten (then left out)."""
        headers = []
        for i in range(start, len(bases)):
            path = self._segment_path(bases[i])
            header = read_segment_header(path, bases[i])
            if header is None:
                if self.readonly and not self.complete and i == len(bases) - 1:
                    break  # (a writer is creating it)
                raise DataLossError(f"segment file {path} has an incomplete header")
            self._check_identity(header, path)
            if i > 0 and header.link is not None:
                prev_path = self._segment_path(bases[i - 1])
                check_link(header, path, prev_path, link_found(prev_path, header.link))
            headers.append(header)
        return headers

    def _check_identity(self, header: SegmentHeader, path: str) -> None:
        if header.log_id is None:
            if self._first_v2 is not None and header.base > self._first_v2:
                raise DataLossError(
                    f"segment file {path} is a version-1 segment after the version-2 segment file "
                    f"{self._segment_path(self._first_v2)}: a writer creates every new segment as version 2, "
                    "so this one was put there (a segment of another log, or one swapped in)"
                )
            return
        if self._first_v2 is None or header.base < self._first_v2:
            self._first_v2 = header.base
        if self._log_id is None:
            self._log_id = header.log_id
        elif header.log_id != self._log_id:
            raise DataLossError(
                f"segment file {path} belongs to another log: its log id {header.log_id.hex()} (bytes 16-31) "
                f"is not this log's {self._log_id.hex()}"
            )

    def _check_new_segments(self, bases: list[int]) -> list[int]:
        """Readonly: check the chain of the segments that appeared since the last look;
        returns the listing checked (a fresh one when ``bases`` missed a segment)."""
        try:
            self._check_new_segments_of(bases)
        except DataLossError:
            fresh = self._listing_after_damage(bases)
            if fresh is None:
                raise
            bases = fresh
            self._check_new_segments_of(bases)
        return bases

    def _check_new_segments_of(self, bases: list[int]) -> None:
        if not bases or (self._checked and bases[-1] == self._checked[-1]):
            return
        start = bisect.bisect_right(bases, self._checked[-1]) if self._checked else 0
        headers = self._check_chain(bases, start)
        self._checked = bases[: start + len(headers)]

    def _listing_after_damage(self, bases: list[int]) -> list[int] | None:
        """A readonly reader that found a gap or a broken link in listing ``bases``, beside a
        writer: a listing as of one instant, when it differs (the damage may have been the
        listing's, see ``list_segment_bases_consistently``); None when the damage is real."""
        if not self.readonly or self.complete:
            return None
        fresh = list_segment_bases_consistently(self.path)
        return None if fresh == bases else fresh

    def _recover_last_segment(self, base: int, header: SegmentHeader) -> tuple[int, int, _LastFrame | None]:
        """Verify the last segment, cut a torn tail; return (records, valid bytes, last frame)."""
        path = self._segment_path(base)
        with open(path, "rb") as f:
            count, pos, last = 0, header.size, None
            while True:
                try:
                    payload, next_pos = read_frame(f, pos)
                except _EndOfSegment:
                    return count, pos, last
                except _BadFrame as bad:
                    self._cut_torn_tail(path, base + count, bad)
                    return count, pos, last
                self._index.note(base, base + count, pos)
                count, pos, last = count + 1, next_pos, (pos, payload)

    def _cut_torn_tail(self, path: str, offset: int, bad: _BadFrame) -> None:
        """Cut a torn tail at ``bad.pos``, its bytes saved first; DataLossError instead when
        it is corruption: below ``protect_below``, or followed by a valid frame."""
        if offset < self.protect_below:
            raise DataLossError(
                f"corrupt record at offset {offset} in segment file {path} (byte {bad.pos}: {bad.reason}); "
                f"records up to offset {self.protect_below} were applied, so it was complete: this is damage, "
                f"not a torn tail, and nothing was cut. Run `mlmd-log verify`; `mlmd-log repair` cuts the log"
            )
        valid_at = find_valid_frame_after(path, bad.pos)
        if valid_at is not None:
            raise DataLossError(
                f"corrupt record at offset {offset} in segment file {path} "
                f"(byte {bad.pos}: {bad.reason}), followed by a valid frame at byte "
                f"{valid_at}; refusing to truncate data"
            )
        saved = self._evidence_path(path, bad.pos)
        cut = save_bytes_from(path, bad.pos, saved)
        logger.warning(
            "truncating torn tail of %s: %d bytes from byte %d (offset %d: %s), saved to %s",
            path, cut, bad.pos, offset, bad.reason, saved,
        )
        truncate_durably(path, bad.pos)

    def _evidence_path(self, path: str, pos: int) -> str:
        stem = os.path.basename(path)[: -len(SEGMENT_SUFFIX)]
        candidate = os.path.join(self.path, f"torn-{stem}-{pos}.bin")
        n = 1
        while os.path.exists(candidate):
            n += 1
            candidate = os.path.join(self.path, f"torn-{stem}-{pos}-{n}.bin")
        return candidate

    def _create_segment(self, base: int, link: SegmentLink) -> int:
        """Create segment ``base`` with its header; durable (file and dir) under fsync."""
        path = self._segment_path(base)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            write_all(fd, encode_segment_header(base, self._log_id, link))
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
        """Write frames to the current segment; remember the last one for the next link."""
        if chunk:
            write_all(self._fd, b"".join(chunk))
            last = chunk[-1]
            self._last_frame = (self._segment_size + chunk_size - len(last), memoryview(last)[FRAME_HEADER_SIZE:])
            self._segment_size += chunk_size

    def _roll(self, base: int) -> None:
        """Close the full segment (synced first) and start a new one at ``base``, whose
        header links to the full one's size and last record."""
        if self._sync:
            sync_data(self._fd)
        if self._last_frame is None:
            link = SegmentLink(self._segment_size, 0, NO_LINK.last_hash)
        else:
            last_pos, last_payload = self._last_frame
            link = SegmentLink(self._segment_size, last_pos, payload_hash(last_payload))
        new_fd = self._create_segment(base, link)
        os.close(self._fd)
        self._fd = new_fd
        self._segment_size = HEADER_SIZE
        self._last_frame = None
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
            end, damage = self._scan_readonly_end()
            if damage is not None:
                raise damage
            return end
        with self._cond:
            return self._durable_end

    def read(self, start: int, max_records: int | None = None) -> Iterator[tuple[int, bytes]]:
        """Validate now; the returned generator streams frames from the segment files.

        Records before damage in the last segment can still be read; the damage itself
        raises DataLossError when the reader gets there (or at once, if it starts past it).
        """
        if self._closed:
            raise FailedPreconditionError(f"log {self.path} is closed")
        if self.readonly:
            end, damage = self._scan_readonly_end()
            if damage is not None and isinstance(start, int) and start > end:
                raise damage
        else:
            end = self.end_offset()
        check_read_args(start, max_records, end)
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
        opened = self._open_segment(base)
        if opened is None:
            return
        f, header = opened
        offset, pos = self._index.lookup(base, start, header.size)
        last: _LastFrame | None = None
        emitted = 0
        try:
            while (max_records is None or emitted < max_records) and offset < self._visible_end():
                try:
                    payload, next_pos = read_frame(f, pos)
                except _EndOfSegment:
                    following = self._next_segment(f, base, offset, pos, last)
                    if following is _SAME_SEGMENT:
                        continue
                    f.close()
                    f = None
                    if following is None:
                        return
                    f, header = following
                    base, pos, last = offset, header.size, None
                    continue
                except _BadFrame as bad:
                    completed = self._after_bad_frame(f, base, offset, bad)
                    if completed is None:
                        return
                    payload, next_pos = completed
                self._index.note(base, offset, pos)
                last = (pos, payload)
                if offset >= start:
                    yield offset, payload
                    emitted += 1
                offset, pos = offset + 1, next_pos
        finally:
            if f is not None:
                f.close()

    def _open_segment(self, base: int) -> tuple[BinaryIO, SegmentHeader] | None:
        """Open a segment for reading with its checked header (and log id). None: readonly,
        and it is the last segment, whose header a writer has not finished yet."""
        path = self._segment_path(base)
        f = open(path, "rb")
        try:
            data = f.read(HEADER_SIZE)
            if self.readonly and not self.complete and is_unwritten_header(data, base):
                if base == self._segment_bases()[-1]:
                    f.close()
                    return None
                # (a later segment exists now: the writer finished this header after it was read)
                f.seek(0)
                data = f.read(HEADER_SIZE)
            header = parse_segment_header(data, base, path)
            self._check_identity(header, path)
        except BaseException:
            f.close()
            raise
        return f, header

    def _next_segment(self, f: BinaryIO, base: int, offset: int, pos: int, last: _LastFrame | None):
        """At the clean end (byte ``pos``) of segment ``base``: the next segment, opened,
        after checking that it starts at ``offset`` and that its link names what was just
        read; None at the end of the log; ``_SAME_SEGMENT`` when the segment grew meanwhile
        (a readonly reader racing a writer that wrote more before it rolled)."""
        bases = self._segment_bases()
        try:
            return self._next_segment_of(bases, f, base, offset, pos, last)
        except DataLossError:
            fresh = self._listing_after_damage(bases)
            if fresh is None:
                raise
            return self._next_segment_of(fresh, f, base, offset, pos, last)

    def _next_segment_of(self, bases: list[int], f: BinaryIO, base: int, offset: int, pos: int,
                         last: _LastFrame | None):
        later = [b for b in bases if b > base]
        if not later:
            if self.readonly:
                return None
            raise DataLossError(
                f"segment file {self._segment_path(base)} ends at offset {offset}, "
                f"before the log's end offset {self._durable_end}"
            )
        if self.readonly and os.fstat(f.fileno()).st_size > pos:
            return _SAME_SEGMENT
        if later[0] != offset:
            raise DataLossError(
                f"segment file {self._segment_path(base)} ends at offset {offset} (byte {pos}) but the next "
                f"segment file {self._segment_path(later[0])} starts at offset {later[0]}"
            )
        opened = self._open_segment(offset)
        if opened is not None and opened[1].link is not None:
            seen = NO_LINK._replace(size=pos) if last is None else \
                SegmentLink(pos, last[0], payload_hash(last[1]))
            try:
                check_link(opened[1], self._segment_path(offset), self._segment_path(base), seen)
            except BaseException:
                opened[0].close()
                raise
        return opened

    def _after_bad_frame(self, f: BinaryIO, base: int, offset: int, bad: _BadFrame) -> tuple[bytes, int] | None:
        """What a reader does at a bad frame: the frame, when a racing writer has completed
        it meanwhile; None to stop quietly at a writer's append in progress; else DataLossError.

        A readonly reader can see an incomplete frame, then list the directory after
        the writer finished that frame and rolled to a new segment: hence one more look.
        """
        if not (self.readonly and bad.torn):
            raise self._data_loss(base, offset, bad)
        try:
            return read_frame(f, bad.pos)
        except _BadFrame as again:
            bad = again
        if not bad.torn:
            raise self._data_loss(base, offset, bad)
        why = self._why_not_an_append_in_progress(base, bad)
        if why is None:
            return None
        raise self._data_loss(base, offset, bad, why)

    def _why_not_an_append_in_progress(self, base: int, bad: _BadFrame) -> str | None:
        """Why an incomplete frame cannot be a writer's append in progress, or None when it can."""
        if self.complete:
            return ("the log has no writer, so nothing is being appended; a crash leaves this: opening the "
                    "log for writing cuts it (saving the bytes)")
        if self._segment_bases()[-1] != base:
            return "a segment that is not the last cannot be being appended to"
        path = self._segment_path(base)
        if complete_frame_with_bad_length(path, bad.pos):
            return "a complete record whose length field is damaged"
        valid_at = find_valid_frame_after(path, bad.pos)
        if valid_at is not None:
            return f"a valid frame follows at byte {valid_at}"
        return None

    def _data_loss(self, base: int, offset: int, bad: _BadFrame, why: str = "") -> DataLossError:
        return DataLossError(
            f"corrupt record at offset {offset} in segment file {self._segment_path(base)} "
            f"(byte {bad.pos}: {bad.reason}{'; ' + why if why else ''})"
        )

    def _scan_readonly_end(self) -> tuple[int, DataLossError | None]:
        """End offset seen by a readonly reader: the last complete valid frame + 1, with
        the DataLossError met there when that is not the end of the log but damage.

        Checks segments that appeared since the last look (headers, links), then
        scans the last segment from the sparse index's last entry, so repeated calls
        cost about one index interval, not a scan of the whole segment.
        """
        bases = self._check_new_segments(list_segment_bases(self.path))
        if not bases:
            return 0, None
        base = bases[-1]
        opened = self._open_segment(base)
        if opened is None:
            return base, None
        f, header = opened
        offset, pos = self._index.lookup(base, 2**63, header.size)
        with f:
            while True:
                try:
                    _, next_pos = read_frame(f, pos)
                except _EndOfSegment:
                    return offset, None
                except _BadFrame as bad:
                    try:
                        completed = self._after_bad_frame(f, base, offset, bad)
                    except DataLossError as damage:
                        return offset, damage
                    if completed is None:
                        return offset, None
                    next_pos = completed[1]
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


# ------------------------------------------------------------------- verify and repair


@dataclass
class VerifyReport:
    """What ``verify_log`` checked: every frame and link of these segments."""

    records: int
    segments: int
    bytes: int
    writer_active: bool  # a writer held the lock: an incomplete last frame was allowed


def verify_log(path: str | os.PathLike) -> VerifyReport:
    """Check every frame and every segment link of a FileLog, end to end.

    Raises DataLossError (file, byte offset, what) at the first damage. With no writer
    holding the lock the log is taken as complete, so an incomplete last frame (a torn
    tail not yet recovered) is damage too.
    """
    path = os.fspath(path)
    writer_active = os.path.isdir(path) and writer_lock_held(path)
    bases = list_segment_bases(path) if os.path.isdir(path) else []
    with FileLog(path, readonly=True, complete=not writer_active) as log:
        records = sum(1 for _ in log.read(0))
        end = log.end_offset()
    if records < end and not writer_active:
        raise DataLossError(f"log {path}: {records} records read, but it ends at offset {end}")
    size = sum(os.path.getsize(os.path.join(path, segment_name(b))) for b in bases)
    return VerifyReport(records, len(bases), size, writer_active)


@dataclass
class RepairReport:
    """What ``repair_log`` cut: the log now ends at ``end``; the cut bytes are in ``saved_in``."""

    end: int
    saved_in: str | None
    saved: list[tuple[str, int, str, int]] = field(default_factory=list)  # (segment, from byte, copy, bytes)


def repair_log(path: str | os.PathLike, to_offset: int) -> RepairReport:
    """Cut a FileLog to offsets ``[0, to_offset)``, keeping everything cut.

    Copies the cut bytes (the cut segment's tail and every later segment, whole) into
    ``<path>/repaired-<UTC time>/`` and fsyncs them before anything is cut; then removes
    later segments, last first (a crash midway leaves a shorter sound log), and truncates.
    Refuses while a writer holds the lock, and refuses a cut point it cannot reach
    through valid frames (cut lower: ``verify_log`` names the first damage).
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise NotFoundError(f"log directory {path} does not exist")
    if not isinstance(to_offset, int) or to_offset < 0:
        raise InvalidArgumentError(f"--to-offset must be a non-negative offset, got {to_offset!r}")
    lock_fd = acquire_writer_lock(path)
    try:
        bases = list_segment_bases(path)
        if not bases or to_offset < bases[0]:
            raise InvalidArgumentError(f"log {path} holds no offset {to_offset} to cut at (segments start at "
                                       f"{bases[0] if bases else 'none'})")
        i = bisect.bisect_right(bases, to_offset) - 1
        cut_path: str | None = os.path.join(path, segment_name(bases[i]))
        whole = [os.path.join(path, segment_name(b)) for b in bases[i + 1 :]]
        if to_offset == bases[i] and i > 0:  # (that segment goes whole, header and all)
            whole.insert(0, cut_path)
            cut_path = None
        else:
            cut_pos = _position_of_offset(cut_path, bases[i], to_offset, is_last=i == len(bases) - 1)
            if cut_pos == os.path.getsize(cut_path):
                cut_path = None
        report = RepairReport(to_offset, None)
        if not whole and cut_path is None:
            return report
        report.saved_in = _new_repair_folder(path)
        if cut_path is not None:
            copy = os.path.join(report.saved_in, f"{os.path.basename(cut_path)}-from-byte-{cut_pos}.bin")
            report.saved.append((cut_path, cut_pos, copy, save_bytes_from(cut_path, cut_pos, copy)))
        for segment in whole:
            copy = os.path.join(report.saved_in, os.path.basename(segment))
            report.saved.append((segment, 0, copy, save_bytes_from(segment, 0, copy)))
        fsync_dir(path)
        for segment in reversed(whole):
            os.remove(segment)
            fsync_dir(path)
        if cut_path is not None:
            truncate_durably(cut_path, cut_pos)
        return report
    finally:
        release_lock_file(lock_fd)


def _position_of_offset(path: str, base: int, offset: int, is_last: bool) -> int:
    """Byte position in segment ``path`` where record ``offset`` starts (or would be
    appended), reached through valid frames only."""
    with open(path, "rb") as f:
        header = parse_segment_header(f.read(HEADER_SIZE), base, path)
        at, pos = base, header.size
        while at < offset:
            try:
                _, pos = read_frame(f, pos)
            except _EndOfSegment:
                if is_last:
                    raise InvalidArgumentError(f"log ends at offset {at}, below --to-offset {offset}: nothing to cut")
                raise DataLossError(f"segment file {path} ends at offset {at} (byte {pos}), before offset {offset}: "
                                    f"cut at {at} or below")
            except _BadFrame as bad:
                raise DataLossError(f"cannot cut at offset {offset}: the record at offset {at} in segment file "
                                    f"{path} (byte {bad.pos}: {bad.reason}) is damaged; cut at {at} or below")
            at += 1
        return pos


def _new_repair_folder(path: str) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    folder, n = os.path.join(path, f"repaired-{stamp}"), 1
    while os.path.exists(folder):
        n += 1
        folder = os.path.join(path, f"repaired-{stamp}-{n}")
    os.mkdir(folder)
    fsync_dir(path)
    return folder
