"""The RPC-level core: ``call(rpc_name, request) -> response`` for every MLMD RPC.

The Python facade (store.py) and the gRPC server both sit on this. Puts become
log records and return the outcome the projector derived for them; gets are
answered by the query layer from the projection.
"""
from __future__ import annotations

import atexit
import itertools
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterator, Optional
from urllib.parse import urlsplit, urlunsplit

from mlmd_log import errors
from mlmd_log.consumer.inline import InlineApplier
from mlmd_log.producer.base import Log
from mlmd_log.producer.records import PUT_RPCS, RecordFactory, as_retry
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
        self.where = _without_password(config.projection_url or config.sqlite_path)  # (for error messages)
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

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._applier is not None:
                self._applier.close()
                self._applier = None
            if getattr(self, "db", None) is not None:
                self.db.close()
                self.db = None  # type: ignore[assignment]


#: A bearer token our gRPC client sends (``authorization: Bearer ...``), for a server started
#: with ``--tokens-file``. From the environment: ``MetadataStoreClientConfig`` is
#: ml-metadata's message and has no field for it, and a command line would show it in ``ps``.
TOKEN_ENV = "MLMD_LOG_TOKEN"


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
        token = os.environ.get(TOKEN_ENV)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        self._stub = rpc_pb.MetadataStoreServiceStub(self._channel)
        self._closed = False

    def call(self, rpc: str, request: Any) -> Any:
        import grpc

        if self._closed:
            raise closed_error()
        try:
            return getattr(self._stub, rpc)(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise errors.make_exception(exc.details() or str(exc), exc.code().value[0]) from exc

    def close(self) -> None:
        self._closed = True
        self._channel.close()


def open_transport(config: Any, client_name: str = "mlmd-log") -> Any:
    """The transport a MetadataStore config asks for; ``client_name`` goes in the records' envelopes."""
    if config is None:
        return EmbeddedTransport(StoreConfig.from_directory(DEFAULT_DATA_DIR), client_name)
    if isinstance(config, StoreConfig):
        return EmbeddedTransport(config, client_name)
    if isinstance(config, ProjectionConfig):
        return ReadOnlyTransport(config.projection_url)
    if isinstance(config, SharedLogConfig):
        return RemoteTransport(config.log_url, config.projection_url, config.client_name, config.wait_timeout_s,
                               config.log_timeout_s, config.block_on_unavailable_s)
    if isinstance(config, str):
        return EmbeddedTransport(StoreConfig.from_directory(config), client_name)
    if isinstance(config, pb.ConnectionConfig):
        return EmbeddedTransport(StoreConfig.from_connection_config(config), client_name)
    if isinstance(config, pb.MetadataStoreClientConfig):
        return GrpcTransport(config)
    raise ValueError("MetadataStore is expecting either proto.ConnectionConfig or proto.MetadataStoreClientConfig")


@dataclass
class ProjectionConfig:
    """Read-only access to any projection by URL (``sqlite:///...``, ``mysql://...``): for
    analytics and audits beside the writers; puts fail with FailedPreconditionError."""

    projection_url: str


class ReadOnlyTransport:
    """MLMD's reads over one projection; no log, so no writes."""

    def __init__(self, projection_url: str, create: bool = False):
        from mlmd_log.locations import open_projection
        from mlmd_log.query.service_reads import ReadService

        self.db = open_projection(projection_url, create=create, readonly=not create)
        self.reads = ReadService(self.db.conn, self.db.dialect)
        self._lock = threading.Lock()
        self.where = _without_password(projection_url)  # (for error messages)
        self._closed = False

    def call(self, rpc: str, request: Any) -> Any:
        if self._closed:
            raise closed_error()
        if rpc in PUT_RPCS:
            return self._put(rpc, request)
        with self._lock:
            def read() -> Any:
                self._refresh_snapshot()
                return self.reads.call(rpc, request)

            return self._on_projection(read)

    def _on_projection(self, read: Any) -> Any:
        """``read()`` on the projection's connection (under ``_lock``), through a lost one."""
        return through_lost_connection(self.db, read, self.db.reconnect, self.where)

    def _put(self, rpc: str, request: Any) -> Any:
        raise errors.FailedPreconditionError(f"{rpc}: this store is a read-only view of a projection")

    def _refresh_snapshot(self) -> None:
        """Ends the read transaction so the next statement sees the projector's commits (a
        connection in autocommit mode, as MySQL's here, has none: no round trip for it)."""
        autocommit = getattr(self.db.conn, "get_autocommit", None)
        if autocommit is not None and autocommit():
            return
        try:
            self.db.conn.commit()
        except Exception:  # sqlite3 outside a transaction, or nothing to end
            pass

    def close(self) -> None:
        self._closed = True
        self.db.close()


class RemoteTransport(ReadOnlyTransport):
    """A writer in one of many processes: puts go to a shared log (Kafka), a projector
    service applies them, and the writer waits for its record's outcome in the projection.

    Consistency: a synchronous put returns only after the projection has applied it, so
    the writer reads its own writes; other writers' puts are visible once applied.
    """

    def __init__(self, log_url: str, projection_url: str, client_name: str = "mlmd-log",
                 wait_timeout_s: float = 60.0, log_timeout_s: float = 30.0, block_on_unavailable_s: float = 0.0):
        from mlmd_log.locations import open_log

        self._records = RecordFactory(client_name)
        self.block_on_unavailable_s = block_on_unavailable_s
        self.log = self._retrying(lambda _: open_log(log_url, timeout_s=log_timeout_s))
        super().__init__(projection_url, create=True)
        self.wait_timeout_s = wait_timeout_s
        self._put_waits = UsualWait(first_look=0.6)  # (synchronous puts; AsyncPuts keeps its own)

    def _put(self, rpc: str, request: Any) -> Any:
        payload, record_id = self._records.payload(rpc, request)
        [offset] = self.append([payload])
        [outcome] = self.wait_for_outcomes([offset], self._put_waits)
        check_own_outcome(outcome, record_id, self.where)
        return response_of(rpc, outcome)

    def append(self, payloads: list[bytes]) -> list[int]:
        """Appends, retrying an unavailable log for up to ``block_on_unavailable_s``. A retry of
        a record that did reach the log is recognised by its record id and applied once: the
        records are sent again marked as retries (LogRecord.attempt), which the projector
        looks up."""
        if self._closed:
            raise closed_error()
        return self._retrying(lambda again: self.log.append([as_retry(p) for p in payloads] if again else payloads))

    def _retrying(self, action: Any) -> Any:
        """``action(again)``, called again (``again`` True) while the log is unavailable, for
        up to ``block_on_unavailable_s``."""
        deadline = time.monotonic() + self.block_on_unavailable_s
        pause = 0.2
        again = False
        while True:
            try:
                return action(again)
            except errors.UnavailableError:
                if time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 5.0)
                again = True

    response = staticmethod(response_of)

    def applied_offset(self) -> int:
        with self._lock:
            return self._on_projection(self._read_applied_offset)

    def _read_applied_offset(self) -> int:
        self._refresh_snapshot()
        row = self.db.one("SELECT `applied_offset` FROM `mlmdlog_checkpoint` WHERE `id` = 0")
        return row[0] if row else 0

    def wait_for_outcomes(self, offsets: list[int], usual: Optional["UsualWait"] = None) -> list[Any]:
        """Outcomes of several records, with one wait for all of them and one query per 100
        runs of consecutive offsets (see _offset_ranges).

        The projection is asked first after ``usual.first_look_s()`` (at once without one),
        then again as ``pause_before_next_look`` says: prompt on short waits, few queries
        on long ones. A projection that cannot be reached is asked again every 0.2 s until
        ``wait_timeout_s``: the records are durable, and a database restart loses none."""
        from mlmd_log.projections.projector import read_outcomes

        last = max(offsets)
        started = time.monotonic()
        if usual is not None:
            time.sleep(usual.first_look_s())

        def read_them() -> dict[int, Any]:
            return {o.offset: o for where, params in _offset_ranges(offsets)
                    for o in read_outcomes(self.db, where, params)}

        first: Optional[tuple[float, int]] = None  # (when, applied offset) at the first look
        while True:
            try:
                applied, unreachable = self.applied_offset(), None
                if applied > last:
                    with self._lock:
                        found = self._on_projection(read_them)
                    break
            except errors.UnavailableError as exc:  # (the put is durable: wait for the projection to return)
                applied, unreachable = None, exc
            now = time.monotonic()
            waited = now - started
            if waited > self.wait_timeout_s:
                cause = ("no projector applied it" if unreachable is None else
                         f"the projection could not be read ({unreachable.message})")
                raise errors.DeadlineExceededError(
                    f"The put is durable in the log at offset {last} (do not put it again: it is or will be "
                    f"applied), but {cause} within {self.wait_timeout_s:.0f}s: is `mlmd-log project` running "
                    "for this log?")
            if applied is None:
                time.sleep(LONGEST_PAUSE_S)
                continue
            # (the pace since the first look: the projector commits in bursts, so a short
            # span between two looks would tell nothing or far too much)
            pace = None if first is None else (now - first[0], applied - first[1])
            time.sleep(pause_before_next_look(waited, last + 1 - applied, pace))
            if first is None:
                first = (now, applied)
        if usual is not None:
            usual.record(time.monotonic() - started)
        missing = [o for o in offsets if o not in found]
        if missing:
            raise errors.InternalError(f"The projection applied offset {missing[0]} but holds no outcome for it")
        return [found[o] for o in offsets]

    def close(self) -> None:
        self.log.close()
        super().close()


