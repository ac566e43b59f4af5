"""The ``mlmd-log`` command: the store's operations from a shell."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Optional, Sequence

import mlmd_log
from mlmd_log import errors
from mlmd_log.progress import Progress
from mlmd_log.urls import parse_log_url, parse_projection_url, without_password


def _cmd_replay(args: argparse.Namespace) -> int:
    from mlmd_log.consumer.replay import replay
    from mlmd_log.locations import open_log, open_projection

    if parse_projection_url(args.into).kind == "duckdb":
        return _replay_into_duckdb(args)
    log = open_log(args.log, readonly=True)
    db = open_projection(args.into)
    try:
        until = None if args.until is None else _until_offset(args.until, log)
        with Progress("replay", quiet=args.quiet) as bar:
            stats = replay(log, db, batch_size=args.batch_size, progress=lambda done, end: bar.update(done, end),
                           until=until)
    finally:
        db.close()
        log.close()
    print(f"replayed {stats.records} records ({stats.rejected} rejected puts kept as outcomes) "
          f"into {args.into} in {stats.seconds:.2f}s; projection is at offset {stats.end_offset}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from mlmd_log.importer import import_into

    if bool(args.data_dir) == bool(args.log) or (args.into and not args.log):
        raise errors.InvalidArgumentError("name the target with --data-dir DIR, or --log LOG [--into PROJECTION_URL]")
    if args.data_dir:
        log_url, into = os.path.join(args.data_dir, "log"), "sqlite:///" + os.path.join(args.data_dir, "mlmd.sqlite")
    else:
        log_url, into = args.log, args.into
    summary = import_into(args.source, log_url, into, quiet=args.quiet)
    rows = ", ".join(f"{count} {name}" for name, count in summary.rows.items())
    print(f"imported {rows} from {without_password(args.source)} as {summary.records} records"
          + (f", applied to {without_password(into)}" if into else ""))
    if summary.inexact_times:
        print(f"{summary.inexact_times} times could not be reproduced (the log's time only moves forward and ids go "
              f"in order): {'; '.join(summary.first_inexact)}", file=sys.stderr)
    return 0


def _replay_into_duckdb(args: argparse.Namespace) -> int:
    """The analytics projection, built (or caught up) in DuckDB's bulk path, as `sql` does."""
    from mlmd_log import analytics
    from mlmd_log.projections.duckdb import duckdb_path

    if args.until is not None:
        raise errors.InvalidArgumentError("--until cuts SQLite and MySQL replays; a DuckDB projection follows the "
                                          "whole log (replay --until into SQLite, then query that)")
    stats = analytics.catch_up(analytics.AnalyticsLocation(args.log, duckdb_path(args.into)), quiet=args.quiet)
    print(f"replayed {stats.records} records ({stats.rejected} rejected puts kept as outcomes) into {args.into} "
          f"in {stats.seconds:.2f}s; projection is at offset {stats.applied_offset}")
    return 0


def _point(text: str, option: str) -> Any:
    """A point of the log as given: an offset (int), or an ISO time (an aware datetime; UTC
    when it names no zone)."""
    import datetime

    if text.isdigit():
        return int(text)
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise errors.InvalidArgumentError(f"{option} {text!r} is neither an offset nor an ISO time "
                                          "(2026-03-01T12:00Z)") from None
    return when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)


def _until_offset(text: str, log: Any) -> int:
    """--until: an offset, or the first record after an ISO time (by the log's times)."""
    from mlmd_log.consumer.replay import offset_after_time

    point = _point(text, "--until")
    return point if isinstance(point, int) else offset_after_time(log, int(point.timestamp() * 1000))


