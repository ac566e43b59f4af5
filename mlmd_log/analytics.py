"""SQL for people: ``mlmd-log sql`` and ``MetadataStore.duckdb()``.

Both answer from the DuckDB analytics projection (projections/duckdb.py: the MLMD tables
plus views), which is a cache of the log like any other projection. So a query first
catches it up from the log (applied to its SQLite staging file, mirrored into DuckDB in
bulk) and then runs on a read-only connection: a query cannot change what it reads, and
what it reads is the log as it was when the query started. A projection already at the
log's end is read as it is, so readers in several processes can share one file.

Where the analytics file lives (``AnalyticsLocation``):

* an embedded store's directory DIR (log ``DIR/log``): ``DIR/analytics.duckdb``, its
  staging ``DIR/analytics.duckdb.staging.sqlite`` beside it;
* an embedded store on a SQLite file PATH (log ``PATH.log``): ``PATH.analytics.duckdb``;
* any log (a FileLog, ``kafka://...``) and any file: ``--log LOG --duckdb PATH``.

Besides MLMD's tables: ``artifact_properties_flat`` (and execution, context), one table
per type with a column per declared property (``artifacts_Model``), ``lineage_edges``,
``context_members`` and ``history`` (projections/duckdb.py says what each holds). Examples:

Per-type property analytics, mean accuracy of Model artifacts per pipeline and day::

    mlmd-log sql --data-dir ./mlmd-data "
      SELECT m.context_name AS pipeline, a.day, avg(a.accuracy) AS mean_accuracy, count(*) AS models
      FROM artifacts_Model AS a
      JOIN context_members AS m ON m.node_kind = 'artifact' AND m.node_id = a.id
      WHERE m.context_type = 'Pipeline'
      GROUP BY ALL ORDER BY ALL"

Who changed what, when: the last day's changes to Model artifacts, rejected attempts too::

    mlmd-log sql --data-dir ./mlmd-data "
      SELECT h.time, h.producer, h.rpc, h.outcome, h.entity_id AS artifact, m.uri
      FROM history AS h JOIN artifacts_Model AS m ON m.id = h.entity_id
      WHERE h.kind = 'artifact' AND h.time > now()::TIMESTAMP - INTERVAL 1 DAY
      ORDER BY h.time DESC LIMIT 20"

In Python: ``con = store.duckdb(); con.sql("SELECT ...").df()``.
"""
from __future__ import annotations

import base64
import csv
import datetime
import decimal
import json
import math
import os
import threading
import uuid
import weakref
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence, TextIO

from mlmd_log import errors
from mlmd_log.dialects import DUCKDB
from mlmd_log.projections.backend import SqlBackend

ANALYTICS_FILE = "analytics.duckdb"
FORMATS = ("table", "csv", "json", "parquet")
# The statements a query may be: DuckDB's SELECT covers WITH, VALUES, FROM-first, SHOW,
# DESCRIBE and SUMMARIZE; anything else could write (a temp table, an attached file, a COPY).
_READ_STATEMENTS = ("SELECT", "EXPLAIN")
_FETCH_ROWS = 10_000


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError as exc:  # the optional extra
        raise errors.FailedPreconditionError("SQL on the store needs duckdb: pip install 'mlmd-log[duckdb]'") from exc
    return duckdb


@dataclass(frozen=True)
class AnalyticsLocation:
    """A log and the DuckDB analytics file (with its staging file) kept from it."""

    log: str  # a FileLog directory or a log URL
    duckdb_path: str
    staging_path: Optional[str] = None  # None: beside the DuckDB file (DuckDbProjection's default)

    @property
    def staging(self) -> str:
        return self.staging_path or self.duckdb_path + ".staging.sqlite"

    @classmethod
    def in_data_dir(cls, data_dir: str) -> "AnalyticsLocation":
        """The embedded store's directory layout: DIR/log, DIR/analytics.duckdb."""
        return cls(os.path.join(data_dir, "log"), os.path.join(data_dir, ANALYTICS_FILE))

    @classmethod
    def of_store(cls, config: Any) -> "AnalyticsLocation":
        """Where an embedded store's (``StoreConfig``) analytics file lives; FailedPreconditionError
        for a store without a log file of its own here (in memory, read-only, MySQL)."""
        log, sqlite = config.log_path, config.sqlite_path
        if log is not None and not config.readonly and config.projection_url is None:
            directory = os.path.dirname(log)
            if os.path.basename(log) == "log" and sqlite == os.path.join(directory, "mlmd.sqlite"):
                return cls.in_data_dir(directory)
            if log == sqlite + ".log":
                return cls(log, sqlite + "." + ANALYTICS_FILE)
        what = "in memory" if log is None else "read-only" if config.readonly else \
            f"on {config.projection_url or sqlite}"
        raise errors.FailedPreconditionError(
            f"duckdb() needs an embedded store on a directory or a SQLite file, with its log; this one is {what}. "
            "Elsewhere build the analytics file with: mlmd-log sql --log LOG --duckdb PATH \"SELECT 1\"")


