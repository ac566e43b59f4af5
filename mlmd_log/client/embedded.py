"""The embedded store: a log and its projection in this process, puts applied inline."""
from __future__ import annotations

import atexit
import os
import threading
from typing import Any, Optional

from mlmd_log import errors
from mlmd_log.client.config import StoreConfig
from mlmd_log.client.transport import (UsualWait, closed_error, history_connection_of, response_of,
                                       through_lost_connection)
from mlmd_log.consumer.inline import InlineApplier
from mlmd_log.producer.base import Log
from mlmd_log.producer.records import PUT_RPCS, RecordFactory
from mlmd_log.projections.backend import SqliteBackend
from mlmd_log.projections.projector import Projector
from mlmd_log.urls import without_password


class EmbeddedTransport:
    """A log and its SQLite projection in this process; puts are applied inline."""

    def __init__(self, config: StoreConfig, client_name: str = "mlmd-log"):
        from mlmd_log.query.service_reads import ReadService

        self.config = config
        self._records = RecordFactory(client_name)
        self._closed = False
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
            # A second writer hears at once that the log is taken (SQLite would keep it waiting
            # for its busy timeout); the log then opens knowing what the projection applied, so
            # a bad frame below that is damage, never a torn tail to cut.
            self._refuse_if_log_taken(config)
            self.db = self._open_projection(config)
            try:
                projector = Projector(self.db)
                self._log = self._open_log(config, protect_below=projector.next_offset)
                self._applier = InlineApplier(self._log, projector)
            except BaseException:
                if self._log is not None:
                    self._log.close()
                self.db.close()
                raise
        self.reads = ReadService(self.db.conn, self.db.dialect)
        # Reads and applies share the projection connection, so they share the applier's lock.
        self._lock: Any = self._applier.lock if self._applier is not None else threading.RLock()
        self.where = without_password(config.projection_url or config.sqlite_path)  # (for error messages)
        atexit.register(self.close)

    @staticmethod
    def _refuse_if_log_taken(config: StoreConfig) -> None:
        """FailedPreconditionError now if another writer holds the log's lock."""
        if config.log_path is None or not os.path.isdir(config.log_path):
            return
        from mlmd_log.producer.file_log import acquire_writer_lock, release_lock_file

        release_lock_file(acquire_writer_lock(config.log_path))

    @staticmethod
    def _open_projection(config: StoreConfig) -> Any:
        if config.projection_url:
            from mlmd_log.locations import open_projection

            return open_projection(config.projection_url)
        if config.sqlite_path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(config.sqlite_path)), exist_ok=True)
        db = SqliteBackend(config.sqlite_path)
        try:
            db.create_schema()
        except BaseException:
            db.close()
            raise
        return db

    @staticmethod
    def _open_log(config: StoreConfig, protect_below: int = 0) -> Log:
        from mlmd_log.producer import FileLog, MemoryLog

        if config.log_path is None:
            return MemoryLog()
        return FileLog(config.log_path, durability=config.durability, protect_below=protect_below)

    def call(self, rpc: str, request: Any) -> Any:
        if rpc in PUT_RPCS:
            return self._put(rpc, request)
        with self._lock:
            if self._closed:
                raise closed_error()
            return self._on_projection(lambda: self.reads.call(rpc, request))

    def _on_projection(self, action: Any) -> Any:
        """``action()`` on the projection (a MySQL one may lose its connection)."""
        reconnect = self._applier.reconnect if self._applier is not None else self.db.reconnect
        return through_lost_connection(self.db, action, reconnect, self.where)

    def _writable(self) -> InlineApplier:
        if self._closed:
            raise closed_error()
        if self._applier is None:
            raise errors.FailedPreconditionError("This store was opened read-only (connection_mode READONLY)")
        return self._applier

    def _put(self, rpc: str, request: Any) -> Any:
        applier = self._writable()
        payload, _ = self._records.payload(rpc, request)
        [offset] = applier.append([payload])
        return response_of(rpc, self._outcome(applier, offset))

    def _outcome(self, applier: InlineApplier, offset: int) -> Any:
        try:
            return self._on_projection(lambda: applier.outcome_for(offset))
        except errors.UnavailableError as exc:
            raise errors.UnavailableError(
                f"The put is durable in the log at offset {offset} (do not put it again: it is applied when the "
                f"projection is back, at the next call), but its outcome could not be computed: {exc.message}") \
                from None

    # The asynchronous-put protocol (see AsyncPuts).
    def append(self, payloads: list[bytes]) -> list[int]:
        return self._writable().append(payloads)

    def wait_for_outcomes(self, offsets: list[int], usual: Optional["UsualWait"] = None) -> list[Any]:
        """The outcomes of these records (applied inline: no wait to tune with ``usual``)."""
        applier = self._writable()
        return [self._outcome(applier, offset) for offset in offsets]

    response = staticmethod(response_of)

    def analytics_location(self) -> Any:
        """Where this store's DuckDB analytics file is kept (``MetadataStore.duckdb``)."""
        from mlmd_log.analytics import AnalyticsLocation

        if self._closed:
            raise closed_error()
        return AnalyticsLocation.of_store(self.config)

    def history_connection(self) -> Any:
        """A new read-only connection on what the projection has committed, for history
        questions and as-of views (see ``history_connection_of``)."""
        with self._lock:
            if self._closed:
                raise closed_error()
            if self._applier is not None:
                self._applier.commit()  # (inline applies commit in the background: what was put is in)
            return history_connection_of(self.db, self.where)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._applier is not None:
                self._applier.close()
                self._applier = None
            if getattr(self, "db", None) is not None:
                self.db.close()
                self.db = None  # type: ignore[assignment]
