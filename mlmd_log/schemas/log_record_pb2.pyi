from mlmd_log.schemas import metadata_store_service_pb2 as _metadata_store_service_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProducerInfo(_message.Message):
    __slots__ = ("host", "pid", "user", "client_name")
    HOST_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    CLIENT_NAME_FIELD_NUMBER: _ClassVar[int]
    host: str
    pid: int
    user: str
    client_name: str
    def __init__(self, host: _Optional[str] = ..., pid: _Optional[int] = ..., user: _Optional[str] = ..., client_name: _Optional[str] = ...) -> None: ...

class LogRecord(_message.Message):
    __slots__ = ("record_id", "producer", "timestamp_ms", "schema_version", "attempt", "put_artifact_type", "put_execution_type", "put_context_type", "put_types", "put_artifacts", "put_executions", "put_contexts", "put_events", "put_execution", "put_lineage_subgraph", "put_attributions_and_associations", "put_parent_contexts")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    PUT_ARTIFACT_TYPE_FIELD_NUMBER: _ClassVar[int]
    PUT_EXECUTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    PUT_CONTEXT_TYPE_FIELD_NUMBER: _ClassVar[int]
    PUT_TYPES_FIELD_NUMBER: _ClassVar[int]
    PUT_ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    PUT_EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    PUT_CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    PUT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    PUT_EXECUTION_FIELD_NUMBER: _ClassVar[int]
    PUT_LINEAGE_SUBGRAPH_FIELD_NUMBER: _ClassVar[int]
    PUT_ATTRIBUTIONS_AND_ASSOCIATIONS_FIELD_NUMBER: _ClassVar[int]
    PUT_PARENT_CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    producer: ProducerInfo
    timestamp_ms: int
    schema_version: int
    attempt: int
    put_artifact_type: _metadata_store_service_pb2.PutArtifactTypeRequest
    put_execution_type: _metadata_store_service_pb2.PutExecutionTypeRequest
    put_context_type: _metadata_store_service_pb2.PutContextTypeRequest
    put_types: _metadata_store_service_pb2.PutTypesRequest
    put_artifacts: _metadata_store_service_pb2.PutArtifactsRequest
    put_executions: _metadata_store_service_pb2.PutExecutionsRequest
    put_contexts: _metadata_store_service_pb2.PutContextsRequest
    put_events: _metadata_store_service_pb2.PutEventsRequest
    put_execution: _metadata_store_service_pb2.PutExecutionRequest
    put_lineage_subgraph: _metadata_store_service_pb2.PutLineageSubgraphRequest
    put_attributions_and_associations: _metadata_store_service_pb2.PutAttributionsAndAssociationsRequest
    put_parent_contexts: _metadata_store_service_pb2.PutParentContextsRequest
    def __init__(self, record_id: _Optional[str] = ..., producer: _Optional[_Union[ProducerInfo, _Mapping]] = ..., timestamp_ms: _Optional[int] = ..., schema_version: _Optional[int] = ..., attempt: _Optional[int] = ..., put_artifact_type: _Optional[_Union[_metadata_store_service_pb2.PutArtifactTypeRequest, _Mapping]] = ..., put_execution_type: _Optional[_Union[_metadata_store_service_pb2.PutExecutionTypeRequest, _Mapping]] = ..., put_context_type: _Optional[_Union[_metadata_store_service_pb2.PutContextTypeRequest, _Mapping]] = ..., put_types: _Optional[_Union[_metadata_store_service_pb2.PutTypesRequest, _Mapping]] = ..., put_artifacts: _Optional[_Union[_metadata_store_service_pb2.PutArtifactsRequest, _Mapping]] = ..., put_executions: _Optional[_Union[_metadata_store_service_pb2.PutExecutionsRequest, _Mapping]] = ..., put_contexts: _Optional[_Union[_metadata_store_service_pb2.PutContextsRequest, _Mapping]] = ..., put_events: _Optional[_Union[_metadata_store_service_pb2.PutEventsRequest, _Mapping]] = ..., put_execution: _Optional[_Union[_metadata_store_service_pb2.PutExecutionRequest, _Mapping]] = ..., put_lineage_subgraph: _Optional[_Union[_metadata_store_service_pb2.PutLineageSubgraphRequest, _Mapping]] = ..., put_attributions_and_associations: _Optional[_Union[_metadata_store_service_pb2.PutAttributionsAndAssociationsRequest, _Mapping]] = ..., put_parent_contexts: _Optional[_Union[_metadata_store_service_pb2.PutParentContextsRequest, _Mapping]] = ...) -> None: ...

class RecordOutcome(_message.Message):
    __slots__ = ("error_code", "error_message", "response")
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    error_code: int
    error_message: str
    response: bytes
    def __init__(self, error_code: _Optional[int] = ..., error_message: _Optional[str] = ..., response: _Optional[bytes] = ...) -> None: ...
