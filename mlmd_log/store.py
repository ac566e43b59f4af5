"""``MetadataStore``: the public facade, call-compatible with ``ml_metadata.MetadataStore``.

Each method builds the MLMD service request, hands it to a transport (the
embedded store in this process, or a remote mlmd-log/MLMD gRPC server) and
unpacks the response the way ml-metadata's Python client does, so code written
for ml-metadata runs unchanged.
"""
from __future__ import annotations

import enum
import functools
import random
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Iterable, List, Optional, Sequence, Tuple

from google.protobuf.message import DecodeError, EncodeError

from mlmd_log import errors
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.proto import metadata_store_service_pb2 as svc

MAX_NUM_RESULT = 100  # page size the client asks for when listing with options


class OrderByField(enum.Enum):
    """Fields a listing can be ordered by (values are ListOperationOptions' enum)."""

    CREATE_TIME = pb.ListOperationOptions.OrderByField.CREATE_TIME
    UPDATE_TIME = pb.ListOperationOptions.OrderByField.LAST_UPDATE_TIME
    ID = pb.ListOperationOptions.OrderByField.ID


@dataclass
class ListOptions:
    """How to list nodes: at most ``limit`` results, ordered by ``order_by``."""

    limit: Optional[int] = None
    order_by: Optional[OrderByField] = None
    is_asc: bool = True
    filter_query: Optional[str] = None


class ExtraOptions:
    """Accepted for signature compatibility with ml-metadata; carries nothing."""

    def __init__(self, euc: Any = None):
        del euc


def _response_class(rpc: str) -> type:
    return getattr(svc, rpc + "Response")