def _cmd_archive(args: argparse.Namespace) -> int:
    from mlmd_log.locations import open_log
    from mlmd_log.producer import FileLog
    from mlmd_log.producer.archive import archive_records

    live = parse_log_url(args.log)
    if live.archive is not None:
        raise errors.InvalidArgumentError(f"--log names the live log alone (no ?archive=): {args.log}")
    if args.trim and live.kind != "kafka":
        raise errors.InvalidArgumentError("--trim drops records from a Kafka topic; --log is not one")
    if live.kind == "kafka":
        from mlmd_log.producer.kafka_log import KafkaLog

        log = KafkaLog(live.bootstrap, live.topic, create=False)  # (a missing topic is an error, not one to create)
    else:
        log = open_log(args.log, readonly=True)
    try:
        archive = FileLog(args.to)  # (fsync per batch; its lock keeps a second archiver out)
        try:
            with Progress("archive", quiet=args.quiet) as bar:
                first, end = archive_records(log, archive, args.to, until=args.until,
                                             progress=lambda done, end: bar.update(done, end))
            held = archive.end_offset()
        finally:
            archive.close()
        print(f"archived offsets {first}..{end} ({end - first} records) into {args.to}, which holds 0..{held}")
        if args.trim:
            log.drop_records_before(held)
            print(f"the topic now starts at offset {log.start_offset()}; a reader from below it reads "
                  f"{args.log}?archive={args.to}")
    finally:
        log.close()
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from mlmd_log.locations import open_log, open_projection
    from mlmd_log.producer.avro_export import OutcomeSource, export_log

    if args.data_dir and args.projection:
        raise errors.InvalidArgumentError("--projection goes with --log (a --data-dir's projection is DIR/mlmd.sqlite)")
    log = open_log(args.log or os.path.join(args.data_dir, "log"), readonly=True)
    projection = args.projection or (os.path.join(args.data_dir, "mlmd.sqlite") if args.data_dir else None)
    db = None
    try:
        db = open_projection(projection, create=False, readonly=True) if projection else None
        with Progress("export", quiet=args.quiet) as bar:
            stats = export_log(log, args.to, OutcomeSource(db, projection) if db else None, until=args.until,
                               max_file_bytes=int(args.max_file_mb * 2**20),
                               progress=lambda done, end: bar.update(done, end))
    finally:
        if db is not None:
            db.close()
        log.close()
    print(f"exported offsets {stats.first}..{stats.end} ({stats.end - stats.first} records, {len(stats.files)} new "
          f"files) into {args.to}, which holds 0..{stats.end}; outcome columns "
          + (f"from {projection}" if db else "null (no projection: --data-dir or --projection fills them)"))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from mlmd_log.demo import run_demo

    run_demo(args.data_dir, as_json=args.json)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from mlmd_log.consumer.follower import applied_through
    from mlmd_log.producer import FileLog
    from mlmd_log.projections.backend import SqliteBackend
    from mlmd_log.projections.bookkeeping import next_offset
    from mlmd_log.projections.projector import check_follows

    log_dir = os.path.join(args.data_dir, "log")
    db_path = os.path.join(args.data_dir, "mlmd.sqlite")
    found: dict[str, Any] = {"log": log_dir}
    with FileLog(log_dir, readonly=True) as log:
        found["records"] = end = log.end_offset()
        if os.path.exists(db_path):
            db = SqliteBackend(db_path, readonly=True)
            try:
                applied = next_offset(db)
                check_follows(log, db, applied, end)  # (a log shorter than the checkpoint lost records)
                counts = {t: db.one(f"SELECT COUNT(*) FROM `{t}`")[0] for t in ("Artifact", "Execution", "Context", "Event")}
            finally:
                db.close()
            found["projection"] = {"path": db_path, "applied_offset": applied,
                                   **{f"{t.lower()}s": n for t, n in counts.items()}}
    if args.json:
        import json

        print(json.dumps(found, sort_keys=True))
        return 0
    print(f"log: {log_dir}, {end} records")
    if "projection" in found:
        print(f"projection: {db_path}, {applied_through(applied)}; "
              + ", ".join(f"{n} {t.lower()}s" for t, n in counts.items()))
    return 0


def _add_log_location(p: argparse.ArgumentParser) -> None:
    """--log DIR or --data-dir DIR (whose log is DIR/log), one of them required."""
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--log", help="a FileLog directory")
    where.add_argument("--data-dir", help="an embedded store's directory (its log is DIR/log)")


def _log_dir(args: argparse.Namespace) -> str:
    """The FileLog directory named by --log, or the one inside --data-dir."""
    return args.log if args.log else os.path.join(args.data_dir, "log")


