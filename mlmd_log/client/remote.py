"""Stores over a projection kept by someone else: read-only, or a writer to a shared log
that waits for its records' outcomes in the projection."""
from __future__ import annotations

import threading
import time
from typing import Any, Iterator, Optional

from mlmd_log import errors
from mlmd_log.client.transport import (UsualWait, check_own_outcome, closed_error, history_connection_of,
                                       response_of, through_lost_connection)
from mlmd_log.producer.records import PUT_RPCS, RecordFactory, as_retry
from mlmd_log.urls import without_password


class ReadOnlyTransport:
    """MLMD's reads over one projection; no log, so no writes."""

    def __init__(self, projection_url: str, create: bool = False):
        from mlmd_log.locations import open_projection
        from mlmd_log.query.service_reads import ReadService

        self.db = open_projection(projection_url, create=create, readonly=not create)
        self.reads = ReadService(self.db.conn, self.db.dialect)
        self._lock = threading.Lock()
        self.where = without_password(projection_url)  # (for error messages)
        self._closed = False

    def call(self, rpc: str, request: Any) -> Any:
        if self._closed:
            raise closed_error()
        if rpc in PUT_RPCS:
            return self._put(rpc, request)
        with self._lock:
            def read() -> Any:
                self._refresh_snapshot()
                return self.reads.call(rpc, request)

            return self._on_projection(read)

    def _on_projection(self, read: Any) -> Any:
        """``read()`` on the projection's connection (under ``_lock``), through a lost one."""
        return through_lost_connection(self.db, read, self.db.reconnect, self.where)

    def _put(self, rpc: str, request: Any) -> Any:
        raise errors.FailedPreconditionError(f"{rpc}: this store is a read-only view of a projection")

    def history_connection(self) -> Any:
        with self._lock:
            if self._closed:
                raise closed_error()
            return history_connection_of(self.db, self.where)

    def _refresh_snapshot(self) -> None:
        """Ends the read transaction so the next statement sees the projector's commits (a
        connection in autocommit mode, as MySQL's here, has none: no round trip for it)."""
        autocommit = getattr(self.db.conn, "get_autocommit", None)
        if autocommit is not None and autocommit():
            return
        try:
            self.db.conn.commit()
        except Exception:  # sqlite3 outside a transaction, or nothing to end
            pass

    def close(self) -> None:
        self._closed = True
        self.db.close()


