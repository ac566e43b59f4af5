"""The one parser of log and projection URLs: the forms every command takes, the ones it refuses."""
from __future__ import annotations

import pytest

from mlmd_log.errors import InvalidArgumentError
from mlmd_log.urls import parse_log_url, parse_projection_url, without_password


@pytest.mark.parametrize("text, kind, path", [
    ("some/dir", "file", "some/dir"),
    ("/abs/dir", "file", "/abs/dir"),
    ("file:///abs/dir", "file", "/abs/dir"),
    ("file://rel/dir", "file", "rel/dir"),
    ("memory:", "memory", None),
    ("memory://", "memory", None),
    ("avro:///abs/dir", "avro", "/abs/dir"),
])
def test_log_urls_that_name_a_place(text, kind, path):
    url = parse_log_url(text)
    assert (url.kind, url.path, url.text) == (kind, path, text)


@pytest.mark.parametrize("text, bootstrap, topic, archive", [
    # (the forms parse_kafka_url and open_log took before there was one parser)
    ("kafka://h1:9092,h2:9092/mlmd", "h1:9092,h2:9092", "mlmd", None),
    ("kafka://127.0.0.1:9092/mlmd", "127.0.0.1:9092", "mlmd", None),
    ("kafka://broker/mlmd", "broker", "mlmd", None),
    ("kafka://broker:9092/mlmd/", "broker:9092", "mlmd", None),
    ("kafka://[::1]:9092/mlmd", "[::1]:9092", "mlmd", None),
    ("kafka://127.0.0.1:9092/mlmd?archive=/archive/mlmd", "127.0.0.1:9092", "mlmd", "/archive/mlmd"),
])
def test_kafka_urls(text, bootstrap, topic, archive):
    url = parse_log_url(text)
    assert (url.kind, url.bootstrap, url.topic, url.archive) == ("kafka", bootstrap, topic, archive)


def test_the_kafka_forms_of_the_old_parser_parse_the_same():
    from mlmd_log.producer.kafka_log import parse_kafka_url

    assert parse_kafka_url("kafka://h1:9092,h2:9092/mlmd") == ("h1:9092,h2:9092", "mlmd")
    for bad in ("kafka://host:9092", "kafka:///topic", "mysql://host/topic", "kafka://h/a/b"):
        with pytest.raises(InvalidArgumentError):
            parse_kafka_url(bad)


@pytest.mark.parametrize("text, message", [
    ("", "Empty log URL"),
    ("nosuch://log", "Unsupported log URL 'nosuch://log': expected a directory, file:///DIR, memory:, kafka://"),
    ("sqlite:///a.db", "Unsupported log URL"),
    ("file://", "No directory"),
    ("avro://", "No directory"),
    ("kafka://host:9092", "Expected kafka://HOST:PORT"),
    ("kafka:///topic", "Expected kafka://HOST:PORT"),
    ("kafka://h/a/b", "Expected kafka://HOST:PORT"),
    ("kafka://h:port/t", "Expected kafka://HOST:PORT"),
    ("kafka://h1:9092,/t", "Expected kafka://HOST:PORT"),
    ("kafka://[::1/t", "Expected kafka://HOST:PORT"),
    ("kafka://h/t?archiv=/x", r"takes one, \?archive=DIR"),
    ("kafka://h/t?archive=", "takes one"),
    ("kafka://h/t?archive=/a&archive=/b", "takes one"),
])
def test_refused_log_urls(text, message):
    with pytest.raises(InvalidArgumentError, match=message):
        parse_log_url(text)


