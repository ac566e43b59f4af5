"""The DuckDB projection: the same log gives the same MLMD rows and reads as on SQLite,
plus analytics views, mirrored batch by batch through a SQLite staging projection."""
from __future__ import annotations

import os
import sqlite3

import pytest

duckdb = pytest.importorskip("duckdb")

import mlmd_log as mlmd  # noqa: E402
from mlmd_log.producer import FileLog  # noqa: E402
from mlmd_log.projections import duckdb as duck_projection  # noqa: E402
from mlmd_log.projections.duckdb import DuckDbProjection  # noqa: E402
from mlmd_log.proto import metadata_store_pb2 as pb  # noqa: E402
from mlmd_log.query.reader import Reader  # noqa: E402
from mlmd_log.client import StoreConfig  # noqa: E402

from dbdump import MLMD_TABLES, dump_tables, normalised  # noqa: E402
from contracts import ProjectionContract, write_history  # noqa: E402
from faults import failing_on_call, stage_ahead  # noqa: E402

TABLES = MLMD_TABLES + ("mlmdlog_outcome", "mlmdlog_history_record", "mlmdlog_history_touch")


def _dump_duckdb(con, tables=TABLES) -> dict:
    return normalised({t: con.execute(f'SELECT * FROM "{t}"').fetchall() for t in tables})


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("store"))
    write_history(data_dir)
    return data_dir


@pytest.fixture(scope="module")
def projected(history, tmp_path_factory):
    """The log projected in batches of 3 records (updates span batches), bulk path for all sets."""
    out = tmp_path_factory.mktemp("duck")
    log = FileLog(os.path.join(history, "log"), readonly=True)
    projection = DuckDbProjection(str(out / "analytics.duckdb"), small_rows=0)
    mirrored = []
    while projection.applied_offset() < log.end_offset():
        stats = projection.apply(log, batch_size=3)
        mirrored.append(stats)
    yield projection, log, mirrored
    projection.close()
    log.close()


@pytest.fixture(scope="module")
def live(history):
    conn = sqlite3.connect(f"file:{os.path.join(history, 'mlmd.sqlite')}?mode=ro", uri=True)
    yield Reader(conn)
    conn.close()


def _live_dump(history: str) -> dict:
    return normalised(dump_tables(os.path.join(history, "mlmd.sqlite"), TABLES))


class TestDuckDbProjectionContract(ProjectionContract):
    """Mirrored batch by batch through its SQLite staging projection, the bulk path for all sets."""

    def open_target(self, directory, request):
        return DuckDbProjection(os.path.join(directory, "analytics.duckdb"), small_rows=0)

    def project(self, target, log):
        records = rejected = 0
        while True:  # (at least one apply: applying a caught-up log is part of the contract)
            stats = target.apply(log, batch_size=self.batch_size)
            records, rejected = records + stats.records, rejected + stats.rejected
            if target.applied_offset() >= log.end_offset():
                return records, rejected

    def dump(self, target, tables):
        return _dump_duckdb(target.connection, tables)

    def reader(self, target):
        return target.reader()

    def close_target(self, target):
        target.close()


def test_a_log_is_mirrored_in_many_batches_and_again_copies_nothing(projected):
    projection, log, mirrored = projected
    assert len(mirrored) > 10 and sum(s.rejected for s in mirrored) == 4
    assert projection.applied_offset() == log.end_offset()
    stats = projection.apply(log, batch_size=3)
    assert (stats.records, stats.copied) == (0, {})
    assert projection.catch_up(log).records == 0


