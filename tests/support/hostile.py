"""Hostile requests for every RPC of MLMD's service, built from the messages' descriptors:
shared by the walk over every RPC (test_every_rpc.py) and the fuzz tests (test_fuzz.py)."""
from __future__ import annotations

import math
from typing import Any, Iterator

from google.protobuf import any_pb2, struct_pb2
from google.protobuf.descriptor import FieldDescriptor

from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.proto import metadata_store_service_pb2 as svc
from mlmd_log.schemas import runtime

SERVICE = svc.DESCRIPTOR.services_by_name["MetadataStoreService"]
RPCS = [method.name for method in SERVICE.methods]

INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1
HUGE_LIST = 40_000  # ids in one request: past SQLite's 32766 variables
STRINGS = ["", "\x00", "nul\x00inside", "x" * 200_000, "' OR 1=1 --", "%_\\", "mlmd-struct::!!", "\u00e9\u4e2d\U0001f600"]
INTS = [-1, 0, 1, 2, INT32_MAX, INT64_MAX, -INT64_MAX - 1]
DOUBLES = [math.nan, math.inf, -math.inf, -0.0, 1e308]
FILTERS = ["", "(", "id = ", "name = 'a' AND", "NOT " * 2000 + "id = 1",
           " OR ".join(f"id = {i}" for i in range(1200)),
           "id IN (" + ", ".join(str(i) for i in range(40_000)) + ")",
           " AND ".join(f"contexts_{i}.name = 'c'" for i in range(100)),
           " AND ".join(f"parent_contexts_{i}.name = 'c'" for i in range(70)),
           "custom_properties.x.double_value > 1e999", "properties.'\x00'.int_value = 1",
           "create_time_since_epoch = 99999999999999999999999", "uri LIKE '" + "%_" * 5000 + "'",
           "events_0.execution_id = 1 AND events_1.artifact_id = 2", "type = 1", "id = 'x'", "\x00"]
PAGE_TOKENS = ["", "!!!", "AAAA", "eyJpZCI6MX0", "x" * 10_000]


def nested_struct(depth: int) -> struct_pb2.Struct:
    top = struct_pb2.Struct()
    inner = top
    for _ in range(depth):
        inner = inner.fields["a"].struct_value
    return top


def nested_list_struct(depth: int) -> struct_pb2.Struct:
    top = struct_pb2.Struct()
    value = top.fields["a"]
    for _ in range(depth):
        value = value.list_value.values.add()
    return top


def hostile_values() -> Iterator[pb.Value]:
    """Property values of every kind, each odd in its own way."""
    for number in INTS:
        yield pb.Value(int_value=number)
    for double in DOUBLES:
        yield pb.Value(double_value=double)
    for text in STRINGS[:4] + ["mlmd-struct::!!"]:
        yield pb.Value(string_value=text)
    for depth in (150, 40):
        value = pb.Value()
        value.struct_value.CopyFrom(nested_struct(depth))
        yield value
    value = pb.Value()
    value.struct_value.CopyFrom(nested_list_struct(60))
    yield value
    value = pb.Value()
    value.struct_value.fields["n"].number_value = math.nan
    yield value
    yield pb.Value(proto_value=any_pb2.Any(type_url="type.googleapis.com/ml_metadata.Artifact", value=b"\xff\xff"))
    yield pb.Value(proto_value=any_pb2.Any(type_url="", value=b"\x08\x01"))
    yield pb.Value(proto_value=any_pb2.Any(type_url="type.googleapis.com/no.Such", value=b"\x08\x01"))
    yield pb.Value(bool_value=True)
    yield pb.Value()


def _scalars(field: FieldDescriptor) -> list:
    if field.type == FieldDescriptor.TYPE_STRING:
        return STRINGS
    if field.type == FieldDescriptor.TYPE_BYTES:
        return [b"", b"\xff\x00"]
    if field.type == FieldDescriptor.TYPE_BOOL:
        return [True, False]
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return DOUBLES
    if field.type == FieldDescriptor.TYPE_ENUM:
        return [v.number for v in field.enum_type.values]
    if field.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        return [-1, 0, 1, INT32_MAX, -INT32_MAX - 1]
    if field.type in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return [0, 1, 2**32 - 1]
    if field.type in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return [0, 1, 2**64 - 1]
    return INTS


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def fill(message: Any, depth: int = 0) -> Any:
    """``message`` with every field set to a plausible value (ids 1 and 2, names 'a'), so
    that each hostile variant changes one thing in a request that reaches deep code."""
    for field in message.DESCRIPTOR.fields:
        if field.containing_oneof is not None and message.WhichOneof(field.containing_oneof.name):
            continue
        repeated = runtime.is_repeated(field)
        if _is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                getattr(message, field.name)["a"].int_value = 1
            else:
                getattr(message, field.name)["a"] = pb.STRING
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth >= 4 or field.message_type.full_name.startswith("google.protobuf"):
                continue
            target = getattr(message, field.name).add() if repeated else getattr(message, field.name)
            fill(target, depth + 1)
            if not repeated:
                target.SetInParent()
        else:
            plain = _plain_scalar(field)
            if plain is None:
                continue
            if repeated:
                getattr(message, field.name).append(plain)
            else:
                setattr(message, field.name, plain)
    return message