LONGEST_PAUSE_S = 0.2  # pause_before_next_look: the most a writer sleeps on the projector's pace


def pause_before_next_look(waited_s: float, records_left: int,
                           pace: Optional[tuple[float, int]] = None) -> float:
    """How long a writer waiting for outcomes sleeps before it asks the projection again.

    A tenth of the time waited so far (0.5-20 ms). When the projector moved since the
    writer's first look (``pace``: seconds since it, records applied in them), longer:
    most of the time it needs at that pace for the ``records_left`` still ahead, up to
    LONGEST_PAUSE_S. A group of a thousand async puts behind a busy projector is then
    looked for a few times, not fifty times a second; a look costs the writer and the
    database a query each."""
    pause = min(0.02, max(0.0005, 0.1 * waited_s))
    if pace is not None and pace[1] > 0:
        seconds, moved = pace
        pause = max(pause, min(0.8 * records_left * seconds / moved, LONGEST_PAUSE_S))
    return pause


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


def _without_password(url: str) -> str:
    """A database URL fit for an error message (its password, as written, masked)."""
    parsed = urlsplit(url)
    userinfo, at, host = parsed.netloc.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    if not at or not colon:
        return url
    return urlunsplit(parsed._replace(netloc=f"{user}:***@{host}"))


def _offset_ranges(offsets: list[int], per_query: int = 100) -> Iterator[tuple[str, list[int]]]:
    """WHERE clauses (with their parameters) that select exactly ``offsets``: one range per run
    of consecutive offsets (a batch the broker appended), up to ``per_query`` runs a query.
    One range from the lowest to the highest would also return the records other writers
    appended in between, and each of them would be sent and parsed here for nothing."""
    runs: list[list[int]] = []
    for offset in sorted(set(offsets)):
        if runs and offset == runs[-1][1] + 1:
            runs[-1][1] = offset
        else:
            runs.append([offset, offset])
    for start in range(0, len(runs), per_query):
        chunk = runs[start:start + per_query]
        yield (" OR ".join("`log_offset` BETWEEN ? AND ?" for _ in chunk),
               [bound for run in chunk for bound in run])


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


