"""The ``Log`` interface: an append-only, totally ordered sequence of opaque records.

Everything above this layer (producer, consumer, projections) talks to a ``Log`` and
never to a concrete backend, so the embedded file log, the in-memory log used for
``fake_database`` and the Kafka log are interchangeable.

Records are opaque ``bytes`` here (serialized envelopes). Offsets are 0-based and
consecutive, like Kafka offsets: the n-th record ever appended has offset n.
"""
from __future__ import annotations

import abc
from typing import Iterator, Sequence

from mlmd_log.errors import DataLossError, InvalidArgumentError, OutOfRangeError

#: The frame length field is 4 bytes, so no record may be larger than this.
MAX_RECORD_BYTES = 2**32 - 1

#: How long a caught-up follower blocks in ``wait_for_records`` at a time (it looks at its
#: stop flag in between).
WAIT_SLICE_S = 0.1


class Log(abc.ABC):
    """An append-only log of byte records with consecutive offsets.

    Implementations must be safe to use from many threads at once: concurrent
    ``append`` calls get distinct offsets and each call's records are contiguous;
    ``read`` may run while other threads append.
    """

    @abc.abstractmethod
    def append(self, records: Sequence[bytes]) -> list[int]:
        """Append ``records`` in order, contiguously, and return their offsets.

        When this returns, the records are as durable as the log's durability
        policy promises (for a ``FileLog`` with ``durability="fsync"``: on disk).
        An empty sequence appends nothing and returns ``[]``.
        """

    @abc.abstractmethod
    def read(self, start: int, max_records: int | None = None) -> Iterator[tuple[int, bytes]]:
        """Yield ``(offset, record)`` from offset ``start`` on, in order.

        Streams: never loads the whole log into memory. Stops at the end of the
        log as it is when the iterator gets there (records appended meanwhile are
        included if they are complete by then), or after ``max_records``.
        ``start == end_offset()`` yields nothing; ``start > end_offset()`` raises
        ``OutOfRangeError`` because a reader ahead of the log means lost data or a bug.
        """

    @abc.abstractmethod
    def end_offset(self) -> int:
        """The offset the next appended record will get (= number of records)."""

    def end_offset_beyond(self, offset: int, ask: bool = True) -> int:
        """An end offset for a reader at ``offset``: what this client last learnt of the
        end when that already lies beyond ``offset`` (a log only grows, so it is a lower
        bound of the end that still tells the reader there is more to read), else
        ``end_offset()``. With ``ask`` False, a log whose end costs a request may return
        ``offset`` instead (a follower that then waits for records learns the end from that
        wait). This default asks ``end_offset()`` always; logs that learn their end while
        reading override it."""
        return self.end_offset()

    @abc.abstractmethod
    def close(self) -> None:
        """Release resources (files, locks). Idempotent."""

    #: Whether ``wait_for_records`` blocks until a record comes; followers of a log that
    #: cannot poll its end themselves.
    waits_for_records = False

    #: Whether old records may be dropped (a trimmed Kafka topic): then a DataLossError
    #: reading one may mean "no longer held". A log that keeps every record raises it only
    #: for damage, which no reader may pass over.
    may_drop_old_records = True

    def wait_for_records(self, offset: int, timeout_s: float) -> bool:
        """Blocks until the log holds a record at ``offset`` (True) or ``timeout_s`` passed
        (False). Only for logs with ``waits_for_records``."""
        raise NotImplementedError(f"{type(self).__name__} cannot wait for records; poll end_offset()")

    def __enter__(self) -> "Log":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def check_records(records: Sequence[bytes]) -> list[bytes]:
    """Validate an ``append`` argument and return it as a list of ``bytes``.

    Checked up front, before any offset is assigned, so a bad argument never
    leaves a half-appended call in the log.
    """
    if isinstance(records, (bytes, bytearray, memoryview, str)):
        raise InvalidArgumentError(
            "append() takes a sequence of records, not a single bytes/str object; "
            "wrap it in a list"
        )
    out: list[bytes] = []
    for i, record in enumerate(records):
        if not isinstance(record, (bytes, bytearray, memoryview)):
            raise InvalidArgumentError(
                f"record {i} is {type(record).__name__}, expected bytes"
            )
        data = bytes(record)
        if len(data) > MAX_RECORD_BYTES:
            raise InvalidArgumentError(
                f"record {i} is {len(data)} bytes, larger than the limit {MAX_RECORD_BYTES}"
            )
        out.append(data)
    return out


def check_read_args(start: int, max_records: int | None, end: int) -> None:
    """Validate ``read`` arguments eagerly, so errors surface at the call, not at iteration."""
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        raise InvalidArgumentError(f"read start must be a non-negative int, got {start!r}")
    if max_records is not None and (
        not isinstance(max_records, int) or isinstance(max_records, bool) or max_records < 0
    ):
        raise InvalidArgumentError(
            f"max_records must be None or a non-negative int, got {max_records!r}"
        )
    if start > end:
        raise OutOfRangeError(
            f"read start offset {start} is past the end of the log (end offset {end})"
        )


def record_at(log: Log, offset: int) -> bytes | None:
    """The record at ``offset``, or None when the log no longer holds it (its older records
    were dropped: the Kafka topic was trimmed). Damage in a log that keeps every record is
    DataLossError."""
    try:
        [(_, record)] = list(log.read(offset, 1))
    except DataLossError:
        if not log.may_drop_old_records:
            raise
        return None
    return record