def _plain_scalar(field: FieldDescriptor) -> Any:
    if field.name == "filter_query" or field.name == "next_page_token":
        return None
    if field.type == FieldDescriptor.TYPE_STRING:
        return "a"
    if field.type == FieldDescriptor.TYPE_BYTES:
        return b""
    if field.type == FieldDescriptor.TYPE_BOOL:
        return False
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return 1.0
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values[-1].number
    return 1


def variants(request_class: type) -> Iterator[tuple[str, Any]]:
    """(what, request) pairs: an empty request, a plausible one, then the plausible one
    with one field (at any depth up to 3) made hostile."""
    yield "empty", request_class()
    base = fill(request_class())
    yield "plausible", base
    for path, mutate in _mutations(request_class.DESCRIPTOR, ()):
        request = request_class()
        request.CopyFrom(base)
        try:
            mutate(_resolve(request, path))
        except (ValueError, TypeError):  # (protobuf refuses the value itself: nothing to send)
            continue
        yield "/".join(path), request


def _resolve(message: Any, path: tuple) -> Any:
    """The message at ``path`` (field names; repeated fields: their first element, added)."""
    for name in path[:-1]:
        field = getattr(message, name)
        if hasattr(field, "add"):
            message = field[0] if len(field) else field.add()
        else:
            message = field
    return message


def _mutations(descriptor: Any, path: tuple, depth: int = 0) -> Iterator[tuple[tuple, Any]]:
    for field in descriptor.fields:
        here = path + (field.name,)
        name = field.name
        repeated = runtime.is_repeated(field)
        if _is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                for value in hostile_values():
                    yield here, _map_value_setter(name, "\x00k" if value.HasField("bool_value") else "k", value)
            else:
                yield here, _enum_map_setter(name)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.full_name == "google.protobuf.Any":
                yield here, _any_setter(name, repeated)
                continue
            if field.message_type.full_name.startswith("google.protobuf"):
                continue
            if repeated:
                yield here, _repeat_setter(name, 1000)
                yield here, _clear_setter(name)
            if depth < 3:
                yield from _mutations(field.message_type, here, depth + 1)
        elif repeated and field.type in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_INT32):
            yield here, _list_setter(name, [-1, 0, INT64_MAX] if field.type == FieldDescriptor.TYPE_INT64 else [-1, 0])
            yield here, _list_setter(name, list(range(1, HUGE_LIST + 1)))
        elif repeated:
            for value in _scalars(field)[:4]:
                yield here, _list_setter(name, [value, value])
            if field.type == FieldDescriptor.TYPE_STRING:
                yield here, _list_setter(name, [f"s{i}" for i in range(HUGE_LIST)])
        elif name == "filter_query":
            for text in FILTERS:
                yield here, _scalar_setter(name, text)
        elif name == "next_page_token":
            for text in PAGE_TOKENS:
                yield here, _scalar_setter(name, text)
        else:
            for value in _scalars(field):
                yield here, _scalar_setter(name, value)


def _scalar_setter(name: str, value: Any):
    return lambda message: setattr(message, name, value)


def _list_setter(name: str, values: list):
    def set_list(message: Any) -> None:
        del getattr(message, name)[:]
        getattr(message, name).extend(values)
    return set_list


def _repeat_setter(name: str, times: int):
    def repeat(message: Any) -> None:
        field = getattr(message, name)
        first = field[0] if len(field) else field.add()
        for _ in range(times - 1):
            field.add().CopyFrom(first)
    return repeat


def _clear_setter(name: str):
    return lambda message: message.ClearField(name)


def _map_value_setter(name: str, key: str, value: pb.Value):
    def set_value(message: Any) -> None:
        getattr(message, name)[key].CopyFrom(value)
    return set_value


def _enum_map_setter(name: str):
    def set_value(message: Any) -> None:
        getattr(message, name)["\x00"] = pb.PROTO
        getattr(message, name)["x" * 5000] = pb.UNKNOWN
    return set_value


def _any_setter(name: str, repeated: bool):
    def set_any(message: Any) -> None:
        field = getattr(message, name)
        target = field.add() if repeated else field
        target.type_url = "type.googleapis.com/ml_metadata.Artifact"
        target.value = b"\xff\xff\xff"
    return set_any


def request_class(rpc: str) -> type:
    return getattr(svc, rpc + "Request")
