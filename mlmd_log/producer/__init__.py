"""The log layer: the ``Log`` interface and its backends.

``FileLog`` is the embedded durable log (segment files, CRC framing, torn-tail
recovery, one locked writer, group commit); ``MemoryLog`` backs ``fake_database``.
"""
from mlmd_log.producer.base import Log
from mlmd_log.producer.file_log import FileLog
from mlmd_log.producer.memory_log import MemoryLog

__all__ = ["Log", "FileLog", "MemoryLog", "KafkaLog"]


def __getattr__(name: str):
    """KafkaLog on first use: kafka-python is an optional extra."""
    if name == "KafkaLog":
        from mlmd_log.producer.kafka_log import KafkaLog
        return KafkaLog
    raise AttributeError(name)
