"""MLMD's ``MetadataStoreService`` over grpcio, backed by the RPC-level core.

Every RPC of the service descriptor becomes a method that forwards the request to
``transport.call(rpc, request)``; there is no per-RPC code, so the server can never
drift from the core. An MLMD error becomes the gRPC status with the same code and
the MLMD message as details, exactly what the official client turns back into the
same ``ml_metadata.errors`` class.

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
from mlmd_log.proto import metadata_store_service_pb2 as svc
from mlmd_log.proto import metadata_store_service_pb2_grpc as rpc_pb
from mlmd_log.server.config import HEALTH_SERVICE_NAME, ServeConfig

log = logging.getLogger("mlmd_log.server")

SERVICE = svc.DESCRIPTOR.services_by_name["MetadataStoreService"]
RPC_NAMES: tuple[str, ...] = tuple(method.name for method in SERVICE.methods)
_STATUS_BY_CODE: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


def grpc_status(error: errors.StatusError) -> grpc.StatusCode:
    """MLMD's canonical code as a gRPC status (the numbers are the same)."""
    return _STATUS_BY_CODE.get(error.error_code, grpc.StatusCode.UNKNOWN)


class _InFlight:
    """Counts running handlers so the store is closed only after the last one returns."""

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


class MetadataStoreServicer(rpc_pb.MetadataStoreServiceServicer):
    """Forwards each of the 52 RPCs to the core; methods are generated from the descriptor."""

    def __init__(self, transport: Any):
        self.transport = transport
        self.in_flight = _InFlight()

    def _handle(self, rpc: str, request: Any, context: grpc.ServicerContext) -> Any:
        if not self.in_flight.enter():
            context.abort(grpc.StatusCode.UNAVAILABLE, "mlmd-log server is shutting down")
        try:
            result, message = self._run(rpc, request, context)
        finally:
            self.in_flight.leave()
        if isinstance(result, grpc.StatusCode):
            context.abort(result, message)  # raises; grpc sends the status with the MLMD message
        return result

    def _run(self, rpc: str, request: Any, context: grpc.ServicerContext) -> tuple[Any, str]:
        """(response, "") or (gRPC status, details): never raises, so abort happens outside."""
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            return grpc.StatusCode.DEADLINE_EXCEEDED, f"Deadline exceeded before {rpc} started"
        try:
            return self.transport.call(rpc, request), ""
        except errors.StatusError as exc:
            if exc.error_code not in (errors.NOT_FOUND, errors.ALREADY_EXISTS):
                log.info("%s failed: %s: %s", rpc, type(exc).__name__, exc.message)
            return grpc_status(exc), exc.message
        except Exception as exc:  # a bug, not a client error: INTERNAL, as MLMD reports one
            log.exception("%s raised", rpc)
            return grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}"


def _forwarder(rpc: str) -> Callable[..., Any]:
    def method(self: MetadataStoreServicer, request: Any, context: grpc.ServicerContext) -> Any:
        return self._handle(rpc, request, context)

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
        from grpc_health.v1 import health, health_pb2, health_pb2_grpc

        self.config = config
        self.transport = transport if transport is not None else _open_store(config.store)
        self.servicer = MetadataStoreServicer(self.transport)
        self._executor = futures.ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="mlmd-rpc")
        options = [("grpc.max_receive_message_length", config.max_message_bytes),
                   ("grpc.max_send_message_length", config.max_message_bytes),
                   ("grpc.so_reuseport", 0)] + list(config.channel_arguments)
        self._server = grpc.server(self._executor, options=options,
                                   maximum_concurrent_rpcs=config.max_concurrent_rpcs)
        rpc_pb.add_MetadataStoreServiceServicer_to_server(self.servicer, self._server)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        self._serving = health_pb2.HealthCheckResponse.SERVING
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
            self.health.set(name, self._serving)
        return self

    def stop(self, grace: Optional[float] = None) -> None:
        """Stops taking calls, lets in-flight ones finish (up to ``grace`` s), closes the store."""
        with self._stop_lock:
            if self._stopped.is_set():
                return
            grace = self.config.grace_seconds if grace is None else grace
            self.health.enter_graceful_shutdown()
            self._server.stop(grace).wait()
            # Handlers the grace period cut off still run to their end in their threads
            # (their puts are durable, their callers saw CANCELLED); wait for them.
            self.servicer.in_flight.close_and_wait()
            self._executor.shutdown(wait=True)
            self.transport.close()
            self._stopped.set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self._stopped.wait(timeout)

    def __enter__(self) -> "MetadataStoreServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _open_store(store: Any) -> Any:
    """The transport behind the server: an embedded store, or a writer on a shared log."""
    from mlmd_log.service import open_transport

    return open_transport(store, "mlmd-log-server")


def _describe(store: Any) -> str:
    from mlmd_log.service import StoreConfig

    if isinstance(store, StoreConfig):
        return f"log {store.log_path or 'memory'}, projection {store.sqlite_path}"
    return f"shared log {store.log_url}, projection {store.projection_url}"


def serve(config: ServeConfig, announce: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)) -> int:
    """Runs a server until SIGTERM or SIGINT, then shuts down gracefully. Returns the exit code."""
    server = MetadataStoreServer(config).start()
    stop_requested = threading.Event()
    previous = stop_on_signals(stop_requested)
    announce(f"mlmd-log serve: listening on {config.host}:{server.port} "
             f"({'TLS' if config.ssl is not None else 'insecure'}; {_describe(config.store)})")
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
