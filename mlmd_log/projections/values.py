"""How MLMD property values and type structs are stored in the v10 tables.

The writing side of the encoding (the projector); the query layer's Reader decodes
the same columns and takes STRUCT_PREFIX from here. What the official library does:
- doubles pass through C++ ``std::to_string`` in MLMD, i.e. six decimals;
- ``struct_value`` lives in ``string_value`` as ``mlmd-struct::`` + base64(Struct);
- ``proto_value`` lives in ``proto_value`` as base64(Any), as text;
- ExecutionType input/output ``ArtifactStructType`` are compact JSON.
"""
from __future__ import annotations

import base64
import json
import math
from typing import Any, Optional

from google.protobuf import json_format

from mlmd_log.errors import InternalError, InvalidArgumentError
from mlmd_log.proto import metadata_store_pb2 as pb

STRUCT_PREFIX = "mlmd-struct::"
# The Value field a property of each declared PropertyType must set.
VALUE_FIELD = {pb.INT: "int_value", pb.DOUBLE: "double_value", pb.STRING: "string_value",
               pb.STRUCT: "struct_value", pb.PROTO: "proto_value", pb.BOOLEAN: "bool_value"}



def mlmd_double(value: float) -> float:
    """The double MLMD actually stores: it binds doubles with six decimals."""
    return float("%f" % value)


def non_finite_double_error(double: float) -> InternalError:
    """What ml-metadata answers a NaN or infinite double property with: its SQL has no
    literal for one, so the insert fails (InternalError). Stored as SQL NULL, it would be a
    property no read can give back."""
    return InternalError(f"A double property value is {double}: MLMD stores only finite doubles "
                         "(SQL has no NaN or infinity)")


def encode_value(value: pb.Value) -> tuple[Any, Any, Any, Any, Any, Any]:
    """A Value as the property table's (int, double, string, byte, proto, bool) columns."""
    kind = value.WhichOneof("value")
    if kind == "int_value":
        return (value.int_value, None, None, None, None, None)
    if kind == "double_value":
        double = value.double_value
        if not math.isfinite(double):
            raise non_finite_double_error(double)
        return (None, mlmd_double(double), None, None, None, None)
    if kind == "string_value":
        return (None, None, value.string_value, None, None, None)
    if kind == "struct_value":
        raw = value.struct_value.SerializeToString(deterministic=True)
        return (None, None, STRUCT_PREFIX + base64.b64encode(raw).decode("ascii"), None, None, None)
    if kind == "proto_value":
        raw = value.proto_value.SerializeToString(deterministic=True)
        return (None, None, None, None, base64.b64encode(raw).decode("ascii"), None)
    if kind == "bool_value":
        return (None, None, None, None, None, 1 if value.bool_value else 0)
    raise InvalidArgumentError("A property value has no value set (one of int_value, double_value, "
                               "string_value, struct_value, proto_value, bool_value is required).")


def struct_type_to_json(message: Optional[pb.ArtifactStructType]) -> Optional[str]:
    """ArtifactStructType as the compact JSON MLMD stores in Type.input_type/output_type
    (the Reader parses it back with json_format)."""
    if message is None:
        return None
    as_dict = json_format.MessageToDict(message, preserving_proto_field_name=False)
    return json.dumps(as_dict, separators=(",", ":"))