def test_staging_keeps_no_reversed_uris_until_opened_as_a_projection_of_its_own(history, projected, tmp_path):
    """Staging serves no reads, so it skips the reversed uris (uri suffix filters) and the
    indexes only reads use; opened as a SQLite projection for writing, it gets both, and its
    suffix filters answer as live's."""
    from mlmd_log.locations import open_projection
    from mlmd_log.projections import ddl
    from mlmd_log.projections.projector import Projector

    def indexes(conn):
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}

    projection, _, _ = projected
    copy = tmp_path / "staging-copy.sqlite"
    src = sqlite3.connect(projection.staging_path)
    dst = sqlite3.connect(str(copy))
    src.backup(dst)
    src.close()
    assert dst.execute("SELECT COUNT(*) FROM `mlmdlog_artifact_ruri`").fetchone() == (0,)
    assert dst.execute("SELECT COUNT(*) FROM `mlmdlog_meta` WHERE `name` = 'complete:reversed_uris'").fetchone() == (0,)
    artifacts = dst.execute("SELECT COUNT(*) FROM `Artifact`").fetchone()[0]
    staged_indexes = indexes(dst)
    dst.close()
    assert artifacts > 5
    assert not staged_indexes & ddl.READ_ONLY_INDEXES
    assert "idx_artifact_last_update_time_since_epoch" in staged_indexes  # (the mirror's copy uses it)
    db = open_projection(f"sqlite:///{copy}")
    Projector(db)  # (fills what an older or staging projection lacks)
    assert db.one("SELECT COUNT(*) FROM `mlmdlog_artifact_ruri`") == (artifacts,)
    assert indexes(db.conn) >= ddl.READ_ONLY_INDEXES | staged_indexes
    reader = Reader(db.conn)
    live_conn = sqlite3.connect(f"file:{os.path.join(history, 'mlmd.sqlite')}?mode=ro", uri=True)
    live_reader = Reader(live_conn)
    for query, at_least in (("uri LIKE '%/1'", 1), ("uri LIKE '%A'", 1), ("uri LIKE '%/nowhere'", 0)):
        options = pb.ListOperationOptions(filter_query=query)
        found = [a.id for a in reader.get_artifacts(options).items]
        assert found == [a.id for a in live_reader.get_artifacts(options).items]
        assert len(found) >= at_least
    live_conn.close()
    db.close()
    from mlmd_log.projections.staged import open_staging
    again = open_staging(str(copy))  # (a projection taken as staging again sheds them)
    assert not indexes(again.conn) & ddl.READ_ONLY_INDEXES
    again.close()


def test_small_row_path_and_one_batch_give_the_same_tables(history, tmp_path):
    log = FileLog(os.path.join(history, "log"), readonly=True)
    try:
        for batch_size, small_rows in ((5, 10_000), (100_000, 64)):
            path = str(tmp_path / f"b{batch_size}.duckdb")
            with DuckDbProjection(path, small_rows=small_rows) as projection:
                projection.catch_up(log, batch_size=batch_size)
                assert _dump_duckdb(projection.connection) == _live_dump(history)
    finally:
        log.close()


def test_per_type_views_flatten_declared_properties(projected, live):
    projection = projected[0]
    con = projection.connection
    views = projection.type_views()
    assert {"artifacts_DataSet_v1", "artifacts_Model", "executions_Trainer", "contexts_Pipeline",
            "executions_odd_name"} <= set(views)
    columns = [d[0] for d in con.execute('SELECT * FROM "artifacts_DataSet_v1" LIMIT 0').description]
    assert columns == ["id", "name", "uri", "state", "external_id", "create_time_since_epoch",
                       "last_update_time_since_epoch", "blob", "day", "meta", "ok", "rows", "score", "split"]
    rows = {r[0]: r for r in con.execute('SELECT * FROM "artifacts_DataSet_v1"').fetchall()}
    expected = live.get_artifacts_by_type("DataSet", "v1").items
    assert sorted(rows) == [a.id for a in expected]
    for artifact in expected:
        row = dict(zip(columns, rows[artifact.id]))
        props = artifact.properties
        assert row["name"] == artifact.name and row["uri"] == artifact.uri
        assert row["last_update_time_since_epoch"] == artifact.last_update_time_since_epoch
        assert row["day"] == (props["day"].int_value if "day" in props else None)
        assert row["split"] == (props["split"].string_value if "split" in props else None)
        assert row["rows"] == (props["rows"].int_value if "rows" in props else None)
        assert row["score"] == (props["score"].double_value if "score" in props else None)
        assert row["ok"] == (props["ok"].bool_value if "ok" in props else None)
    # Property names that clash with node columns get a prefix; odd type names are sanitized.
    odd = [d[0] for d in con.execute('SELECT * FROM "executions_odd_name"').description]
    assert odd[-3:] == ["property_id", "property_name", "ok"]
    assert con.execute('SELECT "name", "property_id", "property_name", "ok" FROM "executions_odd_name"'
                       ).fetchall() == [("e1", 7, "x", False)]


