"""The standard gRPC health service (``grpc.health.v1.Health``: Check and Watch), without a dependency.

``grpcio-health-checking`` pins protobuf to its own release line (1.74-1.80: protobuf 6, 1.85: 7), so
depending on it would upgrade protobuf under ml-metadata (protobuf < 5) or kfp (protobuf 6) when
mlmd-log is installed beside them. The two messages are built here in a pool of their own, so they
never clash with that package's classes when both are loaded; the wire is the same.
"""
from __future__ import annotations

import threading
from typing import Any, Dict, Iterator

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool

from mlmd_log.schemas import runtime

SERVICE = "grpc.health.v1.Health"
UNKNOWN, SERVING, NOT_SERVING, SERVICE_UNKNOWN = 0, 1, 2, 3  # HealthCheckResponse.ServingStatus
_WATCH_POLL_SECONDS = 1.0  # how often a Watch stream notices that its client went away


def _build_messages() -> tuple:
    file = descriptor_pb2.FileDescriptorProto(name="mlmd_log/grpc_health_v1.proto", package="grpc.health.v1",
                                              syntax="proto3")
    request = file.message_type.add(name="HealthCheckRequest")
    request.field.add(name="service", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                      label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    response = file.message_type.add(name="HealthCheckResponse")
    status = response.enum_type.add(name="ServingStatus")
    for name, number in (("UNKNOWN", UNKNOWN), ("SERVING", SERVING), ("NOT_SERVING", NOT_SERVING),
                         ("SERVICE_UNKNOWN", SERVICE_UNKNOWN)):
        status.value.add(name=name, number=number)
    response.field.add(name="status", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_ENUM,
                       label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
                       type_name=".grpc.health.v1.HealthCheckResponse.ServingStatus")
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(file.SerializeToString())
    return (runtime.message_class(pool.FindMessageTypeByName("grpc.health.v1.HealthCheckRequest")),
            runtime.message_class(pool.FindMessageTypeByName("grpc.health.v1.HealthCheckResponse")))


HealthCheckRequest, HealthCheckResponse = _build_messages()


class HealthServicer:
    """Serving status per service name; Check answers it, Watch streams its changes. After
    ``enter_graceful_shutdown`` every service reads NOT_SERVING and stays so."""

    def __init__(self) -> None:
        self._status: Dict[str, int] = {}
        self._changed = threading.Condition()
        self._shutting_down = False

    def set(self, service: str, status: int) -> None:
        with self._changed:
            if self._shutting_down:
                return
            self._status[service] = status
            self._changed.notify_all()

    def enter_graceful_shutdown(self) -> None:
        with self._changed:
            self._shutting_down = True
            for service in self._status:
                self._status[service] = NOT_SERVING
            self._changed.notify_all()

    def status(self, service: str) -> int:
        with self._changed:
            return self._status.get(service, SERVICE_UNKNOWN)

    def check(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self._changed:
            status = self._status.get(request.service)
        if status is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Unknown service: {request.service!r}")
        return HealthCheckResponse(status=status)

    def watch(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        """The current status at once, then each change, until the client cancels or the server stops."""
        sent = None
        while context.is_active():
            with self._changed:
                status = self._status.get(request.service, SERVICE_UNKNOWN)
                if status == sent:
                    self._changed.wait(_WATCH_POLL_SECONDS)
                    continue
            sent = status
            yield HealthCheckResponse(status=status)

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(SERVICE, {
            "Check": grpc.unary_unary_rpc_method_handler(
                self.check, request_deserializer=HealthCheckRequest.FromString,
                response_serializer=HealthCheckResponse.SerializeToString),
            "Watch": grpc.unary_stream_rpc_method_handler(
                self.watch, request_deserializer=HealthCheckRequest.FromString,
                response_serializer=HealthCheckResponse.SerializeToString),
        })
