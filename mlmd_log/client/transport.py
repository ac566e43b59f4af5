"""What every transport is (``Transport``; ``PutsInSteps`` for those AsyncPuts can drive),
and the small pieces they share: a put's response, the closed-store error, a lost
connection, a writer's usual wait."""
from __future__ import annotations

from typing import Any, Optional, Protocol

from mlmd_log import errors
from mlmd_log.proto import metadata_store_service_pb2 as svc


class Transport(Protocol):
    """What MetadataStore calls: one MLMD RPC by name, and close."""

    def call(self, rpc: str, request: Any) -> Any: ...

    def close(self) -> None: ...


class PutsInSteps(Protocol):
    """A transport whose puts AsyncPuts can split into an append and a later wait for
    outcomes (embedded and remote; a gRPC client cannot)."""

    where: str  # its projection, for error messages

    def append(self, payloads: list[bytes]) -> list[int]: ...

    def wait_for_outcomes(self, offsets: list[int], usual: Optional["UsualWait"] = None) -> list[Any]: ...

    def response(self, rpc: str, outcome: Any) -> Any: ...


def closed_error() -> errors.FailedPreconditionError:
    """What every call on a closed store raises (as a call on ml-metadata's closed store does
    not: it has no close; a clear error beats an AttributeError from inside)."""
    return errors.FailedPreconditionError("The store is closed; open a new MetadataStore to use it again")


def response_of(rpc: str, outcome: Any) -> Any:
    """The RPC response a put's outcome stands for, or its MLMD error raised."""
    outcome.raise_if_error()
    response = getattr(svc, rpc + "Response")()
    response.ParseFromString(outcome.response)
    return response


def check_own_outcome(outcome: Any, record_id: str, where: str) -> None:
    """FailedPreconditionError unless ``outcome`` (read at the offset the log gave a record)
    is that record's: a projection kept from another log holds other records' outcomes at
    the same offsets, and their responses must not reach this caller."""
    if outcome.record_id != record_id:
        raise errors.FailedPreconditionError(
            f"The projection {where} holds, at log offset {outcome.offset}, the outcome of record "
            f"{outcome.record_id!r}, not of the record appended there ({record_id!r}): it is kept from another "
            "log. Check that the log URL and the projection URL belong together.")


def through_lost_connection(db: Any, action: Any, reconnect: Any, where: str) -> Any:
    """``action()`` against the projection ``db``. When the database server dropped the
    connection (a restart, a network cut), ``reconnect()`` and the action once more: a read,
    or applying records, which starts over from the last commit. A server that still cannot
    be reached is UnavailableError; the next call tries again."""
    try:
        return action()
    except db.connection_errors:
        pass
    try:
        reconnect()
        return action()
    except db.connection_errors as exc:
        raise errors.UnavailableError(f"The projection {where} cannot be reached ({exc}); retry later") from None


class UsualWait:
    """How long a writer's waits for outcomes usually take (a moving average, each wait
    counted up to 1 s), so the first look at the projection comes after ``first_look`` of
    it: fewer queries to the projection, most of them answered."""

    def __init__(self, first_look: float):
        self.first_look = first_look
        self.average_s = 0.0

    def first_look_s(self) -> float:
        return self.first_look * self.average_s

    def record(self, waited_s: float) -> None:
        self.average_s = 0.8 * self.average_s + 0.2 * min(1.0, waited_s)


def history_connection_of(db: Any, where: str) -> Any:
    """A new read-only sqlite3 connection on a SQLite projection's committed state (a copy,
    for one in memory): history and as-of views read there, beside the store's own."""
    import sqlite3

    path = getattr(db, "path", None)
    if path is None:
        raise errors.FailedPreconditionError(
            f"History is kept by SQLite projections; {where} is not one: replay the log into "
            "sqlite:///history.db and open that")
    if path == ":memory:":
        copy = sqlite3.connect(":memory:", check_same_thread=False)
        db.conn.backup(copy)
        return copy
    if path.startswith("file:"):
        return sqlite3.connect(path, uri=True, check_same_thread=False)  # (opened read-only already)
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