def test_per_type_tables_kept_batch_by_batch_equal_a_fresh_build(projected):
    """The per-type tables and the membership table are kept by each mirror (batches of 3
    records here, updates spanning them): they must equal what their SELECTs give now."""
    projection = projected[0]
    con = projection.connection
    tables = projection.target._type_tables()
    assert len(tables) == len(projection.type_views()) > 5
    for table in tables:
        assert con.execute(f'SELECT * FROM "{table.name}" ORDER BY "id"').fetchall() == \
            con.execute(table.definition).fetchall(), table.name
    members = con.execute('SELECT "context_id", "context_name", "node_kind", "node_id", "node_type" '
                          'FROM "context_members" ORDER BY ALL').fetchall()
    expected = con.execute("""
        SELECT L.context_id, C.name, 'artifact', L.artifact_id, T.name FROM Attribution AS L
          JOIN Context AS C ON C.id = L.context_id JOIN Artifact AS N ON N.id = L.artifact_id
          JOIN Type AS T ON T.id = N.type_id
        UNION ALL
        SELECT L.context_id, C.name, 'execution', L.execution_id, T.name FROM Association AS L
          JOIN Context AS C ON C.id = L.context_id JOIN Execution AS N ON N.id = L.execution_id
          JOIN Type AS T ON T.id = N.type_id
        ORDER BY ALL""").fetchall()
    assert members == expected and {m[2] for m in members} == {"artifact", "execution"}


def test_a_file_with_per_type_views_gets_its_tables_when_opened(history, tmp_path):
    """An analytics file an earlier version wrote (per-type views, no definitions, no
    membership rows) is brought to tables when next opened, even with nothing to mirror."""
    path = str(tmp_path / "old.duckdb")
    log = FileLog(os.path.join(history, "log"), readonly=True)
    try:
        with DuckDbProjection(path) as projection:
            projection.catch_up(log)
            con = projection.connection
            expected = con.execute('SELECT * FROM "artifacts_DataSet_v1" ORDER BY "id"').fetchall()
            members = con.execute('SELECT * FROM "context_members" ORDER BY ALL').fetchall()
            con.execute('CREATE OR REPLACE TEMP TABLE keep AS SELECT * FROM "artifacts_DataSet_v1"')
            con.execute('DROP TABLE "artifacts_DataSet_v1"')
            con.execute('CREATE VIEW "artifacts_DataSet_v1" AS SELECT * FROM keep')
            con.execute('UPDATE "mlmdlog_type_view" SET "definition" = NULL')
            con.execute('DELETE FROM "mlmdlog_context_member"')
        with DuckDbProjection(path) as projection:
            assert projection.catch_up(log).records == 0
            con = projection.connection
            assert con.execute("SELECT table_type FROM information_schema.tables "
                               "WHERE table_name = 'artifacts_DataSet_v1'").fetchall() == [("BASE TABLE",)]
            assert con.execute('SELECT * FROM "artifacts_DataSet_v1" ORDER BY "id"').fetchall() == expected
            assert con.execute('SELECT * FROM "context_members" ORDER BY ALL').fetchall() == members
    finally:
        log.close()


def test_flat_property_views_and_lineage_edges(projected, live):
    con = projected[0].connection
    artifacts = live.get_artifacts().items
    expected = sorted((a.id, name, custom, value.WhichOneof("value"))
                      for a in artifacts
                      for custom, props in ((False, a.properties), (True, a.custom_properties))
                      for name, value in props.items())
    got = con.execute('SELECT "artifact_id", "property_name", "is_custom_property", "value_type" '
                      'FROM "artifact_properties_flat" ORDER BY ALL').fetchall()
    kinds = {"int_value": "int", "double_value": "double", "string_value": "string", "struct_value": "struct",
             "proto_value": "proto", "bool_value": "bool"}
    assert got == [(i, n, c, kinds[k]) for i, n, c, k in expected]
    assert con.execute("SELECT \"value\" FROM artifact_properties_flat WHERE artifact_id = 6 "
                       "AND property_name = 'reviewed'").fetchall() == [("true",)]
    assert con.execute("SELECT count(*) FROM execution_properties_flat").fetchone()[0] > 0
    assert con.execute("SELECT count(*) FROM context_properties_flat").fetchone()[0] > 0

    events = live.get_events_by_execution_ids([e.id for e in live.get_executions().items])
    edges = con.execute('SELECT "source_kind", "source_id", "target_kind", "target_id", "event_type_name", '
                        '"time_ms" FROM "lineage_edges" ORDER BY "event_id"').fetchall()
    assert len(edges) == len(events) == 9
    expected_edges = []
    for e in events:
        name = pb.Event.Type.Name(e.type)
        if name.endswith("OUTPUT"):
            expected_edges.append(("execution", e.execution_id, "artifact", e.artifact_id, name,
                                   e.milliseconds_since_epoch))
        else:
            expected_edges.append(("artifact", e.artifact_id, "execution", e.execution_id, name,
                                   e.milliseconds_since_epoch))
    assert sorted(edges) == sorted(expected_edges)
    assert {e[4] for e in edges} == {"INPUT", "OUTPUT", "DECLARED_OUTPUT"}


