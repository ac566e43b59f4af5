"""`mlmd-log sql` and `MetadataStore.duckdb()`: DuckDB SQL on the analytics projection,
caught up from the log first, answering as the SQLite projection does, read-only."""
from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys

import pytest

duckdb = pytest.importorskip("duckdb")

import mlmd_log as mlmd  # noqa: E402
from mlmd_log import cli  # noqa: E402
from mlmd_log.client import StoreConfig  # noqa: E402
from mlmd_log.proto import metadata_store_pb2 as pb  # noqa: E402

from contracts import write_history  # noqa: E402


def _run(*argv: str, cwd: str = ".") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlmd_log.cli", *argv], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def _sql(capsys, data_dir: str, query: str, *options: str) -> str:
    """`mlmd-log sql` in this process (main() as the command runs it): its stdout."""
    capsys.readouterr()
    assert cli.main(["sql", "--data-dir", data_dir, "--quiet", *options, query]) == 0
    return capsys.readouterr().out


def _json_rows(capsys, data_dir: str, query: str) -> list[tuple]:
    return [tuple(row.values()) for row in json.loads(_sql(capsys, data_dir, query, "--format", "json"))]


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("store"))
    write_history(data_dir)
    return data_dir


@pytest.fixture(scope="module")
def live(store_dir):
    conn = sqlite3.connect(f"file:{os.path.join(store_dir, 'mlmd.sqlite')}?mode=ro", uri=True)
    yield conn
    conn.close()


_MEMBERS_SQLITE = """
SELECT C.name, CT.name, 'artifact', L.artifact_id, NT.name FROM Attribution AS L
  JOIN Context AS C ON C.id = L.context_id JOIN Type AS CT ON CT.id = C.type_id
  JOIN Artifact AS N ON N.id = L.artifact_id JOIN Type AS NT ON NT.id = N.type_id
UNION ALL
SELECT C.name, CT.name, 'execution', L.execution_id, NT.name FROM Association AS L
  JOIN Context AS C ON C.id = L.context_id JOIN Type AS CT ON CT.id = C.type_id
  JOIN Execution AS N ON N.id = L.execution_id JOIN Type AS NT ON NT.id = N.type_id
ORDER BY 1, 3, 4"""

# (the query on DuckDB, the same question asked of the SQLite projection)
_SAME_ANSWERS = {
    "counts per type": ('SELECT t.name, t.version, count(*) FROM Artifact AS a JOIN Type AS t ON t.id = a.type_id '
                        'GROUP BY t.name, t.version ORDER BY t.name, t.version',) * 2,
    "property values": ('SELECT artifact_id, name, is_custom_property, int_value, double_value, string_value '
                        'FROM ArtifactProperty ORDER BY artifact_id, name, is_custom_property',) * 2,
    "flat properties": ("SELECT artifact_id, property_name, value_type, int_value, double_value "
                        "FROM artifact_properties_flat WHERE value_type IN ('int', 'double') "
                        "ORDER BY artifact_id, property_name, is_custom_property",
                        "SELECT artifact_id, name, CASE WHEN int_value IS NOT NULL THEN 'int' ELSE 'double' END, "
                        "int_value, double_value FROM ArtifactProperty "
                        "WHERE int_value IS NOT NULL OR double_value IS NOT NULL "
                        "ORDER BY artifact_id, name, is_custom_property"),
    "context membership": ("SELECT context_name, context_type, node_kind, node_id, node_type FROM context_members "
                           "ORDER BY 1, 3, 4", _MEMBERS_SQLITE),
    "events": ('SELECT id, artifact_id, execution_id, type, milliseconds_since_epoch FROM Event ORDER BY id',) * 2,
    "history": ("SELECT log_offset, epoch_ms(time), rpc, error_code, kind, entity_id FROM history "
                "ORDER BY log_offset, coalesce(kind, ''), entity_id",
                "SELECT R.log_offset, R.time_ms, R.rpc, R.error_code, T.kind, T.entity_id "
                "FROM mlmdlog_history_record AS R LEFT JOIN mlmdlog_history_touch AS T ON T.log_offset = R.log_offset "
                "ORDER BY R.log_offset, coalesce(T.kind, ''), T.entity_id"),
}


@pytest.mark.parametrize("question", sorted(_SAME_ANSWERS))
def test_sql_answers_as_the_sqlite_projection_does(capsys, store_dir, live, question):
    on_duckdb, on_sqlite = _SAME_ANSWERS[question]
    expected = [tuple(r) for r in live.execute(on_sqlite).fetchall()]
    assert expected  # (the history has rows of every kind asked about)
    assert _json_rows(capsys, store_dir, on_duckdb) == expected


def test_context_membership_holds_artifacts_and_executions_with_type_names(capsys, store_dir):
    rows = json.loads(_sql(capsys, store_dir, "SELECT * FROM context_members", "--format", "json"))
    assert {r["node_kind"] for r in rows} == {"artifact", "execution"}
    assert list(rows[0]) == ["context_id", "context_name", "context_type", "node_kind", "node_id", "node_type"]
    assert all(r["context_type"] and r["node_type"] for r in rows)


