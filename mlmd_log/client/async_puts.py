"""Puts that return a Future at once and are appended and resolved in batches."""
from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import deque
from typing import Any, Optional

from mlmd_log import errors
from mlmd_log.client.transport import PutsInSteps, UsualWait, check_own_outcome
from mlmd_log.producer.records import PUT_RPCS, RecordFactory


def _as_status_error(exc: BaseException) -> errors.StatusError:
    """An MLMD error for a future: StatusErrors as they are, anything else as INTERNAL."""
    if isinstance(exc, errors.StatusError):
        return exc
    return errors.InternalError(f"Asynchronous put failed: {type(exc).__name__}: {exc}")


def _ends_batch(item: Any) -> bool:
    """A flush marker (None, None, future, None) or the close marker (None) ends AsyncPuts' batch."""
    return item is None or item[0] is None


ASYNC_MAX_BATCH = 1000  # AsyncPuts: most puts an append holds ...
ASYNC_LINGER_S = 0.02  # ... and how long it waits for more once the first came


class AsyncPuts:
    """High-throughput puts: ``submit`` returns a Future at once; a background thread
    appends queued records in batches and resolves each Future with the put's response
    (or its MLMD error) once applied. ``flush`` waits for everything submitted so far.

    ``transport``: any PutsInSteps (the embedded store, a shared-log writer)."""

    def __init__(self, transport: PutsInSteps, max_batch: int = ASYNC_MAX_BATCH, client_name: str = "mlmd-log-async",
                 linger_s: float = ASYNC_LINGER_S):
        """``linger_s``: how long a batch waits for more puts once its first came, unless it
        fills up (``max_batch``) or a flush asks for it. Puts that trickle in one at a time
        would otherwise each be an append of its own and a wait for outcomes of its own,
        which cost the writer, the broker and the projection far more than the records."""
        from concurrent.futures import Future

        self._future_class = Future
        self._transport = transport
        self._records = RecordFactory(client_name)
        # Submitted puts (rpc, payload, future, record id), flush markers (None, None, future,
        # None) and the close marker (None), for the appending thread; it is woken only when
        # it has something to start a batch with, when a batch is full, or by a marker: puts
        # that come while a batch lingers cost no wake-up each.
        self._submitted: "deque" = deque()
        self._submitted_changed = threading.Condition()
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._closed = False
        self._resolve_queue: "queue.Queue" = queue.Queue()
        self._group_waits = UsualWait(first_look=0.5)  # (a group's outcomes, see _outcomes)
        self._thread = threading.Thread(target=self._run, name="mlmd-log-async-puts", daemon=True)
        self._resolver = threading.Thread(target=self._resolve, name="mlmd-log-async-outcomes", daemon=True)
        self._thread.start()
        self._resolver.start()

    def submit(self, rpc: str, request: Any) -> Any:
        if rpc not in PUT_RPCS:
            raise errors.InvalidArgumentError(f"{rpc} is not a put")
        if self._closed:
            raise errors.FailedPreconditionError("AsyncPuts is closed")
        future = self._future_class()
        payload, record_id = self._records.payload(rpc, request)
        self._enqueue((rpc, payload, future, record_id))
        return future

    def _enqueue(self, item: Any) -> None:
        with self._submitted_changed:
            self._submitted.append(item)
            count = len(self._submitted)
            if count == 1 or count >= self._max_batch or _ends_batch(item):
                self._submitted_changed.notify()

    def flush(self, timeout: Optional[float] = None) -> None:
        """Blocks until every put submitted before the call has its outcome."""
        done = self._future_class()
        self._enqueue((None, None, done, None))
        done.result(timeout)

    def close(self) -> None:
        self.flush()
        self._closed = True
        self._enqueue(None)
        self._thread.join()
        self._resolve_queue.put(None)
        self._resolver.join()

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._process(batch)

    def _next_batch(self) -> Optional[list]:
        """Up to ``max_batch`` submitted items: once the first came, what else comes within
        ``linger_s``, ending early when the batch is full or at a flush; None at close."""
        pending, changed = self._submitted, self._submitted_changed
        with changed:
            while not pending:
                changed.wait()
            deadline = time.monotonic() + self._linger_s
            while True:  # (only the first max_batch items can end this batch)
                ends = next((i for i, item in enumerate(itertools.islice(pending, self._max_batch))
                             if _ends_batch(item)), None)
                if ends is not None or len(pending) >= self._max_batch:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                changed.wait(left)
            size = min(len(pending), self._max_batch)
            if ends is not None:
                size = ends + 1 if pending[ends] is not None else ends  # (a flush joins; close stays)
            if size == 0:  # (the close marker first)
                return None
            return [pending.popleft() for _ in range(size)]

    def _process(self, batch: list) -> None:
        """Appends a batch, then hands it to the resolver thread, so the next batch is
        appended while this one's outcomes are awaited."""
        puts = [item for item in batch if item[0] is not None]  # (rpc, payload, future, record id)
        offsets: Optional[list[int]] = None
        try:
            offsets = self._transport.append([payload for _, payload, _, _ in puts]) if puts else []
        except Exception as exc:  # noqa: BLE001 - every future must end, or flush() would wait forever
            for _, _, future, _ in puts:
                future.set_exception(_as_status_error(exc))
        self._resolve_queue.put((puts if offsets is not None else [], offsets or [],
                                 [future for rpc, _, future, _ in batch if rpc is None]))

    RESOLVE_GROUP = 10_000  # most puts whose outcomes one wait covers

    def _resolve(self) -> None:
        """Resolves appended batches in order. Batches appended while an earlier one was
        awaited are awaited together: one wait and one outcome query for the group, instead
        of one each (the waiting costs the writer more CPU than anything else it does)."""

        while True:
            item = self._resolve_queue.get()
            if item is None:
                return
            group, size, last = [item], len(item[0]), False
            while size < self.RESOLVE_GROUP:
                try:
                    item = self._resolve_queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    last = True
                    break
                group.append(item)
                size += len(item[0])
            self._resolve_group(group)
            if last:
                return

    def _resolve_group(self, group: list) -> None:
        offsets = [offset for _, batch_offsets, _ in group for offset in batch_offsets]
        outcomes: list = []
        if offsets:
            try:
                outcomes = self._outcomes(offsets)
            except Exception as exc:  # noqa: BLE001 - as in _process
                outcomes = [_as_status_error(exc)] * len(offsets)
        results = iter(outcomes)
        where = self._transport.where
        for puts, _, flushes in group:
            for rpc, _, future, record_id in puts:
                outcome = next(results)
                if isinstance(outcome, errors.StatusError):
                    future.set_exception(outcome)
                    continue
                try:
                    check_own_outcome(outcome, record_id, where)
                    future.set_result(self._transport.response(rpc, outcome))
                except Exception as exc:  # noqa: BLE001 - as in _process
                    future.set_exception(_as_status_error(exc))
            for future in flushes:
                future.set_result(None)

    def _outcomes(self, offsets: list[int]) -> list[Any]:
        return self._transport.wait_for_outcomes(offsets, self._group_waits)