class MetadataStore:
    """An MLMD metadata store backed by an append-only log and SQL projections.

    ``config`` may be None (embedded store under ``./mlmd-data``), an MLMD
    ``ConnectionConfig`` (``fake_database``, ``sqlite``), an mlmd-log URL string
    or ``StoreConfig``, or a ``MetadataStoreClientConfig`` to talk to a server.
    """

    def __init__(self, config: Any = None, enable_upgrade_migration: bool = False):
        from mlmd_log.client import open_transport

        self._config = config
        self._max_num_retries = 5
        if isinstance(config, pb.ConnectionConfig) and config.HasField("retry_options"):
            self._max_num_retries = config.retry_options.max_num_retries
        if isinstance(config, pb.MetadataStoreClientConfig) and enable_upgrade_migration:
            raise ValueError("Upgrade migration is not allowed when using gRPC connection client. "
                             "Upgrade needs to be performed on the server side.")
        try:
            self._transport = open_transport(config)
        except errors.StatusError as exc:
            raise errors.as_construction_error(exc) from exc
        except (OSError, sqlite3.Error) as exc:  # (a log path that is a file, a segment name taken by a folder)
            raise errors.as_construction_error(errors.InternalError(
                f"Cannot open the store: {type(exc).__name__}: {exc}")) from exc

    # -- plumbing -------------------------------------------------------------
    @property
    def pipeline_asset(self) -> None:
        return None

    def close(self) -> None:
        """Releases the log lock and connections (also done at interpreter exit)."""
        self._transport.close()

    def __enter__(self) -> "MetadataStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def async_puts(self, max_batch: Optional[int] = None, linger_s: Optional[float] = None) -> Any:
        """An ``AsyncPuts`` on this store: ``submit(rpc, request)`` returns a Future of the put's
        response at once; records are appended in batches (of up to ``max_batch``, each waiting
        up to ``linger_s`` for more puts; defaults in ``service.ASYNC_*``); ``flush()`` waits for
        all outcomes. Not part of ml-metadata's API: mlmd-log's high-throughput write path."""
        from mlmd_log.client import ASYNC_LINGER_S, ASYNC_MAX_BATCH, AsyncPuts

        return AsyncPuts(self._transport, max_batch=ASYNC_MAX_BATCH if max_batch is None else max_batch,
                         linger_s=ASYNC_LINGER_S if linger_s is None else linger_s)

    def duckdb(self, catch_up: bool = True) -> Any:
        """A read-only DuckDB connection to this store's analytics projection (MLMD's tables
        and the views described in ``mlmd_log.analytics``), caught up from the log first.
        Embedded stores on a directory or SQLite file only. Catching up needs the file
        read-write, which DuckDB allows only while no read-only connection to it is open in
        this process: connections an earlier ``duckdb()`` returned are closed then. Not part
        of ml-metadata's API."""
        from mlmd_log import analytics

        locate = getattr(self._transport, "analytics_location", None)
        if locate is None:
            raise errors.FailedPreconditionError(
                f"duckdb() needs an embedded store with its log in this process, not {type(self._transport).__name__}; "
                "elsewhere: mlmd-log sql --log LOG --duckdb PATH")
        return analytics.connect(locate(), catch_up_first=catch_up)

    def _call(self, rpc: str, request: Any) -> Any:
        """Runs one RPC, retrying AbortedError (concurrent first creation) like ml-metadata."""
        attempts = max(1, self._max_num_retries)
        while True:
            try:
                return self._transport.call(rpc, request)
            except errors.AbortedError:
                attempts -= 1
                if attempts <= 0:
                    raise
                time.sleep(random.expovariate(1.0 / 0.05))

    def _list(self, rpc: str, field: str, request: Any, list_options: Optional[ListOptions]) -> list:
        """Pages through a listing the way ml-metadata's client does (100 per page up to ``limit``)."""
        remaining = None
        if list_options is not None:
            if list_options.limit and list_options.limit < 1:  # 0/None: no limit, as in ml-metadata
                raise errors.InvalidArgumentError(
                    "Invalid list_options.limit value passed. list_options.limit is expected to be greater than 1")
            request.options.max_result_size = MAX_NUM_RESULT
            request.options.order_by_field.is_asc = list_options.is_asc
            if list_options.order_by:
                request.options.order_by_field.field = list_options.order_by.value
            if list_options.filter_query:
                request.options.filter_query = list_options.filter_query
            remaining = list_options.limit or None
        found: list = []
        while True:
            if remaining is not None and remaining < MAX_NUM_RESULT:
                request.options.max_result_size = remaining
            response = self._call(rpc, request)
            page = list(getattr(response, field))
            found.extend(page)
            if remaining is not None:
                remaining -= len(page)
                if remaining <= 0:
                    return found
            if not response.next_page_token:
                return found
            request.options.next_page_token = response.next_page_token

    # -- writes ---------------------------------------------------------------
    def put_artifacts(self, artifacts: Sequence[pb.Artifact], field_mask_paths: Optional[Sequence[str]] = None,
                      extra_options: Optional[ExtraOptions] = None) -> List[int]:
        request = svc.PutArtifactsRequest(artifacts=artifacts)
        request.update_mask.paths.extend(field_mask_paths or [])
        return list(self._call("PutArtifacts", request).artifact_ids)

    def put_executions(self, executions: Sequence[pb.Execution], field_mask_paths: Optional[Sequence[str]] = None,
                       extra_options: Optional[ExtraOptions] = None) -> List[int]:
        request = svc.PutExecutionsRequest(executions=executions)
        request.update_mask.paths.extend(field_mask_paths or [])
        return list(self._call("PutExecutions", request).execution_ids)

    def put_contexts(self, contexts: Sequence[pb.Context], field_mask_paths: Optional[Sequence[str]] = None,
                     extra_options: Optional[ExtraOptions] = None) -> List[int]:
        request = svc.PutContextsRequest(contexts=contexts)
        request.update_mask.paths.extend(field_mask_paths or [])
        return list(self._call("PutContexts", request).context_ids)

    def put_artifact_type(self, artifact_type: pb.ArtifactType, can_add_fields: bool = False,
                          can_omit_fields: bool = False, extra_options: Optional[ExtraOptions] = None) -> int:
        request = svc.PutArtifactTypeRequest(artifact_type=artifact_type, can_add_fields=can_add_fields,
                                             can_omit_fields=can_omit_fields)
        return self._call("PutArtifactType", request).type_id

    def put_execution_type(self, execution_type: pb.ExecutionType, can_add_fields: bool = False,
                           can_omit_fields: bool = False, extra_options: Optional[ExtraOptions] = None) -> int:
        request = svc.PutExecutionTypeRequest(execution_type=execution_type, can_add_fields=can_add_fields,
                                              can_omit_fields=can_omit_fields)
        return self._call("PutExecutionType", request).type_id

    def put_context_type(self, context_type: pb.ContextType, can_add_fields: bool = False,
                         can_omit_fields: bool = False, extra_options: Optional[ExtraOptions] = None) -> int:
        request = svc.PutContextTypeRequest(context_type=context_type, can_add_fields=can_add_fields,
                                            can_omit_fields=can_omit_fields)
        return self._call("PutContextType", request).type_id

    def put_events(self, events: Sequence[pb.Event], extra_options: Optional[ExtraOptions] = None) -> None:
        self._call("PutEvents", svc.PutEventsRequest(events=events))

    def put_execution(self, execution: pb.Execution,
                      artifact_and_events: Sequence[Tuple[pb.Artifact, Optional[pb.Event]]],
                      contexts: Optional[Sequence[pb.Context]], reuse_context_if_already_exist: bool = False,
                      reuse_artifact_if_already_exist_by_external_id: bool = False,
                      force_reuse_context: bool = False, force_update_time: bool = False,
                      extra_options: Optional[ExtraOptions] = None) -> Tuple[int, List[int], List[int]]:
        options = svc.PutExecutionRequest.Options(
            reuse_context_if_already_exist=reuse_context_if_already_exist,
            reuse_artifact_if_already_exist_by_external_id=reuse_artifact_if_already_exist_by_external_id,
            force_reuse_context=force_reuse_context, force_update_time=force_update_time)
        request = svc.PutExecutionRequest(execution=execution, contexts=contexts or [], options=options)
        for pair in artifact_and_events:
            if not pair:
                continue
            entry = request.artifact_event_pairs.add()
            if pair[0] is not None:
                entry.artifact.CopyFrom(pair[0])
            if len(pair) == 2 and pair[1] is not None:
                entry.event.CopyFrom(pair[1])
        response = self._call("PutExecution", request)
        return response.execution_id, list(response.artifact_ids), list(response.context_ids)

    def put_lineage_subgraph(self, executions: Sequence[pb.Execution], artifacts: Sequence[pb.Artifact],
                             contexts: Sequence[pb.Context],
                             event_edges: Sequence[Tuple[Optional[int], Optional[int], pb.Event]],
                             reuse_context_if_already_exist: bool = False,
                             reuse_artifact_if_already_exist_by_external_id: bool = False,
                             extra_options: Optional[ExtraOptions] = None) -> Tuple[List[int], List[int], List[int]]:
        options = svc.PutLineageSubgraphRequest.Options(
            reuse_context_if_already_exist=reuse_context_if_already_exist,
            reuse_artifact_if_already_exist_by_external_id=reuse_artifact_if_already_exist_by_external_id)
        request = svc.PutLineageSubgraphRequest(executions=executions, artifacts=artifacts, contexts=contexts,
                                                options=options)
        for execution_index, artifact_index, event in event_edges:
            edge = request.event_edges.add(event=event)
            if execution_index is not None:
                edge.execution_index = execution_index
            if artifact_index is not None:
                edge.artifact_index = artifact_index
        response = self._call("PutLineageSubgraph", request)
        return list(response.execution_ids), list(response.artifact_ids), list(response.context_ids)

    def put_attributions_and_associations(self, attributions: Sequence[pb.Attribution],
                                          associations: Sequence[pb.Association],
                                          extra_options: Optional[ExtraOptions] = None) -> None:
        self._call("PutAttributionsAndAssociations",
                   svc.PutAttributionsAndAssociationsRequest(attributions=attributions, associations=associations))

    def put_parent_contexts(self, parent_contexts: Sequence[pb.ParentContext],
                            extra_options: Optional[ExtraOptions] = None) -> None:
        self._call("PutParentContexts", svc.PutParentContextsRequest(parent_contexts=parent_contexts))

    # -- types ----------------------------------------------------------------
    def _get_type(self, rpc: str, field: str, type_name: str, type_version: Optional[str]) -> Any:
        request = getattr(svc, rpc + "Request")(type_name=type_name)
        if type_version:
            request.type_version = type_version
        return getattr(self._call(rpc, request), field)

    def get_artifact_type(self, type_name: str, type_version: Optional[str] = None,
                          extra_options: Optional[ExtraOptions] = None) -> pb.ArtifactType:
        return self._get_type("GetArtifactType", "artifact_type", type_name, type_version)

    def get_execution_type(self, type_name: str, type_version: Optional[str] = None,
                           extra_options: Optional[ExtraOptions] = None) -> pb.ExecutionType:
        return self._get_type("GetExecutionType", "execution_type", type_name, type_version)

    def get_context_type(self, type_name: str, type_version: Optional[str] = None,
                         extra_options: Optional[ExtraOptions] = None) -> pb.ContextType:
        return self._get_type("GetContextType", "context_type", type_name, type_version)

    def get_artifact_types(self, extra_options: Optional[ExtraOptions] = None) -> List[pb.ArtifactType]:
        return list(self._call("GetArtifactTypes", svc.GetArtifactTypesRequest()).artifact_types)

    def get_execution_types(self, extra_options: Optional[ExtraOptions] = None) -> List[pb.ExecutionType]:
        return list(self._call("GetExecutionTypes", svc.GetExecutionTypesRequest()).execution_types)

    def get_context_types(self, extra_options: Optional[ExtraOptions] = None) -> List[pb.ContextType]:
        return list(self._call("GetContextTypes", svc.GetContextTypesRequest()).context_types)

    def get_artifact_types_by_id(self, type_ids: Iterable[int],
                                 extra_options: Optional[ExtraOptions] = None) -> List[pb.ArtifactType]:
        return list(self._call("GetArtifactTypesByID",
                               svc.GetArtifactTypesByIDRequest(type_ids=list(type_ids))).artifact_types)

    def get_execution_types_by_id(self, type_ids: Iterable[int],
                                  extra_options: Optional[ExtraOptions] = None) -> List[pb.ExecutionType]:
        return list(self._call("GetExecutionTypesByID",
                               svc.GetExecutionTypesByIDRequest(type_ids=list(type_ids))).execution_types)

    def get_context_types_by_id(self, type_ids: Iterable[int],
                                extra_options: Optional[ExtraOptions] = None) -> List[pb.ContextType]:
        return list(self._call("GetContextTypesByID",
                               svc.GetContextTypesByIDRequest(type_ids=list(type_ids))).context_types)

    def get_artifact_types_by_external_ids(self, external_ids: Iterable[str],
                                           extra_options: Optional[ExtraOptions] = None) -> List[pb.ArtifactType]:
        request = svc.GetArtifactTypesByExternalIdsRequest(external_ids=list(external_ids))
        return list(self._call("GetArtifactTypesByExternalIds", request).artifact_types)

    def get_execution_types_by_external_ids(self, external_ids: Iterable[str],
                                            extra_options: Optional[ExtraOptions] = None) -> List[pb.ExecutionType]:
        request = svc.GetExecutionTypesByExternalIdsRequest(external_ids=list(external_ids))
        return list(self._call("GetExecutionTypesByExternalIds", request).execution_types)

    def get_context_types_by_external_ids(self, external_ids: Iterable[str],
                                          extra_options: Optional[ExtraOptions] = None) -> List[pb.ContextType]:
        request = svc.GetContextTypesByExternalIdsRequest(external_ids=list(external_ids))
        return list(self._call("GetContextTypesByExternalIds", request).context_types)

    # -- nodes ----------------------------------------------------------------
    def get_artifacts(self, list_options: Optional[ListOptions] = None,
                      extra_options: Optional[ExtraOptions] = None) -> List[pb.Artifact]:
        return self._list("GetArtifacts", "artifacts", svc.GetArtifactsRequest(), list_options)

    def get_executions(self, list_options: Optional[ListOptions] = None,
                       extra_options: Optional[ExtraOptions] = None) -> List[pb.Execution]:
        return self._list("GetExecutions", "executions", svc.GetExecutionsRequest(), list_options)

    def get_contexts(self, list_options: Optional[ListOptions] = None,
                     extra_options: Optional[ExtraOptions] = None) -> List[pb.Context]:
        return self._list("GetContexts", "contexts", svc.GetContextsRequest(), list_options)

    def get_artifacts_by_id(self, artifact_ids: Iterable[int],
                            extra_options: Optional[ExtraOptions] = None) -> List[pb.Artifact]:
        return list(self._call("GetArtifactsByID",
                               svc.GetArtifactsByIDRequest(artifact_ids=list(artifact_ids))).artifacts)

    def get_artifacts_and_types_by_artifact_ids(
            self, artifact_ids: Iterable[int],
            extra_options: Optional[ExtraOptions] = None) -> Tuple[List[pb.Artifact], List[pb.ArtifactType]]:
        request = svc.GetArtifactsByIDRequest(artifact_ids=list(artifact_ids), populate_artifact_types=True)
        response = self._call("GetArtifactsByID", request)
        return list(response.artifacts), list(response.artifact_types)

    def get_executions_by_id(self, execution_ids: Iterable[int],
                             extra_options: Optional[ExtraOptions] = None) -> List[pb.Execution]:
        return list(self._call("GetExecutionsByID",
                               svc.GetExecutionsByIDRequest(execution_ids=list(execution_ids))).executions)

    def get_contexts_by_id(self, context_ids: Iterable[int],
                           extra_options: Optional[ExtraOptions] = None) -> List[pb.Context]:
        return list(self._call("GetContextsByID",
                               svc.GetContextsByIDRequest(context_ids=list(context_ids))).contexts)

    def _by_type(self, rpc: str, field: str, type_name: str, type_version: Optional[str]) -> list:
        request = getattr(svc, rpc + "Request")(type_name=type_name)
        if type_version:
            request.type_version = type_version
        return list(getattr(self._call(rpc, request), field))

    def get_artifacts_by_type(self, type_name: str, type_version: Optional[str] = None,
                              extra_options: Optional[ExtraOptions] = None) -> List[pb.Artifact]:
        return self._by_type("GetArtifactsByType", "artifacts", type_name, type_version)

    def get_executions_by_type(self, type_name: str, type_version: Optional[str] = None,
                               extra_options: Optional[ExtraOptions] = None) -> List[pb.Execution]:
        return self._by_type("GetExecutionsByType", "executions", type_name, type_version)

    def get_contexts_by_type(self, type_name: str, type_version: Optional[str] = None,
                             extra_options: Optional[ExtraOptions] = None) -> List[pb.Context]:
        return self._by_type("GetContextsByType", "contexts", type_name, type_version)

    def _by_type_and_name(self, rpc: str, field: str, name_field: str, type_name: str, node_name: str,
                          type_version: Optional[str]) -> Any:
        request = getattr(svc, rpc + "Request")(type_name=type_name, **{name_field: node_name})
        if type_version:
            request.type_version = type_version
        response = self._call(rpc, request)
        return getattr(response, field) if response.HasField(field) else None

    def get_artifact_by_type_and_name(self, type_name: str, artifact_name: str, type_version: Optional[str] = None,
                                      extra_options: Optional[ExtraOptions] = None) -> Optional[pb.Artifact]:
        return self._by_type_and_name("GetArtifactByTypeAndName", "artifact", "artifact_name", type_name,
                                      artifact_name, type_version)

    def get_execution_by_type_and_name(self, type_name: str, execution_name: str, type_version: Optional[str] = None,
                                       extra_options: Optional[ExtraOptions] = None) -> Optional[pb.Execution]:
        return self._by_type_and_name("GetExecutionByTypeAndName", "execution", "execution_name", type_name,
                                      execution_name, type_version)

    def get_context_by_type_and_name(self, type_name: str, context_name: str, type_version: Optional[str] = None,
                                     extra_options: Optional[ExtraOptions] = None) -> Optional[pb.Context]:
        return self._by_type_and_name("GetContextByTypeAndName", "context", "context_name", type_name,
                                      context_name, type_version)

    def get_artifacts_by_uri(self, uri: str, extra_options: Optional[ExtraOptions] = None) -> List[pb.Artifact]:
        return list(self._call("GetArtifactsByURI", svc.GetArtifactsByURIRequest(uris=[uri])).artifacts)

    def get_artifacts_by_external_ids(self, external_ids: Iterable[str],
                                      extra_options: Optional[ExtraOptions] = None) -> List[pb.Artifact]:
        request = svc.GetArtifactsByExternalIdsRequest(external_ids=list(external_ids))
        return list(self._call("GetArtifactsByExternalIds", request).artifacts)

    def get_executions_by_external_ids(self, external_ids: Iterable[str],
                                       extra_options: Optional[ExtraOptions] = None) -> List[pb.Execution]:
        request = svc.GetExecutionsByExternalIdsRequest(external_ids=list(external_ids))
        return list(self._call("GetExecutionsByExternalIds", request).executions)

    def get_contexts_by_external_ids(self, external_ids: Iterable[str],
                                     extra_options: Optional[ExtraOptions] = None) -> List[pb.Context]:
        request = svc.GetContextsByExternalIdsRequest(external_ids=list(external_ids))
        return list(self._call("GetContextsByExternalIds", request).contexts)

    # -- relations ------------------------------------------------------------
    def get_contexts_by_artifact(self, artifact_id: int,
                                 extra_options: Optional[ExtraOptions] = None) -> List[pb.Context]:
        return list(self._call("GetContextsByArtifact",
                               svc.GetContextsByArtifactRequest(artifact_id=artifact_id)).contexts)

    def get_contexts_by_execution(self, execution_id: int,
                                  extra_options: Optional[ExtraOptions] = None) -> List[pb.Context]:
        return list(self._call("GetContextsByExecution",
                               svc.GetContextsByExecutionRequest(execution_id=execution_id)).contexts)

    def get_artifacts_by_context(self, context_id: int, list_options: Optional[ListOptions] = None,
                                 extra_options: Optional[ExtraOptions] = None) -> List[pb.Artifact]:
        return self._list("GetArtifactsByContext", "artifacts",
                          svc.GetArtifactsByContextRequest(context_id=context_id), list_options)

    def get_executions_by_context(self, context_id: int, list_options: Optional[ListOptions] = None,
                                  extra_options: Optional[ExtraOptions] = None) -> List[pb.Execution]:
        if list_options is None:  # ml-metadata lists a context's executions newest first by default
            list_options = ListOptions(order_by=OrderByField.CREATE_TIME, is_asc=False)
        return self._list("GetExecutionsByContext", "executions",
                          svc.GetExecutionsByContextRequest(context_id=context_id), list_options)

    def get_parent_contexts_by_context(self, context_id: int,
                                       extra_options: Optional[ExtraOptions] = None) -> List[pb.Context]:
        return list(self._call("GetParentContextsByContext",
                               svc.GetParentContextsByContextRequest(context_id=context_id)).contexts)

    def get_children_contexts_by_context(self, context_id: int,
                                         extra_options: Optional[ExtraOptions] = None) -> List[pb.Context]:
        return list(self._call("GetChildrenContextsByContext",
                               svc.GetChildrenContextsByContextRequest(context_id=context_id)).contexts)

    def get_events_by_execution_ids(self, execution_ids: Iterable[int],
                                    extra_options: Optional[ExtraOptions] = None) -> List[pb.Event]:
        return list(self._call("GetEventsByExecutionIDs",
                               svc.GetEventsByExecutionIDsRequest(execution_ids=list(execution_ids))).events)

    def get_events_by_artifact_ids(self, artifact_ids: Iterable[int],
                                   extra_options: Optional[ExtraOptions] = None) -> List[pb.Event]:
        return list(self._call("GetEventsByArtifactIDs",
                               svc.GetEventsByArtifactIDsRequest(artifact_ids=list(artifact_ids))).events)

    # -- lineage -------------------------------------------------------------
    def get_lineage_subgraph(self, query_options: pb.LineageSubgraphQueryOptions,
                             field_mask_paths: Optional[Sequence[str]] = None,
                             extra_options: Optional[ExtraOptions] = None) -> pb.LineageGraph:
        """The lineage subgraph around the starting nodes, with the fields of
        ``field_mask_paths`` (all when empty). As in ml-metadata's client, the RPC
        returns node ids only; nodes and types are then read by id."""
        paths = list(field_mask_paths or [f.name for f in pb.LineageGraph.DESCRIPTOR.fields])
        request = svc.GetLineageSubgraphRequest(lineage_subgraph_query_options=query_options)
        request.read_mask.paths.extend(p for p in paths if not p.endswith("_types"))
        skeleton = self._call("GetLineageSubgraph", request).lineage_subgraph

        graph = pb.LineageGraph()
        if "artifacts" in paths or "artifact_types" in paths:
            artifacts, artifact_types = self.get_artifacts_and_types_by_artifact_ids(
                a.id for a in skeleton.artifacts)
            if "artifacts" in paths:
                graph.artifacts.extend(artifacts)
            if "artifact_types" in paths:
                graph.artifact_types.extend(artifact_types)
        if "executions" in paths or "execution_types" in paths:
            executions = self.get_executions_by_id(e.id for e in skeleton.executions)
            if "executions" in paths:
                graph.executions.extend(executions)
            if "execution_types" in paths:
                graph.execution_types.extend(
                    self.get_execution_types_by_id({e.type_id for e in executions}))
        if "contexts" in paths or "context_types" in paths:
            contexts = self.get_contexts_by_id(c.id for c in skeleton.contexts)
            if "contexts" in paths:
                graph.contexts.extend(contexts)
            if "context_types" in paths:
                graph.context_types.extend(self.get_context_types_by_id({c.type_id for c in contexts}))
        if "events" in paths:
            graph.events.extend(skeleton.events)
        if "associations" in paths:
            graph.associations.extend(skeleton.associations)
        if "attributions" in paths:
            graph.attributions.extend(skeleton.attributions)
        return graph

    # -- history: mlmd-log's own (ml-metadata keeps none) ---------------------------------
    def _history_connection(self) -> Any:
        opener = getattr(self._transport, "history_connection", None)
        if opener is None:
            raise errors.FailedPreconditionError(
                "History and as-of views are answered from a SQLite projection: open the store on its data "
                "directory or sqlite:/// projection, not through a server or another view")
        return opener()

    def history(self, kind: str, entity_id: int, limit: Optional[int] = None) -> List[dict]:
        """Every record that touched one entity, oldest first: offset, time, record id,
        producer, RPC, outcome (rejected attempts too) and what changed. ``kind``: artifact,
        execution, context, artifact_type, execution_type or context_type."""
        from mlmd_log.query.history import entity_history

        conn = self._history_connection()
        try:
            return entity_history(conn, kind, entity_id, limit)
        finally:
            conn.close()

    def as_of(self, offset: Optional[int] = None, time: Optional[Any] = None) -> "MetadataStore":
        """A read-only store answering every read as a projection of records ``[0, offset)``
        would, or of the records applied by ``time`` (a datetime; naive means UTC)."""
        import datetime

        from mlmd_log.client.as_of import AsOfTransport
        from mlmd_log.query.history import add_as_of_views, check_as_of, offset_at_time, whole_number

        if (offset is None) == (time is None):
            raise errors.InvalidArgumentError("as_of takes exactly one of offset= and time=")
        if time is not None and not isinstance(time, datetime.datetime):
            raise errors.InvalidArgumentError(f"as_of(time=) takes a datetime, not {time!r}")
        if offset is not None:
            offset = whole_number(offset, "An offset")
        conn = self._history_connection()
        try:
            if time is not None:
                offset = offset_at_time(conn, time)
            check_as_of(conn, int(offset))
            add_as_of_views(conn, int(offset))
        except BaseException:
            conn.close()
            raise
        view = MetadataStore.__new__(MetadataStore)
        view._config, view._max_num_retries = None, 1
        view._transport = AsOfTransport(conn, int(offset))
        return view

    def diff(self, start: int, end: int) -> dict:
        """What records ``[start, end)`` changed: nodes and types created and changed (field
        diffs), links added, rejected attempts; the difference of ``as_of(start)`` and
        ``as_of(end)``."""
        from mlmd_log.query.history import changes_between

        conn = self._history_connection()
        try:
            return changes_between(conn, start, end)
        finally:
            conn.close()


