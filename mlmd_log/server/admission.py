"""Bounding the memory that in-flight requests hold.

A large put is held several times over while it is served (the parsed request, the log
record, its payload, the applied row): one 60 MiB put costs the server about 500 MiB.
Requests of at least ``large_bytes`` therefore draw their size from a byte budget before
they are parsed; one that does not fit waits, in arrival order, up to a bounded time and
is then refused with RESOURCE_EXHAUSTED. A waiting request holds its received bytes, so
the bytes that may wait are bounded too (``queue_bytes``): beyond, a large request is
refused at once. Smaller requests never wait, so reads and small puts go on while large
ones queue. The server then holds at most about ``budget_bytes`` times the cost of a
put per byte (6-8 for a put of one big property) plus ``queue_bytes``.

Requests reach the handler unparsed (``WireRequest``): gRPC parses in its one polling
thread, where nothing may wait, and the received bytes can be dropped as soon as they
are parsed instead of living as long as the call.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Optional

from google.protobuf.message import DecodeError

from mlmd_log import errors

MIB = 1024 * 1024


class WireRequest:
    """A request as it came off the wire; ``parse`` it once it is admitted."""

    __slots__ = ("_data", "size")

    def __init__(self, data: bytes):
        self._data: Optional[bytes] = data
        self.size = len(data)

    def parse(self, message_class: Any) -> Any:
        """The request message; the bytes are released (each is parsed once)."""
        data, self._data = self._data, None
        if data is None:
            raise errors.InternalError("a request's bytes were parsed twice")
        try:
            return message_class.FromString(data)
        except DecodeError as exc:
            raise errors.InvalidArgumentError(
                f"Could not parse proto: the request is not a valid {message_class.DESCRIPTOR.name} ({exc})") from None


class Admission:
    """Budget held by one admitted request; ``release`` gives it back (once)."""

    __slots__ = ("_budget", "size")

    def __init__(self, budget: Optional["RequestBudget"], size: int):
        self._budget, self.size = budget, size

    def release(self) -> None:
        budget, self._budget = self._budget, None
        if budget is not None:
            budget._give_back(self.size)


class RequestBudget:
    """A byte semaphore for large requests, first come first served.

    A request larger than the whole budget is admitted when it is alone, so every
    request the message-size limit lets through can be served."""

    def __init__(self, budget_bytes: int, large_bytes: int, queue_bytes: int):
        if budget_bytes <= 0 or large_bytes <= 0 or queue_bytes < 0:
            raise errors.InvalidArgumentError("the large-request budget and threshold must be positive, "
                                              "the queue not negative")
        self.budget_bytes = budget_bytes
        self.large_bytes = large_bytes
        self.queue_bytes = queue_bytes
        self._changed = threading.Condition()
        self._held = 0
        self._holders = 0
        self._waiting: deque[object] = deque()
        self._waiting_bytes = 0
        self._closed = False

    def admit(self, size: int, wait_s: float) -> Optional[Admission]:
        """An admission for a request of ``size`` bytes, or None if it did not fit within
        ``wait_s``; ResourceExhaustedError at once when it would have to wait and the
        queue's bytes are taken."""
        if size < self.large_bytes:
            return Admission(None, size)
        turn = object()
        deadline = time.monotonic() + max(0.0, wait_s)
        with self._changed:
            if not (not self._waiting and self._fits(size)) and self._waiting_bytes + size > self.queue_bytes:
                raise errors.ResourceExhaustedError(
                    f"A {size / MIB:.1f} MiB request cannot wait for the server's large-request budget: the queue "
                    f"is full ({self.describe_locked()}); nothing was written, retry later")
            self._waiting.append(turn)
            self._waiting_bytes += size
            try:
                while not (self._waiting[0] is turn and self._fits(size)):
                    if self._closed:
                        raise errors.UnavailableError("mlmd-log server is shutting down")
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    self._changed.wait(left)
                self._held += size
                self._holders += 1
                return Admission(self, size)
            finally:
                self._waiting.remove(turn)
                self._waiting_bytes -= size
                self._changed.notify_all()  # (the next in line may fit now)

    def close(self) -> None:
        """Sends away every request still waiting (the server is shutting down)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _fits(self, size: int) -> bool:
        return self._holders == 0 or self._held + size <= self.budget_bytes

    def _give_back(self, size: int) -> None:
        with self._changed:
            self._held -= size
            self._holders -= 1
            self._changed.notify_all()

    def describe(self) -> str:
        """What the budget holds now, for RESOURCE_EXHAUSTED messages."""
        with self._changed:
            return self.describe_locked()

    def describe_locked(self) -> str:
        return (f"{self._held / MIB:.1f} of {self.budget_bytes / MIB:g} MiB held by {self._holders} request(s); "
                f"{self._waiting_bytes / MIB:.1f} of {self.queue_bytes / MIB:g} MiB waiting in "
                f"{len(self._waiting)}")
