"""Each node's read form, serialized once at write time, so reads need not rebuild it.

Building an Artifact from its row and property rows costs Python work per field (about
8 microseconds for a node with five properties); parsing the serialized message is
C work (under one microsecond). So beside MLMD's tables the engine keeps, per node,
``mlmdlog_<kind>_pb(id, pb)``: exactly the message the Reader would build from the
tables (same fields and presence, the type name, the stored doubles, the times),
written in the same transaction as the rows and rewritten whenever the node changes.

Forms are serialized deterministically (map entries by key): the same node gets the
same bytes whichever path wrote it, in any process.

It is a cache in the strict sense: MLMD's tables stay the truth, every filter runs on
them, and a node without a row here is read from them. So a value whose read form
only the tables decide (a double SQLite cannot hold, a string that looks like an
encoded struct, an Any without type_url) simply gets no row, and a projection built
before this table existed, or copied by a mirror, reads as before.
"""
from __future__ import annotations

import math
import struct
from typing import Any, Callable, Optional

from mlmd_log import schema
from mlmd_log.projections.values import STRUCT_PREFIX, mlmd_double
from mlmd_log.proto import metadata_store_pb2 as pb

# (The tables keep the ``_pb`` names of the first version: projections on disk have them.)
TABLES = {kind.name: kind.read_form_table for kind in schema.NODE_KINDS}

# Columns the engine always writes (so the Reader always sets them, "" included).
_ALWAYS_SET = {"artifact": ("uri",), "execution": (), "context": ("name",)}


def encode(kind: str, message_cls: type, node: Any, node_id: int, type_name: str, time_ms: int,
           read_double: Callable[[float], float], int_limit: Optional[int] = None) -> Optional[bytes]:
    """The serialized read form of a node just created from ``node``; None when only the
    tables can say what a read returns (the reader then builds it from them).

    ``node`` must carry no unknown fields (the engine drops them from every request). The
    node's own serialization with the stored fields appended: a parser keeps the last
    value of a field, and of a map key (doubles come back as MLMD stores them)."""
    if node.HasField("system_metadata"):  # not stored: the only field to take away
        node = _without(message_cls, node, "system_metadata")
    tags = _TAGS[message_cls]
    extra = []
    for map_tag, props in ((tags.properties, node.properties), (tags.custom_properties, node.custom_properties)):
        for name in props:
            value = props[name]
            readable, double = _read_back(value, read_double, int_limit)
            if not readable:
                return None
            if double is not None and double != value.double_value:
                extra.append(_double_entry(map_tag, name, double))
    parts = [node.SerializeToString(deterministic=True)]
    for name, empty in tags.always[kind]:
        if not node.HasField(name):
            parts.append(empty)
    parts.append(tags.id + varint(node_id) + tags.tail(type_name, time_ms))
    parts.extend(extra)
    return b"".join(parts)


def _without(message_cls: type, node: Any, field: str) -> Any:
    out = message_cls()
    out.CopyFrom(node)
    out.ClearField(field)
    return out


def varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int."""
    if value < 0x4000:  # (ids and lengths: one or two bytes, without the loop)
        return bytes((value,)) if value < 0x80 else bytes(((value & 0x7F) | 0x80, value >> 7))
    if value < 0x200000:
        return bytes(((value & 0x7F) | 0x80, ((value >> 7) & 0x7F) | 0x80, value >> 14))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field_key(number: int, wire_type: int) -> bytes:
    """The key (tag) of a field on the wire."""
    return varint((number << 3) | wire_type)


class _Tags:
    """Field keys of one node message, to append fields to its serialization."""

    def __init__(self, message_cls: type):
        fields = message_cls.DESCRIPTOR.fields_by_name
        self.id = field_key(fields["id"].number, 0)
        self.properties = field_key(fields["properties"].number, 2)
        self.custom_properties = field_key(fields["custom_properties"].number, 2)
        self.always = {kind: tuple((name, field_key(fields[name].number, 2) + b"\x00") for name in names
                                   if name in fields) for kind, names in _ALWAYS_SET.items()}
        self._type = field_key(fields["type"].number, 2)
        self._times = (field_key(fields["create_time_since_epoch"].number, 0),
                       field_key(fields["last_update_time_since_epoch"].number, 0))
        self._tails: dict[tuple[str, int], bytes] = {}

    def tail(self, type_name: str, time_ms: int) -> bytes:
        """type, create and update time: the same for every node of a type in one record."""
        key = (type_name, time_ms)
        tail = self._tails.get(key)
        if tail is None:
            if len(self._tails) > 64:
                self._tails.clear()
            name = type_name.encode("utf-8")
            time = varint(time_ms)
            tail = self._tails[key] = (self._type + varint(len(name)) + name
                                       + self._times[0] + time + self._times[1] + time)
        return tail


def _double_entry(map_tag: bytes, name: str, stored: float) -> bytes:
    """One map entry ``name -> Value(double_value=stored)``, overriding the given one."""
    key = name.encode("utf-8")
    value = _VALUE_DOUBLE + struct.pack("<d", stored)
    entry = b"\x0a" + varint(len(key)) + key + b"\x12" + varint(len(value)) + value
    return map_tag + varint(len(entry)) + entry


def normalise_properties(node: Any, read_double: Callable[[float], float], int_limit: Optional[int]) -> bool:
    """Turns every property value of ``node`` into what reading its stored columns gives
    (idempotent); False when only the tables can say."""
    for props in (node.properties, node.custom_properties):
        for name in props:
            value = props[name]
            readable, double = _read_back(value, read_double, int_limit)
            if not readable:
                return False
            if double is not None:
                value.double_value = double
    return True


def _read_back(value: Any, read_double: Callable[[float], float],
               int_limit: Optional[int]) -> tuple[bool, Optional[float]]:
    """Whether a read of this value's stored columns gives it back (False when only the
    tables can say: a NaN SQLite keeps as NULL, a -0.0, a string that reads as a struct,
    an Any without type_url, an int beyond the column), and for a double the value read."""
    which = value.WhichOneof("value")
    if which == "double_value":
        given = value.double_value
        if not math.isfinite(given) or (given == 0.0 and math.copysign(1.0, given) < 0):
            return False, None
        return True, read_double(mlmd_double(given))
    if which == "string_value":
        return not value.string_value.startswith(STRUCT_PREFIX), None
    if which == "proto_value":
        return bool(value.proto_value.type_url), None
    if which == "int_value":
        return int_limit is None or -int_limit <= value.int_value < int_limit, None
    return which in ("struct_value", "bool_value"), None


_TAGS = {kind.message: _Tags(kind.message) for kind in schema.NODE_KINDS}
_VALUE_DOUBLE = field_key(pb.Value.DESCRIPTOR.fields_by_name["double_value"].number, 1)
