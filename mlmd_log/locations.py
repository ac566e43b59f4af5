"""Opens the logs and projections that URLs name (the forms: urls.py), so the CLI, the
server and the Python API agree.
"""
from __future__ import annotations

import os

from mlmd_log import errors
from mlmd_log.producer.base import Log
from mlmd_log.projections.backend import SqlBackend, SqliteBackend
from mlmd_log.urls import parse_log_url, parse_projection_url, without_password


def open_log(url: str, readonly: bool = False, durability: str = "fsync", timeout_s: float = 30.0) -> Log:
    """The log a URL names. Readers open FileLogs read-only (no lock, no truncation).
    ``timeout_s`` bounds how long a Kafka log waits for the broker before UnavailableError."""
    where = parse_log_url(url)
    if where.kind == "memory":
        from mlmd_log.producer import MemoryLog
        return MemoryLog()
    if where.kind == "avro":  # (an archive that `mlmd-log export` wrote; read-only)
        from mlmd_log.producer.avro_log import AvroLog
        return AvroLog(where.path)
    if where.kind == "kafka":
        from mlmd_log.producer.kafka_log import KafkaLog
        if where.archive is not None and not os.path.isdir(where.archive):
            raise errors.NotFoundError(f"No log archive at {where.archive} (named by {url!r})")
        live = KafkaLog(where.bootstrap, where.topic, durability=durability, timeout_s=timeout_s)
        if where.archive is None:
            return live
        from mlmd_log.producer import FileLog
        from mlmd_log.producer.archive import ArchivedLog

        try:
            return ArchivedLog(FileLog(where.archive, readonly=True), live, where.archive)
        except BaseException:
            live.close()
            raise
    from mlmd_log.producer import FileLog
    return FileLog(where.path, readonly=readonly, durability=durability)


def open_projection(url: str, create: bool = True, readonly: bool = False) -> SqlBackend:
    """The projection a URL names: its schema created if ``create``; otherwise it must
    already hold MLMD's tables (NotFoundError / FailedPreconditionError, not a SQL error
    on the first read). ``readonly`` opens a SQLite file without write access."""
    where = parse_projection_url(url)
    if where.kind == "mysql":
        from mlmd_log.projections.mysql import MySqlBackend, MySqlTarget
        db: SqlBackend = MySqlBackend(MySqlTarget.from_url(where))
    elif where.kind == "duckdb":
        raise errors.InvalidArgumentError(
            f"{url!r} is a DuckDB projection: `mlmd-log project --into {url}` builds it; it is not a store to open")
    else:
        path = where.path
        if not create and path != ":memory:" and not os.path.exists(path):
            raise errors.NotFoundError(f"No projection at {path}")
        try:
            db = SqliteBackend(path, readonly=readonly and not create)
        except SqliteBackend.infrastructure_errors as exc:  # a directory, no permission
            raise errors.FailedPreconditionError(f"Cannot open the projection {url}: {exc}") from exc
    if create:
        try:
            db.create_schema()
        except SqliteBackend.infrastructure_errors as exc:  # not a database, a read-only file
            if not isinstance(db, SqliteBackend):
                raise
            db.close()
            raise errors.FailedPreconditionError(f"Cannot create MLMD's tables in {url}: {exc}") from exc
    else:
        _require_mlmd_schema(db, url)
    return db


def _require_mlmd_schema(db: SqlBackend, url: str) -> None:
    url = without_password(url)
    try:
        row = db.one("SELECT `schema_version` FROM `MLMDEnv`")
    except db.infrastructure_errors as exc:
        db.close()
        raise errors.FailedPreconditionError(f"{url} holds no MLMD tables (MLMDEnv): {exc}") from exc
    if row is None or row[0] != 10:
        db.close()
        found = "no schema version" if row is None else f"schema version {row[0]}"
        raise errors.FailedPreconditionError(f"{url} is not an MLMD schema version 10 store (MLMDEnv holds {found})")
