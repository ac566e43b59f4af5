"""What a MetadataStore is opened on: an embedded directory or MLMD ConnectionConfig, a
shared log with the projection a projector keeps, or a projection alone."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from mlmd_log import errors
from mlmd_log.proto import metadata_store_pb2 as pb

DEFAULT_DATA_DIR = "mlmd-data"


@dataclass
class StoreConfig:
    """Where an embedded store keeps its log and its SQLite projection."""

    log_path: Optional[str]  # None: in-memory log
    sqlite_path: str  # ":memory:" for an in-memory projection
    durability: str = "fsync"
    readonly: bool = False
    must_exist: bool = False
    # Another projection instead of the SQLite file (``mysql://...``), applied inline.
    projection_url: Optional[str] = None

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
        if which == "mysql":
            # MLMD's MySQL config names only the database; the log goes in ./mlmd-data unless
            # the caller (e.g. `mlmd-log serve --log-dir`) says where.
            from mlmd_log.projections.mysql import MySqlTarget

            if config.mysql.HasField("ssl_options"):
                raise errors.UnimplementedError("MySQLDatabaseConfig.ssl_options is not supported yet")
            target = MySqlTarget.from_connection_config(config.mysql)
            log = os.path.join(DEFAULT_DATA_DIR, f"log-mysql-{target.host}-{target.port}-{target.database}")
            return cls(log, ":memory:", "fsync", projection_url=target.url)
        if which == "postgresql":
            raise errors.UnimplementedError("ConnectionConfig.postgresql is not supported; use sqlite or mysql")
        raise errors.InvalidArgumentError("ConnectionConfig has no backend set (fake_database, sqlite ...)")


@dataclass
class SharedLogConfig:
    """A writer among many: a shared log (``kafka://HOST:PORT/TOPIC``) and the projection
    (``mysql://...`` or ``sqlite:///...``) that a ``mlmd-log project`` service keeps current."""

    log_url: str
    projection_url: str
    wait_timeout_s: float = 60.0
    client_name: str = "mlmd-log"
    # How long one append waits for the log (a Kafka broker) before UnavailableError.
    log_timeout_s: float = 30.0
    # 0: a put fails at once with the retryable UnavailableError when the log is down.
    # > 0: it blocks, retrying, for up to this many seconds and resumes when the log is
    # back (the record id makes a retried append idempotent).
    block_on_unavailable_s: float = 0.0


@dataclass
class ProjectionConfig:
    """Read-only access to any projection by URL (``sqlite:///...``, ``mysql://...``): for
    analytics and audits beside the writers; puts fail with FailedPreconditionError."""

    projection_url: str
