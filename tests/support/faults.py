"""Fault injection for tests: a method that fails on its n-th call."""
from __future__ import annotations

from typing import Any, Callable


def failing_on_call(real: Callable[..., Any], n: int, exc: BaseException) -> Callable[..., Any]:
    """``real`` (a method), raising ``exc`` on its ``n``-th call instead; the first argument
    of every call (a table name, say) is kept in the wrapper's ``calls``."""
    calls: list = []

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(args[0] if args else None)
        if len(calls) == n:
            raise exc
        return real(self, *args, **kwargs)

    wrapper.calls = calls  # type: ignore[attr-defined]
    return wrapper


def stage_ahead(projection: Any, log: Any, batches: int = 2, size: int = 4) -> None:
    """Applies ``batches`` batches of ``size`` records to a staged projection's staging file
    only, as a crash right after the staging commit leaves it."""
    for _ in range(batches):
        start = projection.projector.next_offset
        projection.projector.apply_batch(list(log.read(start, size)))
