"""MLMD's ``MetadataStoreService`` over grpcio, backed by the RPC-level core.

Every RPC of the service descriptor becomes a method that forwards the request to
the core (``transport.call(rpc, request)``, or for a put its append and its outcome);
there is no per-RPC code, so the server can never drift from the core. An MLMD error
becomes the gRPC status with the same code and the MLMD message as details, exactly
what the official client turns back into the same ``ml_metadata.errors`` class.

Before the core sees a call, ``MetadataStoreServicer._handle`` decides, in this order:
may the caller make it (access.py: certificates, bearer tokens, read-only), may it
hold memory now (admission.py: the large-request budget), and how long it may run (the
server's deadline or the caller's, whichever is sooner). A put answered at its deadline
after its record reached the log says so: the record will be applied, do not retry.

Shutdown (SIGTERM, SIGINT or ``stop()``): health goes NOT_SERVING, the gRPC server
stops taking calls and lets in-flight ones finish within a grace period, then the
store is closed. A put is acknowledged only after its record is in the log (fsynced,
with the default durability), so nothing acknowledged is lost even by a kill -9; the
grace period is for the calls that have not been answered yet.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from concurrent import futures
from typing import Any, Callable, Optional

import grpc

from mlmd_log import errors
from mlmd_log.process import stop_on_signals
from mlmd_log.producer.records import PUT_RPCS, RecordFactory
from mlmd_log.proto import metadata_store_service_pb2 as svc
from mlmd_log.server.access import AccessPolicy
from mlmd_log.server import health
from mlmd_log.server.admission import MIB, Admission, RequestBudget, WireRequest
from mlmd_log.server.config import DEFAULT_WORKERS, HEALTH_SERVICE_NAME, RequestLimits, ServeConfig
from mlmd_log.client import UsualWait, check_own_outcome

log = logging.getLogger("mlmd_log.server")

SERVICE = svc.DESCRIPTOR.services_by_name["MetadataStoreService"]
RPC_NAMES: tuple[str, ...] = tuple(method.name for method in SERVICE.methods)
REQUEST_CLASSES: dict[str, Any] = {method.name: getattr(svc, method.input_type.name)
                                   for method in SERVICE.methods}
# Room for the log record's envelope (record id, producer identity, times) around a request.
RECORD_ENVELOPE_ROOM = 64 * 1024
_STATUS_BY_CODE: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


def grpc_status(error: errors.StatusError) -> grpc.StatusCode:
    """MLMD's canonical code as a gRPC status (the numbers are the same)."""
    return _STATUS_BY_CODE.get(error.error_code, grpc.StatusCode.UNKNOWN)


class _InFlight:
    """Counts running calls (answered or not) so the store is closed only after the last one ends."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running = 0
        self._closed = False

    def enter(self) -> bool:
        with self._cond:
            if self._closed:
                return False
            self._running += 1
            return True

    def leave(self) -> None:
        with self._cond:
            self._running -= 1
            if self._running == 0:
                self._cond.notify_all()

    def close_and_wait(self, timeout: Optional[float] = None) -> bool:
        with self._cond:
            self._closed = True
            return self._cond.wait_for(lambda: self._running == 0, timeout)


APPEND_SETTLE_S = 5.0  # past its deadline, how long a put whose append is under way may take to finish it


class _Deadline:
    """When one RPC must be answered: the server's limit, or the caller's if it is sooner."""

    def __init__(self, server_limit_s: float, context: grpc.ServicerContext):
        remaining = context.time_remaining()
        self.by_caller = remaining is not None and remaining < server_limit_s
        self.seconds = remaining if self.by_caller else server_limit_s
        self.at = time.monotonic() + self.seconds

    def left(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def __str__(self) -> str:
        if self.by_caller:
            return f"the caller's deadline ({self.seconds:.3g}s)"
        return f"the server's deadline of {self.seconds:g}s (mlmd-log serve --rpc-deadline-seconds)"


class _PutProgress:
    """How far a put has come, so that a deadline can tell its caller whether the record
    is in the log (then it will be applied, and putting it again would apply it twice)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._appending = False
        self._dropped = False
        self.offset: Optional[int] = None
        self.settled = threading.Event()  # the append returned (offset set) or raised

    def begin_append(self) -> None:
        with self._lock:
            if self._dropped:
                raise errors.DeadlineExceededError("dropped at its deadline before it was appended")
            self._appending = True

    def drop_unless_appending(self) -> bool:
        """True if the put had not begun its append: it never will."""
        with self._lock:
            self._dropped = not self._appending
            return self._dropped