def _cmd_verify(args: argparse.Namespace) -> int:
    from mlmd_log.producer import FileLog
    from mlmd_log.producer.file_log import verify_log

    log_dir = _log_dir(args)
    report = verify_log(log_dir)
    print(f"log {log_dir} is sound: {report.records} records, {report.segments} segments, {report.bytes} bytes "
          f"checked (every frame and segment link)"
          + ("; a writer holds the lock, its append in progress was not counted" if report.writer_active else ""))
    db_path = os.path.join(args.data_dir, "mlmd.sqlite") if args.data_dir else None
    if db_path and os.path.exists(db_path):
        from mlmd_log.consumer.follower import applied_through
        from mlmd_log.projections.backend import SqliteBackend
        from mlmd_log.projections.bookkeeping import next_offset
        from mlmd_log.projections.projector import check_follows

        db = SqliteBackend(db_path, readonly=True)
        try:
            applied = next_offset(db)
            with FileLog(log_dir, readonly=True) as log:
                check_follows(log, db, applied)
        finally:
            db.close()
        print(f"projection {db_path} follows the log ({applied_through(applied)})")
    return 0


def _cmd_repair(args: argparse.Namespace) -> int:
    from mlmd_log.producer.file_log import repair_log

    log_dir = _log_dir(args)
    report = repair_log(log_dir, args.to_offset)
    if report.saved_in is None:
        print(f"log {log_dir} already ends at offset {args.to_offset}: nothing cut")
        return 0
    for segment, start, copy, size in report.saved:
        print(f"saved {size} bytes of {segment} from byte {start} to {copy}")
    print(f"log {log_dir} now holds offsets 0..{report.end}; what was cut is in {report.saved_in}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from mlmd_log.server.config import serve_config_from_args
    from mlmd_log.server.grpc_server import serve

    return serve(serve_config_from_args(args))


def _cmd_project(args: argparse.Namespace) -> int:
    import logging

    from mlmd_log.consumer.projector_service import ProjectorService
    from mlmd_log.process import tune_gc
    from mlmd_log.locations import open_log, open_projection

    tune_gc()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # kafka-python logs its own connection failures with tracebacks; we report an
    # unavailable broker ourselves (UnavailableError, retried), so keep its noise out.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    into = parse_projection_url(args.into)
    if into.kind == "duckdb":  # the analytics projection: SQLite staging mirrored into DuckDB
        return _project_into_duckdb(args)
    if args.staging:  # apply into a local SQLite staging file, mirror each batch into the target in bulk
        return _project_mirrored(args)
    log = open_log(args.log, readonly=True)
    db = open_projection(args.into)
    # Into MySQL, a second connection (for retried records' earlier outcomes) lets writer
    # processes store batches while the next is decided (consumer/pipelined.py).
    reader = open_projection(args.into) if into.kind == "mysql" and args.pipeline else None
    service = ProjectorService(log, db, batch_size=args.batch_size, reader=reader)
    service.install_signal_handlers()
    try:
        status = service.run(report_every=args.report_every, until_caught_up=args.until_caught_up)
    finally:
        try:
            service.close()
        finally:
            db.close()
            if reader is not None:
                reader.close()
            log.close()
    print(f"projector stopped at offset {status.applied_offset} (lag {status.lag})")
    return 0


def _project_into_duckdb(args: argparse.Namespace) -> int:
    from mlmd_log.locations import open_log
    from mlmd_log.projections.duckdb import DuckDbProjection, duckdb_path, project

    log = open_log(args.log, readonly=True)
    try:
        with DuckDbProjection(duckdb_path(args.into)) as projection:
            project(log, projection, args.batch_size, follow=not args.until_caught_up)
    finally:
        log.close()
    return 0


def _project_mirrored(args: argparse.Namespace) -> int:
    import threading

    from mlmd_log.locations import open_log, open_projection
    from mlmd_log.projections.mirror import MirroredProjection, follow

    if parse_projection_url(args.into).kind != "mysql":
        raise errors.InvalidArgumentError("--staging goes with a mysql:// projection (--into)")
    log = open_log(args.log, readonly=True)
    projection = MirroredProjection(open_projection(args.into), args.staging)
    try:
        follow(log, projection, threading.Event(), batch_size=args.batch_size, report_every=args.report_every,
               until_caught_up=args.until_caught_up, idle_sleep=0.005,  # short polls: writers wait on us
               log_url=args.log if args.stager == "process" else None, stop_on_signals=True)
        offset = projection.applied_offset()
    finally:
        projection.close()
        log.close()
    print(f"projector stopped at offset {offset} (mirrored through {args.staging})")
    return 0


def _cmd_sql(args: argparse.Namespace) -> int:
    from mlmd_log import analytics
    from mlmd_log.client import DEFAULT_DATA_DIR

    if not args.log:
        where = analytics.AnalyticsLocation.in_data_dir(args.data_dir or DEFAULT_DATA_DIR)
        if args.duckdb:
            raise errors.InvalidArgumentError("--duckdb goes with --log; --data-dir keeps its own analytics file")
    elif args.duckdb:
        where = analytics.AnalyticsLocation(args.log, args.duckdb)
    else:
        raise errors.InvalidArgumentError("--log needs --duckdb PATH: where to keep the analytics file")
    con = analytics.connect(where, catch_up_first=args.catch_up, quiet=args.quiet)
    try:
        analytics.export(con, args.query, args.format, args.output, sys.stdout)
    except BrokenPipeError:  # (| head has read enough: not a failure)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        con.close()
    return 0


# -- history --------------------------------------------------------------------------
def _add_history_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="an embedded store's directory (its projection keeps the history)")
    p.add_argument("--projection", help="a SQLite projection, sqlite:///PATH (with --log: caught up from it first)")
    p.add_argument("--log", help="with --projection: the log to catch the projection up from")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--quiet", action="store_true", help="no progress bar while catching up")