@pytest.mark.parametrize("text, kind, path", [
    ("p.db", "sqlite", "p.db"),
    ("/abs/p.db", "sqlite", "/abs/p.db"),
    ("sqlite:///rel/p.db", "sqlite", "rel/p.db"),
    ("sqlite:////abs/p.db", "sqlite", "/abs/p.db"),
    ("sqlite:///:memory:", "sqlite", ":memory:"),
    ("sqlite://:memory:", "sqlite", ":memory:"),
    ("sqlite://rel/p.db", "sqlite", "rel/p.db"),
    ("duckdb:///rel/a.duckdb", "duckdb", "rel/a.duckdb"),
    ("duckdb:////abs/a.duckdb", "duckdb", "/abs/a.duckdb"),
    ("duckdb://rel/a.duckdb", "duckdb", "rel/a.duckdb"),
])
def test_file_projection_urls(text, kind, path):
    url = parse_projection_url(text)
    assert (url.kind, url.path) == (kind, path)


def test_a_bare_projection_path_is_of_the_kind_the_caller_means():
    assert parse_projection_url("a.duckdb", bare="duckdb").kind == "duckdb"
    assert parse_projection_url("sqlite:///a.db", bare="duckdb").kind == "sqlite"


def test_mysql_urls():
    url = parse_projection_url("mysql://u%40x:p%40ss@db.example:3307/mlmd?socket=/run/m.sock")
    assert (url.kind, url.host, url.port, url.user, url.password, url.database) == \
        ("mysql", "db.example", 3307, "u@x", "p@ss", "mlmd")
    assert url.option("socket") == "/run/m.sock" and url.option("charset") is None
    url = parse_projection_url("mysql:///mlmd")
    assert (url.host, url.port, url.user, url.password, url.database) == ("127.0.0.1", 3306, "root", "", "mlmd")
    assert parse_projection_url("mysql://u:a:b@h/db").password == "a:b"


@pytest.mark.parametrize("text, message", [
    ("", "Empty projection URL"),
    ("postgres://u:secret@h/db", "Unsupported projection URL 'postgres://u:\\*\\*\\*@h/db': expected a path, "
                                 "sqlite:///PATH, mysql://"),
    ("sqlite://", "No file"),
    ("sqlite:///", "No file"),
    ("duckdb:///", "No file"),
    ("mysql://u:secret@h:3306", "Expected mysql://USER:PASSWORD@HOST:PORT/DATABASE, got 'mysql://u:\\*\\*\\*@h:3306'"),
    ("mysql://u:secret@h:port/db", "Expected mysql://"),
    ("mysql://h:99999/db", "Expected mysql://"),
    ("mysql://[::1/db", "Expected mysql://"),
])
def test_refused_projection_urls(text, message):
    with pytest.raises(InvalidArgumentError, match=message) as refused:
        parse_projection_url(text)
    assert "secret" not in str(refused.value)


def test_without_password():
    assert without_password("mysql://u:p%40ss@h:3306/db") == "mysql://u:***@h:3306/db"
    assert without_password("mysql://u:a:b@h/db?socket=/s") == "mysql://u:***@h/db?socket=/s"
    assert without_password("mysql://u@h/db") == "mysql://u@h/db"
    assert without_password("sqlite:///a/b.db") == "sqlite:///a/b.db"
    assert without_password("kafka://h1:9092,h2:9092/t") == "kafka://h1:9092,h2:9092/t"
    assert without_password("mysql://u:secret@[::1/db") == "mysql://u:***@[::1/db"


def test_an_avro_url_opens_a_read_only_archive(tmp_path):
    pytest.importorskip("fastavro")
    from mlmd_log.errors import FailedPreconditionError, NotFoundError
    from mlmd_log.locations import open_log

    with open_log(f"avro://{tmp_path}") as log:  # (an empty directory: an archive of no records yet)
        assert log.end_offset() == 0
        with pytest.raises(FailedPreconditionError, match="read-only"):
            log.append([b"x"])
    with pytest.raises(NotFoundError, match="No Avro archive"):
        open_log(f"avro://{tmp_path}/missing")


def test_a_duckdb_url_is_not_a_store_to_open(tmp_path):
    from mlmd_log.locations import open_projection

    with pytest.raises(InvalidArgumentError, match="duckdb"):
        open_projection(f"duckdb:///{tmp_path}/a.duckdb")