class MetadataStoreServicer:
    """Serves the 52 RPCs; methods are generated from the descriptor and all go through
    ``_handle``: access, the large-request budget, parsing, the deadline, then the core.

    Each method takes the request as received (``WireRequest``, see admission.py) and the
    gRPC context. The core runs on a pool of its own so that a call past its deadline can
    be answered while it finishes in the background; the call's budget and its place in
    ``in_flight`` are given back when it ends."""

    def __init__(self, transport: Any, limits: Optional[RequestLimits] = None,
                 access: Optional[AccessPolicy] = None, workers: int = DEFAULT_WORKERS):
        self.transport = transport
        self.limits = limits or RequestLimits()
        self.access = access or AccessPolicy()
        self.budget = RequestBudget(self.limits.large_request_budget_bytes, self.limits.large_request_bytes,
                                    self.limits.large_request_queue_bytes)
        self.in_flight = _InFlight()
        self.calls = futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlmd-call")
        # Puts in steps (append, then wait for the outcome) tell a deadline whether the
        # record is durable; a transport without the asynchronous-put protocol is called whole.
        self._puts_in_steps = all(hasattr(transport, name) for name in ("append", "wait_for_outcomes", "response",
                                                                         "where"))
        self._records = RecordFactory("mlmd-log-server")
        self._put_waits = UsualWait(first_look=0.6)

    def _handle(self, rpc: str, wire: WireRequest, context: grpc.ServicerContext) -> Any:
        try:
            return self._serve(rpc, wire, context)
        except errors.StatusError as exc:
            if exc.error_code not in (errors.NOT_FOUND, errors.ALREADY_EXISTS):
                log.info("%s failed: %s: %s", rpc, type(exc).__name__, exc.message)
            status, message = grpc_status(exc), exc.message
        except Exception as exc:  # a bug, not a client error: INTERNAL, as MLMD reports one
            log.exception("%s raised", rpc)
            status, message = grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}"
        context.abort(status, message)  # raises; grpc sends the status with the MLMD message

    def _serve(self, rpc: str, wire: WireRequest, context: grpc.ServicerContext) -> Any:
        self.access.authorize(rpc, context)
        deadline = _Deadline(self.limits.rpc_deadline_seconds, context)
        if not self.in_flight.enter():
            raise errors.UnavailableError("mlmd-log server is shutting down")
        when_done: list[Callable[[], None]] = [self.in_flight.leave]
        try:
            admission = self._admit(rpc, wire, deadline)
            when_done.append(admission.release)
            progress = _PutProgress() if rpc in PUT_RPCS and self._puts_in_steps else None
            call = self.calls.submit(self._call, rpc, wire, progress)
        except BaseException:
            _run_all(when_done)
            raise
        call.add_done_callback(lambda _: _run_all(when_done))
        return self._answer(rpc, call, progress, deadline)

    def _admit(self, rpc: str, wire: WireRequest, deadline: _Deadline) -> Admission:
        admission = self.budget.admit(wire.size, min(self.limits.large_request_wait_seconds, deadline.left()))
        if admission is not None:
            return admission
        waited = f"{rpc} ({wire.size / MIB:.1f} MiB) waited for the server's large-request budget"
        if deadline.left() <= 0:
            raise errors.DeadlineExceededError(f"{waited} until {deadline}; nothing was written, retrying is safe")
        raise errors.ResourceExhaustedError(
            f"{waited} for {self.limits.large_request_wait_seconds:g}s ({self.budget.describe()}); nothing was "
            "written: retry later (mlmd-log serve --large-request-budget-bytes sets the budget)")

    def _call(self, rpc: str, wire: WireRequest, progress: Optional[_PutProgress]) -> Any:
        """Parses the request and runs it on the core. A put drops each form of its data
        once the next is made (request, record, payload): a large put holds fewer copies."""
        request = wire.parse(REQUEST_CLASSES[rpc])
        if progress is None:
            return self.transport.call(rpc, request)
        payload, record_id = self._records.payload(rpc, request)  # (checked, as every writer's)
        del request
        progress.begin_append()
        try:
            [progress.offset] = self.transport.append([payload])
        finally:
            progress.settled.set()
        del payload
        [outcome] = self.transport.wait_for_outcomes([progress.offset], self._put_waits)
        check_own_outcome(outcome, record_id, self.transport.where)
        return self.transport.response(rpc, outcome)

    def _answer(self, rpc: str, call: futures.Future, progress: Optional[_PutProgress], deadline: _Deadline) -> Any:
        """The call's response or its MLMD error; DeadlineExceededError past the deadline,
        saying whether anything was written."""
        try:
            return call.result(timeout=deadline.left())
        except futures.TimeoutError:
            pass
        if call.cancel() or (progress is not None and progress.drop_unless_appending()):
            raise errors.DeadlineExceededError(
                f"{rpc} did not start within {deadline}: the server is busy. Nothing was written; retrying is safe")
        if progress is None:
            maybe = " It may yet be written: look before putting it again." if rpc in PUT_RPCS else ""
            raise errors.DeadlineExceededError(f"{rpc} did not finish within {deadline}.{maybe}")
        progress.settled.wait(APPEND_SETTLE_S)
        if call.done() or (progress.settled.is_set() and progress.offset is None):  # (or its append failed)
            return call.result(timeout=APPEND_SETTLE_S)
        if progress.offset is not None:
            raise errors.DeadlineExceededError(
                f"{rpc}: the record is durable in the log at offset {progress.offset} and will be applied, but it "
                f"was not applied within {deadline}. Do not retry the put: it would be applied a second time.")
        raise errors.DeadlineExceededError(
            f"{rpc}: its record was still being appended to the log at {deadline}. It may be durable and then "
            "will be applied: look before putting it again.")

    def handlers(self) -> grpc.GenericRpcHandler:
        """The service's method handlers: requests stay bytes until ``_handle`` admits them."""
        return grpc.method_handlers_generic_handler(SERVICE.full_name, {
            rpc: grpc.unary_unary_rpc_method_handler(getattr(self, rpc), request_deserializer=WireRequest,
                                                     response_serializer=_serialize)
            for rpc in RPC_NAMES})

    def close(self) -> None:
        """Waits for every call, those answered at their deadline included, to end (those
        still waiting for the large-request budget are sent away)."""
        self.budget.close()
        self.in_flight.close_and_wait()
        self.calls.shutdown(wait=True)