def _history_connection(args: argparse.Namespace) -> Any:
    """A read-only connection on the projection the arguments name, caught up first."""
    import sqlite3

    from mlmd_log.consumer.replay import replay
    from mlmd_log.locations import open_log, open_projection

    if bool(args.data_dir) == bool(args.projection):
        raise errors.InvalidArgumentError("name the history with --data-dir DIR or --projection sqlite:///PATH")
    if args.log and not args.projection:
        raise errors.InvalidArgumentError("--log goes with --projection (the projection that keeps the history)")
    if args.data_dir:
        path = os.path.join(args.data_dir, "mlmd.sqlite")
        if not os.path.isfile(path):
            raise errors.NotFoundError(f"No store in {args.data_dir} (no {path})")
    else:
        where = parse_projection_url(args.projection)
        if where.kind != "sqlite" or where.path == ":memory:":
            raise errors.InvalidArgumentError(f"--projection: history is kept by SQLite files, not {args.projection}")
        path = where.path
        if args.log:
            log, db = open_log(args.log, readonly=True), open_projection(args.projection)
            try:
                with Progress("catch-up", quiet=args.quiet) as bar:
                    replay(log, db, progress=lambda done, end: bar.update(done, end))
            finally:
                db.close()
                log.close()
        elif not os.path.isfile(path):
            raise errors.NotFoundError(f"No projection at {path}")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def _cmd_history(args: argparse.Namespace) -> int:
    import json

    from mlmd_log.query.history import entity_history, entry_lines

    conn = _history_connection(args)
    try:
        entries = entity_history(conn, args.kind, args.id, args.limit)
    finally:
        conn.close()
    if not entries:
        raise errors.NotFoundError(f"No record touched {args.kind} {args.id}")
    for entry in entries:
        print(json.dumps(entry, sort_keys=True) if args.json else "\n".join(entry_lines(entry)))
    return 0


def _offset_or_time(text: str, option: str, conn: Any) -> int:
    """An offset, or the offset after the records applied by an ISO time."""
    from mlmd_log.query.history import offset_at_time

    point = _point(text, option)
    return point if isinstance(point, int) else offset_at_time(conn, point)


def _cmd_diff(args: argparse.Namespace) -> int:
    import json

    from mlmd_log.query.history import applied_offset, changes_between, diff_lines

    conn = _history_connection(args)
    try:
        start = _offset_or_time(args.start, "--from", conn)
        end = applied_offset(conn) if args.end is None else _offset_or_time(args.end, "--to", conn)
        diff = changes_between(conn, start, end)
    finally:
        conn.close()
    print(json.dumps(diff, sort_keys=True) if args.json else "\n".join(diff_lines(diff)))
    return 0