def _as_mlmd_errors(method: Any) -> Any:
    """``method`` raising an MLMD error where protobuf refuses a caller's message: building a
    request parses what the caller gave, and protobuf's DecodeError (a struct nested past its
    limit) or EncodeError is no class an ml-metadata caller catches."""
    @functools.wraps(method)
    def checked(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except DecodeError as exc:
            raise errors.InvalidArgumentError(f"Could not parse proto: {exc}") from None
        except EncodeError as exc:
            raise errors.InvalidArgumentError(f"Could not serialize proto: {exc}") from None

    return checked


for _name, _method in list(vars(MetadataStore).items()):
    if not _name.startswith("_") and callable(_method):
        setattr(MetadataStore, _name, _as_mlmd_errors(_method))
del _name, _method


def downgrade_schema(config: pb.ConnectionConfig, downgrade_to_schema_version: int) -> None:
    """ml-metadata's schema downgrade. mlmd-log projections are always schema 10 and can be
    rebuilt from the log at will, so only a no-op "downgrade" to 10 is accepted."""
    if downgrade_to_schema_version < 0:
        raise errors.InvalidArgumentError("downgrade_to_schema_version not specified")
    if downgrade_to_schema_version != 10:
        raise errors.InvalidArgumentError(
            f"MLMD cannot be downgraded to schema_version: {downgrade_to_schema_version}. mlmd-log writes schema "
            "version 10 only; replay the log into a projection instead.")
