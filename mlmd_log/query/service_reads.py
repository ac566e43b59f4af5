"""MLMD's read RPCs (request message in, response message out) over the Reader.

One small function per RPC, so the Python facade and the gRPC server answer
reads identically. Lineage RPCs are answered by the query layer's lineage module.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from mlmd_log import errors
from mlmd_log.dialects import SQLITE, Dialect
from mlmd_log.projections.read_forms import field_key, varint
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.proto import metadata_store_service_pb2 as svc
from mlmd_log.query import lineage
from mlmd_log.query.reader import Page, Reader


def _version(request: Any) -> Optional[str]:
    return request.type_version if request.HasField("type_version") and request.type_version else None


def _options(request: Any) -> Optional[pb.ListOperationOptions]:
    return request.options if request.HasField("options") else None


def _merge_serialized(response: Any, field: str, raw: list) -> None:
    """Appends serialized messages to a repeated message field with one parse (no copies)."""
    tag = field_key(response.DESCRIPTOR.fields_by_name[field].number, 2)
    response.MergeFromString(b"".join(tag + varint(len(data)) + data for data in raw))


def _nodes_response(response_type: type, field: str, reader: Reader, kind: str, ids: Any) -> Any:
    response = response_type()
    raw = reader.serialized_nodes_by_id(kind, ids)
    if raw is not None:
        _merge_serialized(response, field, raw)
    else:
        getattr(response, field).extend(getattr(reader, f"get_{kind}s_by_id")(ids))
    return response


def _fill_page(response: Any, field: str, page: Page) -> Any:
    if page.raw is not None:
        _merge_serialized(response, field, page.raw)
    else:
        getattr(response, field).extend(page.items)
    if page.next_page_token is not None:
        response.next_page_token = page.next_page_token
    return response


class ReadService:
    """Dispatches read RPCs by name to the Reader."""

    def __init__(self, conn: Any, dialect: Dialect = SQLITE):
        self.reader = Reader(conn, dialect)
        self._handlers: dict[str, Callable[[Any], Any]] = {
            name[len("rpc_"):]: getattr(self, name) for name in dir(self) if name.startswith("rpc_")
        }

    def call(self, rpc: str, request: Any) -> Any:
        handler = self._handlers.get(rpc)
        if handler is None:
            raise errors.UnimplementedError(f"Unknown or unsupported read RPC: {rpc}")
        expected = f"ml_metadata.{rpc}Request"
        if getattr(getattr(request, "DESCRIPTOR", None), "full_name", None) != expected:
            raise errors.InvalidArgumentError(f"{rpc} takes a {expected}, not a {type(request).__name__}")
        try:
            return handler(request)
        except errors.StatusError:
            raise
        except Exception as exc:
            limit = self.reader.dialect.exceeded_limit(exc)
            if limit is None:
                raise
            raise errors.InvalidArgumentError(
                f"{rpc}: the query goes past a limit of the {self.reader.dialect.name} projection ({limit}); ask for "
                "less in one call (a shorter filter_query, fewer ids)") from None

    # -- types --------------------------------------------------------------
    def rpc_GetArtifactType(self, r: svc.GetArtifactTypeRequest) -> svc.GetArtifactTypeResponse:
        return svc.GetArtifactTypeResponse(artifact_type=self.reader.get_artifact_type(r.type_name, _version(r)))

    def rpc_GetExecutionType(self, r: svc.GetExecutionTypeRequest) -> svc.GetExecutionTypeResponse:
        return svc.GetExecutionTypeResponse(execution_type=self.reader.get_execution_type(r.type_name, _version(r)))

    def rpc_GetContextType(self, r: svc.GetContextTypeRequest) -> svc.GetContextTypeResponse:
        return svc.GetContextTypeResponse(context_type=self.reader.get_context_type(r.type_name, _version(r)))

    def rpc_GetArtifactTypes(self, r: svc.GetArtifactTypesRequest) -> svc.GetArtifactTypesResponse:
        return svc.GetArtifactTypesResponse(artifact_types=self.reader.get_artifact_types())

    def rpc_GetExecutionTypes(self, r: svc.GetExecutionTypesRequest) -> svc.GetExecutionTypesResponse:
        return svc.GetExecutionTypesResponse(execution_types=self.reader.get_execution_types())

    def rpc_GetContextTypes(self, r: svc.GetContextTypesRequest) -> svc.GetContextTypesResponse:
        return svc.GetContextTypesResponse(context_types=self.reader.get_context_types())

    def rpc_GetArtifactTypesByID(self, r: svc.GetArtifactTypesByIDRequest) -> svc.GetArtifactTypesByIDResponse:
        return svc.GetArtifactTypesByIDResponse(artifact_types=self.reader.get_types_by_id(pb.ArtifactType, r.type_ids))

    def rpc_GetExecutionTypesByID(self, r: svc.GetExecutionTypesByIDRequest) -> svc.GetExecutionTypesByIDResponse:
        return svc.GetExecutionTypesByIDResponse(execution_types=self.reader.get_types_by_id(pb.ExecutionType, r.type_ids))

    def rpc_GetContextTypesByID(self, r: svc.GetContextTypesByIDRequest) -> svc.GetContextTypesByIDResponse:
        return svc.GetContextTypesByIDResponse(context_types=self.reader.get_types_by_id(pb.ContextType, r.type_ids))

    def rpc_GetArtifactTypesByExternalIds(self, r: Any) -> svc.GetArtifactTypesByExternalIdsResponse:
        return svc.GetArtifactTypesByExternalIdsResponse(
            artifact_types=self.reader.get_types_by_external_ids(pb.ArtifactType, r.external_ids))

    def rpc_GetExecutionTypesByExternalIds(self, r: Any) -> svc.GetExecutionTypesByExternalIdsResponse:
        return svc.GetExecutionTypesByExternalIdsResponse(
            execution_types=self.reader.get_types_by_external_ids(pb.ExecutionType, r.external_ids))

    def rpc_GetContextTypesByExternalIds(self, r: Any) -> svc.GetContextTypesByExternalIdsResponse:
        return svc.GetContextTypesByExternalIdsResponse(
            context_types=self.reader.get_types_by_external_ids(pb.ContextType, r.external_ids))

    # -- nodes --------------------------------------------------------------
    def rpc_GetArtifactsByID(self, r: svc.GetArtifactsByIDRequest) -> svc.GetArtifactsByIDResponse:
        if r.populate_artifact_types:
            artifacts, types = self.reader.get_artifacts_and_types_by_artifact_ids(r.artifact_ids)
            return svc.GetArtifactsByIDResponse(artifacts=artifacts, artifact_types=types)
        return _nodes_response(svc.GetArtifactsByIDResponse, "artifacts", self.reader, "artifact", r.artifact_ids)

    def rpc_GetExecutionsByID(self, r: svc.GetExecutionsByIDRequest) -> svc.GetExecutionsByIDResponse:
        return _nodes_response(svc.GetExecutionsByIDResponse, "executions", self.reader, "execution",
                               r.execution_ids)

    def rpc_GetContextsByID(self, r: svc.GetContextsByIDRequest) -> svc.GetContextsByIDResponse:
        return _nodes_response(svc.GetContextsByIDResponse, "contexts", self.reader, "context", r.context_ids)

    def rpc_GetArtifacts(self, r: svc.GetArtifactsRequest) -> svc.GetArtifactsResponse:
        return _fill_page(svc.GetArtifactsResponse(), "artifacts", self.reader.get_artifacts(_options(r)))

    def rpc_GetExecutions(self, r: svc.GetExecutionsRequest) -> svc.GetExecutionsResponse:
        return _fill_page(svc.GetExecutionsResponse(), "executions", self.reader.get_executions(_options(r)))

    def rpc_GetContexts(self, r: svc.GetContextsRequest) -> svc.GetContextsResponse:
        return _fill_page(svc.GetContextsResponse(), "contexts", self.reader.get_contexts(_options(r)))

    def rpc_GetArtifactsByType(self, r: svc.GetArtifactsByTypeRequest) -> svc.GetArtifactsByTypeResponse:
        page = self.reader.get_artifacts_by_type(r.type_name, _version(r), _options(r))
        return _fill_page(svc.GetArtifactsByTypeResponse(), "artifacts", page)

    def rpc_GetExecutionsByType(self, r: svc.GetExecutionsByTypeRequest) -> svc.GetExecutionsByTypeResponse:
        page = self.reader.get_executions_by_type(r.type_name, _version(r), _options(r))
        return _fill_page(svc.GetExecutionsByTypeResponse(), "executions", page)

    def rpc_GetContextsByType(self, r: svc.GetContextsByTypeRequest) -> svc.GetContextsByTypeResponse:
        page = self.reader.get_contexts_by_type(r.type_name, _version(r), _options(r))
        return _fill_page(svc.GetContextsByTypeResponse(), "contexts", page)

    def rpc_GetArtifactByTypeAndName(self, r: Any) -> svc.GetArtifactByTypeAndNameResponse:
        found = self.reader.get_artifact_by_type_and_name(r.type_name, r.artifact_name, _version(r))
        return svc.GetArtifactByTypeAndNameResponse(artifact=found) if found else svc.GetArtifactByTypeAndNameResponse()

    def rpc_GetExecutionByTypeAndName(self, r: Any) -> svc.GetExecutionByTypeAndNameResponse:
        found = self.reader.get_execution_by_type_and_name(r.type_name, r.execution_name, _version(r))
        return (svc.GetExecutionByTypeAndNameResponse(execution=found) if found
                else svc.GetExecutionByTypeAndNameResponse())

    def rpc_GetContextByTypeAndName(self, r: Any) -> svc.GetContextByTypeAndNameResponse:
        found = self.reader.get_context_by_type_and_name(r.type_name, r.context_name, _version(r))
        return svc.GetContextByTypeAndNameResponse(context=found) if found else svc.GetContextByTypeAndNameResponse()

    def rpc_GetArtifactsByURI(self, r: svc.GetArtifactsByURIRequest) -> svc.GetArtifactsByURIResponse:
        return svc.GetArtifactsByURIResponse(artifacts=self.reader.get_artifacts_by_uri(r.uris))

    def rpc_GetArtifactsByExternalIds(self, r: Any) -> svc.GetArtifactsByExternalIdsResponse:
        return svc.GetArtifactsByExternalIdsResponse(artifacts=self.reader.get_artifacts_by_external_ids(r.external_ids))

    def rpc_GetExecutionsByExternalIds(self, r: Any) -> svc.GetExecutionsByExternalIdsResponse:
        return svc.GetExecutionsByExternalIdsResponse(
            executions=self.reader.get_executions_by_external_ids(r.external_ids))

    def rpc_GetContextsByExternalIds(self, r: Any) -> svc.GetContextsByExternalIdsResponse:
        return svc.GetContextsByExternalIdsResponse(contexts=self.reader.get_contexts_by_external_ids(r.external_ids))

    # -- relations ----------------------------------------------------------
    def rpc_GetContextsByArtifact(self, r: svc.GetContextsByArtifactRequest) -> svc.GetContextsByArtifactResponse:
        return svc.GetContextsByArtifactResponse(contexts=self.reader.get_contexts_by_artifact(r.artifact_id))

    def rpc_GetContextsByExecution(self, r: svc.GetContextsByExecutionRequest) -> svc.GetContextsByExecutionResponse:
        return svc.GetContextsByExecutionResponse(contexts=self.reader.get_contexts_by_execution(r.execution_id))

    def rpc_GetArtifactsByContext(self, r: svc.GetArtifactsByContextRequest) -> svc.GetArtifactsByContextResponse:
        page = self.reader.get_artifacts_by_context(r.context_id, _options(r))
        return _fill_page(svc.GetArtifactsByContextResponse(), "artifacts", page)

    def rpc_GetExecutionsByContext(self, r: svc.GetExecutionsByContextRequest) -> svc.GetExecutionsByContextResponse:
        page = self.reader.get_executions_by_context(r.context_id, _options(r))
        return _fill_page(svc.GetExecutionsByContextResponse(), "executions", page)

    def rpc_GetParentContextsByContext(self, r: Any) -> svc.GetParentContextsByContextResponse:
        return svc.GetParentContextsByContextResponse(contexts=self.reader.get_parent_contexts_by_context(r.context_id))

    def rpc_GetChildrenContextsByContext(self, r: Any) -> svc.GetChildrenContextsByContextResponse:
        return svc.GetChildrenContextsByContextResponse(
            contexts=self.reader.get_children_contexts_by_context(r.context_id))

    def rpc_GetParentContextsByContexts(self, r: Any) -> svc.GetParentContextsByContextsResponse:
        response = svc.GetParentContextsByContextsResponse()
        for child_id, parents in self.reader.get_parent_contexts_by_contexts(r.context_ids).items():
            response.contexts[child_id].parent_contexts.extend(parents)
        return response

    def rpc_GetChildrenContextsByContexts(self, r: Any) -> svc.GetChildrenContextsByContextsResponse:
        response = svc.GetChildrenContextsByContextsResponse()
        for parent_id, children in self.reader.get_children_contexts_by_contexts(r.context_ids).items():
            response.contexts[parent_id].children_contexts.extend(children)
        return response

    def rpc_GetEventsByExecutionIDs(self, r: svc.GetEventsByExecutionIDsRequest) -> svc.GetEventsByExecutionIDsResponse:
        return svc.GetEventsByExecutionIDsResponse(events=self.reader.get_events_by_execution_ids(r.execution_ids))

    def rpc_GetEventsByArtifactIDs(self, r: svc.GetEventsByArtifactIDsRequest) -> svc.GetEventsByArtifactIDsResponse:
        return svc.GetEventsByArtifactIDsResponse(events=self.reader.get_events_by_artifact_ids(r.artifact_ids))

    # -- lineage: the query layer (filter language + traversal) ---------------
    def rpc_GetLineageGraph(self, r: svc.GetLineageGraphRequest) -> svc.GetLineageGraphResponse:
        return svc.GetLineageGraphResponse(subgraph=lineage.get_lineage_graph(self.reader, r.options))

    def rpc_GetLineageSubgraph(self, r: svc.GetLineageSubgraphRequest) -> svc.GetLineageSubgraphResponse:
        graph = lineage.get_lineage_subgraph(self.reader, r.lineage_subgraph_query_options,
                                             list(r.read_mask.paths))
        return svc.GetLineageSubgraphResponse(lineage_subgraph=graph)