# -- connections -----------------------------------------------------------------------
# DuckDB opens a file either read-write or read-only within one process, and catching up
# needs read-write: the read-only connections handed out for a file are closed first.
_readers: dict[str, list[weakref.ref]] = {}
_readers_lock = threading.Lock()
# One catch-up at a time in this process, and no read-only open meanwhile: DuckDB lets a
# second read-write connection to the same file in (one database shared), and two
# projectors on one staging file would each assign ids from their own memory. (Other
# processes are kept out by DuckDB's file lock.)
_catch_up_lock = threading.RLock()


def _key(path: str) -> str:
    return os.path.realpath(path)


def _hand_out(path: str, con: Any) -> Any:
    with _readers_lock:
        refs = [r for r in _readers.get(_key(path), []) if r() is not None]
        refs.append(weakref.ref(con))
        _readers[_key(path)] = refs
    return con


def _close_readers(path: str) -> None:
    with _readers_lock:
        refs = _readers.pop(_key(path), [])
    for ref in refs:
        con = ref()
        if con is not None:
            con.close()


def _open_read_only(path: str) -> Any:
    duckdb = _duckdb()
    from mlmd_log.projections.duckdb import one_line

    try:
        return duckdb.connect(path, read_only=True)
    except (duckdb.IOException, duckdb.ConnectionException) as exc:  # (a writer in another process holds it)
        raise errors.FailedPreconditionError(f"Cannot read the analytics file {path}: {one_line(exc)}") from exc


class _DuckDbReads(SqlBackend):
    """Bookkeeping reads (outcomes) on a DuckDB connection, for check_follows."""

    dialect = DUCKDB


def _caught_up(log: Any, con: Any) -> bool:
    """Whether ``con`` holds ``log`` to its end, in this version's schema (its views and
    tables), and is this log's projection (check_follows on the record before its checkpoint)."""
    from mlmd_log.projections import bookkeeping
    from mlmd_log.projections.duckdb import schema_is_current
    from mlmd_log.projections.projector import check_follows

    looks = con.cursor()  # (the connection is handed out with no result pending)
    try:
        if not schema_is_current(looks):  # (an older file, or not an analytics file yet)
            return False
        checkpoint = bookkeeping.read_duckdb_checkpoint(looks)
    finally:
        looks.close()
    if checkpoint is None or checkpoint[0] != log.end_offset():
        return False
    check_follows(log, _DuckDbReads(con), checkpoint[0])
    return True


def catch_up(where: AnalyticsLocation, quiet: bool = True, batch_size: int = 20000) -> Any:
    """Brings the analytics file up to the log's end (created if absent), with a progress
    bar unless ``quiet``; returns the ApplyStats."""
    from mlmd_log.locations import open_log
    from mlmd_log.progress import Progress
    from mlmd_log.projections.duckdb import DuckDbProjection

    log = open_log(where.log, readonly=True)
    try:
        with _catch_up_lock:
            _close_readers(where.duckdb_path)
            with DuckDbProjection(where.duckdb_path, where.staging) as projection, \
                    Progress("catch-up", quiet=quiet) as bar:
                return projection.catch_up(log, batch_size, progress=bar.update)
    finally:
        log.close()


def connect(where: AnalyticsLocation, catch_up_first: bool = True, quiet: bool = True) -> Any:
    """A read-only DuckDB connection to the analytics file, caught up from the log first
    (unless ``catch_up_first`` is False: then the file must exist and is read as it is)."""
    with _catch_up_lock:
        return _connect(where, catch_up_first, quiet)


def _connect(where: AnalyticsLocation, catch_up_first: bool, quiet: bool) -> Any:
    exists = os.path.exists(where.duckdb_path)
    if not catch_up_first:
        if not exists:
            raise errors.NotFoundError(f"No analytics file at {where.duckdb_path}; run without --no-catch-up "
                                       "to build it from the log")
        return _hand_out(where.duckdb_path, _open_read_only(where.duckdb_path))
    if exists:
        from mlmd_log.locations import open_log

        con = _open_read_only(where.duckdb_path)
        try:
            log = open_log(where.log, readonly=True)
            try:
                if _caught_up(log, con):
                    return _hand_out(where.duckdb_path, con)
            finally:
                log.close()
        except BaseException:
            con.close()
            raise
        con.close()
    catch_up(where, quiet)
    return _hand_out(where.duckdb_path, _open_read_only(where.duckdb_path))


