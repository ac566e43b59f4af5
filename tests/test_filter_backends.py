"""Every filter clause gives the same result set on a MySQL/MariaDB projection as on SQLite:
the store of tests/test_filter.py is replayed from its log into MySQL and queried there."""
from __future__ import annotations

import uuid

import pytest

import mlmd_log as mlmd
from mlmd_log.consumer.replay import replay
from mlmd_log.projections.mysql import MySqlBackend, MySqlTarget
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.service import ProjectionConfig

import test_filter

pytestmark = pytest.mark.mysql


@pytest.fixture(scope="module")
def mysql_store(mysql_url):
    seeded = test_filter._ns["seed"](mlmd, pb)
    log = seeded._transport._applier.log  # the in-memory log behind the seeded store
    base = MySqlTarget.from_url(mysql_url)
    target = MySqlTarget(base.host, base.port, base.user, base.password, f"mlmdlog_filter_{uuid.uuid4().hex[:8]}",
                         base.socket)
    db = MySqlBackend(target)
    db.create_schema()
    assert replay(log, db).records == log.end_offset()
    db.close()
    url = f"mysql://{target.user}:{target.password}@{target.host}:{target.port}/{target.database}"
    store = mlmd.MetadataStore(ProjectionConfig(url))
    yield store
    store.close()
    db = MySqlBackend(target)
    db.execute(f"DROP DATABASE `{target.database}`")
    db.close()


@pytest.mark.parametrize("kind,query,expected", test_filter.CASES, ids=[c[1] for c in test_filter.CASES])
def test_clause_result_set_on_mysql(mysql_store, kind, query, expected):
    assert test_filter.ids(mysql_store, kind, query) == expected


@pytest.mark.parametrize("kind,query", test_filter.ERRORS, ids=[e[1] for e in test_filter.ERRORS])
def test_invalid_query_on_mysql(mysql_store, kind, query):
    assert test_filter.ids(mysql_store, kind, query) == {"error": "InvalidArgumentError"}


def test_read_only_view_refuses_puts(mysql_store):
    with pytest.raises(mlmd.errors.FailedPreconditionError):
        mysql_store.put_artifact_type(pb.ArtifactType(name="nope"))
