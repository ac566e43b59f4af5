"""How a MetadataStore reaches its data: the configs, the transports behind them, and
asynchronous puts. ``open_transport`` picks the transport a config asks for."""
from __future__ import annotations

from typing import Any

from mlmd_log.client.async_puts import ASYNC_LINGER_S, ASYNC_MAX_BATCH, AsyncPuts
from mlmd_log.client.config import DEFAULT_DATA_DIR, ProjectionConfig, SharedLogConfig, StoreConfig
from mlmd_log.client.embedded import EmbeddedTransport
from mlmd_log.client.grpc_client import GrpcTransport
from mlmd_log.client.remote import ReadOnlyTransport, RemoteTransport
from mlmd_log.client.transport import PutsInSteps, Transport, UsualWait, check_own_outcome
from mlmd_log.proto import metadata_store_pb2 as pb

__all__ = ["ASYNC_LINGER_S", "ASYNC_MAX_BATCH", "AsyncPuts", "DEFAULT_DATA_DIR", "EmbeddedTransport", "GrpcTransport",
           "ProjectionConfig", "PutsInSteps", "ReadOnlyTransport", "RemoteTransport", "SharedLogConfig", "StoreConfig",
           "Transport", "UsualWait", "check_own_outcome", "open_transport"]


def open_transport(config: Any, client_name: str = "mlmd-log") -> Transport:
    """The transport a MetadataStore config asks for; ``client_name`` goes in the records' envelopes."""
    if config is None:
        return EmbeddedTransport(StoreConfig.from_directory(DEFAULT_DATA_DIR), client_name)
    if isinstance(config, StoreConfig):
        return EmbeddedTransport(config, client_name)
    if isinstance(config, ProjectionConfig):
        return ReadOnlyTransport(config.projection_url)
    if isinstance(config, SharedLogConfig):
        return RemoteTransport(config.log_url, config.projection_url, config.client_name, config.wait_timeout_s,
                               config.log_timeout_s, config.block_on_unavailable_s)
    if isinstance(config, str):
        if "://" in config:  # (a projection's URL: read it; a store's directory is a plain path)
            return ReadOnlyTransport(config)
        return EmbeddedTransport(StoreConfig.from_directory(config), client_name)
    if isinstance(config, pb.ConnectionConfig):
        return EmbeddedTransport(StoreConfig.from_connection_config(config), client_name)
    if isinstance(config, pb.MetadataStoreClientConfig):
        return GrpcTransport(config)
    raise ValueError("MetadataStore is expecting either proto.ConnectionConfig or proto.MetadataStoreClientConfig")
