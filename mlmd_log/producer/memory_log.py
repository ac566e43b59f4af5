"""``MemoryLog``: a ``Log`` kept in a Python list, for tests and ``fake_database``.

Nothing is durable; it exists so the rest of the system can run without a disk
and so ``Log`` semantics can be pinned down by the same tests as ``FileLog``.
"""
from __future__ import annotations

import threading
from typing import Iterator, Sequence

from mlmd_log.errors import FailedPreconditionError
from mlmd_log.producer.base import Log, check_read_args, check_records


class MemoryLog(Log):
    """A thread-safe in-memory log. Offsets are list indexes."""

    def __init__(self) -> None:
        self._records: list[bytes] = []
        self._lock = threading.Lock()
        self._closed = False

    def append(self, records: Sequence[bytes]) -> list[int]:
        """Append under one lock so each call's records are contiguous."""
        payloads = check_records(records)
        with self._lock:
            self._check_open()
            first = len(self._records)
            self._records.extend(payloads)
            return list(range(first, first + len(payloads)))

    def read(self, start: int, max_records: int | None = None) -> Iterator[tuple[int, bytes]]:
        """Validate now, then stream one record at a time (no copy of the list)."""
        with self._lock:
            self._check_open()
            check_read_args(start, max_records, len(self._records))
        return self._iter_from(start, max_records)

    def _iter_from(self, start: int, max_records: int | None) -> Iterator[tuple[int, bytes]]:
        offset = start
        while max_records is None or offset - start < max_records:
            with self._lock:
                if offset >= len(self._records):
                    return
                record = self._records[offset]
            yield offset, record
            offset += 1

    def end_offset(self) -> int:
        with self._lock:
            return len(self._records)

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise FailedPreconditionError("MemoryLog is closed")
