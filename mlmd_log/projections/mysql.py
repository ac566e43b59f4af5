"""MySQL / MariaDB projection backend (PyMySQL).

The engine's SQL runs unchanged: the dialect swaps ``?`` for ``%s``. Tables are
the official MySQL schema; multi-row inserts come from PyMySQL's executemany.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional
from urllib.parse import quote, unquote, urlparse

from mlmd_log import errors
from mlmd_log.projections import ddl
from mlmd_log.projections.backend import MYSQL, SqlBackend


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
    def from_url(cls, url: str) -> "MySqlTarget":
        """``mysql://user:password@host:port/database`` (``?socket=/path`` optional)."""
        parsed = urlparse(url)
        if parsed.scheme != "mysql" or not parsed.path.strip("/"):
            raise errors.InvalidArgumentError(f"Expected mysql://user:password@host:port/database, got {url!r}")
        query = dict(part.split("=", 1) for part in parsed.query.split("&") if "=" in part)
        return cls(parsed.hostname or "127.0.0.1", parsed.port or 3306, unquote(parsed.username or "root"),
                   unquote(parsed.password or ""), parsed.path.strip("/"), query.get("socket"))

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
        self.target = target
        try:
            flags = pymysql.constants.CLIENT.MULTI_STATEMENTS if multi_statements else 0
            conn = pymysql.connect(host=target.host, port=target.port, user=target.user, password=target.password,
                                   unix_socket=target.socket, charset="utf8mb4", autocommit=True, client_flag=flags)
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS `{target.database}` "
                            "CHARACTER SET utf8mb4")
                cur.execute(f"USE `{target.database}`")
                cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
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

    def write_checkpoint(self, applied_offset: int, last_time_ms: int) -> None:
        self.conn.cursor().execute(self.checkpoint_sql(applied_offset, last_time_ms))

    @staticmethod
    def checkpoint_sql(applied_offset: int, last_time_ms: int) -> str:
        """The statement writing the checkpoint. One upsert: MySQL's UPDATE reports rows
        *changed*, so an unchanged checkpoint would look absent to the generic update-then-insert."""
        return (f"INSERT INTO `mlmdlog_checkpoint` (`id`, `applied_offset`, `last_time_ms`) "
                f"VALUES (0, {int(applied_offset)}, {int(last_time_ms)}) "
                "ON DUPLICATE KEY UPDATE `applied_offset` = VALUES(`applied_offset`), "
                "`last_time_ms` = VALUES(`last_time_ms`)")

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
