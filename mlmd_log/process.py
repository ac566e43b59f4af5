"""Settings for a process whose whole job is one long-running command (the projector, its
writer and stager children, the server): garbage collection and stop signals."""
from __future__ import annotations

import gc
import signal
import threading

# A projector's process makes millions of short-lived containers a minute beside large
# caches; at Python's default thresholds the collector ran every 700 allocations and took
# about 8 us a record (a collection callback over 60k decided steps), for a program that
# makes almost no reference cycles.
GC_THRESHOLDS = (50_000, 20, 100)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def tune_gc() -> None:
    """For a process whose job is projecting (``mlmd-log project``, its writer processes):
    what exists now (modules, descriptors) leaves the collector's sight, and the collector
    runs less often."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def stop_on_signals(stop: threading.Event) -> dict:
    """SIGTERM and SIGINT set ``stop`` (a long-running command ends between batches).
    Returns the previous handlers, for callers that restore them."""
    return {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}


def leave_stops_to_parent() -> None:
    """In a child process: SIGTERM and SIGINT (a terminal's Ctrl-C reaches the whole process
    group) are ignored; the parent stops the child between batches."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
