"""Lineage queries with MLMD's semantics: GetLineageSubgraph and GetLineageGraph.

Traversal is breadth-first over events, one hop at a time: each hop reads the events
of the whole frontier in one batched query (chunked ``IN (...)``), and stop conditions
(ending nodes, boundaries) are one filter query per chunk of new nodes. Nothing runs a
query per node.

MLMD keeps visited nodes in hash sets and returns them in hash order; the result here
is in ascending id order (LineageGraph's repeated fields are sets). Where MLMD drops
"random" nodes to respect ``max_node_size`` (GetLineageGraph), the largest ids are
dropped, so answers are deterministic.
"""
from __future__ import annotations

from typing import Iterable, Optional

from mlmd_log import errors
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.query.reader import Reader

SUBGRAPH_MAX_NUM_HOPS = 100  # MLMD's kQueryLineageSubgraphMaxNumHops
GRAPH_MAX_NUM_HOPS = 20  # MLMD's GetLineageGraph limit
MAX_STARTING_NODES = 101  # LIMIT of MLMD's list query for the starting nodes
LINEAGE_GRAPH_FIELDS = tuple(f.name for f in pb.LineageGraph.DESCRIPTOR.fields)

_E = pb.Event
#: Event types by the way they point: an output event runs execution -> artifact, an input
#: event artifact -> execution (UNKNOWN is neither). Traversal and rendering both use these.
OUTPUT_EVENT_TYPES = frozenset({_E.DECLARED_OUTPUT, _E.INTERNAL_OUTPUT, _E.PENDING_OUTPUT, _E.OUTPUT})
INPUT_EVENT_TYPES = frozenset({_E.DECLARED_INPUT, _E.INTERNAL_INPUT, _E.INPUT})
_OUTPUTS, _INPUTS = OUTPUT_EVENT_TYPES, INPUT_EVENT_TYPES
_D = pb.LineageSubgraphQueryOptions


def _event_filter(from_artifacts: bool, direction: int):
    """Which event types a hop follows: from an artifact, upstream means the events that
    produced it (outputs); from an execution, its inputs. Otherwise every event."""
    if direction == _D.UPSTREAM:
        return _OUTPUTS if from_artifacts else _INPUTS
    if direction == _D.DOWNSTREAM:
        return _INPUTS if from_artifacts else _OUTPUTS
    return None


def _events_of(reader: Reader, from_artifacts: bool, ids: Iterable[int]) -> list[pb.Event]:
    ids = list(ids)
    if not ids:
        return []
    if from_artifacts:
        return reader.get_events_by_artifact_ids(ids)
    return reader.get_events_by_execution_ids(ids)


def _other_end(event: pb.Event, from_artifacts: bool) -> int:
    return event.execution_id if from_artifacts else event.artifact_id


class _Ending:
    """Ending-node condition of one node kind (LineageSubgraphQueryOptions.EndingNodes)."""

    def __init__(self, reader: Reader, kind: str, ending: pb.LineageSubgraphQueryOptions.EndingNodes,
                 present: bool):
        self.reader = reader
        self.kind = kind
        self.query = ending.filter_query if present and ending.HasField("filter_query") else None
        self.include = ending.include_ending_nodes
        self.ids: set[int] = set()

    def find(self, candidates: set[int]) -> set[int]:
        """Candidates that are ending nodes (added to ``self.ids``)."""
        if self.query is None or not candidates:
            return set()
        found = set(self.reader.filter_node_ids(self.kind, self.query, sorted(candidates)))
        self.ids |= found
        return found


