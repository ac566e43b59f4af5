"""The MySQL/MariaDB projection: the same log gives the same MLMD rows as on SQLite."""
from __future__ import annotations

import os
import uuid

import pytest

import mlmd_log as mlmd
from mlmd_log.consumer.replay import open_projection, replay
from mlmd_log.producer import FileLog
from mlmd_log.projections.mysql import MySqlBackend, MySqlTarget
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.service import StoreConfig

from dbdump import MLMD_TABLES, dump_tables, normalised
from test_official_reads_ours import _populate

pytestmark = pytest.mark.mysql


def _fresh_database(url: str) -> MySqlTarget:
    target = MySqlTarget.from_url(url)
    return MySqlTarget(target.host, target.port, target.user, target.password,
                       f"mlmdlog_test_{uuid.uuid4().hex[:10]}", target.socket)


def _drop(target: MySqlTarget) -> None:
    db = MySqlBackend(target)
    db.execute(f"DROP DATABASE IF EXISTS `{target.database}`")
    db.close()


def _dump_mysql(db: MySqlBackend, tables=MLMD_TABLES + ("mlmdlog_checkpoint", "mlmdlog_outcome")) -> dict:
    return normalised({t: db.rows(f"SELECT * FROM `{t}`") for t in tables})


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


def test_same_log_gives_same_rows_on_mysql_and_sqlite(tmp_path, mysql_url):
    data_dir = str(tmp_path / "store")
    _write_some_history(data_dir)
    target = _fresh_database(mysql_url)
    log = FileLog(os.path.join(data_dir, "log"), readonly=True)
    try:
        mysql_db = MySqlBackend(target)
        mysql_db.create_schema()
        stats = replay(log, mysql_db, batch_size=7)
        assert stats.rejected == 3
        sqlite_db = open_projection(f"sqlite:///{tmp_path / 'fresh.sqlite'}")
        replay(log, sqlite_db)
        sqlite_db.close()
        ours = _dump_mysql(mysql_db)
        live = normalised(dump_tables(os.path.join(data_dir, "mlmd.sqlite")))
        for table in ours:
            assert ours[table] == live[table], f"{table} differs between MySQL and SQLite projections"
        # Replaying again is a no-op: the checkpoint is in the same database.
        assert replay(log, mysql_db).records == 0
        mysql_db.close()
    finally:
        log.close()
        _drop(target)


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
