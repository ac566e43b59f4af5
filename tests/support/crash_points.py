"""Named places where a test process kills itself with SIGKILL, for the crash harness.

A child process started with ``MLMD_CRASH_AT=POINT:N`` dies at the N-th time it reaches
POINT, so a crash lands exactly where the harness wants it rather than wherever a timer
happens to fire. The points wrap library functions from outside (nothing in the library
knows about them):

- ``append``: a log leader is about to write a group of frames (nothing of it written);
- ``torn-write``: half of a group's bytes written, the rest not (a torn tail);
- ``fsync``: a group written, not yet synced (and so not acknowledged);
- ``apply``: a batch's rows written to the projection, its checkpoint and commit not yet;
- ``commit``: just before the projection's COMMIT;
- ``after-commit``: just after it, before anyone learnt of it.
"""
from __future__ import annotations

import os
import signal
from typing import Any, Callable

POINTS = ("append", "torn-write", "fsync", "apply", "commit", "after-commit")
ENV = "MLMD_CRASH_AT"


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class _Countdown:
    """Dies on the ``n``-th ``hit``."""

    def __init__(self, n: int):
        self.left = n

    def hit(self) -> bool:
        self.left -= 1
        return self.left <= 0


def _wrap(owner: Any, name: str, countdown: _Countdown, after: bool = False) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not after and countdown.hit():
            _die()
        result = original(*args, **kwargs)
        if after and countdown.hit():
            _die()
        return result

    setattr(owner, name, wrapped)


def _torn_write(file_log: Any, countdown: _Countdown) -> None:
    original = file_log.write_all

    def write_half_then_die(fd: int, data: bytes) -> None:
        if countdown.hit() and len(data) > 1:
            original(fd, data[: len(data) // 2])
            _die()
        original(fd, data)

    file_log.write_all = write_half_then_die


def install_from_env() -> str | None:
    """Installs the crash point ``MLMD_CRASH_AT`` names, if any; returns its name."""
    spec = os.environ.get(ENV)
    if not spec:
        return None
    point, _, count = spec.partition(":")
    if point not in POINTS:
        raise SystemExit(f"{ENV}: unknown point {point!r}; one of {', '.join(POINTS)}")
    countdown = _Countdown(int(count or 1))
    from mlmd_log.producer import file_log
    from mlmd_log.projections import backend
    from mlmd_log.projections.projector import Projector

    if point == "append":
        _wrap(file_log.FileLog, "_write_batch", countdown)
    elif point == "torn-write":
        _torn_write(file_log, countdown)
    elif point == "fsync":
        _wrap(file_log, "sync_data", countdown)
    elif point == "apply":
        _wrap(Projector, "_apply_records", countdown, after=True)
    elif point == "commit":
        _wrap(backend.SqliteBackend, "commit", countdown)
    else:
        _wrap(backend.SqliteBackend, "commit", countdown, after=True)
    return point
