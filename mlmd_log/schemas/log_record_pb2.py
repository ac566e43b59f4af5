"""Messages of the log envelope, mlmd_log/schemas/log_record.proto (see _runtime)."""
from mlmd_log.schemas import _runtime

DESCRIPTOR = _runtime.build("mlmd_log/schemas/log_record.proto", __name__, globals())
