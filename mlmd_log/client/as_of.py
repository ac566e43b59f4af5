"""A read-only store as of a log offset: MLMD's read RPCs over an as-of connection
(query/history.py), every put refused."""
from __future__ import annotations

import threading
from typing import Any

from mlmd_log import errors
from mlmd_log.client.transport import closed_error
from mlmd_log.producer.records import PUT_RPCS


class AsOfTransport:
    """Reads as of ``offset`` from ``conn``, a connection whose MLMD tables are as-of views."""

    def __init__(self, conn: Any, offset: int):
        from mlmd_log.query.history import AS_OF_DIALECT
        from mlmd_log.query.service_reads import ReadService

        self.conn, self.offset = conn, offset
        self.reads = ReadService(conn, AS_OF_DIALECT)
        self._lock = threading.Lock()
        self._closed = False

    def call(self, rpc: str, request: Any) -> Any:
        if rpc in PUT_RPCS:
            raise errors.FailedPreconditionError(
                f"This store is a read-only view as of log offset {self.offset}; put through the live store")
        with self._lock:
            if self._closed:
                raise closed_error()
            return self.reads.call(rpc, request)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self.conn.close()
