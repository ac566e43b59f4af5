"""MLMD's three node kinds (artifact, execution, context), declared once.

Writer, mirrors, reader and filter compiler all address the same tables; each kind's
table names, owner column, ``Type.type_kind`` number and messages live here so that
no module restates them.
"""
from __future__ import annotations

from dataclasses import dataclass

from mlmd_log.proto import metadata_store_pb2 as pb


@dataclass(frozen=True)
class NodeKind:
    """The names one node kind has in MLMD's schema and API."""

    name: str  # "artifact" | "execution" | "context"
    plural: str  # "artifacts" ... (in query names and the DuckDB view names)
    table: str  # the node table ("Artifact")
    prop_table: str  # its property table ("ArtifactProperty")
    owner: str  # the column naming the node in property, event and link tables ("artifact_id")
    type_kind: int  # `Type`.`type_kind` of this kind's types
    message: type  # the node message (pb.Artifact)
    type_message: type  # the type message (pb.ArtifactType)
    read_form_table: str  # the node's serialized read forms (projections/read_forms.py)


def _kind(name: str, type_kind: int, message: type, type_message: type) -> NodeKind:
    table = name.capitalize()
    return NodeKind(name, name + "s", table, table + "Property", name + "_id", type_kind, message,
                    type_message, f"mlmdlog_{name}_pb")


# type_kind numbers as ml-metadata stores them (its TypeKind enum).
EXECUTION = _kind("execution", 0, pb.Execution, pb.ExecutionType)
ARTIFACT = _kind("artifact", 1, pb.Artifact, pb.ArtifactType)
CONTEXT = _kind("context", 2, pb.Context, pb.ContextType)

NODE_KINDS = (ARTIFACT, EXECUTION, CONTEXT)
BY_NAME = {kind.name: kind for kind in NODE_KINDS}
BY_TYPE_MESSAGE = {kind.type_message: kind for kind in NODE_KINDS}
