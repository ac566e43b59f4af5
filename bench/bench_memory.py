"""Memory stays bounded while a store grows: RSS of an embedded store under N puts.

The projection's SQLite page cache is capped (32 MiB), the type registry is the only
in-memory table, and the log keeps a sparse index; so RSS should rise until the page cache
is full and then stay flat while the database keeps growing.

    python bench/bench_memory.py --puts 240000 --every 20000
"""
from __future__ import annotations

import argparse
import os
import tempfile
import tracemalloc

import mlmd_log as mlmd
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.client import StoreConfig


def rss_mib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024
    return -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--puts", type=int, default=240_000)
    parser.add_argument("--every", type=int, default=20_000)
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="mlmd-bench-memory-")
    store = mlmd.MetadataStore(StoreConfig.from_directory(data_dir))
    type_id = store.put_artifact_type(pb.ArtifactType(name="T", properties={"a": pb.INT}))
    tracemalloc.start()
    print("| puts | RSS MiB | Python heap KiB | SQLite file MiB |\n|---|---|---|---|")
    for i in range(args.puts + 1):
        if i % args.every == 0:
            heap, _ = tracemalloc.get_traced_memory()
            size = os.path.getsize(os.path.join(data_dir, "mlmd.sqlite")) // 2**20
            print(f"| {i:,} | {rss_mib()} | {heap // 1024} | {size} |", flush=True)
        artifact = pb.Artifact(type_id=type_id, uri=f"/u/{i}", name=f"n{i}")
        artifact.properties["a"].int_value = i
        store.put_artifacts([artifact])
        if i % 3 == 0:
            store.get_artifacts_by_id([i + 1])
    store.close()


if __name__ == "__main__":
    main()
