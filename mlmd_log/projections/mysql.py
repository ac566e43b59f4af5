"""MySQL / MariaDB projection backend (PyMySQL).

The engine's SQL runs unchanged: the dialect swaps ``?`` for ``%s``. Tables are
the official MySQL schema; an executemany of an INSERT or REPLACE is sent as multi-row
statements whose VALUES text ``multi_row_statements`` builds.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Optional, Sequence
from urllib.parse import quote

from mlmd_log import errors
from mlmd_log.dialects import MYSQL
from mlmd_log.projections import ddl
from mlmd_log.projections.backend import SqlBackend
from mlmd_log.urls import ProjectionUrl, parse_projection_url, without_password


MAX_STATEMENT_CHARS = 1 << 20  # per multi-row statement; far below max_allowed_packet


def multi_row_statements(head: str, rows: Sequence[Sequence[Any]], escape: Callable[[Any], str],
                         chunk_rows: int = 1000, max_chars: int = MAX_STATEMENT_CHARS) -> Iterator[str]:
    """``head`` (``INSERT INTO t (a, b) VALUES ``) followed by the rows' literals, at most
    ``chunk_rows`` rows and about ``max_chars`` characters a statement.

    The VALUES text is built here rather than by PyMySQL's executemany, which escapes every
    value through a generic dispatcher that cost more than the server's work: ints and
    NULLs (most cells) are formatted directly, other values by ``escape``, the connection's
    own (so strings honour the server's escaping mode)."""
    values: list[str] = []
    size = 0
    for row in rows:
        text = "(" + ",".join("NULL" if v is None else str(v) if type(v) is int else escape(v) for v in row) + ")"
        values.append(text)
        size += len(text) + 1
        if len(values) >= chunk_rows or size >= max_chars:
            yield head + ",".join(values)
            values, size = [], 0
    if values:
        yield head + ",".join(values)


@dataclass(frozen=True)
class MySqlTarget:
    """Where a MySQL projection lives."""

    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str = ""
    database: str = "mlmd"
    socket: Optional[str] = None

    @classmethod
    def from_url(cls, url: "str | ProjectionUrl") -> "MySqlTarget":
        """``mysql://user:password@host:port/database`` (``?socket=/path`` optional), as text or parsed."""
        where = parse_projection_url(url) if isinstance(url, str) else url
        if where.kind != "mysql":
            raise errors.InvalidArgumentError(
                f"Expected mysql://user:password@host:port/database, got {without_password(where.text)!r}")
        return cls(where.host, where.port, where.user, where.password, where.database, where.option("socket"))

    @property
    def url(self) -> str:
        """This target as a ``mysql://`` URL (the inverse of ``from_url``)."""
        user, password = quote(self.user, safe=""), quote(self.password, safe="")
        tail = f"?socket={self.socket}" if self.socket else ""
        return f"mysql://{user}:{password}@{self.host}:{self.port}/{self.database}{tail}"

    def with_database(self, database: str) -> "MySqlTarget":
        return replace(self, database=database)

    @classmethod
    def from_connection_config(cls, config: Any) -> "MySqlTarget":
        """From an MLMD ``MySQLDatabaseConfig``."""
        return cls(config.host or "127.0.0.1", config.port or 3306, config.user or "root", config.password,
                   config.database, config.socket or None)


class MySqlBackend(SqlBackend):
    """A MySQL/MariaDB projection; creates the database if it does not exist."""

    dialect = MYSQL

    def __init__(self, target: MySqlTarget, multi_statements: bool = False):
        try:
            import pymysql
        except ImportError as exc:  # the optional extra
            raise errors.FailedPreconditionError("The MySQL projection needs PyMySQL: pip install 'mlmd-log[mysql]'") \
                from exc
        self._pymysql = pymysql
        self.integrity_errors = (pymysql.err.IntegrityError,)
        # Any other driver error (lost connection, or SQL this backend rejects) stops the batch
        # rather than becoming a record's outcome that another backend would not produce.
        self.infrastructure_errors = (pymysql.err.MySQLError,)
        # (OperationalError: cannot connect, server gone away, lost connection; InterfaceError:
        # a statement on a connection already closed)
        self.connection_errors = (pymysql.err.OperationalError, pymysql.err.InterfaceError)
        self.target = target
        try:
            flags = pymysql.constants.CLIENT.MULTI_STATEMENTS if multi_statements else 0
            conn = pymysql.connect(host=target.host, port=target.port, user=target.user, password=target.password,
                                   unix_socket=target.socket, charset="utf8mb4", autocommit=True, client_flag=flags)
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS `{target.database}` "
                            "CHARACTER SET utf8mb4")
                for statement in self._session_statements():
                    cur.execute(statement)
        except pymysql.err.MySQLError as exc:
            raise errors.UnavailableError(
                f"Cannot connect to MySQL at {target.host}:{target.port}/{target.database}: {exc}") from exc
        super().__init__(conn)
        self.multi_statements = multi_statements  # several statements may go in one query (one round trip)
        self._collation = self._binary_collation()

    def _binary_collation(self) -> str:
        """NO PAD binary where the server has it (MariaDB, MySQL 8), plain binary otherwise."""
        for name in ("utf8mb4_nopad_bin", "utf8mb4_0900_bin"):
            if self.one("SHOW COLLATION WHERE `Collation` = ?", (name,)):
                return name
        return "utf8mb4_bin"

    def schema(self) -> list[str]:
        return [stmt.replace("{collation}", self._collation) for stmt in ddl.MYSQL_MLMD + ddl.MYSQL_LOG]

    def executemany(self, text: str, rows: Any) -> None:
        """Multi-row statements for an INSERT or REPLACE ... VALUES (see multi_row_statements);
        PyMySQL's executemany for anything else."""
        rows = list(rows)
        head, values, marks = text.partition(" VALUES (")
        if not values or not head.startswith(("INSERT", "REPLACE")) or set(marks[:-1]) - set("?, "):
            super().executemany(text, rows)
            return
        cur = self.conn.cursor()
        for statement in multi_row_statements(self.sql(head) + " VALUES ", rows, self.conn.escape):
            cur.execute(statement)

    def reconnect(self) -> None:
        """After a lost connection: connect again, with the database and isolation level."""
        try:
            self.conn.ping(reconnect=False)
        except self._pymysql.err.Error:
            self.conn.connect()  # (the same parameters and flags as the first time)
        self._cursor = None
        for statement in self._session_statements():
            self.execute(statement)

    def _session_statements(self) -> list[str]:
        """What a connection runs first, and again after reconnecting: its database, and
        READ COMMITTED (each statement sees what is committed, as the projector expects)."""
        return [f"USE `{self.target.database}`", "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"]

    def lost(self, message: str) -> Exception:
        """The error of a lost connection (an infrastructure error: the service connects
        again and starts over from the checkpoint)."""
        return self._pymysql.err.OperationalError(2013, f"Lost connection to MySQL server: {message}")

    def with_multi_statements(self) -> "MySqlBackend":
        """This backend, or (closing it) a new connection to its target that takes several
        statements per query."""
        if self.multi_statements:
            return self
        self.close()
        return MySqlBackend(self.target, multi_statements=True)

    def begin(self) -> None:
        self.execute("START TRANSACTION")

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        try:
            self.conn.rollback()
        except self._pymysql.err.MySQLError:
            pass  # the connection is gone; nothing was committed
