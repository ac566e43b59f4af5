"""An archive of a log's old records, and the archive and the log read as one.

A Kafka topic keeps its whole history (KafkaLog creates it without retention), because
a projection is rebuilt by replaying the log from offset 0. To bound the broker's disks,
copy the old records to an archive, a FileLog directory with the same records at the
same offsets, and then let the topic drop what the archive holds:

    mlmd-log archive --log kafka://HOST:PORT/TOPIC --to /archive/TOPIC --trim

Run it again later and it copies only what came since. A reader that must start below
what the topic still holds (a new projection, a replay) names both, and reads the
archive up to its end and the topic after it:

    mlmd-log project --log 'kafka://HOST:PORT/TOPIC?archive=/archive/TOPIC' --into ...

A projector that is already past the trimmed offsets needs no archive.
"""
from __future__ import annotations

from typing import Callable, Iterator, Optional, Sequence

from mlmd_log.errors import DataLossError, FailedPreconditionError, InternalError, InvalidArgumentError
from mlmd_log.producer.base import Log, check_read_args, record_at

ARCHIVE_BATCH = 10_000  # records copied (and fsynced) per append


def check_continues(archive: Log, log: Log, where: str) -> tuple[int, int]:
    """FailedPreconditionError unless ``archive`` is a prefix of ``log``: it is no longer than
    the log, and its last record is the log's record at that offset (when the log still
    holds it; a trimmed log cannot tell, and the archive made before the trim stands).
    Returns the two ends, the archive's and the log's."""
    end, log_end = archive.end_offset(), log.end_offset()
    if end == 0:
        return end, log_end
    if end > log_end:
        raise FailedPreconditionError(
            f"The archive {where} holds {end} records, the log only {log_end}: it is not an archive of this "
            "log (or the topic was deleted and created again)")
    kept = record_at(log, end - 1)
    if kept is not None and kept != record_at(archive, end - 1):
        raise FailedPreconditionError(
            f"The archive {where} differs from the log at offset {end - 1}: it is an archive of another log")
    return end, log_end


def range_to_copy(archive: Log, log: Log, where: str, until: Optional[int] = None) -> tuple[int, int]:
    """The offsets ``[first, end)`` of ``log`` that ``archive`` lacks (``check_continues``),
    up to ``until`` (default: the log's end now). Shared by every kind of archive."""
    start, end = check_continues(archive, log, where)
    if until is not None:
        if not 0 <= until <= end:
            raise InvalidArgumentError(f"--until {until} is not an offset of the log (it ends at {end})")
        end = max(until, start)
    return start, end


def archive_records(log: Log, archive: Log, where: str, until: Optional[int] = None,
                    progress: Optional[Callable[[int, int], None]] = None) -> tuple[int, int]:
    """Copies the log's records from the archive's end up to ``until`` (default: the log's
    end now) into the archive, ARCHIVE_BATCH at a time, each batch durable before the next
    is read. Returns the offsets copied, ``(first, end)``; ``first == end`` when there was
    nothing to copy."""
    start, end = range_to_copy(archive, log, where, until)
    offset = start
    while offset < end:
        try:
            payloads = [payload for _, payload in log.read(offset, min(ARCHIVE_BATCH, end - offset))]
        except DataLossError as exc:
            raise DataLossError(
                f"The log no longer holds offset {offset}, where the archive {where} ends: records "
                f"{offset} and on were dropped before they were archived ({exc})") from None
        offsets = archive.append(payloads)
        if offsets[0] != offset or len(offsets) != len(payloads):
            raise InternalError(f"The archive {where} put offset {offset} at {offsets[0]}")
        offset += len(payloads)
        if progress is not None:
            progress(offset, end)
    return start, end


class ArchivedLog(Log):
    """The archive's records, then the live log's from where the archive ends. Appends go to
    the live log. The archive may grow meanwhile (``mlmd-log archive`` runs beside readers),
    so where it ends is asked again at each read."""

    def __init__(self, archive: Log, live: Log, where: str):
        self.archive, self.live, self.where = archive, live, where
        check_continues(archive, live, where)
        self.waits_for_records = live.waits_for_records

    def append(self, records: Sequence[bytes]) -> list[int]:
        return self.live.append(records)

    def end_offset(self) -> int:
        return self.live.end_offset()

    def end_offset_beyond(self, offset: int, ask: bool = True) -> int:
        split = self.archive.end_offset()
        if offset < split:  # (more to read at least up to the split: no request needed)
            return max(split, self.live.end_offset_beyond(split, ask=False))
        return self.live.end_offset_beyond(offset, ask)

    def read(self, start: int, max_records: int | None = None) -> Iterator[tuple[int, bytes]]:
        split = self.archive.end_offset()
        if isinstance(start, int) and start >= split:
            return self.live.read(start, max_records)
        check_read_args(start, max_records, self.end_offset_beyond(start))
        return self._read_across(start, max_records, split)

    def _read_across(self, start: int, max_records: int | None, split: int) -> Iterator[tuple[int, bytes]]:
        wanted = split - start if max_records is None else min(max_records, split - start)
        yield from self.archive.read(start, wanted)
        if max_records is None or max_records > wanted:
            try:
                yield from self.live.read(split, None if max_records is None else max_records - wanted)
            except DataLossError as exc:
                raise DataLossError(
                    f"The archive {self.where} ends at offset {split}, and the log no longer holds that offset: "
                    f"the records from there on were dropped before they were archived ({exc.message})") from None

    def wait_for_records(self, offset: int, timeout_s: float) -> bool:
        if offset < self.archive.end_offset():
            return True
        return self.live.wait_for_records(offset, timeout_s)

    def close(self) -> None:
        try:
            self.live.close()
        finally:
            self.archive.close()