def _serialize(response: Any) -> bytes:
    return response.SerializeToString()


def _run_all(actions: list[Callable[[], None]]) -> None:
    for action in actions:
        action()


def _forwarder(rpc: str) -> Callable[..., Any]:
    def method(self: MetadataStoreServicer, wire: WireRequest, context: grpc.ServicerContext) -> Any:
        return self._handle(rpc, wire, context)

    method.__name__ = rpc
    method.__doc__ = f"MetadataStoreService.{rpc}, forwarded to the core."
    return method


for _rpc in RPC_NAMES:
    setattr(MetadataStoreServicer, _rpc, _forwarder(_rpc))


def server_credentials(ssl: Any) -> grpc.ServerCredentials:
    """TLS from MetadataStoreServerConfig.SSLConfig, as the official server builds it."""
    if not ssl.server_key or not ssl.server_cert:
        raise errors.InvalidArgumentError("ssl_config needs server_key and server_cert (PEM text)")
    if ssl.client_verify and not ssl.custom_ca:
        raise errors.InvalidArgumentError("ssl_config.client_verify needs custom_ca (the CA of client certificates)")
    return grpc.ssl_server_credentials(
        [(ssl.server_key.encode(), ssl.server_cert.encode())],
        root_certificates=ssl.custom_ca.encode() if ssl.custom_ca else None,
        require_client_auth=bool(ssl.client_verify))