def _as_status_error(exc: BaseException) -> errors.StatusError:
    """An MLMD error for a future: StatusErrors as they are, anything else as INTERNAL."""
    if isinstance(exc, errors.StatusError):
        return exc
    return errors.InternalError(f"Asynchronous put failed: {type(exc).__name__}: {exc}")


def _ends_batch(item: Any) -> bool:
    """A flush marker (None, None, future, None) or the close marker (None) ends AsyncPuts' batch."""
    return item is None or item[0] is None


ASYNC_MAX_BATCH = 1000  # AsyncPuts: most puts an append holds ...
ASYNC_LINGER_S = 0.02  # ... and how long it waits for more once the first came


class AsyncPuts:
    """High-throughput puts: ``submit`` returns a Future at once; a background thread
    appends queued records in batches and resolves each Future with the put's response
    (or its MLMD error) once applied. ``flush`` waits for everything submitted so far.

    ``transport``: ``append(payloads)``, ``wait_for_outcomes(offsets, usual)``,
    ``response(rpc, outcome)`` and ``where`` (its projection, for error messages)."""

    def __init__(self, transport: Any, max_batch: int = ASYNC_MAX_BATCH, client_name: str = "mlmd-log-async",
                 linger_s: float = ASYNC_LINGER_S):
        """``linger_s``: how long a batch waits for more puts once its first came, unless it
        fills up (``max_batch``) or a flush asks for it. Puts that trickle in one at a time
        would otherwise each be an append of its own and a wait for outcomes of its own,
        which cost the writer, the broker and the projection far more than the records."""
        from concurrent.futures import Future

        self._future_class = Future
        self._transport = transport
        self._records = RecordFactory(client_name)
        # Submitted puts (rpc, payload, future, record id), flush markers (None, None, future,
        # None) and the close marker (None), for the appending thread; it is woken only when
        # it has something to start a batch with, when a batch is full, or by a marker: puts
        # that come while a batch lingers cost no wake-up each.
        self._submitted: "deque" = deque()
        self._submitted_changed = threading.Condition()
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._closed = False
        self._resolve_queue: "queue.Queue" = queue.Queue()
        self._group_waits = UsualWait(first_look=0.5)  # (a group's outcomes, see _outcomes)
        self._thread = threading.Thread(target=self._run, name="mlmd-log-async-puts", daemon=True)
        self._resolver = threading.Thread(target=self._resolve, name="mlmd-log-async-outcomes", daemon=True)
        self._thread.start()
        self._resolver.start()

    def submit(self, rpc: str, request: Any) -> Any:
        if rpc not in PUT_RPCS:
            raise errors.InvalidArgumentError(f"{rpc} is not a put")
        if self._closed:
            raise errors.FailedPreconditionError("AsyncPuts is closed")
        future = self._future_class()
        payload, record_id = self._records.payload(rpc, request)
        self._enqueue((rpc, payload, future, record_id))
        return future

    def _enqueue(self, item: Any) -> None:
        with self._submitted_changed:
            self._submitted.append(item)
            count = len(self._submitted)
            if count == 1 or count >= self._max_batch or _ends_batch(item):
                self._submitted_changed.notify()

    def flush(self, timeout: Optional[float] = None) -> None:
        """Blocks until every put submitted before the call has its outcome."""
        done = self._future_class()
        self._enqueue((None, None, done, None))
        done.result(timeout)

    def close(self) -> None:
        self.flush()
        self._closed = True
        self._enqueue(None)
        self._thread.join()
        self._resolve_queue.put(None)
        self._resolver.join()

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._process(batch)

    def _next_batch(self) -> Optional[list]:
        """Up to ``max_batch`` submitted items: once the first came, what else comes within
        ``linger_s``, ending early when the batch is full or at a flush; None at close."""
        pending, changed = self._submitted, self._submitted_changed
        with changed:
            while not pending:
                changed.wait()
            deadline = time.monotonic() + self._linger_s
            while True:  # (only the first max_batch items can end this batch)
                ends = next((i for i, item in enumerate(itertools.islice(pending, self._max_batch))
                             if _ends_batch(item)), None)
                if ends is not None or len(pending) >= self._max_batch:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                changed.wait(left)
            size = min(len(pending), self._max_batch)
            if ends is not None:
                size = ends + 1 if pending[ends] is not None else ends  # (a flush joins; close stays)
            if size == 0:  # (the close marker first)
                return None
            return [pending.popleft() for _ in range(size)]

    def _process(self, batch: list) -> None:
        """Appends a batch, then hands it to the resolver thread, so the next batch is
        appended while this one's outcomes are awaited."""
        puts = [item for item in batch if item[0] is not None]  # (rpc, payload, future, record id)
        offsets: Optional[list[int]] = None
        try:
            offsets = self._transport.append([payload for _, payload, _, _ in puts]) if puts else []
        except Exception as exc:  # noqa: BLE001 - every future must end, or flush() would wait forever
            for _, _, future, _ in puts:
                future.set_exception(_as_status_error(exc))
        self._resolve_queue.put((puts if offsets is not None else [], offsets or [],
                                 [future for rpc, _, future, _ in batch if rpc is None]))

    RESOLVE_GROUP = 10_000  # most puts whose outcomes one wait covers

    def _resolve(self) -> None:
        """Resolves appended batches in order. Batches appended while an earlier one was
        awaited are awaited together: one wait and one outcome query for the group, instead
        of one each (the waiting costs the writer more CPU than anything else it does)."""

        while True:
            item = self._resolve_queue.get()
            if item is None:
                return
            group, size, last = [item], len(item[0]), False
            while size < self.RESOLVE_GROUP:
                try:
                    item = self._resolve_queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    last = True
                    break
                group.append(item)
                size += len(item[0])
            self._resolve_group(group)
            if last:
                return

    def _resolve_group(self, group: list) -> None:
        offsets = [offset for _, batch_offsets, _ in group for offset in batch_offsets]
        outcomes: list = []
        if offsets:
            try:
                outcomes = self._outcomes(offsets)
            except Exception as exc:  # noqa: BLE001 - as in _process
                outcomes = [_as_status_error(exc)] * len(offsets)
        results = iter(outcomes)
        where = self._transport.where
        for puts, _, flushes in group:
            for rpc, _, future, record_id in puts:
                outcome = next(results)
                if isinstance(outcome, errors.StatusError):
                    future.set_exception(outcome)
                    continue
                try:
                    check_own_outcome(outcome, record_id, where)
                    future.set_result(self._transport.response(rpc, outcome))
                except Exception as exc:  # noqa: BLE001 - as in _process
                    future.set_exception(_as_status_error(exc))
            for future in flushes:
                future.set_result(None)

    def _outcomes(self, offsets: list[int]) -> list[Any]:
        return self._transport.wait_for_outcomes(offsets, self._group_waits)
