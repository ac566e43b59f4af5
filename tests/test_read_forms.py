"""Serialized read forms (mlmd_log/projections/read_forms.py) are exactly what the tables say.

Reads answer from ``mlmdlog_<kind>_pb`` where a node has a row there, so every write path
that creates or changes a node must leave a row equal to the message the Reader builds
from MLMD's tables, or no row at all. These tests write nodes of every shape (all value
kinds and their awkward corners, unset fields, system_metadata, updates with and
without masks, property removal) and compare both readings node by node.
"""
from __future__ import annotations

import sqlite3

import pytest
from google.protobuf import any_pb2, struct_pb2

import mlmd_log
from mlmd_log.projections import read_forms
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.query.reader import Reader

KINDS = ("artifact", "execution", "context")


def _sqlite_store(tmp_path) -> tuple[mlmd_log.MetadataStore, str]:
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = str(tmp_path / "mlmd.sqlite")
    return mlmd_log.MetadataStore(config), config.sqlite.filename_uri


def _types(store):
    at = pb.ArtifactType(name="A")
    et = pb.ExecutionType(name="E")
    ct = pb.ContextType(name="C")
    for t in (at, et, ct):
        for name, kind in (("i", pb.INT), ("d", pb.DOUBLE), ("s", pb.STRING), ("st", pb.STRUCT),
                           ("p", pb.PROTO), ("b", pb.BOOLEAN)):
            t.properties[name] = kind
    return (store.put_artifact_type(at), store.put_execution_type(et), store.put_context_type(ct))


def _odd_values(node) -> None:
    """Every value kind, with the corners whose stored form differs from the given one."""
    node.properties["i"].int_value = -(2 ** 40)
    node.properties["d"].double_value = 1234567890.1234567  # six decimals, then 15 digits
    node.properties["s"].string_value = "héllo ☃"
    node.properties["st"].struct_value.update({"a": [1, "x", None, True], "b": {"c": 2.5}})
    any_value = any_pb2.Any()
    any_value.Pack(struct_pb2.Value(string_value="packed"))
    node.properties["p"].proto_value.CopyFrom(any_value)
    node.properties["b"].bool_value = True
    node.custom_properties["tiny"].double_value = 1e-9
    node.custom_properties["empty"].string_value = ""


def _assert_forms_match(path: str, expect_rows: bool = True) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        reader = Reader(conn)
        counts = {}
        for kind in KINDS:
            ids = [r[0] for r in conn.execute(f"SELECT id FROM {kind.capitalize()} ORDER BY id")]
            from_tables = reader.nodes_from_tables(kind, ids)
            answered = reader.nodes(kind, ids)
            assert [n.id for n in answered] == ids
            for table_node, read_node in zip(from_tables, answered):
                assert read_node == table_node, (kind, table_node.id)
            stored = dict(conn.execute(f"SELECT id, pb FROM {read_forms.TABLES[kind]}").fetchall())
            for table_node in from_tables:  # every stored form equals the tables' answer
                if table_node.id in stored:
                    assert type(table_node).FromString(stored[table_node.id]) == table_node
            counts[kind] = len(stored)
        return counts
    finally:
        conn.close()


