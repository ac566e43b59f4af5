"""The MySQL/MariaDB projection: the same log gives the same MLMD rows as on SQLite."""
from __future__ import annotations

import os

import pytest

import mlmd_log as mlmd
from mlmd_log.consumer.replay import replay
from mlmd_log.locations import open_projection
from mlmd_log.producer import FileLog
from mlmd_log.projections.mysql import MySqlBackend
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.query.reader import Reader
from mlmd_log.dialects import MYSQL
from mlmd_log.client import StoreConfig

from contracts import ProjectionContract
from mysqldb import CASE_SENSITIVE_LIKE, drop as _drop, dump_mysql as _dump_mysql
from mysqldb import fresh_database as _fresh_database
from test_official_reads_ours import _populate

pytestmark = pytest.mark.mysql


def _write_some_history(data_dir: str) -> None:
    store = mlmd.MetadataStore(StoreConfig.from_directory(data_dir))
    try:
        _populate(store)
        type_id = store.get_artifact_type("DataSet", "v1").id
        for bad in ([pb.Artifact(type_id=type_id, name="d1")],                     # duplicate name
                    [pb.Artifact(type_id=999)],                                     # unknown type
                    [pb.Artifact(type_id=type_id, properties={"nope": pb.Value(int_value=1)})]):
            with pytest.raises(mlmd.errors.StatusError):
                store.put_artifacts(bad)
        store.put_artifacts([pb.Artifact(type_id=type_id, name="Case"), pb.Artifact(type_id=type_id, name="case")])
        store.put_artifacts([pb.Artifact(type_id=type_id, name="pad"), pb.Artifact(type_id=type_id, name="pad ")])
    finally:
        store.close()


class TestMySqlProjectionContract(ProjectionContract):
    """The direct projector (``replay``) into a new database."""

    batch_size = 7

    known_differences = CASE_SENSITIVE_LIKE

    def open_target(self, directory, request):
        target = _fresh_database(request.getfixturevalue("mysql_url"))
        db = MySqlBackend(target)
        db.create_schema()
        return target, db

    def project(self, target, log):
        stats = replay(log, target[1], batch_size=self.batch_size)
        return stats.records, stats.rejected

    def dump(self, target, tables):
        return _dump_mysql(target[1], tables)

    def reader(self, target):
        return Reader(target[1].conn, MYSQL)

    def close_target(self, target):
        target[1].close()
        _drop(target[0])


def test_redelivered_batch_leaves_checkpoint_unchanged_without_error(tmp_path, mysql_url):
    """A batch whose records were all applied already rewrites an identical checkpoint: MySQL
    reports 0 rows changed for that UPDATE, which must not be mistaken for a missing row."""
    from mlmd_log.projections.projector import Projector

    data_dir = str(tmp_path / "store")
    _write_some_history(data_dir)
    target = _fresh_database(mysql_url)
    log = FileLog(os.path.join(data_dir, "log"), readonly=True)
    try:
        db = MySqlBackend(target)
        db.create_schema()
        batch = list(log.read(0, 5))
        projector = Projector(db)
        assert len(projector.apply_batch(batch)) == 5
        assert projector.apply_batch(batch) == []  # redelivered: nothing applied, no error
        assert db.one("SELECT `applied_offset` FROM `mlmdlog_checkpoint` WHERE `id` = 0")[0] == 5
        db.close()
    finally:
        log.close()
        _drop(target)


