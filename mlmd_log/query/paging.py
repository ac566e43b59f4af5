"""Paged lists (ListOperationOptions) with MLMD's exact page boundaries and tokens.

A next_page_token is the web-safe base64 (no padding) of a serialized
``ListOperationNextPageToken``: the last row's ordering value(s) plus the options
the listing started with. Tokens made here and by official MLMD are byte-identical,
so a client can page through either implementation with the other's tokens.

The conditions below reproduce MLMD's, quirks included, so pages match row for row:

* ID order: ``id > last_id`` (``<`` descending).
* CREATE_TIME order: ``create_time >= last_time AND id > last_id`` (``<=``/``<``
  descending). A row created later but with a smaller id than the last row of the
  previous page is skipped, as in MLMD.
* LAST_UPDATE_TIME order: ``update_time >= last_time AND id NOT IN (ids of the
  trailing rows that share last_time)``.
* The first page starts at ``>= 0`` (ascending) or ``< 2**63-1`` (descending).
* A page asks for ``max_result_size + 1`` rows to detect a next page, but never more
  than 101: with ``max_result_size > 100`` a page has 101 rows and no token.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Sequence

from google.protobuf import message as _message
from google.protobuf import text_format

from mlmd_log import errors
from mlmd_log.dialects import SQLITE, Dialect
from mlmd_log.proto import metadata_store_pb2 as pb

MAX_LIST_RESULT_SIZE = 100
_LLONG_MAX = 2**63 - 1

_Field = pb.ListOperationOptions.OrderByField
_COLUMN = {
    _Field.CREATE_TIME: "create_time_since_epoch",
    _Field.LAST_UPDATE_TIME: "last_update_time_since_epoch",
    _Field.ID: "id",
}


def encode_token(token: pb.ListOperationNextPageToken) -> str:
    """Web-safe base64 without padding, as absl::WebSafeBase64Escape writes it."""
    return base64.urlsafe_b64encode(token.SerializeToString()).rstrip(b"=").decode("ascii")


def decode_token(text: str) -> pb.ListOperationNextPageToken:
    """Parses a token; padding is optional. InvalidArgumentError when malformed."""
    raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    try:
        data = base64.b64decode(raw.rstrip(b"=") + b"=" * (-len(raw.rstrip(b"=")) % 4),
                                altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise errors.InvalidArgumentError("Failed to decode next page token string") from None
    token = pb.ListOperationNextPageToken()
    try:
        token.ParseFromString(data)
    except _message.DecodeError:
        raise errors.InvalidArgumentError(
            "Failed to parse decoded next page token into ListOperationNextPageToken "
            "proto message ") from None
    return token


def _column(options: pb.ListOperationOptions) -> str:
    field = options.order_by_field.field
    if field not in _COLUMN:
        raise errors.InvalidArgumentError(
            f"Unsupported field: {_Field.Field.Name(field)} specified in ListOperationOptions")
    return _COLUMN[field]


def _debug(options: pb.ListOperationOptions) -> str:
    return text_format.MessageToString(options)


@dataclass(frozen=True)
class ListQuery:
    """WHERE / ORDER BY / LIMIT of one page, with ``{p}``/``{ids}`` markers for a dialect.

    ``where`` and its ``params`` go after a candidate condition (if any); ``n_ids`` is
    the length of the ``{ids}`` list in ``where`` (the NOT IN of LAST_UPDATE_TIME).
    """

    where: str
    params: tuple
    n_ids: int
    order_by: str
    limit: int


def validate_size(options: pb.ListOperationOptions) -> None:
    if options.max_result_size <= 0:
        raise errors.InvalidArgumentError(
            "max_result_size field value is required to be greater than 0 and less than or "
            f"equal to 100. Set value:{options.max_result_size}")


def compile_filter(options: pb.ListOperationOptions, kind: str, dialect: Dialect = SQLITE,
                   reversed_uris: Any = False):
    """The options' filter_query compiled for nodes of ``kind``, or None when it is empty.

    InvalidArgumentError for a malformed query; InternalError for a neighbour field that
    MLMD's own SQL cannot read (MLMD fails the same way when it runs the query)."""
    from mlmd_log.query import filter_sql  # the filter compiler imports nothing from paging

    if not (options.HasField("filter_query") and options.filter_query):
        return None
    return filter_sql.compile_text(options.filter_query, kind, dialect, reversed_uris)


def build_list_query(options: pb.ListOperationOptions) -> ListQuery:
    """The page's SQL pieces, validating the options and any token as MLMD does."""
    asc = options.order_by_field.is_asc
    params: list = []
    n_ids = 0
    if options.next_page_token:
        token = decode_token(options.next_page_token)
        previous = token.set_options
        if (previous.order_by_field.is_asc != asc
                or previous.order_by_field.field != options.order_by_field.field):
            raise errors.InvalidArgumentError(
                "ListOperationOptions mismatch between calls Initial Options: "
                f"{_debug(previous)} Current Options: {_debug(options)}")
        column = _column(options)
        op = (">" if asc else "<") + ("" if column == "id" else "=")
        where = f"`{column}` {op} {{p}}"
        params.append(token.field_offset)
        if column == "create_time_since_epoch":
            where += f" AND `id` {'>' if asc else '<'} {{p}}"
            params.append(token.id_offset)
        elif column == "last_update_time_since_epoch":
            if not token.listed_ids:
                raise errors.InvalidArgumentError(
                    "Invalid NextPageToken in List Operation. listed_ids field should not "
                    "be empty.")
            where += " AND `id` NOT IN ({ids})"
            params.extend(token.listed_ids)
            n_ids = len(token.listed_ids)
    else:
        column = _column(options)
        op = (">" if asc else "<") + ("" if column == "id" else "=")
        where = f"`{column}` {op} {{p}}"
        params.append(0 if asc else _LLONG_MAX)
    direction = "ASC" if asc else "DESC"
    order_by = f"`{column}` {direction}" + ("" if column == "id" else f", `id` {direction}")
    limit = min(options.max_result_size + 1, MAX_LIST_RESULT_SIZE + 1)
    return ListQuery(where, tuple(params), n_ids, order_by, limit)


def next_page_token(nodes: Sequence, options: pb.ListOperationOptions) -> str:
    """Token for the page after ``nodes`` (the page as returned, extra row removed)."""
    last = nodes[-1]
    token = pb.ListOperationNextPageToken()
    field = options.order_by_field.field
    if field == _Field.CREATE_TIME:
        token.field_offset = last.create_time_since_epoch
        token.id_offset = last.id
    elif field == _Field.LAST_UPDATE_TIME:
        token.listed_ids.append(last.id)
        token.field_offset = last.last_update_time_since_epoch
        for node in reversed(nodes[:-1]):
            if node.last_update_time_since_epoch != last.last_update_time_since_epoch:
                break
            token.listed_ids.append(node.id)
    elif field == _Field.ID:
        token.field_offset = last.id
        token.id_offset = last.id
    else:
        _column(options)  # raises
    token.set_options.CopyFrom(options)
    token.set_options.ClearField("next_page_token")
    return encode_token(token)
