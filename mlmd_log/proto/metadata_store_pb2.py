"""Drop-in for ``ml_metadata.proto.metadata_store_pb2``."""
from mlmd_log.schemas.metadata_store_pb2 import *  # noqa: F401,F403
from mlmd_log.schemas import metadata_store_pb2 as _impl

DESCRIPTOR = _impl.DESCRIPTOR
