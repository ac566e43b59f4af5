"""Replays a recorded call sequence against one MLMD implementation.

Runs under either interpreter: the official ``ml_metadata`` (in its own venv)
or ``mlmd_log``.  The two cannot share a process (they register the same proto
symbols), so the oracle test runs this file once per library:

    python tests/support/oracle/runner.py --lib ml_metadata|mlmd_log --calls calls.json --out results.json

A call is plain JSON: ``{"method": name, "args": [...], "kwargs": {...}}``.
Proto arguments are ``{"$proto": "Artifact", "b64": <serialized bytes>}``,
list options are ``{"$list_options": {"limit", "order_by", "is_asc",
"filter_query"}}``; everything else (ints, strings, bools, lists, null) is
passed as is.

A result is the encoded return value, or ``{"$error": class name, "message":
text}``.  Protos are serialized deterministically after the timestamps that
legitimately differ between runs are cleared, so two results are equal iff
their JSON (minus the human-readable ``text`` and error ``message``) is equal.

This module imports no MLMD library at import time, so the test process can use
its comparison helpers too.
"""
from __future__ import annotations

import argparse
import base64
import json
import sys
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace
from typing import Any, Callable, Optional

# Output-only timestamps: they come from the wall clock (ml_metadata) or the log
# record (mlmd_log), so they legitimately differ and are cleared before comparing.
TIME_FIELDS = frozenset(
    {"create_time_since_epoch", "last_update_time_since_epoch", "milliseconds_since_epoch"}
)


def _is_repeated(field: Any) -> bool:
    """protobuf 4 (the reference) has FieldDescriptor.label; protobuf 7 only is_repeated."""
    flag = getattr(field, "is_repeated", None)
    return bool(flag) if flag is not None else field.label == field.LABEL_REPEATED


@dataclass
class Library:
    """What a run needs from one implementation."""

    name: str
    store_class: type
    pb2: ModuleType
    list_options_class: Callable[..., Any]
    order_by_field: Any


def load_library(name: str) -> Library:
    """Imports ``ml_metadata`` or ``mlmd_log`` and returns its entry points."""
    if name == "ml_metadata":
        import ml_metadata
        from ml_metadata.metadata_store import metadata_store as store_module
        from ml_metadata.proto import metadata_store_pb2

        # It retries AbortedError up to 5 times with random sleeps of ~2 s; the
        # retries are kept (they are part of its behaviour) but not the waiting.
        store_module.time = SimpleNamespace(sleep=lambda seconds: None)

        return Library(name, ml_metadata.MetadataStore, metadata_store_pb2,
                       ml_metadata.ListOptions, ml_metadata.OrderByField)
    if name == "mlmd_log":
        import mlmd_log
        from mlmd_log.proto import metadata_store_pb2

        return Library(name, mlmd_log.MetadataStore, metadata_store_pb2, mlmd_log.ListOptions,
                       mlmd_log.OrderByField)
    raise ValueError(f"unknown library {name!r}")


def new_in_memory_store(lib: Library):
    config = lib.pb2.ConnectionConfig()
    config.fake_database.SetInParent()
    return lib.store_class(config)


# ---------------------------------------------------------------- arguments

def encode_proto_arg(message) -> dict:
    return {
        "$proto": type(message).DESCRIPTOR.name,
        "b64": base64.b64encode(message.SerializeToString(deterministic=True)).decode("ascii"),
    }


def encode_arg(value: Any) -> Any:
    """Python argument (protos, lists, tuples, scalars) -> JSON."""
    if hasattr(value, "DESCRIPTOR") and hasattr(value, "SerializeToString"):
        return encode_proto_arg(value)
    if isinstance(value, (list, tuple)):
        return [encode_arg(v) for v in value]
    if isinstance(value, dict):
        return {k: encode_arg(v) for k, v in value.items()}
    return value


