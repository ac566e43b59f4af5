"""Building log records: the envelope around one MLMD put request."""
from __future__ import annotations

import getpass
import itertools
import os
import socket
import time
from typing import Any, Optional

from google.protobuf.message import DecodeError, EncodeError, Message

from mlmd_log.errors import InvalidArgumentError
from mlmd_log.schemas import log_record_pb2

RECORD_SCHEMA_VERSION = 1

# RPC name -> LogRecord oneof field. These are the writes; everything else is a read.
PUT_RPCS: dict[str, str] = {
    "PutArtifactType": "put_artifact_type",
    "PutExecutionType": "put_execution_type",
    "PutContextType": "put_context_type",
    "PutTypes": "put_types",
    "PutArtifacts": "put_artifacts",
    "PutExecutions": "put_executions",
    "PutContexts": "put_contexts",
    "PutEvents": "put_events",
    "PutExecution": "put_execution",
    "PutLineageSubgraph": "put_lineage_subgraph",
    "PutAttributionsAndAssociations": "put_attributions_and_associations",
    "PutParentContexts": "put_parent_contexts",
}
RPC_OF_FIELD: dict[str, str] = {field: rpc for rpc, field in PUT_RPCS.items()}  # ("put_execution" -> "PutExecution")


FIRST_ATTEMPT, RETRY = 1, 2  # LogRecord.attempt


def as_retry(payload: bytes) -> bytes:
    """A serialized record marked as appended again (its first append may be in the log),
    so that a projector looks its record_id up."""
    record = parse_record(payload)
    if record.attempt == RETRY:
        return payload
    record.attempt = RETRY
    return record.SerializeToString()


#: Protobuf's recursion limit: the deepest nesting of messages its parsers accept (upb's
#: and the C++ one ml-metadata parses each request with).
MAX_NESTING = 100

_REQUEST_FIELDS = {field.number: field.name for field in log_record_pb2.LogRecord.DESCRIPTOR.oneofs_by_name[
    "request"].fields}


class UnreadableRecord(InvalidArgumentError):
    """A payload that does not decode as a LogRecord (InvalidArgumentError, as ml-metadata's
    "Could not parse proto" for a request its parser refuses)."""


def encode_record(record: log_record_pb2.LogRecord) -> bytes:
    """The payload to append for ``record``, once it is sure to decode again.

    Every writer serializes through here: a record whose request a reader cannot parse
    (nested deeper than protobuf allows) would otherwise be appended, and every reader of
    the log would fail on it. Costs one parse in C (see ``parse_record``)."""
    try:
        payload = record.SerializeToString()
    except (EncodeError, ValueError) as exc:  # (over 2 GiB, or a field protobuf refuses to write)
        raise InvalidArgumentError(f"The request cannot be serialized: {exc}") from None
    try:
        parse_record(payload)
    except UnreadableRecord:
        kind = record.WhichOneof("request")
        request = type(getattr(record, kind)).__name__ if kind else "LogRecord"
        raise InvalidArgumentError(
            f"Could not parse proto: the {request} nests messages deeper than protobuf's limit of {MAX_NESTING} "
            "levels (a struct_value or list_value property nested too deep), so it could not be read back; "
            "ml-metadata refuses it too") from None
    return payload


def parse_record(payload: bytes) -> log_record_pb2.LogRecord:
    """``payload`` decoded as a LogRecord; UnreadableRecord when it is not one.

    The request is parsed apart from the envelope when it must be: protobuf counts nesting
    from the message it parses, so a request that ml-metadata parses (at most
    MAX_NESTING levels) is one level too deep inside the envelope. Parsed on its own it
    gets the same budget as in ml-metadata, so this accepts exactly what ml-metadata does."""
    try:
        return log_record_pb2.LogRecord.FromString(payload)
    except DecodeError:
        pass
    try:
        return _parse_request_apart(payload)
    except (DecodeError, IndexError) as exc:
        why = f"not a valid LogRecord ({exc or 'truncated'})"
        if "depth" in str(exc).lower() or _nests_deeper(payload, MAX_NESTING + 1):
            why += f": its request nests messages deeper than protobuf's limit of {MAX_NESTING} levels"
        raise UnreadableRecord(why) from None


