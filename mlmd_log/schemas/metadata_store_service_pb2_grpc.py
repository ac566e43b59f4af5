"""Client stub and servicer glue of ml_metadata.MetadataStoreService, the names protoc's gRPC plugin gives.

Made from the service descriptor with grpcio's long-standing public API, because the plugin's module
refuses any grpcio older than the grpcio-tools that wrote it.
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

import grpc

from mlmd_log.schemas import metadata_store_service_pb2 as _messages

SERVICE = _messages.DESCRIPTOR.services_by_name["MetadataStoreService"]


def _message_classes(method: Any) -> Tuple[Any, Any]:
    return getattr(_messages, method.input_type.name), getattr(_messages, method.output_type.name)


class MetadataStoreServiceStub:
    """One callable attribute per RPC, as in ml-metadata's generated stub."""

    def __init__(self, channel: grpc.Channel) -> None:
        for method in SERVICE.methods:
            request, response = _message_classes(method)
            setattr(self, method.name, channel.unary_unary(
                f"/{SERVICE.full_name}/{method.name}",
                request_serializer=request.SerializeToString, response_deserializer=response.FromString))


def _unimplemented(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
    context.set_code(grpc.StatusCode.UNIMPLEMENTED)
    context.set_details("Method not implemented!")
    raise NotImplementedError("Method not implemented!")


class MetadataStoreServiceServicer:
    """Base class of a servicer: every RPC answers UNIMPLEMENTED until overridden."""


for _method in SERVICE.methods:
    setattr(MetadataStoreServiceServicer, _method.name, _unimplemented)


def add_MetadataStoreServiceServicer_to_server(servicer: Any, server: grpc.Server) -> None:
    handlers: Dict[str, grpc.RpcMethodHandler] = {}
    for method in SERVICE.methods:
        request, response = _message_classes(method)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            getattr(servicer, method.name), request_deserializer=request.FromString,
            response_serializer=response.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),))
