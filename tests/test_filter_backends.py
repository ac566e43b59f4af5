"""Every filter clause gives the same result set on a MySQL/MariaDB projection as on SQLite:
the store of tests/test_filter.py is replayed from its log into MySQL and queried there."""
from __future__ import annotations


import pytest

import mlmd_log as mlmd
from mlmd_log.consumer.replay import replay
from mlmd_log.projections.mysql import MySqlBackend
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.client import ProjectionConfig

import test_filter
from mysqldb import drop, fresh_database

pytestmark = pytest.mark.mysql


@pytest.fixture(scope="module")
def mysql_store(mysql_url):
    seeded = test_filter._ns["seed"](mlmd, pb)
    log = seeded._transport._applier.log  # the in-memory log behind the seeded store
    target = fresh_database(mysql_url, "mlmdlog_filter")
    db = MySqlBackend(target)
    db.create_schema()
    assert replay(log, db).records == log.end_offset()
    db.close()
    store = mlmd.MetadataStore(ProjectionConfig(target.url))
    yield store
    store.close()
    drop(target)


@pytest.mark.parametrize("kind,query,expected", test_filter.CASES, ids=[c[1] for c in test_filter.CASES])
def test_clause_result_set_on_mysql(mysql_store, kind, query, expected):
    assert test_filter.ids(mysql_store, kind, query) == expected


@pytest.mark.parametrize("kind,query", test_filter.ERRORS, ids=[e[1] for e in test_filter.ERRORS])
def test_invalid_query_on_mysql(mysql_store, kind, query):
    assert test_filter.ids(mysql_store, kind, query) == {"error": "InvalidArgumentError"}


def test_read_only_view_refuses_puts(mysql_store):
    with pytest.raises(mlmd.errors.FailedPreconditionError):
        mysql_store.put_artifact_type(pb.ArtifactType(name="nope"))