def _parse_request_apart(payload: bytes) -> log_record_pb2.LogRecord:
    """The envelope's own fields parsed as one message, the request on its own (in order)."""
    envelope: list[bytes] = []
    requests: list[tuple[str, bytes]] = []
    for number, start, value_start, end in _top_level_fields(payload):
        name = _REQUEST_FIELDS.get(number)
        if name is None:
            envelope.append(payload[start:end])
        else:
            requests.append((name, payload[value_start:end]))
    record = log_record_pb2.LogRecord.FromString(b"".join(envelope))
    for name, data in requests:
        request = getattr(record, name)
        request.SetInParent()
        request.MergeFromString(data)
    return record


def _top_level_fields(data: bytes) -> list[tuple[int, int, int, int]]:
    """(field number, start, start of a length-delimited value, end) of each field of a
    serialized message, without parsing any field's content."""
    fields, pos, size = [], 0, len(data)
    while pos < size:
        start = pos
        key, pos = _varint(data, pos)
        number, wire_type = key >> 3, key & 7
        value_start = pos
        if wire_type == 0:
            _, pos = _varint(data, pos)
        elif wire_type == 1:
            pos += 8
        elif wire_type == 2:
            length, value_start = _varint(data, pos)
            pos = value_start + length
        elif wire_type == 5:
            pos += 4
        else:
            raise DecodeError(f"unexpected wire type {wire_type} at byte {start}")
        if number == 0 or pos > size:
            raise DecodeError(f"truncated or invalid field at byte {start}")
        fields.append((number, start, value_start, pos))
    return fields


def _nests_deeper(payload: bytes, levels: int) -> bool:
    """Whether a LogRecord payload nests messages more than ``levels`` deep (the envelope
    counted): what makes protobuf refuse it, told apart from other damage on runtimes whose
    error does not say so (protobuf 4.x says only "Error parsing message")."""
    def deeper(descriptor: Any, data: bytes, left: int) -> bool:
        if left < 0:
            return True
        for number, _, value_start, end in _top_level_fields(data):
            field = descriptor.fields_by_number.get(number)
            if field is not None and field.message_type is not None and value_start < end \
                    and deeper(field.message_type, data[value_start:end], left - 1):
                return True
        return False

    try:
        return deeper(log_record_pb2.LogRecord.DESCRIPTOR, payload, levels)
    except (DecodeError, IndexError, RecursionError):
        return False


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise DecodeError(f"varint too long at byte {pos}")


def _producer_info(client_name: str) -> log_record_pb2.ProducerInfo:
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = str(os.getuid()) if hasattr(os, "getuid") else ""
    return log_record_pb2.ProducerInfo(host=socket.gethostname(), pid=os.getpid(), user=user,
                                       client_name=client_name)


class RecordFactory:
    """Wraps requests in envelopes; one per producer (caches the producer identity).

    Record ids are 32 hex digits: 64 random bits drawn once per factory (and again in a
    forked child), then a counter. As unique as a uuid4 per record for any realistic
    number of producers, at a tenth of the cost (no system call per put)."""

    def __init__(self, client_name: str = "mlmd-log"):
        self.client_name = client_name
        self._info: Optional[log_record_pb2.ProducerInfo] = None
        self._pid = -1
        self._id_prefix = ""
        self._serial = itertools.count()

    def _identify(self) -> None:
        """The producer's identity and id prefix, drawn again in a forked child (its ids must
        differ from the parent's)."""
        if self._pid != os.getpid():
            self._info, self._pid = _producer_info(self.client_name), os.getpid()
            self._id_prefix = os.urandom(8).hex()
            self._serial = itertools.count()

    def make(self, rpc: str, request: Message, record_id: Optional[str] = None,
             timestamp_ms: Optional[int] = None) -> log_record_pb2.LogRecord:
        self._identify()
        record = log_record_pb2.LogRecord(
            record_id=record_id or f"{self._id_prefix}{next(self._serial):016x}",
            timestamp_ms=int(time.time() * 1000) if timestamp_ms is None else timestamp_ms,
            schema_version=RECORD_SCHEMA_VERSION,
        )
        if record_id is None:  # (a new id: no earlier record can have it; see LogRecord.attempt)
            record.attempt = FIRST_ATTEMPT
        record.producer.CopyFrom(self._info)
        getattr(record, PUT_RPCS[rpc]).CopyFrom(request)
        return record

    def payload(self, rpc: str, request: Message) -> tuple[bytes, str]:
        """A new record for ``request``, serialized and checked to decode (``encode_record``),
        and its record id: what every writer appends."""
        try:
            record = self.make(rpc, request)
        except TypeError:  # (a request of another RPC: protobuf refuses to copy it)
            raise InvalidArgumentError(f"{rpc} takes a {rpc}Request, not a {type(request).__name__}") from None
        return encode_record(record), record.record_id