def test_history_says_who_changed_what_and_how_it_ended(capsys, store_dir):
    rows = json.loads(_sql(capsys, store_dir, "SELECT * FROM history ORDER BY log_offset", "--format", "json"))
    assert {r["outcome"] for r in rows if r["error_code"] == 0} == {"ok"}
    rejected = {(r["error_code"], r["outcome"]) for r in rows if r["error_code"]}
    assert len({r["log_offset"] for r in rows if r["error_code"]}) >= 4  # (the history's rejected puts)
    assert all(name == mlmd.errors.exception_type_from_error_code(code).__name__ for code, name in rejected)
    first = rows[0]
    assert first["producer"] == f"{first['user_name']}@{first['host']} pid {first['pid']} ({first['client_name']})"
    assert {r["kind"] for r in rows} >= {"artifact", "execution", "context", "artifact_type"}


_QUERY = "SELECT id, uri, type_id FROM Artifact WHERE id <= 3 ORDER BY id"


def test_each_format_gives_the_rows(capsys, store_dir, live, tmp_path):
    expected = [tuple(r) for r in live.execute(_QUERY).fetchall()]
    assert len(expected) == 3

    parsed = list(csv.reader(io.StringIO(_sql(capsys, store_dir, _QUERY, "--format", "csv"))))
    assert parsed[0] == ["id", "uri", "type_id"]
    assert [(int(i), u, int(t)) for i, u, t in parsed[1:]] == expected

    assert [tuple(r.values()) for r in json.loads(_sql(capsys, store_dir, _QUERY, "--format", "json"))] == expected

    table = _sql(capsys, store_dir, _QUERY).splitlines()
    assert [c.strip() for c in table[0].split("|")] == ["id", "uri", "type_id"]
    assert [tuple(c.strip() for c in line.split("|")) for line in table[2:-1]] == \
        [tuple(str(v) for v in row) for row in expected]
    assert table[-1] == "(3 rows)"

    out = tmp_path / "rows.parquet"
    assert _sql(capsys, store_dir, _QUERY, "--format", "parquet", "--output", str(out)) == ""
    assert duckdb.connect().execute("SELECT * FROM read_parquet(?) ORDER BY id", (str(out),)).fetchall() == expected

    into = tmp_path / "rows.csv"
    _sql(capsys, store_dir, _QUERY, "--format", "csv", "--output", str(into))
    assert len(list(csv.reader(into.open()))) == 4


def test_empty_results_are_still_well_formed(capsys, store_dir):
    query = "SELECT id FROM Artifact WHERE id < 0"
    assert json.loads(_sql(capsys, store_dir, query, "--format", "json")) == []
    assert list(csv.reader(io.StringIO(_sql(capsys, store_dir, query, "--format", "csv")))) == [["id"]]
    assert _sql(capsys, store_dir, query).splitlines()[-1] == "(0 rows)"


@pytest.mark.parametrize("query, options, words", [
    ("INSERT INTO Type (id) VALUES (999)", (), ("InvalidArgumentError", "INSERT")),
    ("CREATE TEMP TABLE t AS SELECT 1", (), ("InvalidArgumentError", "CREATE")),
    ("COPY Artifact TO 'out.csv'", (), ("InvalidArgumentError", "COPY")),
    ("SELECT 1; DELETE FROM Artifact", (), ("InvalidArgumentError", "one SQL statement")),
    ("SELEC id FROM Artifact", (), ("InvalidArgumentError", "syntax error")),
    ("SELECT * FROM no_such_table", (), ("InvalidArgumentError", "no_such_table")),
    ("SELECT 1", ("--format", "parquet"), ("InvalidArgumentError", "--output")),
])
def test_bad_or_writing_sql_is_one_line_and_exit_1(store_dir, query, options, words):
    done = _run("sql", "--data-dir", store_dir, *options, query, cwd=store_dir)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlmd-log: "), done.stderr
    assert all(word in lines[0] for word in words), lines[0]
    assert not os.path.exists(os.path.join(store_dir, "out.csv"))


def test_no_catch_up_without_an_analytics_file_is_one_line(tmp_path):
    done = _run("sql", "--log", str(tmp_path / "log"), "--duckdb", str(tmp_path / "a.duckdb"), "--no-catch-up",
                "SELECT 1")
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "NotFoundError" in done.stderr and "a.duckdb" in done.stderr


def _put_models(data_dir: str, n: int) -> None:
    store = mlmd.MetadataStore(StoreConfig.from_directory(data_dir))
    try:
        type_id = store.put_artifact_type(pb.ArtifactType(name="Model", properties={"accuracy": pb.DOUBLE}))
        store.put_artifacts([pb.Artifact(type_id=type_id, uri=f"/m/{i}",
                                         properties={"accuracy": pb.Value(double_value=i / 10)}) for i in range(n)])
    finally:
        store.close()