class MetadataStoreServer:
    """One gRPC server in this process in front of one store (its transport)."""

    def __init__(self, config: ServeConfig, transport: Any = None):
        self.config = config
        self.warnings = config.access.check_transport(
            client_verify=config.ssl is not None and config.ssl.client_verify, tls=config.ssl is not None)
        if transport is None:
            transport = _open_store(read_only_store(config.store) if config.access.read_only else config.store)
        self.transport = transport
        self.servicer = MetadataStoreServicer(self.transport, config.limits, config.access, config.workers)
        self._executor = futures.ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="mlmd-rpc")
        self.max_request_bytes = max_request_bytes(config.max_message_bytes, self.transport)
        options = [("grpc.max_receive_message_length", self.max_request_bytes),
                   ("grpc.max_send_message_length", config.max_message_bytes),
                   ("grpc.so_reuseport", 0)] + list(config.channel_arguments)
        self._server = grpc.server(self._executor, options=options,
                                   maximum_concurrent_rpcs=config.max_concurrent_rpcs)
        self._server.add_generic_rpc_handlers((self.servicer.handlers(),))
        self.health = health.HealthServicer()
        self._server.add_generic_rpc_handlers((self.health.handler(),))
        if config.ssl is not None:
            self.port = self._server.add_secure_port(config.address, server_credentials(config.ssl))
        else:
            self.port = self._server.add_insecure_port(config.address)
        if self.port == 0:
            raise errors.UnavailableError(f"Cannot listen on {config.address}")
        self._started = False
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()

    def start(self) -> "MetadataStoreServer":
        """Starts serving (once; calling it again, e.g. via ``with``, is harmless)."""
        if self._started:
            return self
        self._started = True
        self._server.start()
        for name in ("", HEALTH_SERVICE_NAME):
            self.health.set(name, health.SERVING)
        return self

    def stop(self, grace: Optional[float] = None) -> None:
        """Stops taking calls, lets in-flight ones finish (up to ``grace`` s), closes the store."""
        with self._stop_lock:
            if self._stopped.is_set():
                return
            grace = self.config.grace_seconds if grace is None else grace
            self.health.enter_graceful_shutdown()
            self._server.stop(grace).wait()
            # Calls the grace period cut off, or answered at their deadline, still run to
            # their end in their threads (their puts are durable); wait for them.
            self.servicer.close()
            self._executor.shutdown(wait=True)
            self.transport.close()
            self._stopped.set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self._stopped.wait(timeout)

    def __enter__(self) -> "MetadataStoreServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def max_request_bytes(max_message_bytes: int, transport: Any) -> int:
    """The largest request to accept: ``max_message_bytes``, or less when the log takes
    less per record (a Kafka topic's ``max_record_bytes``), so that a request the log
    would refuse is refused by gRPC before it is received whole."""
    log_appended_to = getattr(transport, "log", None)
    log_appended_to = getattr(log_appended_to, "live", log_appended_to)  # (a topic with an archive)
    per_record = getattr(log_appended_to, "max_record_bytes", None)
    if per_record is None:
        return max_message_bytes
    return min(max_message_bytes, per_record - RECORD_ENVELOPE_ROOM)


def _open_store(store: Any) -> Any:
    """The transport behind the server: an embedded store, or a writer on a shared log."""
    from mlmd_log.client import open_transport

    return open_transport(store, "mlmd-log-server")


def read_only_store(store: Any) -> Any:
    """What a read-only server opens: the projection alone, read-only. No log and no
    writer's lock, so it serves readers beside the process that writes (and sees its puts
    once that process commits them, within 50 ms for an embedded store)."""
    from mlmd_log.client import ProjectionConfig, SharedLogConfig

    if isinstance(store, SharedLogConfig) or store.projection_url:
        return ProjectionConfig(store.projection_url)
    if store.log_path is None:  # (in memory: there is nothing to keep from harm)
        return store
    return ProjectionConfig(store.sqlite_path)


def _describe(store: Any) -> str:
    from mlmd_log.client import ProjectionConfig, StoreConfig

    if isinstance(store, StoreConfig):
        return f"log {store.log_path or 'memory'}, projection {store.sqlite_path}"
    if isinstance(store, ProjectionConfig):
        return f"projection {store.projection_url}, read-only"
    return f"shared log {store.log_url}, projection {store.projection_url}"


def _describe_security(config: ServeConfig) -> str:
    tls = "insecure" if config.ssl is None else "mutual TLS" if config.ssl.client_verify else "TLS"
    access = config.access
    parts = [tls] + (["read-only"] if access.read_only else [])
    if access.checks_callers:
        parts.append(f"{len(access.subjects)} certificate grant(s), {len(access.tokens)} token(s)")
    return ", ".join(parts)


def serve(config: ServeConfig, announce: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)) -> int:
    """Runs a server until SIGTERM or SIGINT, then shuts down gracefully. Returns the exit code."""
    server = MetadataStoreServer(config).start()
    stop_requested = threading.Event()
    previous = stop_on_signals(stop_requested)
    announce(f"mlmd-log serve: listening on {config.host}:{server.port} "
             f"({_describe_security(config)}; "
             f"{_describe(read_only_store(config.store) if config.access.read_only else config.store)}; "
             f"requests up to {server.max_request_bytes / MIB:g} MiB)")
    for warning in server.warnings:
        announce(f"mlmd-log serve: warning: {warning}")
    try:
        while not stop_requested.wait(0.5):
            pass
        announce("mlmd-log serve: shutting down, finishing in-flight calls")
        started = time.monotonic()
        server.stop()
        announce(f"mlmd-log serve: stopped in {time.monotonic() - started:.2f}s; store closed")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop(0)
    return 0