def test_mysql_connection_config_embedded_store_and_official_library_reads_it(tmp_path, mysql_url, ref_python,
                                                                             monkeypatch):
    """ConnectionConfig.mysql works as in ml-metadata (the log goes to ./mlmd-data), and the
    official library opens the MySQL projection we wrote and reads the same artifacts."""
    import subprocess

    monkeypatch.chdir(tmp_path)
    target = _fresh_database(mysql_url)
    config = pb.ConnectionConfig()
    config.mysql.host, config.mysql.port, config.mysql.database = target.host, target.port, target.database
    config.mysql.user, config.mysql.password = target.user, target.password
    try:
        store = mlmd.MetadataStore(config)
        type_id = store.put_artifact_type(pb.ArtifactType(name="Data", properties={"n": pb.INT}))
        ids = store.put_artifacts([pb.Artifact(type_id=type_id, uri=f"/d/{i}", properties={"n": pb.Value(int_value=i)})
                                   for i in range(3)])
        with pytest.raises(mlmd.errors.AlreadyExistsError):
            store.put_artifact_type(pb.ArtifactType(name="Data", properties={"n": pb.STRING}))
        ours = [a.SerializeToString(deterministic=True) for a in store.get_artifacts_by_id(ids)]
        store.close()
        assert os.path.isdir(tmp_path / "mlmd-data")  # the log, beside the caller
        reopened = mlmd.MetadataStore(config)
        assert [a.uri for a in reopened.get_artifacts_by_id(ids)] == ["/d/0", "/d/1", "/d/2"]
        reopened.close()

        script = ("import sys, base64\nfrom ml_metadata import metadata_store\n"
                  "from ml_metadata.proto import metadata_store_pb2 as pb\n"
                  "c = pb.ConnectionConfig()\n"
                  f"c.mysql.host, c.mysql.port, c.mysql.database = {target.host!r}, {target.port}, {target.database!r}\n"
                  f"c.mysql.user, c.mysql.password = {target.user!r}, {target.password!r}\n"
                  "s = metadata_store.MetadataStore(c)\n"
                  f"for a in s.get_artifacts_by_id({ids}): print(base64.b64encode(a.SerializeToString(deterministic=True)).decode())\n")
        run = subprocess.run([ref_python, "-c", script], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        import base64
        theirs = [base64.b64decode(line) for line in run.stdout.split()]
        assert theirs == ours
    finally:
        _drop(target)


def _kill_connection_of(db: MySqlBackend, target) -> None:
    """Ends ``db``'s connection from the server side, as a server restart or a network cut would."""
    [(connection_id,)] = db.rows("SELECT CONNECTION_ID()")
    killer = MySqlBackend(target)
    killer.execute(f"KILL {int(connection_id)}")
    killer.close()


def test_writers_and_readers_outlive_a_lost_database_connection(tmp_path, mysql_url, monkeypatch):
    """A writer's connection to the MySQL projection that the server drops is made again on
    the next call. While the server cannot be reached, a read is UnavailableError (no
    password in it), and a put waits for the projection to return, because its record is
    durable; past the wait it is DeadlineExceededError that says not to put it again."""
    import time

    import pymysql

    from mlmd_log.locations import open_log
    from mlmd_log.producer.records import RecordFactory
    from mlmd_log.proto import metadata_store_service_pb2 as svc
    from mlmd_log.client import RemoteTransport

    target = _fresh_database(mysql_url)
    log_dir = str(tmp_path / "log")
    transport = RemoteTransport(log_dir, target.url, wait_timeout_s=20)
    records = RecordFactory("test")

    def put_type(name: str) -> int:
        return transport.append([records.make("PutArtifactType", svc.PutArtifactTypeRequest(
            artifact_type=pb.ArtifactType(name=name))).SerializeToString()])[0]

    def project() -> None:
        reader, db = open_log(log_dir, readonly=True), open_projection(target.url)
        replay(reader, db)
        db.close()
        reader.close()

    try:
        [first] = [put_type("A")]
        project()
        assert transport.wait_for_outcomes([first])[0].error_code == 0
        _kill_connection_of(transport.db, target)
        assert [t.name for t in transport.call("GetArtifactTypes", svc.GetArtifactTypesRequest()).artifact_types] \
            == ["A"]  # (connected again, and answered)

        # The server "cannot be reached": the connection is dropped and connecting again fails.
        refused = pymysql.err.OperationalError(2003, "Can't connect to MySQL server (Connection refused)")
        reconnect = transport.db.reconnect
        down = {"until": float("inf")}

        def failing_reconnect() -> None:
            if time.monotonic() < down["until"]:
                raise refused
            reconnect()

        monkeypatch.setattr(transport.db, "reconnect", failing_reconnect)
        _kill_connection_of(transport.db, target)
        with pytest.raises(mlmd.errors.UnavailableError, match="cannot be reached") as raised:
            transport.call("GetArtifactTypes", svc.GetArtifactTypesRequest())
        assert f":{target.password}@" not in str(raised.value) and ":***@" in str(raised.value)

        # A put made now waits through the outage (0.6 s here) and gets its outcome.
        second = put_type("B")
        project()  # (the projector has its own connection)
        down["until"] = time.monotonic() + 0.6
        [outcome] = transport.wait_for_outcomes([second])
        assert outcome.offset == second and outcome.error_code == 0
        assert time.monotonic() >= down["until"]

        # Down for longer than the writer waits: DeadlineExceededError, the record still durable.
        transport.wait_timeout_s = 0.5
        down["until"] = float("inf")
        _kill_connection_of(transport.db, target)
        third = put_type("C")
        with pytest.raises(mlmd.errors.DeadlineExceededError, match="durable in the log at offset 2 .do not put it "
                                                                    "again.*could not be read"):
            transport.wait_for_outcomes([third])
        down["until"] = 0.0
        project()
        assert transport.wait_for_outcomes([third])[0].error_code == 0
        names = [t.name for t in transport.call("GetArtifactTypes", svc.GetArtifactTypesRequest()).artifact_types]
        assert names == ["A", "B", "C"]
    finally:
        transport.close()
        _drop(target)


def test_an_embedded_mysql_store_outlives_a_lost_connection(tmp_path, mysql_url, monkeypatch):
    """ConnectionConfig.mysql: the server drops the store's connection while puts it applied
    are not committed yet. The next call connects again, applies those records again from
    the log, and goes on; the projection ends equal to a fresh replay of the log. While the
    server cannot be reached, a put is durable and says so (UnavailableError)."""
    import pymysql

    monkeypatch.chdir(tmp_path)
    target = _fresh_database(mysql_url)
    config = pb.ConnectionConfig()
    config.mysql.host, config.mysql.port, config.mysql.database = target.host, target.port, target.database
    config.mysql.user, config.mysql.password = target.user, target.password
    rebuilt = _fresh_database(mysql_url)
    try:
        store = mlmd.MetadataStore(config)
        transport = store._transport
        transport._applier._commit_interval_s = 3600.0  # (nothing commits unless the test says)
        type_id = store.put_artifact_type(pb.ArtifactType(name="Data", properties={"n": pb.INT}))
        first = store.put_artifacts([pb.Artifact(type_id=type_id, uri=f"/d/{i}") for i in range(3)])
        assert transport._applier.projector.in_transaction  # (applied, not committed)
        _kill_connection_of(transport.db, target)  # (the server rolls the open transaction back)
        assert [a.uri for a in store.get_artifacts_by_id(first)] == ["/d/0", "/d/1", "/d/2"]
        second = store.put_artifacts([pb.Artifact(type_id=type_id, uri="/d/3")])
        assert second == [first[-1] + 1]
        with pytest.raises(mlmd.errors.AlreadyExistsError):  # (MLMD's own errors are unchanged)
            store.put_artifact_type(pb.ArtifactType(name="Data", properties={"n": pb.STRING}))

        reconnect = transport.db.reconnect

        def refused() -> None:
            raise pymysql.err.OperationalError(2003, "Can't connect to MySQL server (Connection refused)")

        monkeypatch.setattr(transport.db, "reconnect", refused)
        _kill_connection_of(transport.db, target)
        with pytest.raises(mlmd.errors.UnavailableError, match="durable in the log at offset 4 .do not put it again"):
            store.put_artifacts([pb.Artifact(type_id=type_id, uri="/d/4")])
        with pytest.raises(mlmd.errors.UnavailableError, match="cannot be reached"):
            store.get_artifacts()
        monkeypatch.setattr(transport.db, "reconnect", reconnect)
        assert sorted(a.uri for a in store.get_artifacts()) == ["/d/0", "/d/1", "/d/2", "/d/3", "/d/4"]
        transport._applier.commit()
        store.close()

        log = FileLog(str(tmp_path / "mlmd-data" / f"log-mysql-{target.host}-{target.port}-{target.database}"),
                      readonly=True)
        fresh = MySqlBackend(rebuilt)
        fresh.create_schema()
        replay(log, fresh)
        live = MySqlBackend(target)
        assert _dump_mysql(live) == _dump_mysql(fresh)
        live.close()
        fresh.close()
        log.close()
    finally:
        _drop(target)
        _drop(rebuilt)
