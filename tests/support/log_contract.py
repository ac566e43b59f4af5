"""Checks every Log implementation must pass, shared by their test modules."""
from __future__ import annotations

import threading


def check_concurrent_appends(log, writers: int, calls: int) -> None:
    """``writers`` threads each make ``calls`` appends of 1-3 records at once: every call
    gets contiguous offsets, together they cover 0..n-1 once, and each offset holds the
    record its call sent there."""
    results: list[tuple[list[int], list[bytes]]] = []
    guard = threading.Lock()

    def writer(w: int) -> None:
        for i in range(calls):
            batch = [f"w{w}-c{i}-r{j}".encode() for j in range(1 + (w + i) % 3)]
            offsets = log.append(batch)
            with guard:
                results.append((offsets, batch))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = dict(log.read(0))
    all_offsets = sorted(o for offsets, _ in results for o in offsets)
    assert all_offsets == list(range(len(all_offsets)))
    assert len(stored) == len(all_offsets)
    for offsets, batch in results:
        assert offsets == list(range(offsets[0], offsets[0] + len(batch)))
        assert [stored[o] for o in offsets] == batch
