"""The gRPC MetadataStoreService: the official ml-metadata clients talk to mlmd-log unchanged.

``mlmd-log serve --port 8080 --config server.pbtxt`` from a shell, or in Python::

    from mlmd_log.server import MetadataStoreServer, ServeConfig
    from mlmd_log.client import StoreConfig

    with MetadataStoreServer(ServeConfig(StoreConfig.from_directory("mlmd-data"), port=0)) as server:
        print(server.port)
"""
from mlmd_log.server.config import ServeConfig, load_server_config, parse_server_config, store_config_for
from mlmd_log.server.grpc_server import RPC_NAMES, MetadataStoreServer, MetadataStoreServicer, serve

__all__ = ["MetadataStoreServer", "MetadataStoreServicer", "RPC_NAMES", "ServeConfig", "load_server_config",
           "parse_server_config", "serve", "store_config_for"]