# -- lineage --------------------------------------------------------------------------
def _reading_store(args: argparse.Namespace) -> Any:
    """A MetadataStore that only reads, on what --data-dir, --projection or --grpc names: a
    data directory's projection opens read-only, so a running writer keeps its lock."""
    from mlmd_log.client import ProjectionConfig, StoreConfig
    from mlmd_log.proto import metadata_store_pb2 as pb

    if args.data_dir:
        return mlmd_log.MetadataStore(StoreConfig(os.path.join(args.data_dir, "log"),
                                                  os.path.join(args.data_dir, "mlmd.sqlite"), readonly=True))
    if args.projection:
        return mlmd_log.MetadataStore(ProjectionConfig(args.projection))
    host, _, port = args.grpc.rpartition(":")
    if not host or not port.isdigit():
        raise errors.InvalidArgumentError(f"--grpc is HOST:PORT, not {args.grpc!r}")
    return mlmd_log.MetadataStore(pb.MetadataStoreClientConfig(host=host.strip("[]"), port=int(port),
                                                               client_timeout_sec=60))


def _cmd_lineage(args: argparse.Namespace) -> int:
    from mlmd_log.lineage_render import RENDERERS, lineage_graph, write_picture

    store = _reading_store(args)
    try:
        graph = lineage_graph(store, args.kind, args.id, args.direction, args.hops)
    finally:
        store.close()
    if args.output:
        write_picture(graph, args.output)
        print(f"wrote {args.output}: {len(graph.nodes)} nodes, {len(graph.edges)} edges, "
              f"{len(graph.contexts)} contexts")
    else:
        sys.stdout.write(RENDERERS[args.format](graph))
    return 0


def _cmd_ui(args: argparse.Namespace) -> int:
    from mlmd_log.ui import serve

    store = _reading_store(args)
    try:
        serve(store, args.port, announce=lambda line: print(line, flush=True))
    finally:
        store.close()
    return 0


