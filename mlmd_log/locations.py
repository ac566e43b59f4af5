"""Logs and projections named by URL, so the CLI, the server and the Python API agree.

Logs:        ``file:///path/to/log-dir`` (or a plain path), ``memory:``, ``kafka://host:port/topic``,
             ``kafka://host:port/topic?archive=/path/to/archive-dir`` (producer/archive.py)
Projections: ``sqlite:///path.db`` (or a plain path), ``sqlite://:memory:``,
             ``mysql://user:password@host:port/database``
"""
from __future__ import annotations

import os
from urllib.parse import parse_qs, urlparse

from mlmd_log import errors
from mlmd_log.producer.base import Log
from mlmd_log.projections.backend import SqlBackend, SqliteBackend


def open_log(url: str, readonly: bool = False, durability: str = "fsync", timeout_s: float = 30.0) -> Log:
    """The log a URL names. Readers open FileLogs read-only (no lock, no truncation).
    ``timeout_s`` bounds how long a Kafka log waits for the broker before UnavailableError."""
    if url in ("memory:", "memory://"):
        from mlmd_log.producer import MemoryLog
        return MemoryLog()
    if url.startswith("kafka://"):
        from mlmd_log.producer.kafka_log import KafkaLog
        parsed = urlparse(url)
        topic = parsed.path.strip("/")
        if not parsed.netloc or not topic:
            raise errors.InvalidArgumentError(f"Expected kafka://host:port/topic, got {url!r}")
        options = parse_qs(parsed.query, keep_blank_values=True)
        archive = options.pop("archive", None)
        if options or (archive is not None and (len(archive) != 1 or not archive[0])):
            raise errors.InvalidArgumentError(
                f"Unsupported options in {url!r}: a Kafka log URL takes one, ?archive=DIR (producer/archive.py)")
        if archive is not None and not os.path.isdir(archive[0]):
            raise errors.NotFoundError(f"No log archive at {archive[0]} (named by {url!r})")
        live = KafkaLog(parsed.netloc, topic, durability=durability, timeout_s=timeout_s)
        if archive is None:
            return live
        from mlmd_log.producer import FileLog
        from mlmd_log.producer.archive import ArchivedLog

        try:
            return ArchivedLog(FileLog(archive[0], readonly=True), live, archive[0])
        except BaseException:
            live.close()
            raise
    from mlmd_log.producer import FileLog
    path = url[len("file://"):] if url.startswith("file://") else url
    if "://" in path:
        raise errors.InvalidArgumentError(f"Unsupported log URL {url!r}: expected file://, kafka:// or memory:")
    return FileLog(path, readonly=readonly, durability=durability)


def open_projection(url: str, create: bool = True, readonly: bool = False) -> SqlBackend:
    """The projection a URL names: its schema created if ``create``; otherwise it must
    already hold MLMD's tables (NotFoundError / FailedPreconditionError, not a SQL error
    on the first read). ``readonly`` opens a SQLite file without write access."""
    if url.startswith("mysql://"):
        from mlmd_log.projections.mysql import MySqlBackend, MySqlTarget
        db: SqlBackend = MySqlBackend(MySqlTarget.from_url(url))
    else:
        if url.startswith("sqlite:///"):  # sqlite:///rel/path, sqlite:////abs/path, sqlite:///:memory:
            path = url[len("sqlite:///"):]
        elif url.startswith("sqlite://"):
            path = url[len("sqlite://"):]
        elif "://" in url:
            raise errors.InvalidArgumentError(
                f"Unsupported projection URL {url!r}: expected sqlite:///PATH or mysql://user:pass@host:port/db")
        else:
            path = url
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
    try:
        row = db.one("SELECT `schema_version` FROM `MLMDEnv`")
    except db.infrastructure_errors as exc:
        db.close()
        raise errors.FailedPreconditionError(f"{url} holds no MLMD tables (MLMDEnv): {exc}") from exc
    if row is None or row[0] != 10:
        db.close()
        raise errors.FailedPreconditionError(f"{url} is not an MLMD schema version 10 store (MLMDEnv: {row})")