def _expand(reader: Reader, from_artifacts: bool, direction: int, frontier: list[int],
            visited_out: set[int], ending: _Ending, out_events: list[pb.Event]) -> list[int]:
    """One hop from ``frontier``; returns the newly visited nodes of the other kind."""
    wanted = _event_filter(from_artifacts, direction)
    events = [e for e in _events_of(reader, from_artifacts, frontier)
              if wanted is None or e.type in wanted]
    unvisited = {_other_end(e, from_artifacts) for e in events}
    unvisited = {i for i in unvisited if i not in visited_out and i not in ending.ids}
    ending.find(unvisited)
    unvisited -= ending.ids
    directional = direction in (_D.UPSTREAM, _D.DOWNSTREAM)
    for event in events:
        node = _other_end(event, from_artifacts)
        if node in ending.ids:
            if ending.include:
                out_events.append(event)
        elif node not in visited_out or node in unvisited:
            out_events.append(event)
        elif directional:
            # Directional traversal keeps an edge into an already visited node
            # (a1 -> e1 -> a2 -> e2 and a1 -> e2); bidirectional would duplicate it.
            out_events.append(event)
    new = sorted(unvisited)
    visited_out.update(new)
    return new


def get_lineage_subgraph(reader: Reader, options: pb.LineageSubgraphQueryOptions,
                         read_mask: Optional[Iterable[str]] = None) -> pb.LineageGraph:
    """The GetLineageSubgraph RPC: nodes as ids only (a client fetches the details),
    events, attributions, associations and all types, as ``read_mask`` selects (all
    when empty)."""
    paths = set(read_mask or ()) or set(LINEAGE_GRAPH_FIELDS)
    which = options.WhichOneof("starting_nodes")
    if which is None:
        raise errors.InvalidArgumentError("Missing arguments for listing starting nodes.")
    from_artifacts = which == "starting_artifacts"
    query = getattr(options, which).filter_query
    if not query:
        raise errors.InvalidArgumentError("Cannot list starting nodes if `filter_query` is unspecified.")
    max_num_hops = SUBGRAPH_MAX_NUM_HOPS
    if options.HasField("max_num_hops"):
        if options.max_num_hops < 0:
            raise errors.InvalidArgumentError(
                f"max_num_hops cannot be negative: max_num_hops = {options.max_num_hops}")
        max_num_hops = min(options.max_num_hops, SUBGRAPH_MAX_NUM_HOPS)
    start = reader.filter_node_ids("artifact" if from_artifacts else "execution", query,
                                   limit=MAX_STARTING_NODES)
    if not start:
        raise errors.NotFoundError("Cannot find qualified nodes to start the traversal.")

    ending_artifacts = _Ending(reader, "artifact", options.ending_artifacts,
                               options.HasField("ending_artifacts"))
    ending_executions = _Ending(reader, "execution", options.ending_executions,
                                options.HasField("ending_executions"))
    visited = {True: set(), False: set()}  # from_artifacts flag of the kind -> ids
    first_ending = ending_artifacts if from_artifacts else ending_executions
    first_ending.find(set(start))
    frontier = [i for i in start if i not in first_ending.ids]
    visited[from_artifacts].update(frontier)

    events: list[pb.Event] = []
    for distance in range(max_num_hops):
        expand_from_artifacts = from_artifacts == (distance % 2 == 0)
        ending = ending_executions if expand_from_artifacts else ending_artifacts
        frontier = _expand(reader, expand_from_artifacts, options.direction, frontier,
                           visited[not expand_from_artifacts], ending, events)
        if not frontier:
            break

    artifact_ids = set(visited[True])
    execution_ids = set(visited[False])
    if ending_artifacts.include:
        artifact_ids |= ending_artifacts.ids
    if ending_executions.include:
        execution_ids |= ending_executions.ids
    return _skeleton(reader, paths, sorted(artifact_ids), sorted(execution_ids), events)


