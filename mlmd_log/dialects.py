"""Each backend's SQL spellings, in one object per backend: SQLite, MySQL/MariaDB, DuckDB.

SQL is written once, portably: the engine's with ``?`` parameters and back-quoted names,
the reader's and the filter compiler's with the markers of ``query/sql.py`` (``{p}``,
``{ids}``). A backend names its ``Dialect`` once; writer, reader and filter compiler all
take that object, so no layer looks a spelling up by the backend's name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from mlmd_log.query.sql import BASE_QUERIES, INDEX_ORDER_QUERIES, MYSQL_INDEX_ORDER_QUERIES


@dataclass(frozen=True)
class Dialect:
    """How one backend spells parameters, identifiers, inserts, orders and operators."""

    name: str
    param: str  # one bound parameter ("?" for sqlite3 and DuckDB, "%s" for PyMySQL)
    quote: str = "`"  # identifier quote
    # -- writes (projections/engine.py)
    insert_ignore: str = "INSERT OR IGNORE"  # an insert that skips rows a unique key already has
    int_limit: Optional[int] = None  # property int_value is INT (32 bits) on MySQL, 64 bits on SQLite
    reversed_uris: bool = False  # keeps mlmdlog_artifact_ruri (SQLite: its LIKE ignores case, as the index)
    # -- reads (query/reader.py)
    max_in_params: int = 500  # ids per IN (...) chunk
    # MLMD reads SQLite through sqlite3_exec, i.e. REALs as "%.15g" text; a dialect
    # that sets this reproduces that rounding so doubles compare equal.
    double_text_digits: Optional[int] = None
    # Whether projections in this dialect may carry serialized read forms.
    read_forms: bool = True
    # Read-specific SQL (order tails that mimic MLMD's SQLite index order).
    queries: dict[str, str] = field(default_factory=dict)
    # Words of this backend's errors for a query past one of its limits (depth, terms,
    # variables, joins): the caller asked too much, not the store failed.
    limit_errors: tuple[str, ...] = ()
    # -- filters (query/filter_sql.py)
    like: str = "LIKE"  # MLMD on SQLite: LIKE is case-insensitive for ASCII
    not_like: str = "NOT LIKE"
    true: object = 1
    false: object = 0

    def render_qmark(self, sql: str) -> str:
        """The engine's SQL (``?`` parameters, back-quoted names) in this dialect."""
        if self.param != "?":
            sql = sql.replace("?", self.param)
        if self.quote != "`":
            sql = sql.replace("`", self.quote)
        return sql

    def render(self, text: str, n_ids: int = 0) -> str:
        """SQL with the markers of query/sql.py, ``n_ids`` parameters in its ``{ids}`` list."""
        text = text.replace("{ids}", ", ".join([self.param] * n_ids)).replace("{p}", self.param)
        return text if self.quote == "`" else text.replace("`", self.quote)

    def sql(self, name: str, n_ids: int = 0) -> str:
        """The read query ``name`` with ``n_ids`` parameters in its ``{ids}`` list."""
        return self.render(self.queries.get(name) or BASE_QUERIES[name], n_ids)

    def read_double(self, value) -> float:
        value = float(value)
        if self.double_text_digits is None:
            return value
        return float(f"{value:.{self.double_text_digits}g}")

    def exceeded_limit(self, exc: BaseException) -> Optional[str]:
        """The backend's message when ``exc`` says a query went past one of its limits."""
        text = str(exc)
        lowered = text.lower()
        return text if any(words in lowered for words in self.limit_errors) else None


SQLITE = Dialect(
    "sqlite", "?", reversed_uris=True, double_text_digits=15, queries=INDEX_ORDER_QUERIES,
    limit_errors=("expression tree is too large", "too many terms in compound select", "too many sql variables",
                  "tables in a join", "too many from clause terms", "parser stack overflow",
                  "pattern too complex", "string or blob too big", "too many columns", "too many arguments"))

# MySQL/MariaDB: SQLite's read SQL and orders (so every projection answers a read
# identically), with PyMySQL's placeholder.
MYSQL = Dialect(
    "mysql", "%s", insert_ignore="INSERT IGNORE", int_limit=2 ** 31, double_text_digits=15,
    queries=MYSQL_INDEX_ORDER_QUERIES,
    limit_errors=("thread stack overrun", "too many tables", "too many placeholders", "max_allowed_packet",
                  "memory exhausted"))

# DuckDB (the analytics projection, projections/duckdb.py): SQLite's read SQL and orders,
# double-quoted identifiers. DuckDB's rowid follows insertion order, and the mirror inserts
# EventPath and ParentContext rows in staging rowid order. The mirror copies MLMD's tables
# only (no read forms); its LIKE is case-sensitive, so filters spell MLMD's LIKE as ILIKE.
DUCKDB = Dialect(
    "duckdb", "?", quote='"', double_text_digits=15, read_forms=False, queries=INDEX_ORDER_QUERIES,
    limit_errors=("expression depth", "stack overflow", "recursion"),
    like="ILIKE", not_like="NOT ILIKE", true=True, false=False)
