"""The URLs that name logs and projections, parsed in one place for every command.

Logs:        a directory or ``file:///DIR`` (a FileLog), ``memory:``,
             ``kafka://HOST:PORT[,HOST:PORT...]/TOPIC[?archive=DIR]`` (producer/archive.py),
             ``avro:///DIR`` (an Avro archive, read-only: producer/avro_log.py)
Projections: a path, ``sqlite:///PATH`` (relative; ``sqlite:////abs``, ``sqlite:///:memory:``;
             ``sqlite://PATH`` too), ``mysql://USER:PASSWORD@HOST:PORT/DATABASE[?socket=PATH]``,
             ``duckdb:///PATH``

Parsing only reads the text: nothing is opened or connected (locations.py does that), so a
malformed URL is an InvalidArgumentError before any file or broker is touched.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional
from urllib.parse import SplitResult, parse_qs, parse_qsl, unquote, urlsplit, urlunsplit

from mlmd_log import errors

LOG_FORMS = "a directory, file:///DIR, memory:, kafka://HOST:PORT/TOPIC[?archive=DIR] or avro:///DIR"
PROJECTION_FORMS = ("a path, sqlite:///PATH, mysql://USER:PASSWORD@HOST:PORT/DATABASE[?socket=PATH] "
                    "or duckdb:///PATH")

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_MEMORY_LOG = ("memory:", "memory://")
_KAFKA_SERVER = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+)(:[0-9]+)?$")


@dataclass(frozen=True)
class LogUrl:
    """Where a log lives. ``path``: a file or avro log's directory; ``bootstrap`` (comma-separated
    ``HOST:PORT``s) and ``topic``: a Kafka log's; ``archive``: the directory its trimmed records
    were archived to (``?archive=DIR``), if any."""

    kind: str  # "file" | "memory" | "kafka" | "avro"
    text: str
    path: Optional[str] = None
    bootstrap: Optional[str] = None
    topic: Optional[str] = None
    archive: Optional[str] = None


@dataclass(frozen=True)
class ProjectionUrl:
    """Where a projection lives. ``path``: a SQLite or DuckDB file (``:memory:`` for an
    in-memory SQLite); the rest: a MySQL server's, ``options`` being its query (``socket``)."""

    kind: str  # "sqlite" | "mysql" | "duckdb"
    text: str
    path: Optional[str] = None
    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str = ""
    database: Optional[str] = None
    options: tuple[tuple[str, str], ...] = ()

    def option(self, name: str) -> Optional[str]:
        """The last value given for query option ``name``, if any."""
        values = [value for key, value in self.options if key == name]
        return values[-1] if values else None


def _split(text: str, expected: str, check_port: bool = True) -> SplitResult:
    """``urlsplit`` with its ValueError (a bad IPv6 host, a port not a number) as ours."""
    try:
        parsed = urlsplit(text)
        if check_port:
            parsed.port  # noqa: B018 (raises on a port that is not a number, or out of range)
    except ValueError:
        raise errors.InvalidArgumentError(f"Expected {expected}, got {without_password(text)!r}") from None
    return parsed


def _scheme(text: str) -> Optional[str]:
    match = _SCHEME.match(text)
    return match.group(1).lower() if match else None


def parse_log_url(text: str) -> LogUrl:
    """The log ``text`` names; a bare path is a FileLog directory."""
    if not isinstance(text, str) or not text:
        raise errors.InvalidArgumentError(f"Empty log URL {text!r}: expected {LOG_FORMS}")
    if text in _MEMORY_LOG:
        return LogUrl("memory", text)
    scheme = _scheme(text)
    if scheme is None:
        return LogUrl("file", text, path=text)
    rest = text[len(scheme) + 3:]
    if scheme in ("file", "avro"):
        if not rest:
            raise errors.InvalidArgumentError(f"No directory in the log URL {text!r}: expected {scheme}:///DIR")
        return LogUrl(scheme, text, path=rest)
    if scheme == "kafka":
        return _parse_kafka(text)
    raise errors.InvalidArgumentError(f"Unsupported log URL {without_password(text)!r}: expected {LOG_FORMS}")


def _parse_kafka(text: str) -> LogUrl:
    expected = "kafka://HOST:PORT[,HOST:PORT...]/TOPIC"
    parsed = _split(text, expected, check_port=False)  # (several servers: each is checked below)
    topic = parsed.path.strip("/")
    servers = parsed.netloc.split(",")
    if not parsed.netloc or not topic or "/" in topic or parsed.fragment \
            or not all(_KAFKA_SERVER.match(server) for server in servers):
        raise errors.InvalidArgumentError(
            f"Expected {expected}, got {text!r}")
    options = parse_qs(parsed.query, keep_blank_values=True)
    archive = options.pop("archive", None)
    if options or (archive is not None and (len(archive) != 1 or not archive[0])):
        raise errors.InvalidArgumentError(
            f"Unsupported options in {text!r}: a Kafka log URL takes one, ?archive=DIR (producer/archive.py)")
    return LogUrl("kafka", text, bootstrap=parsed.netloc, topic=topic, archive=archive[0] if archive else None)


def parse_projection_url(text: str, bare: str = "sqlite") -> ProjectionUrl:
    """The projection ``text`` names; a bare path is a file of kind ``bare`` (SQLite, or
    DuckDB where only DuckDB is meant)."""
    if not isinstance(text, str) or not text:
        raise errors.InvalidArgumentError(f"Empty projection URL {text!r}: expected {PROJECTION_FORMS}")
    scheme = _scheme(text)
    if scheme is None:
        return ProjectionUrl(bare, text, path=text)
    if scheme in ("sqlite", "duckdb"):
        rest = text[len(scheme) + 3:]
        path = rest[1:] if rest.startswith("/") else rest  # (sqlite:///rel, sqlite:////abs, sqlite://rel)
        if not path:
            raise errors.InvalidArgumentError(f"No file in the projection URL {text!r}: expected {scheme}:///PATH")
        return ProjectionUrl(scheme, text, path=path)
    if scheme == "mysql":
        return _parse_mysql(text)
    raise errors.InvalidArgumentError(
        f"Unsupported projection URL {without_password(text)!r}: expected {PROJECTION_FORMS}")


def _parse_mysql(text: str) -> ProjectionUrl:
    expected = "mysql://USER:PASSWORD@HOST:PORT/DATABASE"
    parsed = _split(text, expected)
    database = parsed.path.strip("/")
    if not database or parsed.fragment:
        raise errors.InvalidArgumentError(f"Expected {expected}, got {without_password(text)!r}")
    return ProjectionUrl("mysql", text, host=parsed.hostname or "127.0.0.1", port=parsed.port or 3306,
                         user=unquote(parsed.username or "root"), password=unquote(parsed.password or ""),
                         database=database, options=tuple(parse_qsl(parsed.query, keep_blank_values=True)))


def without_password(url: str) -> str:
    """``url`` fit for a message or a log line: its password, as written, masked."""
    try:
        parsed = urlsplit(url)
    except ValueError:  # (not one urlsplit takes: mask what stands between "user:" and "@")
        return re.sub(r"^([^:/]*://[^:/@]*:)[^/]*@", r"\1***@", url)
    userinfo, at, host = parsed.netloc.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    if not at or not colon:
        return url
    return urlunsplit(parsed._replace(netloc=f"{user}:***@{host}"))
