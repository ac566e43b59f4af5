"""Each node's read form, serialized once at write time, so reads need not rebuild it.

Building an Artifact from its row and property rows costs Python work per field (about
8 microseconds for a node with five properties); parsing the serialized message is
C work (under one microsecond). So beside MLMD's tables the engine keeps, per node,
``mlmdlog_<kind>_pb(id, pb)``: exactly the message the Reader would build from the
tables (same fields and presence, the type name, the stored doubles, the times),
written in the same transaction as the rows and rewritten whenever the node changes.

It is a cache in the strict sense: MLMD's tables stay the truth, every filter runs on
them, and a node without a row here is read from them. So a value whose read form
only the tables decide (a double SQLite cannot hold, a string that looks like an
encoded struct, an Any without type_url) simply gets no row, and a projection built
before this table existed, or copied by a mirror, reads as before.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional

from mlmd_log.projections.values import STRUCT_PREFIX, mlmd_double

TABLES = {"artifact": "mlmdlog_artifact_pb", "execution": "mlmdlog_execution_pb",
          "context": "mlmdlog_context_pb"}

# Columns the engine always writes (so the Reader always sets them, "" included).
_ALWAYS_SET = {"artifact": ("uri",), "execution": (), "context": ("name",)}
# Message fields that are not stored in the tables, so never read back.
_NOT_STORED = ("system_metadata",)


def encode(kind: str, message_cls: type, node: Any, node_id: int, type_name: str, time_ms: int,
           read_double: Callable[[float], float], int_limit: Optional[int] = None) -> Optional[bytes]:
    """The serialized read form of a node just created from ``node``; None when only the
    tables can say what a read returns (the reader then builds it from them)."""
    out = message_cls()
    out.CopyFrom(node)
    out.DiscardUnknownFields()
    for name in _NOT_STORED:
        out.ClearField(name)
    for name in _ALWAYS_SET[kind]:
        if not out.HasField(name):
            setattr(out, name, "")
    out.id = node_id
    out.type = type_name
    out.create_time_since_epoch = time_ms
    out.last_update_time_since_epoch = time_ms
    if not normalise_properties(out, read_double, int_limit):
        return None
    return out.SerializeToString()


def normalise_properties(node: Any, read_double: Callable[[float], float], int_limit: Optional[int]) -> bool:
    """Turns every property value of ``node`` into what reading its stored columns gives
    (idempotent); False when only the tables can say."""
    for props in (node.properties, node.custom_properties):
        for name in props:
            value = props[name]
            which = value.WhichOneof("value")
            if which in _AS_GIVEN and int_limit is None:  # (the common kinds, inline)
                continue
            if not _normalise(value, which, read_double, int_limit):
                return False
    return True


_AS_GIVEN = frozenset({"int_value", "bool_value", "struct_value"})  # read back as given (64-bit ints)


def _normalise(value: Any, which: Optional[str], read_double: Callable[[float], float],
               int_limit: Optional[int]) -> bool:
    """Turns ``value`` (whose oneof is ``which``) into what reading its stored columns
    gives; False when unsure."""
    if which == "double_value":
        stored = value.double_value
        if not math.isfinite(stored) or (stored == 0.0 and math.copysign(1.0, stored) < 0):
            return False
        value.double_value = read_double(mlmd_double(stored))
        return True
    if which == "string_value":
        return not value.string_value.startswith(STRUCT_PREFIX)
    if which == "proto_value":
        return bool(value.proto_value.type_url)
    if which == "int_value":
        return int_limit is None or -int_limit <= value.int_value < int_limit
    return which in ("struct_value", "bool_value")
