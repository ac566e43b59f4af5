"""A client of an MLMD gRPC server (ours or ml-metadata's)."""
from __future__ import annotations

import os
from typing import Any

from mlmd_log import errors
from mlmd_log.client.transport import closed_error
from mlmd_log.proto import metadata_store_pb2 as pb

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
