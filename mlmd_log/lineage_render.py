"""Lineage you can look at: a node's lineage, or a context's members, as a small graph,
and that graph as Graphviz DOT, Mermaid or JSON, or a picture drawn by Graphviz's ``dot``.

The graph is read through ``MetadataStore``'s public API only (``get_lineage_subgraph``
and reads by id), so it looks the same on every store a MetadataStore opens: embedded, a
projection, a gRPC server. ``mlmd-log lineage`` is this module on the command line; the
demo and a web page can call the same functions::

    graph = lineage_graph(store, "artifact", 3, direction="upstream", hops=2)
    print(to_dot(graph)); print(to_mermaid(graph)); print(to_json(graph))
    write_picture(graph, "lineage.svg")

Everything is sorted (artifacts, executions, contexts; each by id) so a graph always
prints the same text. Input events point into executions, output events out of them.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from google.protobuf import json_format

from mlmd_log import errors
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.query.lineage import INPUT_EVENT_TYPES, OUTPUT_EVENT_TYPES

KINDS = ("artifact", "execution", "context")
DIRECTIONS = {
    "upstream": pb.LineageSubgraphQueryOptions.UPSTREAM,
    "downstream": pb.LineageSubgraphQueryOptions.DOWNSTREAM,
    "both": pb.LineageSubgraphQueryOptions.BIDIRECTIONAL,
}
FORMATS = ("dot", "mermaid", "json")
PICTURE_FORMATS = ("svg", "png")
NAME_LIMIT = 40  # characters of a name or type kept in a label
URI_LIMIT = 48  # characters of a uri kept in a label (its start and its end)


# -- the graph ------------------------------------------------------------------------
@dataclass(frozen=True)
class Node:
    """An artifact or execution as a picture needs it (properties kept for JSON)."""

    kind: str
    id: int
    type: str
    name: str
    uri: Optional[str]  # artifacts only
    state: str  # Artifact.State or Execution.State name; "" when unset
    properties: dict
    custom_properties: dict

    @property
    def key(self) -> str:
        """The identifier DOT and Mermaid use: a1, e1 (safe in both, and never a keyword)."""
        return node_key(self.kind, self.id)


@dataclass(frozen=True)
class Edge:
    """One event: ``source -> target`` is artifact -> execution for inputs, the reverse
    for outputs (and artifact -> execution for UNKNOWN, drawn dashed)."""

    artifact_id: int
    execution_id: int
    type: str  # Event.Type name

    @property
    def is_output(self) -> bool:
        return pb.Event.Type.Value(self.type) in OUTPUT_EVENT_TYPES

    @property
    def source(self) -> str:
        return node_key("execution", self.execution_id) if self.is_output else node_key("artifact", self.artifact_id)

    @property
    def target(self) -> str:
        return node_key("artifact", self.artifact_id) if self.is_output else node_key("execution", self.execution_id)


@dataclass(frozen=True)
class Group:
    """A context and the nodes of the graph that belong to it."""

    id: int
    type: str
    name: str
    properties: dict
    custom_properties: dict
    members: tuple  # node keys, sorted

    @property
    def key(self) -> str:
        return node_key("context", self.id)


@dataclass(frozen=True)
class Graph:
    """What ``lineage_graph`` found around ``focus`` (a node key), ready to render."""

    focus: str
    nodes: tuple  # of Node, artifacts then executions, each by id
    edges: tuple  # of Edge, by source then target then type
    contexts: tuple  # of Group, by id


def node_key(kind: str, node_id: int) -> str:
    return f"{kind[0]}{node_id}"


# -- reading it -----------------------------------------------------------------------
def lineage_graph(store: Any, kind: str, node_id: int, direction: Optional[str] = None,
                  hops: Optional[int] = None) -> Graph:
    """The graph around one node. For an artifact or execution: ``get_lineage_subgraph`` from
    it, with MLMD's meaning of ``direction`` (upstream, downstream, both: the default) and
    ``hops`` (max_num_hops; an event is one hop; None is MLMD's default, its maximum). For a
    context: its artifacts and executions and the events between them (no hops to choose)."""
    if kind not in KINDS:
        raise errors.InvalidArgumentError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if direction is not None and direction not in DIRECTIONS:
        raise errors.InvalidArgumentError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    if kind == "context":
        if direction is not None or hops is not None:
            raise errors.InvalidArgumentError("direction and hops choose an artifact's or execution's lineage; "
                                              "a context's graph is its members and the events between them")
        return graph_from_lineage(_context_members(store, node_id), node_key(kind, node_id))
    _existing(store, kind, node_id)  # (a clearer NotFoundError than the traversal's own)
    options = pb.LineageSubgraphQueryOptions(direction=DIRECTIONS[direction or "both"])
    getattr(options, f"starting_{kind}s").filter_query = f"id = {int(node_id)}"
    if hops is not None:
        options.max_num_hops = hops
    return graph_from_lineage(store.get_lineage_subgraph(options), node_key(kind, node_id))


def _existing(store: Any, kind: str, node_id: int) -> Any:
    found = getattr(store, f"get_{kind}s_by_id")([node_id])
    if not found:
        raise errors.NotFoundError(f"No {kind} with id {node_id}")
    return found[0]


def _context_members(store: Any, context_id: int) -> pb.LineageGraph:
    """A context's members and their links, in the shape get_lineage_subgraph returns."""
    context = _existing(store, "context", context_id)
    artifacts = store.get_artifacts_by_context(context_id)
    executions = store.get_executions_by_context(context_id)
    artifact_ids = {a.id for a in artifacts}
    graph = pb.LineageGraph(artifacts=artifacts, executions=executions, contexts=[context])
    graph.events.extend(e for e in store.get_events_by_execution_ids([e.id for e in executions])
                        if e.artifact_id in artifact_ids)
    graph.attributions.extend(pb.Attribution(artifact_id=a.id, context_id=context_id) for a in artifacts)
    graph.associations.extend(pb.Association(execution_id=e.id, context_id=context_id) for e in executions)
    graph.artifact_types.extend(store.get_artifact_types_by_id(sorted({a.type_id for a in artifacts})))
    graph.execution_types.extend(store.get_execution_types_by_id(sorted({e.type_id for e in executions})))
    graph.context_types.extend(store.get_context_types_by_id([context.type_id]))
    return graph


def graph_from_lineage(lineage: pb.LineageGraph, focus: str) -> Graph:
    """A ``Graph`` of an MLMD ``LineageGraph`` (with its types), sorted for stable output."""
    type_names = {kind: {t.id: t.name for t in types} for kind, types in (
        ("artifact", lineage.artifact_types), ("execution", lineage.execution_types),
        ("context", lineage.context_types))}
    nodes = [_node("artifact", a, type_names, a.uri) for a in sorted(lineage.artifacts, key=lambda a: a.id)]
    nodes += [_node("execution", e, type_names, None) for e in sorted(lineage.executions, key=lambda e: e.id)]
    present = {n.key for n in nodes}
    edges = {Edge(e.artifact_id, e.execution_id, pb.Event.Type.Name(e.type)) for e in lineage.events}
    edges = sorted((e for e in edges if e.source in present and e.target in present),
                   key=lambda e: (_order(e.source), _order(e.target), e.type))
    members: dict[int, set] = {}
    for attribution in lineage.attributions:
        members.setdefault(attribution.context_id, set()).add(node_key("artifact", attribution.artifact_id))
    for association in lineage.associations:
        members.setdefault(association.context_id, set()).add(node_key("execution", association.execution_id))
    groups = [Group(c.id, _type_name(c, type_names["context"]), c.name, _values(c.properties),
                    _values(c.custom_properties),
                    tuple(sorted(members.get(c.id, set()) & present, key=_order)))
              for c in sorted(lineage.contexts, key=lambda c: c.id)]
    return Graph(focus, tuple(nodes), tuple(edges), tuple(groups))


def _node(kind: str, message: Any, type_names: dict, uri: Optional[str]) -> Node:
    state = (pb.Artifact.State.Name(message.state) if kind == "artifact" and message.HasField("state") else
             pb.Execution.State.Name(message.last_known_state)
             if kind == "execution" and message.HasField("last_known_state") else "")
    return Node(kind, message.id, _type_name(message, type_names[kind]), message.name, uri, state,
                _values(message.properties), _values(message.custom_properties))


def _type_name(message: Any, names: dict) -> str:
    return names.get(message.type_id) or message.type or f"type {message.type_id}"


def _values(properties: Any) -> dict:
    """MLMD Values as plain JSON values, by property name."""
    out = {}
    for name in sorted(properties):
        value = properties[name]
        which = value.WhichOneof("value")
        if which == "struct_value":
            out[name] = json_format.MessageToDict(value.struct_value)
        elif which == "proto_value":
            out[name] = {"@type": value.proto_value.type_url}
        else:
            out[name] = getattr(value, which) if which else None
    return out


def _order(key: str) -> tuple:
    """Sort key of a node key: artifacts, executions, contexts, each by id."""
    return ("aec".index(key[0]), int(key[1:]))


# -- what every picture shows ---------------------------------------------------------
def node_lines(node: Node) -> list[str]:
    """A node's label, line by line: type and id, name, then uri or state."""
    lines = [f"{_shorten(node.type, NAME_LIMIT)} #{node.id}"]
    if node.name:
        lines.append(_shorten(node.name, NAME_LIMIT))
    if node.uri:
        lines.append(_shorten(node.uri, URI_LIMIT))
    if node.kind == "execution" and node.state:
        lines.append(node.state)
    return lines


def group_title(group: Group) -> str:
    return f"{_shorten(group.type, NAME_LIMIT)} #{group.id}" + (
        f": {_shorten(group.name, NAME_LIMIT)}" if group.name else "")


def node_classes(graph: Graph, node: Node) -> list[str]:
    """Styles that mark a node: ``focus`` (the node asked about), ``failed`` (an execution
    that failed), ``canceled``. Each renderer maps them to its own attributes."""
    classes = ["focus"] if node.key == graph.focus else []
    if node.kind == "execution" and node.state in ("FAILED", "CANCELED"):
        classes.append(node.state.lower())
    return classes


def _shorten(text: str, limit: int) -> str:
    """``text`` of at most ``limit`` characters, its middle elided (a uri keeps its scheme
    and its file name), every line break and control character a space."""
    text = "".join(" " if ord(ch) < 32 or ord(ch) == 127 else ch for ch in text)
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "\u2026" + text[len(text) - (limit - 1 - head):]


def _grouped(graph: Graph) -> tuple[dict, list]:
    """Each context's nodes to draw inside it, and the nodes in none. A node in several
    contexts is drawn in the first (DOT clusters and Mermaid subgraphs cannot overlap);
    JSON lists every membership."""
    placed: set = set()
    inside: dict[int, list] = {}
    by_key = {n.key: n for n in graph.nodes}
    for group in graph.contexts:
        inside[group.id] = [by_key[k] for k in group.members if k not in placed]
        placed.update(group.members)
    return inside, [n for n in graph.nodes if n.key not in placed]


# -- DOT ------------------------------------------------------------------------------
_DOT_SHAPES = {"artifact": {"shape": "ellipse", "style": "filled", "fillcolor": "#e8f0fe"},
               "execution": {"shape": "box", "style": "rounded,filled", "fillcolor": "#f1f3f4"}}
_DOT_CLASSES = {"focus": {"penwidth": "3", "color": "#1a73e8"},
                "failed": {"fillcolor": "#fce8e6", "color": "#d93025", "fontcolor": "#a50e0e"},
                "canceled": {"fillcolor": "#eeeeee", "fontcolor": "#5f6368", "style": "rounded,filled,dashed"}}


def dot_string(text: str) -> str:
    """``text`` as a DOT double-quoted string: backslashes doubled (so ``\\n`` in a Windows
    path is no line break), quotes escaped; line breaks are the caller's ``\\n``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot_label(lines: Iterable[str]) -> str:
    return '"' + "\\n".join(dot_string(line)[1:-1] for line in lines) + '"'


def _dot_node(graph: Graph, node: Node, indent: str) -> str:
    attributes = dict(_DOT_SHAPES[node.kind])
    for name in node_classes(graph, node):  # (a class overrides the shape's colours)
        attributes.update(_DOT_CLASSES[name])
    styled = "".join(f", {key}={dot_string(value)}" for key, value in attributes.items())
    return f"{indent}{node.key} [label={_dot_label(node_lines(node))}{styled}];"


def dot_edge(edge: Edge) -> str:
    """One edge line, e.g. ``a1 -> e1 [label="INPUT"];``."""
    dashed = ", style=dashed" if edge.type == "UNKNOWN" else ""
    return f'  {edge.source} -> {edge.target} [label="{edge.type}"{dashed}];'


def to_dot(graph: Graph) -> str:
    """The graph as Graphviz DOT, left to right, contexts as clusters."""
    inside, outside = _grouped(graph)
    lines = ["digraph lineage {", "  rankdir=LR;",
             '  node [fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=9, color="#5f6368"];']
    for group in graph.contexts:
        lines += [f"  subgraph cluster_{group.key} {{",
                  f"    label={dot_string(group_title(group))};",
                  '    style="rounded,dashed"; color="#9aa0a6"; fontname="Helvetica";']
        lines += [_dot_node(graph, n, "    ") for n in inside[group.id]]
        lines.append("  }")
    lines += [_dot_node(graph, n, "  ") for n in outside]
    lines += [dot_edge(e) for e in graph.edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- Mermaid --------------------------------------------------------------------------
_MERMAID_SHAPES = {"artifact": ('("', '")'), "execution": ('["', '"]')}
_MERMAID_CLASSES = {"focus": "stroke:#1a73e8,stroke-width:3px",
                    "failed": "fill:#fce8e6,stroke:#d93025,color:#a50e0e",
                    "canceled": "fill:#eeeeee,stroke:#9aa0a6,stroke-dasharray:4 2"}
_MERMAID_ESCAPED = frozenset('"#<>&`')


def mermaid_text(text: str) -> str:
    """``text`` safe inside a quoted Mermaid label: quotes and the characters Mermaid or
    its HTML labels would read (``# < > & ```) as entity codes (``#34;``)."""
    return "".join(f"#{ord(ch)};" if ch in _MERMAID_ESCAPED else ch for ch in text)


def _mermaid_node(graph: Graph, node: Node, indent: str) -> str:
    opening, closing = _MERMAID_SHAPES[node.kind]
    return f"{indent}{node.key}{opening}{'<br/>'.join(mermaid_text(line) for line in node_lines(node))}{closing}"


def mermaid_edge(edge: Edge) -> str:
    """One edge line, e.g. ``a1 -->|INPUT| e1``."""
    arrow = "-.->" if edge.type == "UNKNOWN" else "-->"
    return f"  {edge.source} {arrow}|{edge.type}| {edge.target}"


def to_mermaid(graph: Graph) -> str:
    """The graph as a Mermaid flowchart, left to right, contexts as subgraphs."""
    inside, outside = _grouped(graph)
    lines = ["flowchart LR"]
    for group in graph.contexts:
        lines.append(f'  subgraph {group.key}["{mermaid_text(group_title(group))}"]')
        lines += [_mermaid_node(graph, n, "    ") for n in inside[group.id]]
        lines.append("  end")
    lines += [_mermaid_node(graph, n, "  ") for n in outside]
    lines += [mermaid_edge(e) for e in graph.edges]
    marked: dict[str, list] = {}
    for node in graph.nodes:
        for name in node_classes(graph, node):
            marked.setdefault(name, []).append(node.key)
    for name in sorted(marked):
        lines += [f"  classDef {name} {_MERMAID_CLASSES[name]}", f"  class {','.join(marked[name])} {name}"]
    return "\n".join(lines) + "\n"


# -- JSON -----------------------------------------------------------------------------
def to_dict(graph: Graph) -> dict:
    """The graph as plain data: nodes, edges (with event type), contexts (with members)."""
    return {
        "focus": graph.focus,
        "nodes": [{"key": n.key, "kind": n.kind, "id": n.id, "type": n.type, "name": n.name, "uri": n.uri,
                   "state": n.state, "properties": n.properties, "custom_properties": n.custom_properties}
                  for n in graph.nodes],
        "edges": [{"source": e.source, "target": e.target, "type": e.type, "artifact_id": e.artifact_id,
                   "execution_id": e.execution_id} for e in graph.edges],
        "contexts": [{"key": g.key, "id": g.id, "type": g.type, "name": g.name, "properties": g.properties,
                      "custom_properties": g.custom_properties, "members": list(g.members)}
                     for g in graph.contexts],
    }


def to_json(graph: Graph) -> str:
    return json.dumps(to_dict(graph), indent=2, ensure_ascii=False) + "\n"


RENDERERS = {"dot": to_dot, "mermaid": to_mermaid, "json": to_json}


# -- a picture ------------------------------------------------------------------------
def write_picture(graph: Graph, path: str) -> None:
    """Draws the graph into ``path`` (.svg or .png) with Graphviz's ``dot``. Without it,
    one FailedPreconditionError that names what to install."""
    extension = os.path.splitext(path)[1].lower().lstrip(".")
    if extension not in PICTURE_FORMATS:
        raise errors.InvalidArgumentError(f"cannot draw {path!r}: the picture is .svg or .png")
    dot = shutil.which("dot")
    if dot is None:
        raise errors.FailedPreconditionError(
            f"cannot draw {path}: Graphviz's `dot` is not installed (Debian: apt-get install graphviz); "
            "--format dot prints the graph for it")
    done = subprocess.run([dot, f"-T{extension}", "-o", path], input=to_dot(graph).encode("utf-8"),
                          capture_output=True, timeout=120)
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines() or [f"exit code {done.returncode}"]
        raise errors.InternalError(f"`dot` could not draw {path}: {reason[0]}")