def test_catch_up_applies_what_was_appended_since_the_last_run(tmp_path):
    data_dir = str(tmp_path)
    _put_models(data_dir, 3)
    count = "SELECT count(*) AS n, sum(accuracy) AS total FROM artifacts_Model"
    first = _run("sql", "--data-dir", data_dir, "--format", "csv", count)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["n,total", "3,0.30000000000000004"]
    _put_models(data_dir, 2)  # (the type again, and two more)
    stale = _run("sql", "--data-dir", data_dir, "--format", "csv", "--no-catch-up", count)
    assert stale.stdout.splitlines()[1] == "3,0.30000000000000004"
    caught_up = _run("sql", "--data-dir", data_dir, "--format", "csv", count)
    assert caught_up.stdout.splitlines()[1] == "5,0.4"
    via_log = _run("sql", "--log", os.path.join(data_dir, "log"), "--duckdb", str(tmp_path / "elsewhere.duckdb"),
                   "--format", "csv", count)
    assert via_log.stdout.splitlines()[1] == "5,0.4"


def test_store_duckdb_is_caught_up_and_read_only(tmp_path):
    store = mlmd.MetadataStore(StoreConfig.from_directory(str(tmp_path)))
    try:
        type_id = store.put_artifact_type(pb.ArtifactType(name="Model", properties={"day": pb.INT}))
        store.put_artifacts([pb.Artifact(type_id=type_id, properties={"day": pb.Value(int_value=7)})])
        con = store.duckdb()
        assert con.execute("SELECT day FROM artifacts_Model").fetchall() == [(7,)]
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("DELETE FROM Artifact")
        store.put_artifacts([pb.Artifact(type_id=type_id, properties={"day": pb.Value(int_value=8)})])
        again = store.duckdb()  # (catching up closes the connection handed out before)
        assert again.execute("SELECT day FROM artifacts_Model ORDER BY day").fetchall() == [(7,), (8,)]
        with pytest.raises(duckdb.Error):
            con.execute("SELECT 1")
        again.close()
    finally:
        store.close()
    assert os.path.exists(tmp_path / "analytics.duckdb")


def test_store_duckdb_without_a_log_file_is_an_mlmd_error():
    store = mlmd.MetadataStore(pb.ConnectionConfig(fake_database=pb.FakeDatabaseConfig()))
    try:
        with pytest.raises(mlmd.errors.FailedPreconditionError, match="in memory"):
            store.duckdb()
    finally:
        store.close()


def test_json_holds_values_json_has_no_type_for(capsys, store_dir):
    [row] = json.loads(_sql(capsys, store_dir, "SELECT 'nan'::DOUBLE AS nan, TIMESTAMP '2026-03-01 12:00:00' AS t, "
                                               "'\\x01'::BLOB AS b, [1, 2] AS l", "--format", "json"))
    assert row == {"nan": None, "t": "2026-03-01T12:00:00", "b": "AQ==", "l": [1, 2]}


def test_a_reader_that_stops_early_is_no_failure(store_dir):
    done = subprocess.run(f"set -o pipefail; {sys.executable} -m mlmd_log.cli sql --data-dir {store_dir} --format csv "
                          "'SELECT * FROM range(200000)' | head -1", shell=True, executable="/bin/bash",
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, "range\n", "")


def test_a_file_another_version_wrote_gets_this_versions_views_though_caught_up(capsys, tmp_path):
    data_dir = str(tmp_path)
    _put_models(data_dir, 2)
    count = "SELECT count(*) AS n FROM history WHERE kind = 'artifact'"
    assert _sql(capsys, data_dir, count, "--format", "csv") == "n\n2\n"
    con = duckdb.connect(str(tmp_path / "analytics.duckdb"))
    con.execute('UPDATE mlmdlog_duckdb_schema SET digest = \'another version\'')
    con.execute("CREATE OR REPLACE VIEW history AS SELECT 'artifact' AS kind WHERE false")
    con.close()
    assert _sql(capsys, data_dir, count, "--format", "csv") == "n\n2\n"


def test_replay_into_duckdb_builds_the_analytics_projection(tmp_path):
    import duckdb

    from mlmd_log.cli import main
    from mlmd_log.proto import metadata_store_pb2 as pb
    from mlmd_log.store import MetadataStore

    with MetadataStore(str(tmp_path / "store")) as store:
        type_id = store.put_artifact_type(pb.ArtifactType(name="Data"))
        store.put_artifacts([pb.Artifact(type_id=type_id, uri=f"u{i}") for i in range(5)])
    target = tmp_path / "analytics.duckdb"
    assert main(["replay", "--log", str(tmp_path / "store" / "log"), "--into", f"duckdb:///{target}", "--quiet"]) == 0
    con = duckdb.connect(str(target), read_only=True)
    try:
        assert con.execute('SELECT count(*) FROM "Artifact"').fetchone()[0] == 5
    finally:
        con.close()
    assert main(["replay", "--log", str(tmp_path / "store" / "log"), "--into", f"duckdb:///{target}",
                 "--until", "1", "--quiet"]) == 1
