"""The gRPC MetadataStoreService: the official ml-metadata clients talk to mlmd-log unchanged.

``mlmd-log serve --port 8080 --config server.pbtxt`` from a shell, or in Python::

    from mlmd_log.server import MetadataStoreServer, ServeConfig
    from mlmd_log.client import StoreConfig

    with MetadataStoreServer(ServeConfig(StoreConfig.from_directory("mlmd-data"), port=0)) as server:
        print(server.port)
"""
from typing import Any

from mlmd_log.server.config import ServeConfig, load_server_config, parse_server_config, store_config_for

_SERVING = ("MetadataStoreServer", "MetadataStoreServicer", "RPC_NAMES", "serve")


def __getattr__(name: str) -> Any:
    """The server itself on first use: the CLI builds its options from config.py alone,
    and every other command should not pay for importing grpc."""
    if name in _SERVING:
        from mlmd_log.server import grpc_server

        return getattr(grpc_server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["MetadataStoreServer", "MetadataStoreServicer", "RPC_NAMES", "ServeConfig", "load_server_config",
           "parse_server_config", "serve", "store_config_for"]
