"""Messages of ml_metadata/proto/metadata_store.proto, the same as ml-metadata's (see _runtime)."""
from mlmd_log.schemas import _runtime

DESCRIPTOR = _runtime.build("ml_metadata/proto/metadata_store.proto", __name__, globals())