def test_created_nodes_of_every_shape_read_the_same(tmp_path):
    store, path = _sqlite_store(tmp_path)
    at, et, ct = _types(store)
    plain = [pb.Artifact(type_id=at), pb.Artifact(type_id=at, uri="", name="", external_id="x1"),
             pb.Artifact(type_id=at, uri="/u", state=pb.Artifact.LIVE, type="ignored-type-name")]
    plain[2].system_metadata.Pack(struct_pb2.Value(number_value=1))
    plain[2].create_time_since_epoch = 5  # output only: the log time wins
    good = pb.Artifact(type_id=at, name="good")
    good.properties["d"].double_value = 0.1 + 0.2
    good.properties["st"].struct_value.update({"k": "v"})
    odd = pb.Artifact(type_id=at, name="odd")
    _odd_values(odd)
    # a field of a newer client (number 111, unknown here) is not stored, so not read back
    plain.append(pb.Artifact.FromString(pb.Artifact(type_id=at, uri="/new").SerializeToString() + b"\xf8\x06\x01"))
    store.put_artifacts(plain)  # the bulk path
    store.put_artifacts([good])  # the one-by-one path
    neg_zero = pb.Artifact(type_id=at, name="neg_zero")
    neg_zero.custom_properties["z"].double_value = -0.0  # left to the tables: SQLite may drop the sign
    store.put_artifacts([odd, neg_zero])
    e = pb.Execution(type_id=et, last_known_state=pb.Execution.RUNNING)
    _odd_values(e)
    [e_id] = store.put_executions([e, ])
    c = pb.Context(type_id=ct, name="ctx")
    c.properties["i"].int_value = 7
    store.put_contexts([c])
    # A NaN (SQLite would store NULL) is refused, as MLMD's insert fails.
    nan = pb.Context(type_id=ct, name="nan")
    nan.custom_properties["x"].double_value = float("nan")
    with pytest.raises(mlmd_log.errors.InternalError, match="finite doubles"):
        store.put_contexts([nan])
    # Values MLMD cannot read back (a string that looks like an encoded struct, an Any
    # without type_url) fail on read as in MLMD, and get no stored form.
    unreadable = [pb.Context(type_id=ct, name=n) for n in ("looks", "no_url")]
    unreadable[0].custom_properties["s"].string_value = "mlmd-struct::not-base64!"
    unreadable[1].custom_properties["p"].proto_value.value = b"\x08\x01"
    bad_ids = store.put_contexts(unreadable)
    for bad_id in bad_ids:
        with pytest.raises((mlmd_log.errors.InvalidArgumentError, mlmd_log.errors.InternalError)):
            store.get_contexts_by_id([bad_id])
    store.close()
    conn = sqlite3.connect(path)
    for bad_id in bad_ids:
        assert conn.execute("SELECT COUNT(*) FROM mlmdlog_context_pb WHERE id = ?", (bad_id,)).fetchone() == (0,)
        conn.execute("DELETE FROM ContextProperty WHERE context_id = ?", (bad_id,))
        conn.execute("DELETE FROM Context WHERE id = ?", (bad_id,))
    conn.commit()
    conn.close()
    counts = _assert_forms_match(path)
    # Every node has a stored form but the one whose read form only the tables decide.
    assert counts == {"artifact": 6, "execution": 1, "context": 1}


def test_updates_rewrite_the_read_form(tmp_path):
    store, path = _sqlite_store(tmp_path)
    at, et, ct = _types(store)
    a = pb.Artifact(type_id=at, uri="/a", name="a")
    a.properties["i"].int_value = 1
    a.custom_properties["c"].string_value = "old"
    [a_id] = store.put_artifacts([a])
    [b_id] = store.put_artifacts([pb.Artifact(type_id=at, uri="/b", name="b")])
    # full update: a property changes, a custom property goes, state is set
    update = pb.Artifact(id=a_id, type_id=at, uri="/a2", state=pb.Artifact.DELETED)
    update.properties["i"].int_value = 2
    store.put_artifacts([update])
    # masked update: only one custom property of b
    masked = pb.Artifact(id=b_id, uri="/ignored")
    masked.custom_properties["m"].int_value = 3
    store.put_artifacts([masked], field_mask_paths=["custom_properties.m"])
    # an update that changes nothing writes nothing
    [got_b] = store.get_artifacts_by_id([b_id])
    store.put_artifacts([got_b])
    # put_execution updates its execution and reuses the context
    e = pb.Execution(type_id=et, last_known_state=pb.Execution.RUNNING)
    [e_id] = store.put_executions([e])
    done = pb.Execution(id=e_id, type_id=et, last_known_state=pb.Execution.COMPLETE)
    done.custom_properties["score"].double_value = 0.25
    store.put_execution(done, [], [pb.Context(type_id=ct, name="run")])
    [got_a], [got_b2], [got_e] = (store.get_artifacts_by_id([a_id]), store.get_artifacts_by_id([b_id]),
                                  store.get_executions_by_id([e_id]))
    assert got_a.uri == "/a2" and got_a.state == pb.Artifact.DELETED
    assert dict(got_a.properties) == {"i": pb.Value(int_value=2)} and not got_a.custom_properties
    assert got_b2.uri == "/b" and got_b2.custom_properties["m"].int_value == 3
    assert got_e.last_known_state == pb.Execution.COMPLETE and got_e.custom_properties["score"].double_value == 0.25
    store.close()
    assert _assert_forms_match(path) == {"artifact": 2, "execution": 1, "context": 1}