# -- queries ---------------------------------------------------------------------------
def checked_query(con: Any, sql: str) -> str:
    """``sql`` if it is one read-only statement, else InvalidArgumentError (bad SQL included)."""
    duckdb = _duckdb()
    from mlmd_log.projections.duckdb import one_line

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise errors.InvalidArgumentError(f"Bad SQL: {one_line(exc)}") from None
    if len(statements) != 1:
        raise errors.InvalidArgumentError(f"Give one SQL statement, not {len(statements)}")
    kind = statements[0].type.name
    if kind not in _READ_STATEMENTS:
        raise errors.InvalidArgumentError(
            f"The store is queried read-only; {kind} statements are refused (SELECT, WITH, SHOW, DESCRIBE and "
            "EXPLAIN are not)")
    return sql


def query(con: Any, sql: str) -> Any:
    """Runs one read-only statement; returns the cursor holding its result. Bad SQL and
    refused statements are InvalidArgumentError, on one line."""
    duckdb = _duckdb()
    from mlmd_log.projections.duckdb import one_line

    checked_query(con, sql)
    try:
        return con.execute(sql)
    except duckdb.Error as exc:
        raise errors.InvalidArgumentError(one_line(exc)) from None


def _rows(cursor: Any) -> Iterator[tuple]:
    while True:
        chunk = cursor.fetchmany(_FETCH_ROWS)
        if not chunk:
            return
        yield from chunk


def _columns(cursor: Any) -> list[str]:
    return [d[0] for d in cursor.description]


def _plain(value: Any) -> Any:
    """A DuckDB value as JSON can hold it (times as ISO text, blobs as base64, NaN and
    infinities, which JSON cannot spell, as null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _text(value: Any, null: str = "") -> str:
    """A value as one cell of text (csv, table)."""
    if value is None:
        return null
    if isinstance(value, float):
        return repr(value)  # (nan and inf too: text can spell them)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(_plain(value), ensure_ascii=False)
    plain = _plain(value)
    return plain if isinstance(plain, str) else str(plain)


def write_csv(cursor: Any, out: TextIO) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_columns(cursor))
    n = 0
    for row in _rows(cursor):
        writer.writerow([_text(v) for v in row])
        n += 1
    return n


def write_json(cursor: Any, out: TextIO) -> int:
    """A JSON array of objects, one per row, streamed."""
    columns, n = _columns(cursor), 0
    out.write("[")
    for row in _rows(cursor):
        out.write(",\n " if n else "\n ")
        out.write(json.dumps(dict(zip(columns, (_plain(v) for v in row))), ensure_ascii=False, allow_nan=False,
                             default=str))
        n += 1
    out.write("\n]\n" if n else "]\n")
    return n


def write_table(cursor: Any, out: TextIO) -> int:
    """An aligned text table (numbers to the right) and a row count, the way psql shows one."""
    columns = _columns(cursor)
    rows = list(_rows(cursor))  # (widths need every row; --format csv streams)
    cells = [[_text(v, "NULL") for v in row] for row in rows]
    numeric = [bool(rows) and all(isinstance(r[i], (int, float, decimal.Decimal)) and not isinstance(r[i], bool)
                                  for r in rows if r[i] is not None) for i in range(len(columns))]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values: Sequence[str], align: Sequence[bool]) -> str:
        return " | ".join(v.rjust(w) if right else v.ljust(w) for v, w, right in zip(values, widths, align)).rstrip()

    out.write(line(columns, [False] * len(columns)) + "\n")
    out.write("-+-".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write(line(row, numeric) + "\n")
    out.write(f"({len(rows)} row{'' if len(rows) == 1 else 's'})\n")
    return len(rows)


_WRITERS = {"table": write_table, "csv": write_csv, "json": write_json}


def export(con: Any, sql: str, fmt: str, output: Optional[str] = None, stdout: Optional[TextIO] = None) -> None:
    """Runs ``sql`` and writes its result as ``fmt`` to ``output`` (a path) or ``stdout``
    (parquet: DuckDB's own writer, to a file only)."""
    if fmt not in FORMATS:
        raise errors.InvalidArgumentError(f"Unknown format {fmt!r}: one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        if not output:
            raise errors.InvalidArgumentError("--format parquet writes a file: give --output FILE")
        _write_parquet(con, sql, output)
        return
    cursor = query(con, sql)
    if output is None:
        _WRITERS[fmt](cursor, stdout)
        return
    with open(output, "w", encoding="utf-8", newline="") as out:
        _WRITERS[fmt](cursor, out)


def _write_parquet(con: Any, sql: str, output: str) -> None:
    duckdb = _duckdb()
    from mlmd_log.projections.duckdb import one_line

    checked_query(con, sql)
    try:
        con.sql(sql).write_parquet(output)
    except duckdb.Error as exc:
        raise errors.InvalidArgumentError(one_line(exc)) from None


__all__ = ["ANALYTICS_FILE", "AnalyticsLocation", "FORMATS", "catch_up", "checked_query", "connect", "export",
           "query"]
