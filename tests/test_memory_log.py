"""MemoryLog: the Log contract without a disk."""
from __future__ import annotations

import pytest

from mlmd_log.errors import FailedPreconditionError, InvalidArgumentError, OutOfRangeError
from mlmd_log.producer import Log, MemoryLog

from log_contract import check_concurrent_appends


def test_is_a_log():
    assert isinstance(MemoryLog(), Log)


def test_round_trip_with_consecutive_offsets():
    log = MemoryLog()
    assert log.append([b"a", b"b"]) == [0, 1]
    assert log.append([b"c"]) == [2]
    assert log.end_offset() == 3
    assert list(log.read(0)) == [(0, b"a"), (1, b"b"), (2, b"c")]
    assert list(log.read(1, max_records=1)) == [(1, b"b")]
    assert list(log.read(3)) == []


def test_empty_append_appends_nothing():
    log = MemoryLog()
    assert log.append([]) == []
    assert log.end_offset() == 0


@pytest.mark.parametrize("bad", [b"not-a-list", "text", [b"ok", "str"], [b"ok", 3]])
def test_append_rejects_non_bytes(bad):
    log = MemoryLog()
    with pytest.raises(InvalidArgumentError):
        log.append(bad)
    assert log.end_offset() == 0


def test_read_arguments_are_checked_at_the_call():
    log = MemoryLog()
    log.append([b"a"])
    with pytest.raises(OutOfRangeError, match="past the end"):
        log.read(2)
    with pytest.raises(InvalidArgumentError):
        log.read(-1)
    with pytest.raises(InvalidArgumentError):
        log.read(0, max_records=-1)


def test_reader_sees_records_appended_while_iterating():
    log = MemoryLog()
    log.append([b"a"])
    it = log.read(0)
    assert next(it) == (0, b"a")
    log.append([b"b"])
    assert list(it) == [(1, b"b")]


def test_concurrent_appends_are_contiguous_per_call():
    check_concurrent_appends(MemoryLog(), writers=8, calls=100)


def test_closed_log_refuses_use():
    with MemoryLog() as log:
        log.append([b"a"])
    with pytest.raises(FailedPreconditionError):
        log.append([b"b"])
    with pytest.raises(FailedPreconditionError):
        log.read(0)