def decode_arg(value: Any, lib: Library) -> Any:
    """JSON -> Python argument for ``lib``."""
    if isinstance(value, list):
        return [decode_arg(v, lib) for v in value]
    if isinstance(value, dict):
        if "$proto" in value:
            message = _message_class(lib.pb2, value["$proto"])()
            message.ParseFromString(base64.b64decode(value["b64"]))
            return message
        if "$list_options" in value:
            spec = value["$list_options"]
            order_by = spec.get("order_by")
            return lib.list_options_class(
                limit=spec.get("limit"),
                order_by=getattr(lib.order_by_field, order_by) if order_by else None,
                is_asc=spec.get("is_asc", True),
                filter_query=spec.get("filter_query"),
            )
        return {k: decode_arg(v, lib) for k, v in value.items()}
    return value


def _message_class(pb2: ModuleType, name: str):
    """Finds a message class by (possibly nested, dotted) name in metadata_store_pb2."""
    obj: Any = pb2
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def list_options(limit=None, order_by=None, is_asc=True, filter_query=None) -> dict:
    """The JSON form of a ListOptions argument (order_by: 'ID' | 'CREATE_TIME' | 'UPDATE_TIME')."""
    spec = {"limit": limit, "order_by": order_by, "is_asc": is_asc, "filter_query": filter_query}
    return {"$list_options": {k: v for k, v in spec.items() if v is not None}}


# ------------------------------------------------------------------ results

# Messages whose repeated fields are sets: MLMD itself returns them in varying
# order from run to run (e.g. a LineageGraph's attributions), so they are sorted.
UNORDERED_MESSAGES = frozenset({"LineageGraph"})


def sort_repeated_fields(message) -> None:
    """Sorts every repeated message field by its deterministic serialization, in place."""
    for field, value in message.ListFields():
        if _is_repeated(field) and field.message_type is not None \
                and not field.message_type.GetOptions().map_entry:
            items = sorted(value, key=lambda m: m.SerializeToString(deterministic=True))
            copies = [type(m)() for m in items]
            for c, m in zip(copies, items):
                c.CopyFrom(m)
            message.ClearField(field.name)
            getattr(message, field.name).extend(copies)


def clear_timestamps(message) -> None:
    """Clears the wall-clock fields, recursively, in place."""
    for field, value in message.ListFields():
        if field.name in TIME_FIELDS:
            message.ClearField(field.name)
        elif field.message_type is not None:
            if field.message_type.GetOptions().map_entry:
                value_field = field.message_type.fields_by_name["value"]
                if value_field.message_type is not None:
                    for item in value.values():
                        clear_timestamps(item)
            elif _is_repeated(field):
                for item in value:
                    clear_timestamps(item)
            else:
                clear_timestamps(value)


