"""Drop-in for ``ml_metadata.proto.metadata_store_service_pb2_grpc``."""
from mlmd_log.schemas.metadata_store_service_pb2_grpc import *  # noqa: F401,F403