def _skeleton(reader: Reader, paths: set, artifact_ids: list[int], execution_ids: list[int],
              events: list[pb.Event]) -> pb.LineageGraph:
    graph = pb.LineageGraph()
    if "artifacts" in paths:
        graph.artifacts.extend(pb.Artifact(id=i) for i in artifact_ids)
    if "executions" in paths:
        graph.executions.extend(pb.Execution(id=i) for i in execution_ids)
    attributions = associations = None
    if "contexts" in paths or "attributions" in paths:
        attributions = reader.attributions_by_artifact_ids(artifact_ids) if artifact_ids else []
    if "contexts" in paths or "associations" in paths:
        associations = reader.associations_by_execution_ids(execution_ids) if execution_ids else []
    if "contexts" in paths:
        context_ids = sorted({a.context_id for a in attributions} | {a.context_id for a in associations})
        graph.contexts.extend(pb.Context(id=i) for i in context_ids)
    if "events" in paths:
        graph.events.extend(events)
    if "attributions" in paths:
        graph.attributions.extend(attributions)
    if "associations" in paths:
        graph.associations.extend(associations)
    if "artifact_types" in paths:
        graph.artifact_types.extend(reader.all_types(pb.ArtifactType))
    if "execution_types" in paths:
        graph.execution_types.extend(reader.all_types(pb.ExecutionType))
    if "context_types" in paths:
        graph.context_types.extend(reader.all_types(pb.ContextType))
    return graph


# ------------------------------------------------------------------ GetLineageGraph
def get_lineage_graph(reader: Reader, options: pb.LineageGraphQueryOptions) -> pb.LineageGraph:
    """The (deprecated) GetLineageGraph RPC as MLMD implemented it before 1.17 (1.17's
    server answers UNIMPLEMENTED): full artifacts and executions around the artifacts
    of ``artifacts_options``, their events, and every non-simple type."""
    if not options.HasField("artifacts_options"):
        raise errors.InvalidArgumentError("Missing query_nodes conditions")
    stop = options.stop_conditions
    max_num_hops = GRAPH_MAX_NUM_HOPS
    if stop.HasField("max_num_hops"):
        if stop.max_num_hops < 0:
            raise errors.InvalidArgumentError(
                f"max_num_hops cannot be negative: max_num_hops ={stop.max_num_hops}")
        max_num_hops = min(max_num_hops, stop.max_num_hops)
    artifacts = list(reader.get_artifacts(options.artifacts_options).items)
    if not artifacts:
        raise errors.NotFoundError("The query_nodes condition does not match any nodes to do traversal.")
    max_nodes = options.max_node_size
    if max_nodes > 0:
        artifacts = artifacts[:max_nodes]
    boundary = {True: stop.boundary_executions or None, False: stop.boundary_artifacts or None}

    graph = pb.LineageGraph()
    graph.artifacts.extend(artifacts)
    quota = (max_nodes - len(artifacts)) if max_nodes > 0 else 2**63 - 1
    visited = {True: set(), False: set()}
    frontier = [a.id for a in artifacts]
    distance = 0
    while distance < max_num_hops and quota > 0:
        from_artifacts = distance % 2 == 0
        visited[from_artifacts].update(frontier)
        events = _events_of(reader, from_artifacts, frontier)
        new = {_other_end(e, from_artifacts) for e in events} - visited[not from_artifacts]
        if boundary[from_artifacts] is not None and new:
            kind = "execution" if from_artifacts else "artifact"
            new = set(reader.filter_node_ids(kind, boundary[from_artifacts], sorted(new)))
        frontier = sorted(new)[:quota]
        kept = set(frontier)
        graph.events.extend(e for e in events if _other_end(e, from_artifacts) in kept)
        if from_artifacts:
            graph.executions.extend(reader.get_executions_by_id(frontier))
        else:
            graph.artifacts.extend(reader.get_artifacts_by_id(frontier))
        if not frontier:
            break
        quota -= len(frontier)
        distance += 1
    simple = _simple_type_names()
    graph.artifact_types.extend(t for t in reader.all_types(pb.ArtifactType) if t.name not in simple)
    graph.execution_types.extend(t for t in reader.all_types(pb.ExecutionType) if t.name not in simple)
    graph.context_types.extend(reader.all_types(pb.ContextType))
    return graph


def _simple_type_names() -> frozenset:
    from mlmd_log.query.reader import SIMPLE_TYPE_NAMES
    return SIMPLE_TYPE_NAMES
