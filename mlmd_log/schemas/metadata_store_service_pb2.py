"""Messages of ml_metadata/proto/metadata_store_service.proto, the same as ml-metadata's (see runtime)."""
from mlmd_log.schemas import runtime

DESCRIPTOR = runtime.build("ml_metadata/proto/metadata_store_service.proto", __name__, globals())
