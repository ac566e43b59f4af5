"""What `mlmd-log serve` needs: the official server's config file plus our log settings.

The file given with ``--config`` is a text-format ``MetadataStoreServerConfig``, the
same file the official ``metadata_store_server`` reads with
``--metadata_store_server_config_file``: a ``connection_config`` (sqlite,
fake_database, or mysql: a MySQL projection applied inline, its log under ``--log-dir``)
and an ``ssl_config``.
Settings that MLMD's config has no field for (where the log lives, its durability,
thread pool, message size, shutdown grace, deadlines, the large-request budget, who
may read or write) are command-line flags, so one config file works for both servers.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from google.protobuf import text_format

from mlmd_log import errors
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.server.access import AccessPolicy
from mlmd_log.client import DEFAULT_DATA_DIR, SharedLogConfig, StoreConfig

DEFAULT_PORT = 8080  # the official server's --grpc_port default
DEFAULT_WORKERS = 32
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
DEFAULT_GRACE_SECONDS = 30.0
HEALTH_SERVICE_NAME = "ml_metadata.MetadataStoreService"
# Longer than a shared-log put's wait for the projector (--wait-seconds, 60 s), whose
# own DEADLINE_EXCEEDED says more.
DEFAULT_RPC_DEADLINE_SECONDS = 120.0
DEFAULT_LARGE_REQUEST_BYTES = 1024 * 1024
# A put costs the server 6-8 times its size while it is applied: one request of the
# largest message size at a time (or many of a few MiB), about 500 MiB.
DEFAULT_LARGE_REQUEST_BUDGET_BYTES = 64 * 1024 * 1024
DEFAULT_LARGE_REQUEST_QUEUE_BYTES = 512 * 1024 * 1024  # eight requests of the largest size
DEFAULT_LARGE_REQUEST_WAIT_SECONDS = 60.0


@dataclass
class RequestLimits:
    """How long one RPC may run and how much memory large requests may hold at once."""

    rpc_deadline_seconds: float = DEFAULT_RPC_DEADLINE_SECONDS
    large_request_bytes: int = DEFAULT_LARGE_REQUEST_BYTES
    large_request_budget_bytes: int = DEFAULT_LARGE_REQUEST_BUDGET_BYTES
    large_request_wait_seconds: float = DEFAULT_LARGE_REQUEST_WAIT_SECONDS
    large_request_queue_bytes: int = DEFAULT_LARGE_REQUEST_QUEUE_BYTES

    def __post_init__(self) -> None:
        if self.rpc_deadline_seconds <= 0:
            raise errors.InvalidArgumentError("--rpc-deadline-seconds must be positive")
        if self.large_request_wait_seconds < 0:
            raise errors.InvalidArgumentError("--large-request-wait-seconds must not be negative")


@dataclass
class ServeConfig:
    """Everything one server process is started with."""

    store: Union[StoreConfig, SharedLogConfig]
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    ssl: Optional[pb.MetadataStoreServerConfig.SSLConfig] = None
    workers: int = DEFAULT_WORKERS
    max_concurrent_rpcs: Optional[int] = None
    # Largest response, and largest request unless the log takes less per record
    # (a Kafka topic: see MetadataStoreServer.max_request_bytes).
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    channel_arguments: list[tuple[str, Any]] = field(default_factory=list)
    limits: RequestLimits = field(default_factory=RequestLimits)
    access: AccessPolicy = field(default_factory=AccessPolicy)

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"


def parse_server_config(text: str) -> pb.MetadataStoreServerConfig:
    """Parses a text-format MetadataStoreServerConfig, as the official server does."""
    config = pb.MetadataStoreServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise errors.InvalidArgumentError(f"Cannot parse MetadataStoreServerConfig: {exc}") from exc
    return config


def load_server_config(path: str) -> pb.MetadataStoreServerConfig:
    try:
        with open(path, encoding="utf-8") as f:
            return parse_server_config(f.read())
    except OSError as exc:
        raise errors.InvalidArgumentError(f"Cannot read server config file {path}: {exc}") from exc


def store_config_for(server_config: pb.MetadataStoreServerConfig, data_dir: Optional[str] = None,
                     log_dir: Optional[str] = None, durability: Optional[str] = None) -> StoreConfig:
    """The embedded store a server config asks for; our flags refine where the log goes.

    Without a connection_config the store lives in ``data_dir`` (default ./mlmd-data):
    unlike the official server, which falls back to a fake in-memory database, we keep
    what clients write unless they ask for ``fake_database``.
    """
    if server_config.HasField("migration_options") and \
            server_config.migration_options.HasField("downgrade_to_schema_version") and \
            server_config.migration_options.downgrade_to_schema_version >= 0:
        raise errors.UnimplementedError("migration_options.downgrade_to_schema_version is not supported: "
                                        "mlmd-log keeps MLMD schema version 10")
    if server_config.HasField("connection_config"):
        if data_dir:
            raise errors.InvalidArgumentError("Give either a connection_config in --config or --data-dir, not both")
        store = StoreConfig.from_connection_config(server_config.connection_config)
    else:
        store = StoreConfig.from_directory(data_dir or DEFAULT_DATA_DIR)
    if log_dir:
        if store.log_path is None:
            raise errors.InvalidArgumentError("--log-dir needs a persistent store (not fake_database / in-memory)")
        store.log_path = log_dir
    if durability:
        if store.log_path is None:
            raise errors.InvalidArgumentError("--durability needs a persistent store (not fake_database / in-memory)")
        store.durability = durability
    return store


def parse_channel_arguments(text: str) -> list[tuple[str, Any]]:
    """``k=v,k=v`` as the official server's --grpc_channel_arguments: ints stay ints."""
    out: list[tuple[str, Any]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise errors.InvalidArgumentError(f"channel argument {item!r} is not key=value")
        try:
            out.append((key, int(value)))
        except ValueError:
            out.append((key, value))
    return out


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `mlmd-log serve` (kept here so cli.py stays a thin dispatcher)."""
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (0.0.0.0 for all interfaces, as the official server does)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port; 0 picks a free one (printed at start)")
    parser.add_argument("--config", help="text-format MetadataStoreServerConfig file (connection_config, ssl_config), "
                                         "the official server's --metadata_store_server_config_file")
    parser.add_argument("--data-dir", help=f"embedded store directory when --config has no connection_config "
                                           f"(default ./{DEFAULT_DATA_DIR})")
    parser.add_argument("--log-dir", help="put the log here instead of beside the SQLite file")
    parser.add_argument("--log", help="shared log URL (kafka://HOST:PORT/TOPIC): serve as one of many stateless "
                                      "writers; needs --into and a running `mlmd-log project`")
    parser.add_argument("--into", help="the projection the projector keeps current (mysql://... or sqlite:///...)")
    parser.add_argument("--wait-seconds", type=float, default=60.0,
                        help="with --log: how long a put waits for the projector before DEADLINE_EXCEEDED")
    parser.add_argument("--durability", choices=("fsync", "group", "none"),
                        help="log durability (default fsync: a put is acknowledged after its record is fsynced)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="RPC handler threads")
    parser.add_argument("--max-concurrent-rpcs", type=int, default=None,
                        help="RPCs admitted at once (beyond: RESOURCE_EXHAUSTED); default unbounded")
    parser.add_argument("--max-message-bytes", type=int, default=DEFAULT_MAX_MESSAGE_BYTES,
                        help="largest response, and largest request unless the log takes less per record "
                             "(a Kafka log: its max record size less room for the envelope)")
    parser.add_argument("--rpc-deadline-seconds", type=float, default=DEFAULT_RPC_DEADLINE_SECONDS,
                        help="longest one RPC may run before DEADLINE_EXCEEDED (a client's shorter deadline wins)")
    parser.add_argument("--large-request-bytes", type=int, default=DEFAULT_LARGE_REQUEST_BYTES,
                        help="requests at least this big draw on the large-request budget")
    parser.add_argument("--large-request-budget-bytes", type=int, default=DEFAULT_LARGE_REQUEST_BUDGET_BYTES,
                        help="total size of large requests served at once (each costs the server several "
                             "times its size in memory); the rest wait in arrival order")
    parser.add_argument("--large-request-wait-seconds", type=float, default=DEFAULT_LARGE_REQUEST_WAIT_SECONDS,
                        help="how long a large request waits for the budget before RESOURCE_EXHAUSTED")
    parser.add_argument("--large-request-queue-bytes", type=int, default=DEFAULT_LARGE_REQUEST_QUEUE_BYTES,
                        help="total size of large requests that may wait (each holds its bytes); beyond, "
                             "RESOURCE_EXHAUSTED at once")
    parser.add_argument("--read-only", action="store_true",
                        help="refuse every put with PERMISSION_DENIED; reads are served")
    parser.add_argument("--grant-read", action="append", default=[], metavar="NAME",
                        help="client certificates with this common name or subject alternative name may read "
                             "(repeat; needs ssl_config.client_verify)")
    parser.add_argument("--grant-write", action="append", default=[], metavar="NAME",
                        help="client certificates with this name may read and write (repeat)")
    parser.add_argument("--tokens-file", metavar="PATH",
                        help="bearer tokens, one 'read|write TOKEN [NAME]' per line (TOKEN may be "
                             "sha256:<hex digest>); callers send 'authorization: Bearer TOKEN'")
    parser.add_argument("--grace-seconds", type=float, default=DEFAULT_GRACE_SECONDS,
                        help="on SIGTERM/SIGINT, how long in-flight calls may take to finish")
    parser.add_argument("--grpc-channel-arguments", default="",
                        help="comma-separated key=value gRPC server arguments, e.g. grpc.max_connection_age_ms=2000")


def serve_config_from_args(args: argparse.Namespace) -> ServeConfig:
    server_config = load_server_config(args.config) if args.config else pb.MetadataStoreServerConfig()
    if bool(getattr(args, "log", None)) != bool(getattr(args, "into", None)):
        raise errors.InvalidArgumentError("--log and --into go together (a shared log and its projection)")
    if getattr(args, "log", None):
        store: Union[StoreConfig, SharedLogConfig] = SharedLogConfig(args.log, args.into, args.wait_seconds,
                                                                     "mlmd-log-server")
    else:
        store = store_config_for(server_config, args.data_dir, args.log_dir, args.durability)
    return ServeConfig(
        store=store, host=args.host, port=args.port,
        ssl=server_config.ssl_config if server_config.HasField("ssl_config") else None,
        workers=args.workers, max_concurrent_rpcs=args.max_concurrent_rpcs,
        max_message_bytes=args.max_message_bytes, grace_seconds=args.grace_seconds,
        channel_arguments=parse_channel_arguments(args.grpc_channel_arguments),
        limits=RequestLimits(args.rpc_deadline_seconds, args.large_request_bytes, args.large_request_budget_bytes,
                             args.large_request_wait_seconds, args.large_request_queue_bytes),
        access=AccessPolicy.build(args.read_only, args.grant_read, args.grant_write, args.tokens_file))