class _ShowVersion(argparse.Action):
    """--version, reading the package's metadata only when asked (see mlmd_log.__getattr__)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        print(f"{parser.prog} {mlmd_log.__version__}")
        parser.exit()


def _add_reading_source(p: argparse.ArgumentParser) -> None:
    """--data-dir, --projection or --grpc: what _reading_store opens."""
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--data-dir", help="an embedded store's directory (its projection, read-only)")
    where.add_argument("--projection", help="a projection: sqlite:///PATH or mysql://user:pw@host:port/db")
    where.add_argument("--grpc", metavar="HOST:PORT", help="an mlmd-log or ml-metadata gRPC server")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlmd-log", description="ML Metadata as an event-sourced log.")
    parser.add_argument("--version", action=_ShowVersion, help="show the installed version and exit")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("replay", help="rebuild a projection from a log",
                       description="Rebuild (or bring up to date) a projection from a log. "
                                   "Example: mlmd-log replay --log mlmd-data/log --into sqlite:///rebuilt.db")
    p.add_argument("--log", required=True, help="log: a FileLog directory, file:///DIR, kafka://HOST:PORT/TOPIC "
                                                "(?archive=DIR for a topic whose old records were archived) or "
                                                "avro:///DIR (an archive mlmd-log export wrote)")
    p.add_argument("--into", required=True, help="target projection: sqlite:///new.db, mysql://user:pw@host:port/db "
                                                 "or duckdb:///analytics.duckdb (in DuckDB's bulk path, with views)")
    p.add_argument("--batch-size", type=int, default=2000, help="records per projection transaction")
    p.add_argument("--until", help="stop before this offset, or after the records of this ISO time "
                                   "(2026-03-01T12:00Z): the projection as it was then")
    p.add_argument("--quiet", action="store_true", help="no progress bar (there is none without a terminal either)")
    p.set_defaults(func=_cmd_replay)

    p = sub.add_parser("import", help="move a database ml-metadata wrote (schema v10) into a log, ids and times kept",
                       description="Reads an ml-metadata 1.17 database (MLMD schema version 10, SQLite or MySQL) "
                                   "and appends the put requests that rebuild it to an empty log, then applies "
                                   "them: same ids, names, properties, events, links and times (a time the "
                                   "log's forward-only clock cannot give is named on stderr). Refuses a non-empty "
                                   "log, another schema version, and id gaps. Example: mlmd-log import --from "
                                   "sqlite:///mlmd.db --data-dir ./mlmd-data")
    p.add_argument("--from", dest="source", required=True,
                   help="the ml-metadata database: sqlite:///PATH or mysql://user:pw@host:port/db (read only)")
    p.add_argument("--data-dir", help="an embedded store's directory to create (log DIR/log, projection DIR/mlmd.sqlite)")
    p.add_argument("--log", help="the empty target log: a FileLog directory, file:///DIR or kafka://HOST:PORT/TOPIC")
    p.add_argument("--into", help="with --log: the projection to apply the log to (sqlite:///PATH or mysql://...)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (there is none without a terminal either)")
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("history", help="every record that touched one node or type: who, when, what changed",
                       description="Lists, oldest first, each record that touched the entity: offset, time, "
                                   "record id, producer, RPC, outcome (rejected attempts too) and the old and new "
                                   "value of each field and property, plus the links it added. "
                                   "Example: mlmd-log history artifact 12 --data-dir ./mlmd-data")
    p.add_argument("kind", choices=["artifact", "execution", "context", "artifact_type", "execution_type",
                                    "context_type"])
    p.add_argument("id", type=int)
    p.add_argument("--limit", type=int, help="the first N records only")
    _add_history_source(p)
    p.set_defaults(func=_cmd_history)

    p = sub.add_parser("diff", help="what changed between two points of the log",
                       description="Nodes and types created and changed (field diffs), links added and rejected "
                                   "attempts in records [FROM, TO). Points are offsets or ISO times. "
                                   "Example: mlmd-log diff --from 100 --to 2026-03-01T12:00Z --data-dir ./mlmd-data")
    p.add_argument("--from", dest="start", required=True, help="an offset or an ISO time")
    p.add_argument("--to", dest="end", help="an offset or an ISO time (default: what is applied)")
    _add_history_source(p)
    p.set_defaults(func=_cmd_diff)

    from mlmd_log.lineage_render import DIRECTIONS, FORMATS, KINDS
    p = sub.add_parser("lineage", help="a node's lineage (or a context's members) as DOT, Mermaid, JSON or a picture",
                       description="Prints the lineage DAG around an artifact or execution (MLMD's "
                                   "get_lineage_subgraph from it), or a context's artifacts and executions and "
                                   "their events, with the contexts as clusters: inputs point into executions, "
                                   "outputs out of them; the node asked about and failed executions are marked. "
                                   "Example: mlmd-log lineage artifact 3 --data-dir ./mlmd-data --direction "
                                   "upstream --hops 2 --output lineage.svg")
    p.add_argument("kind", choices=KINDS)
    p.add_argument("id", type=int)
    p.add_argument("--direction", choices=list(DIRECTIONS),
                   help="which events to follow from an artifact or execution (default: both)")
    p.add_argument("--hops", type=int, help="most events from the node to follow, as MLMD's max_num_hops "
                                            "(default: MLMD's, 100)")
    p.add_argument("--format", choices=FORMATS, default="dot", help="what to print (default: dot)")
    p.add_argument("--output", metavar="FILE.svg|FILE.png",
                   help="draw the graph into this file with Graphviz's dot instead of printing it")
    _add_reading_source(p)
    p.set_defaults(func=_cmd_lineage)

    p = sub.add_parser("ui", help="a read-only web page on 127.0.0.1: nodes by type, filters, lineage graphs",
                       description="Serves pages listing artifacts, executions and contexts by type with their "
                                   "properties, filtered with MLMD's filter language, each node's events and "
                                   "contexts, and its lineage graph (SVG with Graphviz's dot); /api/... gives "
                                   "the same as JSON. Example: mlmd-log ui --data-dir ./mlmd-data --port 8765, "
                                   "then open http://127.0.0.1:8765/ (port 0 picks a free port and prints the URL)")
    p.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default: 8765; 0 picks a free one, "
                                                          "the URL is printed)")
    _add_reading_source(p)
    p.set_defaults(func=_cmd_ui)

    p = sub.add_parser("archive", help="copy a log's records to a FileLog archive (same offsets); --trim then "
                                       "drops them from the Kafka topic",
                       description="Example: mlmd-log archive --log kafka://127.0.0.1:9092/mlmd --to /archive/mlmd "
                                   "--trim. Run again later to archive what came since. Readers that start below the "
                                   "topic's first offset read kafka://127.0.0.1:9092/mlmd?archive=/archive/mlmd.")
    p.add_argument("--log", required=True, help="the live log: kafka://HOST:PORT/TOPIC (or a FileLog directory)")
    p.add_argument("--to", required=True, help="the archive, a FileLog directory (created if absent)")
    p.add_argument("--until", type=int, help="archive up to this offset (default: the log's end when the run starts)")
    p.add_argument("--trim", action="store_true",
                   help="then drop the archived records from the topic (Kafka DeleteRecords)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (there is none without a terminal either)")
    p.set_defaults(func=_cmd_archive)

    p = sub.add_parser("export", help="archive a log as Avro files (one row a record; avro:///DIR reads it back)",
                       description="Writes the records the archive lacks as new Avro object container files "
                                   "(schema: mlmd_log/schemas/log_record.avsc): the envelope as columns, the payload "
                                   "as the log holds it, the request as JSON, and the outcome (error code and "
                                   "message) from the projection, exporting only what it has applied. With --log "
                                   "alone the outcome columns are null. Run again to append what came since; an "
                                   "archive of another log is refused. Example: mlmd-log export --data-dir "
                                   "./mlmd-data --to /archive/mlmd, then mlmd-log replay --log avro:///archive/mlmd "
                                   "--into sqlite:///rebuilt.db")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--log", help="the log: a FileLog directory, file:///DIR or kafka://HOST:PORT/TOPIC "
                                     "(outcome columns null unless --projection is given)")
    where.add_argument("--data-dir", help="an embedded store's directory: its log DIR/log, outcomes from DIR/mlmd.sqlite")
    p.add_argument("--projection", help="with --log: a projection of it (sqlite:///PATH, mysql://...) for the outcomes")
    p.add_argument("--to", required=True, help="the archive directory (created if absent)")
    p.add_argument("--max-file-mb", type=float, default=64, help="start a new file past this size (default 64)")
    p.add_argument("--until", type=int, help="export up to this offset (default: the log's end, or the projection's)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (there is none without a terminal either)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("demo", help="the tour: record two runs of an ML pipeline, then answer the MLMD guide's "
                                    "questions (lineage, history, as of) from the store",
                       description="Records ExampleGen -> StatisticsGen -> Trainer -> Evaluator -> Pusher twice "
                                   "(the second model fails evaluation and its push fails), promotes the first "
                                   "model, then prints the guide's questions with answers read back through the "
                                   "API. Run it again for two new runs. Example: mlmd-log demo --data-dir ./mlmd-data")
    p.add_argument("--data-dir", default="mlmd-data", help="where the embedded store lives")
    p.add_argument("--json", action="store_true", help="print the answers as one JSON object")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("project", help="follow a log and keep a projection up to date (the projector service)",
                       description="Example: mlmd-log project --log kafka://127.0.0.1:9092/mlmd "
                                   "--into mysql://mlmd:mlmd@127.0.0.1:3306/mlmd")
    p.add_argument("--log", required=True, help="file:///DIR, a FileLog directory, kafka://HOST:PORT/TOPIC "
                                                "(?archive=DIR for a topic whose old records were archived) or "
                                                "avro:///DIR (an archive mlmd-log export wrote)")
    p.add_argument("--into", required=True,
                   help="sqlite:///PATH, mysql://user:pw@host:port/db or duckdb:///PATH (analytics, with views)")
    p.add_argument("--batch-size", type=int, default=2000, help="most records per projection transaction")
    p.add_argument("--report-every", type=float, default=10.0, help="seconds between lag reports")
    p.add_argument("--until-caught-up", action="store_true", help="stop once the projection reaches the log end")
    p.add_argument("--staging", help="with mysql://: apply into this local SQLite file and mirror each batch into "
                                     "MySQL in bulk (several times faster than one round trip per statement)")
    p.add_argument("--no-pipeline", dest="pipeline", action="store_false",
                   help="into mysql:// without --staging: write each batch before deciding the next (by default "
                        "two writer processes store batches of pipeline steps while the next is decided)")
    p.add_argument("--stager", choices=["process", "thread"], default="process",
                   help="with --staging: apply the log to staging in a child process (default; the state machine "
                        "and the copy into MySQL then use two cores) or in a thread of this one")
    p.set_defaults(func=_cmd_project)

    p = sub.add_parser("info", help="show what a data directory holds",
                       description="Example: mlmd-log info --data-dir ./mlmd-data")
    p.add_argument("--data-dir", default="mlmd-data")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("verify", help="check every frame and segment link of a FileLog",
                       description="Reads a FileLog end to end: every frame's CRC, every segment header and the "
                                   "link from each segment to the one before it (with --data-dir, also that the "
                                   "projection follows the log). Exit 0 when sound; exit 1 with one line naming "
                                   "the file, byte offset and problem at the first damage. With no writer holding "
                                   "the lock, an incomplete last frame is damage too. "
                                   "Example: mlmd-log verify --data-dir ./mlmd-data")
    _add_log_location(p)
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("repair", help="cut a FileLog before damage, keeping what it cuts",
                       description="Cuts the log to offsets [0, N): copies the cut segment's tail and every later "
                                   "segment into DIR/repaired-<UTC time>/ (fsynced) first, then removes and "
                                   "truncates. Refuses while a writer holds the lock. Run verify first to find the "
                                   "first damaged offset. Projections that applied records past N must be rebuilt "
                                   "(mlmd-log replay). Example: mlmd-log repair --log ./mlmd-data/log --to-offset 1200")
    _add_log_location(p)
    p.add_argument("--to-offset", type=int, required=True, help="the log keeps offsets below this one")
    p.set_defaults(func=_cmd_repair)

    from mlmd_log import analytics
    p = sub.add_parser("sql", help="run read-only DuckDB SQL on the store (MLMD tables and analytics views)",
                       description="Catches the DuckDB analytics projection up from the log, then runs one\n"
                                   "read-only query on it. Besides MLMD's tables: artifacts_<Type> (a table per type, a\n"
                                   "column per declared property; executions_, contexts_), artifact_properties_flat,\n"
                                   "lineage_edges, context_members.",
                       epilog="Examples:" + analytics.__doc__.split("Examples:", 1)[1].split("In Python:", 1)[0].rstrip(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("query", help="one SELECT (or WITH, SHOW, DESCRIBE, EXPLAIN) statement")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--data-dir", help=f"an embedded store's directory (default mlmd-data; log DIR/log, "
                                          f"analytics file DIR/{analytics.ANALYTICS_FILE})")
    where.add_argument("--log", help="a log (FileLog directory, file:///DIR, kafka://HOST:PORT/TOPIC); with --duckdb")
    p.add_argument("--duckdb", help="with --log: the analytics file (its staging file beside it)")
    p.add_argument("--format", choices=analytics.FORMATS, default="table")
    p.add_argument("--output", help="write to this file instead of stdout (parquet needs it)")
    p.add_argument("--no-catch-up", dest="catch_up", action="store_false",
                   help="query the analytics file as it is, without applying newer records of the log")
    p.add_argument("--quiet", action="store_true", help="no progress bar (there is none without a terminal either)")
    p.set_defaults(func=_cmd_sql)

    from mlmd_log.server.config import add_serve_arguments
    p = sub.add_parser("serve", help="serve MLMD's gRPC MetadataStoreService (the official clients work unchanged)",
                       description="Example: mlmd-log serve --port 8080 --data-dir ./mlmd-data  "
                                   "(or --config server.pbtxt, a text-format MetadataStoreServerConfig)")
    add_serve_arguments(p)
    p.set_defaults(func=_cmd_serve)
    return parser


#: Set to see the traceback of an unexpected error instead of its one line.
DEBUG_ENV = "MLMD_LOG_DEBUG"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Exit codes: 0 done, 1 the command failed (one line on stderr naming the problem), 2 a
    usage error (argparse's own)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except errors.StatusError as exc:
        print(f"mlmd-log: {type(exc).__name__}: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:  # a path that is a file, a port in use, a full disk: the user's to fix
        print(f"mlmd-log: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug; still one line, the traceback on request
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"mlmd-log: InternalError: {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