def test_a_crash_between_staging_and_duckdb_is_repaired(history, tmp_path, monkeypatch):
    """Staging ahead of DuckDB (crash after the staging commit), a mirror failing half-way,
    and a lost staging file all end in the same tables."""
    log = FileLog(os.path.join(history, "log"), readonly=True)
    path = str(tmp_path / "a.duckdb")
    try:
        projection = DuckDbProjection(path, small_rows=2)
        for _ in range(5):
            projection.apply(log, batch_size=4)
        stage_ahead(projection, log)  # (two batches that never reach DuckDB)
        assert projection.applied_offset() < projection.projector.next_offset
        # The next mirror fails after writing some rows: nothing of it stays.
        failing_insert = failing_on_call(duck_projection._Loader.insert, 3, RuntimeError("disk full"))
        before = _dump_duckdb(projection.connection, TABLES + ("mlmdlog_checkpoint",))
        monkeypatch.setattr(duck_projection._Loader, "insert", failing_insert)
        with pytest.raises(RuntimeError):
            projection.mirror()
        monkeypatch.undo()
        assert _dump_duckdb(projection.connection, TABLES + ("mlmdlog_checkpoint",)) == before
        projection.apply(log, batch_size=4)
        projection.close()
        # The staging file is lost: it is replayed up to DuckDB's offset, then mirroring goes on.
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + ".staging.sqlite" + suffix):
                os.remove(path + ".staging.sqlite" + suffix)
        projection = DuckDbProjection(path, small_rows=2)
        assert projection.projector.next_offset == 0
        projection.catch_up(log, batch_size=7)
        assert _dump_duckdb(projection.connection) == _live_dump(history)
        projection.close()
    finally:
        log.close()


def test_command_line_projects_a_log(history, tmp_path, capsys):
    path = str(tmp_path / "cli.duckdb")
    assert duck_projection.main(["--log", os.path.join(history, "log"), "--into", f"duckdb:///{path}",
                                 "--batch-size", "50"]) == 0
    assert "applied through offset" in capsys.readouterr().err
    con = duckdb.connect(path, read_only=True)
    try:
        assert _dump_duckdb(con) == _live_dump(history)
        assert con.execute("SELECT count(*) FROM lineage_edges").fetchone()[0] == 9
    finally:
        con.close()


def test_changed_nodes_are_read_through_the_update_time_index(projected):
    """A mirror reads the nodes changed since its last copy. Seeing ORDER BY id, SQLite's
    planner would scan the whole node table instead (each mirror then costs time in
    proportion to the projection's size); the queries must search the update-time index,
    and give the same rows as a plain filter."""
    from mlmd_log.projections.staged import changed_nodes_sql
    from mlmd_log.schema import NODE_KINDS

    projection, _, _ = projected
    conn = sqlite3.connect(projection.staging_path)
    conn.execute("ANALYZE")  # (statistics like a large projection's: the planner still must not scan)
    for node in NODE_KINDS:
        since = conn.execute(f"SELECT MAX(`last_update_time_since_epoch`) FROM `{node.table}`").fetchone()[0]
        for sql in changed_nodes_sql(node, since)[:3]:
            plan = " ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, (since,)))
            assert f"idx_{node.name}_last_update_time_since_epoch" in plan, plan
            assert "SCAN N" not in plan and f"SCAN {node.table}" not in plan, plan
        nodes_sql, props_sql, _, params = changed_nodes_sql(node, since)
        expected = conn.execute(f"SELECT `id` FROM `{node.table}` WHERE `last_update_time_since_epoch` >= ? "
                                "ORDER BY `id`", (since,)).fetchall()
        assert [r[:1] for r in conn.execute(nodes_sql, params)] == expected and expected
        owners = {r[0] for r in conn.execute(props_sql, params)}
        assert owners <= {r[0] for r in expected}
    conn.close()