def encode_result(value: Any) -> Any:
    """Return value -> normalised JSON (keeps list vs tuple, int vs bool, None)."""
    if hasattr(value, "DESCRIPTOR") and hasattr(value, "SerializeToString"):
        copy = type(value)()
        copy.CopyFrom(value)
        clear_timestamps(copy)
        if type(value).DESCRIPTOR.name in UNORDERED_MESSAGES:
            sort_repeated_fields(copy)
        from google.protobuf import text_format

        return {
            "$proto": type(value).DESCRIPTOR.full_name,
            "b64": base64.b64encode(copy.SerializeToString(deterministic=True)).decode("ascii"),
            "text": text_format.MessageToString(copy, as_one_line=True),
        }
    if isinstance(value, tuple):
        return {"$tuple": [encode_result(v) for v in value]}
    if isinstance(value, list):
        return [encode_result(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return {"$other": type(value).__name__, "repr": repr(value)}


def encode_error(error: BaseException) -> dict:
    return {"$error": type(error).__name__, "message": str(error)}


def comparable(result: Any) -> Any:
    """Drops what need not match: readable proto text and error message text."""
    if isinstance(result, list):
        return [comparable(v) for v in result]
    if isinstance(result, dict):
        if "$error" in result:
            return {"$error": result["$error"]}
        return {k: comparable(v) for k, v in result.items() if k not in ("text", "message")}
    return result


def readable(result: Any) -> Any:
    """The human form of a result, for diffs: proto text instead of bytes."""
    if isinstance(result, list):
        return [readable(v) for v in result]
    if isinstance(result, dict):
        if "$proto" in result and "text" in result:
            return f"{result['$proto']}{{{result['text']}}}"
        if "$tuple" in result:
            return tuple(readable(v) for v in result["$tuple"])
        return {k: readable(v) for k, v in result.items()}
    return result


def readable_call(call: dict, pb2: Optional[ModuleType] = None) -> str:
    """A call as text; protos shown decoded when ``pb2`` is given."""
    from google.protobuf import text_format

    def show(v):
        if isinstance(v, list):
            return [show(x) for x in v]
        if isinstance(v, dict) and "$proto" in v:
            if pb2 is None:
                return f"{v['$proto']}(b64={v['b64']})"
            m = _message_class(pb2, v["$proto"])()
            m.ParseFromString(base64.b64decode(v["b64"]))
            return f"{v['$proto']}{{{text_format.MessageToString(m, as_one_line=True)}}}"
        if isinstance(v, dict):
            return {k: show(x) for k, x in v.items()}
        return v

    return f"{call['method']}(args={show(call.get('args', []))}, kwargs={show(call.get('kwargs', {}))})"


def first_mismatch(calls: list, expected: list, actual: list) -> Optional[str]:
    """None if the result lists agree call by call, else a readable report."""
    for i, (exp, act) in enumerate(zip(expected, actual)):
        if comparable(exp) != comparable(act):
            return (
                f"first mismatch at call #{i} of {len(calls)}: {calls[i]['method']}\n"
                f"  call:     {readable_call(calls[i], _our_pb2())}\n"
                f"  expected: {readable(exp)}\n"
                f"  actual:   {readable(act)}"
            )
    if len(expected) != len(actual):
        return f"result counts differ: expected {len(expected)}, actual {len(actual)}"
    return None


def _our_pb2() -> Optional[ModuleType]:
    """mlmd_log's metadata_store_pb2 if importable here, just to print protos in diffs."""
    try:
        from mlmd_log.proto import metadata_store_pb2
    except Exception:  # noqa: BLE001 - only for display
        return None
    return metadata_store_pb2


# ------------------------------------------------------------------ running

class Session:
    """One fresh in-memory store of one library, executing JSON calls."""

    def __init__(self, lib: Library):
        self.lib = lib
        self.store = new_in_memory_store(lib)

    def call_raw(self, call: dict) -> tuple[Any, Optional[BaseException]]:
        """Executes a call; returns (return value, None) or (None, exception)."""
        method = getattr(self.store, call["method"])
        args = decode_arg(call.get("args", []), self.lib)
        kwargs = decode_arg(call.get("kwargs", {}), self.lib)
        try:
            return method(*args, **kwargs), None
        except Exception as error:  # noqa: BLE001 - every failure is a result
            return None, error

    def call(self, call: dict) -> Any:
        value, error = self.call_raw(call)
        return encode_error(error) if error is not None else encode_result(value)


def run_calls(lib_name: str, calls: list) -> list:
    session = Session(load_library(lib_name))
    return [session.call(call) for call in calls]


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lib", required=True, choices=["ml_metadata", "mlmd_log"])
    parser.add_argument("--calls", required=True, help="JSON file: list of calls, or {'calls': [...]}")
    parser.add_argument("--out", required=True, help="JSON file to write the results to")
    options = parser.parse_args(argv)
    with open(options.calls) as f:
        data = json.load(f)
    calls = data["calls"] if isinstance(data, dict) else data
    results = run_calls(options.lib, calls)
    with open(options.out, "w") as f:
        json.dump({"lib": options.lib, "results": results}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