def test_a_store_without_read_forms_is_read_from_its_tables(tmp_path):
    """Projections from before the table existed, or with rows missing, read as before."""
    store, path = _sqlite_store(tmp_path)
    at, _, _ = _types(store)
    ids = store.put_artifacts([pb.Artifact(type_id=at, name=f"n{i}", uri=f"/u{i}") for i in range(5)])
    expected = store.get_artifacts_by_id(ids)
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM mlmdlog_artifact_pb WHERE id IN (?, ?)", (ids[1], ids[3]))
    conn.commit()
    assert Reader(conn).get_artifacts_by_id(ids) == expected
    conn.execute("DROP TABLE mlmdlog_artifact_pb")
    conn.commit()
    assert Reader(conn).get_artifacts_by_id(ids + [10 ** 6]) == expected
    conn.close()


def test_mysql_ints_beyond_32_bits_are_left_to_the_tables():
    node = pb.Artifact(type_id=1)
    node.properties["i"].int_value = 2 ** 31
    assert read_forms.encode("artifact", pb.Artifact, node, 1, "A", 0, float, None) is not None
    assert read_forms.encode("artifact", pb.Artifact, node, 1, "A", 0, float, 2 ** 31) is None


@pytest.mark.parametrize("value, expected", [
    (0.1 + 0.2, 0.3), (1234567890.1234567, 1234567890.12346), (1e-9, 0.0), (2.5, 2.5)])
def test_doubles_are_stored_as_mlmd_reads_them(value, expected):
    node = pb.Artifact(type_id=1)
    node.properties["d"].double_value = value
    from mlmd_log.dialects import SQLITE
    data = read_forms.encode("artifact", pb.Artifact, node, 1, "A", 0, SQLITE.read_double)
    assert pb.Artifact.FromString(data).properties["d"].double_value == expected


@pytest.mark.mysql
def test_mysql_projection_read_forms_match_its_tables(tmp_path, mysql_url):
    """The same checks on a MySQL projection the engine writes directly (replay), where
    int_value is 32 bits (a value beyond that gets no form: the tables answer for it)."""
    import os

    from mlmd_log.consumer.replay import replay
    from mlmd_log.producer import FileLog
    from mlmd_log.projections.mysql import MySqlBackend
    from mlmd_log.dialects import MYSQL
    from mlmd_log.client import StoreConfig
    from mysqldb import drop, fresh_database

    data_dir = str(tmp_path / "store")
    store = mlmd_log.MetadataStore(StoreConfig.from_directory(data_dir))
    at, et, ct = _types(store)
    nodes = []
    for i in range(4):
        a = pb.Artifact(type_id=at, uri=f"/m/{i}" if i else "")
        _odd_values(a)
        a.properties["i"].int_value = (2 ** 31 - 1) if i % 2 else -5
        nodes.append(a)
    a_ids = store.put_artifacts(nodes)
    update = pb.Artifact(id=a_ids[1], type_id=at, uri="/moved", state=pb.Artifact.LIVE)
    update.custom_properties["new"].double_value = 2.0 / 3
    store.put_artifacts([update], field_mask_paths=["uri", "state", "custom_properties.new"])
    e = pb.Execution(type_id=et, last_known_state=pb.Execution.RUNNING)
    e.properties["d"].double_value = 1e-7
    store.put_execution(e, [(pb.Artifact(id=a_ids[0], type_id=at), pb.Event(type=pb.Event.INPUT))],
                        [pb.Context(type_id=ct, name="run")])
    store.close()
    target = fresh_database(mysql_url)
    log = FileLog(os.path.join(data_dir, "log"), readonly=True)
    try:
        db = MySqlBackend(target)
        db.create_schema()
        assert replay(log, db).rejected == 0
        reader = Reader(db.conn, MYSQL)
        stored_counts = {}
        for kind in KINDS:
            ids = [r[0] for r in db.rows(f"SELECT `id` FROM `{kind.capitalize()}` ORDER BY `id`")]
            from_tables = reader.nodes_from_tables(kind, ids)
            assert reader.nodes(kind, ids) == from_tables
            stored = dict(db.rows(f"SELECT `id`, `pb` FROM `{read_forms.TABLES[kind]}`"))
            for node in from_tables:
                if node.id in stored:
                    assert type(node).FromString(bytes(stored[node.id])) == node
            stored_counts[kind] = len(stored)
        assert stored_counts == {"artifact": 4, "execution": 1, "context": 1}
        db.close()
    finally:
        log.close()
        drop(target)


