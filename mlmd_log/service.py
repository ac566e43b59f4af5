"""The RPC-level core: ``call(rpc_name, request) -> response`` for every MLMD RPC.

The Python facade (store.py) and the gRPC server both sit on this. Puts become
log records and return the outcome the projector derived for them; gets are
answered by the query layer from the projection.
"""
from __future__ import annotations

import atexit
import os
import threading
from dataclasses import dataclass
from typing import Any, Optional

from mlmd_log import errors
from mlmd_log.consumer.inline import InlineApplier
from mlmd_log.producer.base import Log
from mlmd_log.producer.records import PUT_RPCS, RecordFactory
from mlmd_log.projections.backend import SqliteBackend
from mlmd_log.projections.projector import Projector
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.proto import metadata_store_service_pb2 as svc

DEFAULT_DATA_DIR = "mlmd-data"


@dataclass
class StoreConfig:
    """Where an embedded store keeps its log and its SQLite projection."""

    log_path: Optional[str]  # None: in-memory log
    sqlite_path: str  # ":memory:" for an in-memory projection
    durability: str = "fsync"
    readonly: bool = False
    must_exist: bool = False

    @classmethod
    def from_directory(cls, directory: str, durability: str = "fsync") -> "StoreConfig":
        return cls(os.path.join(directory, "log"), os.path.join(directory, "mlmd.sqlite"), durability)

    @classmethod
    def from_connection_config(cls, config: pb.ConnectionConfig) -> "StoreConfig":
        which = config.WhichOneof("config")
        if which == "fake_database":
            return cls(None, ":memory:", "none")
        if which == "sqlite":
            uri = config.sqlite.filename_uri
            if not uri:  # MLMD: no file name means an in-memory SQLite database
                return cls(None, ":memory:", "none")
            if uri.startswith("file:"):
                uri = uri[len("file:"):].split("?", 1)[0]
            mode = config.sqlite.connection_mode
            return cls(uri + ".log", uri, "fsync", readonly=mode == pb.SqliteMetadataSourceConfig.READONLY,
                       must_exist=mode == pb.SqliteMetadataSourceConfig.READWRITE)
        if which in ("mysql", "postgresql"):
            raise errors.UnimplementedError(
                f"ConnectionConfig.{which} is not supported by the embedded store yet; use sqlite or "
                "fake_database (the MySQL projection fed from Kafka is the scale-out deployment).")
        raise errors.InvalidArgumentError("ConnectionConfig has no backend set (fake_database, sqlite ...)")


class EmbeddedTransport:
    """A log and its SQLite projection in this process; puts are applied inline."""

    def __init__(self, config: StoreConfig, client_name: str = "mlmd-log"):
        from mlmd_log.query.service_reads import ReadService

        self.config = config
        self._lock: Any = threading.RLock()
        self._records = RecordFactory(client_name)
        if config.must_exist and not os.path.exists(config.sqlite_path):
            raise errors.NotFoundError(f"SQLite projection {config.sqlite_path} does not exist "
                                       "(connection_mode READWRITE needs an existing store)")
        self._log: Optional[Log] = None
        self._applier: Optional[InlineApplier] = None
        if config.readonly:
            if not os.path.exists(config.sqlite_path):
                raise errors.NotFoundError(f"SQLite projection {config.sqlite_path} does not exist")
            self.db = SqliteBackend(config.sqlite_path, readonly=True)
        else:
            parent = os.path.dirname(os.path.abspath(config.sqlite_path))
            if config.sqlite_path != ":memory:":
                os.makedirs(parent, exist_ok=True)
            self.db = SqliteBackend(config.sqlite_path)
            self.db.create_schema()
            self._log = self._open_log(config)
            self._applier = InlineApplier(self._log, Projector(self.db))
        self.reads = ReadService(self.db.conn)
        if self._applier is not None:
            self._lock = self._applier.lock  # reads and applies share the projection connection
        atexit.register(self.close)

    @staticmethod
    def _open_log(config: StoreConfig) -> Log:
        from mlmd_log.producer import FileLog, MemoryLog

        if config.log_path is None:
            return MemoryLog()
        return FileLog(config.log_path, durability=config.durability)

    def call(self, rpc: str, request: Any) -> Any:
        if rpc in PUT_RPCS:
            return self._put(rpc, request)
        with self._lock:
            return self.reads.call(rpc, request)

    def _put(self, rpc: str, request: Any) -> Any:
        if self._applier is None:
            raise errors.FailedPreconditionError("This store was opened read-only (connection_mode READONLY)")
        payload = self._records.make(rpc, request).SerializeToString()
        outcome = self._applier.submit(payload)
        outcome.raise_if_error()
        response = getattr(svc, rpc + "Response")()
        response.ParseFromString(outcome.response)
        return response

    def close(self) -> None:
        with self._lock:
            if self._applier is not None:
                self._applier.close()
                self._applier = None
            if getattr(self, "db", None) is not None:
                self.db.close()
                self.db = None  # type: ignore[assignment]


class GrpcTransport:
    """Talks to an MLMD-compatible gRPC server (ours or the official one)."""

    def __init__(self, config: pb.MetadataStoreClientConfig):
        import grpc

        from mlmd_log.proto import metadata_store_service_pb2_grpc as rpc_pb

        target = f"{config.host}:{config.port}"
        options = []
        if config.HasField("channel_arguments"):
            args = config.channel_arguments
            if args.HasField("max_receive_message_length"):
                options.append(("grpc.max_receive_message_length", args.max_receive_message_length))
            if args.HasField("http2_max_ping_strikes"):
                options.append(("grpc.http2.max_ping_strikes", args.http2_max_ping_strikes))
        if config.HasField("ssl_config"):
            ssl = config.ssl_config
            creds = grpc.ssl_channel_credentials(
                ssl.custom_ca.encode() if ssl.HasField("custom_ca") else None,
                ssl.client_key.encode() if ssl.HasField("client_key") else None,
                ssl.server_cert.encode() if ssl.HasField("server_cert") else None)
            self._channel = grpc.secure_channel(target, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._timeout = config.client_timeout_sec if config.HasField("client_timeout_sec") else None
        self._stub = rpc_pb.MetadataStoreServiceStub(self._channel)

    def call(self, rpc: str, request: Any) -> Any:
        import grpc

        try:
            return getattr(self._stub, rpc)(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise errors.make_exception(exc.details() or str(exc), exc.code().value[0]) from exc

    def close(self) -> None:
        self._channel.close()


def open_transport(config: Any) -> Any:
    """The transport a MetadataStore config asks for."""
    if config is None:
        return EmbeddedTransport(StoreConfig.from_directory(DEFAULT_DATA_DIR))
    if isinstance(config, StoreConfig):
        return EmbeddedTransport(config)
    if isinstance(config, str):
        return EmbeddedTransport(StoreConfig.from_directory(config))
    if isinstance(config, pb.ConnectionConfig):
        return EmbeddedTransport(StoreConfig.from_connection_config(config))
    if isinstance(config, pb.MetadataStoreClientConfig):
        return GrpcTransport(config)
    raise ValueError("MetadataStore is expecting either proto.ConnectionConfig or proto.MetadataStoreClientConfig")
