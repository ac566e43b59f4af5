"""What the engine writes per node kind, and MLMD's rules that both its general path
and its step writer (steps.py) apply: which attributes make two nodes the same, and the
rows of an event's path.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable

from mlmd_log import schema
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.schemas import runtime

EXECUTION_KIND, ARTIFACT_KIND, CONTEXT_KIND = (k.type_kind for k in (schema.EXECUTION, schema.ARTIFACT, schema.CONTEXT))


@dataclass(frozen=True)
class NodeKind(schema.NodeKind):
    """A node kind (schema.py) with the columns the engine writes for it."""

    # Columns written on create, each with a getter from the node message.
    columns: tuple[tuple[str, Callable[[Any], Any]], ...] = ()
    # Columns rewritten on update (MLMD never renames artifacts or executions).
    update_columns: tuple[str, ...] = ()


def _opt(field_name: str) -> Callable[[Any], Any]:
    return lambda node: getattr(node, field_name) if node.HasField(field_name) else None


def _written(kind: schema.NodeKind, columns: tuple, update_columns: tuple[str, ...]) -> NodeKind:
    return NodeKind(**{f.name: getattr(kind, f.name) for f in fields(kind)}, columns=columns,
                    update_columns=update_columns)


ARTIFACT = _written(
    schema.ARTIFACT,
    (("type_id", lambda n: n.type_id), ("uri", lambda n: n.uri), ("state", _opt("state")),
     ("name", _opt("name")), ("external_id", _opt("external_id"))),
    ("type_id", "uri", "state", "external_id"),
)
EXECUTION = _written(
    schema.EXECUTION,
    (("type_id", lambda n: n.type_id), ("last_known_state", _opt("last_known_state")),
     ("name", _opt("name")), ("external_id", _opt("external_id"))),
    ("type_id", "last_known_state", "external_id"),
)
CONTEXT = _written(
    schema.CONTEXT,
    (("type_id", lambda n: n.type_id), ("name", lambda n: n.name), ("external_id", _opt("external_id"))),
    ("type_id", "name", "external_id"),
)
_IGNORED_IN_DIFF = {"type_id", "properties", "custom_properties", "create_time_since_epoch",
                    "last_update_time_since_epoch"}


def event_path_rows(event_id: int, event: pb.Event) -> list[tuple]:
    """The EventPath rows of an event's path: (event_id, is_index_step, step_index, step_key)."""
    rows = []
    for step in event.path.steps:
        which = step.WhichOneof("value")
        if which == "index":
            rows.append((event_id, 1, step.index, None))
        elif which == "key":
            rows.append((event_id, 0, None, step.key))
    return rows


def same_attributes(node: Any, stored: Any) -> bool:
    """MLMD's MessageDifferencer check, ignoring type_id, properties and times."""
    has_node, has_stored = node.HasField, stored.HasField
    for name in _COMPARED_FIELDS[type(node)]:
        present = has_node(name)
        if present != has_stored(name) or (present and getattr(node, name) != getattr(stored, name)):
            return False
    return True


_COMPARED_FIELDS = {message: tuple(fd.name for fd in message.DESCRIPTOR.fields
                                   if fd.name not in _IGNORED_IN_DIFF and not runtime.is_repeated(fd))
                    for message in (pb.Artifact, pb.Execution, pb.Context)}