class RemoteTransport(ReadOnlyTransport):
    """A writer in one of many processes: puts go to a shared log (Kafka), a projector
    service applies them, and the writer waits for its record's outcome in the projection.

    Consistency: a synchronous put returns only after the projection has applied it, so
    the writer reads its own writes; other writers' puts are visible once applied.
    """

    def __init__(self, log_url: str, projection_url: str, client_name: str = "mlmd-log",
                 wait_timeout_s: float = 60.0, log_timeout_s: float = 30.0, block_on_unavailable_s: float = 0.0):
        from mlmd_log.locations import open_log

        self._records = RecordFactory(client_name)
        self.block_on_unavailable_s = block_on_unavailable_s
        self.log = self._retrying(lambda _: open_log(log_url, timeout_s=log_timeout_s))
        super().__init__(projection_url, create=True)
        self.wait_timeout_s = wait_timeout_s
        self._put_waits = UsualWait(first_look=0.6)  # (synchronous puts; AsyncPuts keeps its own)

    def _put(self, rpc: str, request: Any) -> Any:
        payload, record_id = self._records.payload(rpc, request)
        [offset] = self.append([payload])
        [outcome] = self.wait_for_outcomes([offset], self._put_waits)
        check_own_outcome(outcome, record_id, self.where)
        return response_of(rpc, outcome)

    def append(self, payloads: list[bytes]) -> list[int]:
        """Appends, retrying an unavailable log for up to ``block_on_unavailable_s``. A retry of
        a record that did reach the log is recognised by its record id and applied once: the
        records are sent again marked as retries (LogRecord.attempt), which the projector
        looks up."""
        if self._closed:
            raise closed_error()
        return self._retrying(lambda again: self.log.append([as_retry(p) for p in payloads] if again else payloads))

    def _retrying(self, action: Any) -> Any:
        """``action(again)``, called again (``again`` True) while the log is unavailable, for
        up to ``block_on_unavailable_s``."""
        deadline = time.monotonic() + self.block_on_unavailable_s
        pause = 0.2
        again = False
        while True:
            try:
                return action(again)
            except errors.UnavailableError:
                if time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 5.0)
                again = True

    response = staticmethod(response_of)

    def applied_offset(self) -> int:
        with self._lock:
            return self._on_projection(self._read_applied_offset)

    def _read_applied_offset(self) -> int:
        self._refresh_snapshot()
        from mlmd_log.projections.bookkeeping import next_offset

        return next_offset(self.db)

    def wait_for_outcomes(self, offsets: list[int], usual: Optional["UsualWait"] = None) -> list[Any]:
        """Outcomes of several records, with one wait for all of them and one query per 100
        runs of consecutive offsets (see _offset_ranges).

        The projection is asked first after ``usual.first_look_s()`` (at once without one),
        then again as ``pause_before_next_look`` says: prompt on short waits, few queries
        on long ones. A projection that cannot be reached is asked again every 0.2 s until
        ``wait_timeout_s``: the records are durable, and a database restart loses none."""
        from mlmd_log.projections.bookkeeping import read_outcomes

        last = max(offsets)
        started = time.monotonic()
        if usual is not None:
            time.sleep(usual.first_look_s())

        def read_them() -> dict[int, Any]:
            return {o.offset: o for where, params in _offset_ranges(offsets)
                    for o in read_outcomes(self.db, where, params)}

        first: Optional[tuple[float, int]] = None  # (when, applied offset) at the first look
        while True:
            try:
                applied, unreachable = self.applied_offset(), None
                if applied > last:
                    with self._lock:
                        found = self._on_projection(read_them)
                    break
            except errors.UnavailableError as exc:  # (the put is durable: wait for the projection to return)
                applied, unreachable = None, exc
            now = time.monotonic()
            waited = now - started
            if waited > self.wait_timeout_s:
                cause = ("no projector applied it" if unreachable is None else
                         f"the projection could not be read ({unreachable.message})")
                raise errors.DeadlineExceededError(
                    f"The put is durable in the log at offset {last} (do not put it again: it is or will be "
                    f"applied), but {cause} within {self.wait_timeout_s:.0f}s: is `mlmd-log project` running "
                    "for this log?")
            if applied is None:
                time.sleep(LONGEST_PAUSE_S)
                continue
            # (the pace since the first look: the projector commits in bursts, so a short
            # span between two looks would tell nothing or far too much)
            pace = None if first is None else (now - first[0], applied - first[1])
            time.sleep(pause_before_next_look(waited, last + 1 - applied, pace))
            if first is None:
                first = (now, applied)
        if usual is not None:
            usual.record(time.monotonic() - started)
        missing = [o for o in offsets if o not in found]
        if missing:
            raise errors.InternalError(f"The projection applied offset {missing[0]} but holds no outcome for it")
        return [found[o] for o in offsets]

    def close(self) -> None:
        self.log.close()
        super().close()


LONGEST_PAUSE_S = 0.2  # pause_before_next_look: the most a writer sleeps on the projector's pace


def pause_before_next_look(waited_s: float, records_left: int,
                           pace: Optional[tuple[float, int]] = None) -> float:
    """How long a writer waiting for outcomes sleeps before it asks the projection again.

    A tenth of the time waited so far (0.5-20 ms). When the projector moved since the
    writer's first look (``pace``: seconds since it, records applied in them), longer:
    most of the time it needs at that pace for the ``records_left`` still ahead, up to
    LONGEST_PAUSE_S. A group of a thousand async puts behind a busy projector is then
    looked for a few times, not fifty times a second; a look costs the writer and the
    database a query each."""
    pause = min(0.02, max(0.0005, 0.1 * waited_s))
    if pace is not None and pace[1] > 0:
        seconds, moved = pace
        pause = max(pause, min(0.8 * records_left * seconds / moved, LONGEST_PAUSE_S))
    return pause


def _offset_ranges(offsets: list[int], per_query: int = 100) -> Iterator[tuple[str, list[int]]]:
    """WHERE clauses (with their parameters) that select exactly ``offsets``: one range per run
    of consecutive offsets (a batch the broker appended), up to ``per_query`` runs a query.
    One range from the lowest to the highest would also return the records other writers
    appended in between, and each of them would be sent and parsed here for nothing."""
    runs: list[list[int]] = []
    for offset in sorted(set(offsets)):
        if runs and offset == runs[-1][1] + 1:
            runs[-1][1] = offset
        else:
            runs.append([offset, offset])
    for start in range(0, len(runs), per_query):
        chunk = runs[start:start + per_query]
        yield (" OR ".join("`log_offset` BETWEEN ? AND ?" for _ in chunk),
               [bound for run in chunk for bound in run])
