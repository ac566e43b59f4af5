"""Messages of the log envelope, mlmd_log/schemas/log_record.proto (see runtime)."""
from mlmd_log.schemas import runtime

DESCRIPTOR = runtime.build("mlmd_log/schemas/log_record.proto", __name__, globals())