def test_an_older_projection_gets_its_read_forms_once(tmp_path):
    """A projection from before the read forms (no forms, no completeness marker) gets
    forms for every readable node when a writer opens it, then is marked complete: later
    opens do not scan again, and a node without a form still reads from the tables."""
    store, path = _sqlite_store(tmp_path)
    at, et, ct = _types(store)
    odd = pb.Artifact(type_id=at, name="odd")
    _odd_values(odd)
    odd.custom_properties["z"].double_value = -0.0  # no form at write time; backfill builds one
    a_ids = store.put_artifacts([pb.Artifact(type_id=at, uri="/a"), odd])
    bad = pb.Context(type_id=ct, name="bad")
    bad.custom_properties["s"].string_value = "mlmd-struct::not-base64!"  # unreadable: never a form
    [e_id] = store.put_executions([pb.Execution(type_id=et)])
    [c_id, bad_id] = store.put_contexts([pb.Context(type_id=ct, name="c"), bad])
    store.close()
    conn = sqlite3.connect(path)
    for table in read_forms.TABLES.values():
        conn.execute(f"DELETE FROM {table}")
    conn.execute("DROP TABLE mlmdlog_meta")
    conn.commit()
    conn.close()

    mlmd_log.MetadataStore(pb.ConnectionConfig(sqlite=pb.SqliteMetadataSourceConfig(filename_uri=path))).close()
    conn = sqlite3.connect(path)
    forms = {kind: [r[0] for r in conn.execute(f"SELECT id FROM {t} ORDER BY id")] for kind, t in read_forms.TABLES.items()}
    assert forms == {"artifact": a_ids, "execution": [e_id], "context": [c_id]}
    conn.execute("DELETE FROM mlmdlog_context_pb")
    conn.execute("DELETE FROM ContextProperty WHERE context_id = ?", (bad_id,))
    conn.execute("DELETE FROM Context WHERE id = ?", (bad_id,))
    conn.commit()
    conn.close()
    _assert_forms_match(path)
    store = mlmd_log.MetadataStore(pb.ConnectionConfig(sqlite=pb.SqliteMetadataSourceConfig(filename_uri=path)))
    assert [c.name for c in store.get_contexts_by_id([c_id])] == ["c"]  # from the tables
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM mlmdlog_context_pb").fetchone() == (0,)  # marked: no rescan
    conn.close()


def test_a_nodes_read_form_has_the_same_bytes_whatever_order_its_properties_came_in():
    """Map entries serialize in the order of their hash table, which depends on how the
    map was built and on the process. The read form of one node must not: the paths that
    write it (general, step writer, re-timed input) and every replay must agree byte for
    byte."""
    names = [f"p{i}-{i * 7919 % 101}" for i in range(12)]
    forward, backward = pb.Artifact(type_id=5, uri="u://x"), pb.Artifact(type_id=5, uri="u://x")
    for name in names:
        forward.properties[name].int_value = len(name)
        forward.custom_properties[name].string_value = name
    for name in reversed(names):
        backward.custom_properties[name].string_value = name
        backward.properties[name].int_value = len(name)
    assert forward == backward
    encode = [read_forms.encode("artifact", pb.Artifact, node, 7, "Model", 1000, float, None)
              for node in (forward, backward, pb.Artifact.FromString(backward.SerializeToString()))]
    assert encode[0] is not None
    assert encode[0] == encode[1] == encode[2]


def test_varint_is_protobufs_encoding_at_every_length():
    from mlmd_log.projections.read_forms import field_key, varint
    values = [0, 1, 0x7F, 0x80, 0x3FFF, 0x4000, 0x1FFFFF, 0x200000, 0xFFFFFFF, 0x10000000, 2 ** 62]
    values += list(range(0, 20000, 7)) + [3 ** k for k in range(39)]
    for value in values:
        assert field_key(1, 0) + varint(value) == pb.Artifact(id=value).SerializeToString(), value
