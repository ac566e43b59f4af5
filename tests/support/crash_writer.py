"""A writer process for the crash test: puts artifacts from several threads and prints
each acknowledged put ("ACK <name> <id>") only after the put returned."""
from __future__ import annotations

import sys
import threading

from crash_points import install_from_env
from mlmd_log import MetadataStore
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.client import StoreConfig


def main(data_dir: str, prefix: str, threads: int) -> None:
    store = MetadataStore(StoreConfig.from_directory(data_dir))
    type_id = store.put_artifact_type(pb.ArtifactType(name="Crash", properties={"n": pb.INT}))
    out_lock = threading.Lock()

    def work(worker: int) -> None:
        i = 0
        while True:
            name = f"{prefix}-{worker}-{i}"
            artifact = pb.Artifact(type_id=type_id, name=name, uri=f"/data/{name}")
            artifact.properties["n"].int_value = i
            [artifact_id] = store.put_artifacts([artifact])
            with out_lock:
                sys.stdout.write(f"ACK {name} {artifact_id}\n")
                sys.stdout.flush()
            i += 1

    for w in range(threads):
        threading.Thread(target=work, args=(w,), daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    install_from_env()
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
