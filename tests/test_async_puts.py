"""Asynchronous puts: futures resolve with each put's own outcome, in log order, and flush
waits for all of them."""
from __future__ import annotations

import pytest

import mlmd_log as mlmd
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.proto import metadata_store_service_pb2 as svc
from mlmd_log.service import StoreConfig


def test_futures_carry_ids_and_errors(tmp_path):
    store = mlmd.MetadataStore(StoreConfig.from_directory(str(tmp_path)))
    try:
        type_id = store.put_artifact_type(pb.ArtifactType(name="T"))
        puts = store.async_puts(max_batch=64)
        futures = [puts.submit("PutArtifacts", svc.PutArtifactsRequest(
            artifacts=[pb.Artifact(type_id=type_id, name=f"a{i}")])) for i in range(500)]
        duplicate = puts.submit("PutArtifacts", svc.PutArtifactsRequest(artifacts=[pb.Artifact(type_id=type_id,
                                                                                               name="a7")]))
        puts.flush()
        assert all(f.done() for f in futures + [duplicate])
        assert [f.result().artifact_ids[0] for f in futures] == list(range(1, 501))
        assert isinstance(duplicate.exception(), mlmd.errors.AlreadyExistsError)
        with pytest.raises(mlmd.errors.InvalidArgumentError):
            puts.submit("GetArtifacts", svc.GetArtifactsRequest())
        puts.close()
        assert len(store.get_artifacts()) == 500
    finally:
        store.close()


def test_a_failing_log_ends_every_future_and_flush_returns(tmp_path):
    """A log that fails in an unexpected way (not an MLMD error) still resolves the futures
    with an MLMD error, so flush() does not wait forever."""
    store = mlmd.MetadataStore(StoreConfig.from_directory(str(tmp_path)))
    try:
        type_id = store.put_artifact_type(pb.ArtifactType(name="T"))
        transport = store._transport

        def broken_append(payloads):
            raise OSError("disk on fire")

        transport.append = broken_append
        puts = store.async_puts()
        futures = [puts.submit("PutArtifacts", svc.PutArtifactsRequest(artifacts=[pb.Artifact(type_id=type_id)]))
                   for _ in range(3)]
        puts.flush(timeout=10)
        for future in futures:
            assert isinstance(future.exception(timeout=1), mlmd.errors.InternalError)
            assert "disk on fire" in future.exception().message
    finally:
        store.close()
