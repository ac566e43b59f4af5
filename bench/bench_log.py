"""Append throughput of FileLog under each durability policy.

Prints appends/s (one record of ``--size`` bytes per append call) for:
fsync with one thread, fsync with 16 threads (group commit), and none.
Each case runs for about ``--seconds`` seconds in a fresh temporary directory
(pass ``--dir`` to benchmark a particular disk). A benchmark prints numbers; it
asserts nothing.

    python bench/bench_log.py [--seconds 3] [--size 200] [--dir /path/on/disk]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mlmd_log.producer import FileLog  # noqa: E402


def run_case(directory: str, durability: str, threads: int, seconds: float, size: int) -> tuple[int, float]:
    """Append from ``threads`` threads until ``seconds`` pass; return (appends, elapsed)."""
    payload = os.urandom(size)
    counts = [0] * threads
    deadline = time.perf_counter() + seconds
    with FileLog(directory, durability=durability) as log:

        def worker(slot: int) -> None:
            n = 0
            while time.perf_counter() < deadline:
                log.append([payload])
                n += 1
            counts[slot] = n

        start = time.perf_counter()
        workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - start
    return sum(counts), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each case")
    parser.add_argument("--size", type=int, default=200, help="record size in bytes")
    parser.add_argument("--dir", default=None, help="parent directory for the test logs")
    args = parser.parse_args()
    cases = [("fsync", 1), ("fsync", 16), ("none", 1)]
    print(f"FileLog append throughput, {args.size}-byte records, {args.seconds:g} s per case")
    with tempfile.TemporaryDirectory(dir=args.dir) as parent:
        for i, (durability, threads) in enumerate(cases):
            appends, elapsed = run_case(
                os.path.join(parent, f"case{i}"), durability, threads, args.seconds, args.size
            )
            print(f"  durability={durability:<5} threads={threads:>2}: "
                  f"{appends / elapsed:>10,.0f} appends/s  ({appends} in {elapsed:.2f} s)")


if __name__ == "__main__":
    main()
