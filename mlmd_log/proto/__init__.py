"""Import path matching ``ml_metadata.proto`` so code can switch with one import."""
from mlmd_log.proto import metadata_store_pb2, metadata_store_service_pb2  # noqa: F401
