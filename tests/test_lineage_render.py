"""`mlmd-log lineage` and mlmd_log.lineage_render: a recorded pipeline drawn as DOT, Mermaid
and JSON with exactly its nodes, events and context; direction and hops cut the graph as
MLMD's get_lineage_subgraph does; pictures come from Graphviz's `dot`; every source (data
directory, projection URL, gRPC server) gives the same graph.

The pipeline (ids as a fresh store assigns them), all inside one Experiment context:

    raw (a1) -INPUT-> Transform (e1, COMPLETE) -OUTPUT-> features (a3) -INPUT-> Trainer (e2, FAILED) -OUTPUT-> model (a4)
                                                              schema (a2) -INPUT-^
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

import mlmd_log
from mlmd_log import errors
from mlmd_log.client import StoreConfig
from mlmd_log.lineage_render import lineage_graph, to_dict, to_dot, to_json, to_mermaid, write_picture
from mlmd_log.proto import metadata_store_pb2 as pb

HAS_DOT = shutil.which("dot") is not None
NO_DOT = "Graphviz's `dot` is not installed here (Debian: apt-get install graphviz; .ci/run installs it)"

PIPELINE_EDGES = [("a1", "e1", "INPUT"), ("a2", "e2", "INPUT"), ("a3", "e2", "INPUT"), ("e1", "a3", "OUTPUT"),
                  ("e2", "a4", "OUTPUT")]


def _artifact(type_id: int, name: str, uri: str) -> pb.Artifact:
    return pb.Artifact(type_id=type_id, name=name, uri=uri)


def record_pipeline(store: mlmd_log.MetadataStore) -> None:
    data = store.put_artifact_type(pb.ArtifactType(name="DataSet"))
    model_type = store.put_artifact_type(pb.ArtifactType(name="Model", properties={"version": pb.INT}))
    transform = store.put_execution_type(pb.ExecutionType(name="Transform"))
    trainer = store.put_execution_type(pb.ExecutionType(name="Trainer"))
    experiment = store.put_context_type(pb.ContextType(name="Experiment"))
    raw_id, schema_id = store.put_artifacts([_artifact(data, "raw", "/data/raw"),
                                             _artifact(data, "schema", "/data/schema.pbtxt")])
    [raw, schema] = store.get_artifacts_by_id([raw_id, schema_id])
    _, [_, features_id], [context_id] = store.put_execution(
        pb.Execution(type_id=transform, name="transform", last_known_state=pb.Execution.COMPLETE),
        [(raw, pb.Event(type=pb.Event.INPUT)), (_artifact(data, "features", "/data/features"),
                                                pb.Event(type=pb.Event.OUTPUT))],
        [pb.Context(type_id=experiment, name="exp-1")])
    [features] = store.get_artifacts_by_id([features_id])
    model = _artifact(model_type, "model", "/models/1")
    model.properties["version"].int_value = 1
    store.put_execution(
        pb.Execution(type_id=trainer, name="train", last_known_state=pb.Execution.FAILED),
        [(features, pb.Event(type=pb.Event.INPUT)), (schema, pb.Event(type=pb.Event.INPUT)),
         (model, pb.Event(type=pb.Event.OUTPUT))],
        store.get_contexts_by_id([context_id]))


@pytest.fixture
def data_dir(tmp_path):
    """A closed embedded store holding the pipeline (a reader needs no lock)."""
    path = tmp_path / "data"
    store = mlmd_log.MetadataStore(StoreConfig.from_directory(str(path)))
    try:
        record_pipeline(store)
    finally:
        store.close()
    return path


@pytest.fixture
def store(data_dir):
    reader = mlmd_log.MetadataStore(f"sqlite:///{data_dir / 'mlmd.sqlite'}")
    yield reader
    reader.close()


def mlmd_log_cli(*argv: str, cwd, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlmd_log.cli", "lineage", *argv], capture_output=True,
                          text=True, cwd=str(cwd), env=env, timeout=120)


def node_keys(graph) -> list[str]:
    return [n.key for n in graph.nodes]


def edge_triples(graph) -> list[tuple]:
    return [(e.source, e.target, e.type) for e in graph.edges]


# -- what is drawn ------------------------------------------------------------------------
def test_json_holds_the_nodes_edges_and_context_exactly(store):
    data = json.loads(to_json(lineage_graph(store, "artifact", 4)))
    assert data["focus"] == "a4"
    assert [(n["key"], n["kind"], n["id"], n["type"], n["name"], n["uri"], n["state"]) for n in data["nodes"]] == [
        ("a1", "artifact", 1, "DataSet", "raw", "/data/raw", ""),
        ("a2", "artifact", 2, "DataSet", "schema", "/data/schema.pbtxt", ""),
        ("a3", "artifact", 3, "DataSet", "features", "/data/features", ""),
        ("a4", "artifact", 4, "Model", "model", "/models/1", ""),
        ("e1", "execution", 1, "Transform", "transform", None, "COMPLETE"),
        ("e2", "execution", 2, "Trainer", "train", None, "FAILED"),
    ]
    assert data["nodes"][3]["properties"] == {"version": 1}
    assert [(e["source"], e["target"], e["type"]) for e in data["edges"]] == PIPELINE_EDGES
    assert data["contexts"] == [{"key": "c1", "id": 1, "type": "Experiment", "name": "exp-1", "properties": {},
                                 "custom_properties": {}, "members": ["a1", "a2", "a3", "a4", "e1", "e2"]}]


def test_dot_has_one_line_per_event_inputs_into_executions_outputs_out(store):
    dot = to_dot(lineage_graph(store, "artifact", 4))
    edges = [line.strip() for line in dot.splitlines() if "->" in line]
    assert edges == [f'{s} -> {t} [label="{kind}"];' for s, t, kind in PIPELINE_EDGES]
    assert dot.startswith("digraph lineage {\n") and dot.endswith("}\n")
    assert 'subgraph cluster_c1 {\n    label="Experiment #1: exp-1";' in dot
    node_lines = {line.split(" [")[0].strip(): line for line in dot.splitlines()
                  if "[label=" in line and "->" not in line}
    assert sorted(node_lines) == ["a1", "a2", "a3", "a4", "e1", "e2"]
    assert node_lines["a4"].startswith('    a4 [label="Model #4\\nmodel\\n/models/1"') and 'penwidth="3"' in node_lines["a4"]
    assert node_lines["e2"] == ('    e2 [label="Trainer #2\\ntrain\\nFAILED", shape="box", style="rounded,filled", '
                                'fillcolor="#fce8e6", color="#d93025", fontcolor="#a50e0e"];')  # the failed run stands out
    assert "#d93025" not in node_lines["e1"]


def test_mermaid_has_the_same_edges_a_subgraph_and_marks(store):
    mermaid = to_mermaid(lineage_graph(store, "artifact", 4))
    lines = mermaid.splitlines()
    assert lines[0] == "flowchart LR"
    assert [line.strip() for line in lines if "-->" in line] == [f"{s} -->|{kind}| {t}" for s, t, kind in PIPELINE_EDGES]
    assert lines[1] == '  subgraph c1["Experiment #35;1: exp-1"]' and "  end" in lines
    assert '    e2["Trainer #35;2<br/>train<br/>FAILED"]' in lines
    assert "  class a4 focus" in lines and "  class e2 failed" in lines


def test_the_output_is_the_same_text_every_time(store):
    first = lineage_graph(store, "execution", 2)
    second = lineage_graph(store, "execution", 2)
    assert (to_dot(first), to_mermaid(first), to_json(first)) == (to_dot(second), to_mermaid(second), to_json(second))


# -- what is read ------------------------------------------------------------------------
def test_direction_and_hops_cut_the_graph_as_get_lineage_subgraph_does(store):
    one_hop_up = lineage_graph(store, "artifact", 4, "upstream", 1)
    assert node_keys(one_hop_up) == ["a4", "e2"] and edge_triples(one_hop_up) == [("e2", "a4", "OUTPUT")]
    two_hops_up = lineage_graph(store, "artifact", 4, "upstream", 2)
    assert node_keys(two_hops_up) == ["a2", "a3", "a4", "e2"]
    assert node_keys(lineage_graph(store, "artifact", 4, "upstream")) == ["a1", "a2", "a3", "a4", "e1", "e2"]
    downstream = lineage_graph(store, "artifact", 1, "downstream")  # (the schema feeds the trainer: not downstream)
    assert node_keys(downstream) == ["a1", "a3", "a4", "e1", "e2"]
    assert edge_triples(downstream) == [("a1", "e1", "INPUT"), ("a3", "e2", "INPUT"), ("e1", "a3", "OUTPUT"),
                                        ("e2", "a4", "OUTPUT")]
    assert node_keys(lineage_graph(store, "execution", 2, "downstream", 0)) == ["e2"]
    assert node_keys(lineage_graph(store, "execution", 2, "both", 1)) == ["a2", "a3", "a4", "e2"]
    # The context lists only the members drawn.
    assert to_dict(one_hop_up)["contexts"][0]["members"] == ["a4", "e2"]


def test_a_context_is_its_members_and_their_events(store):
    graph = lineage_graph(store, "context", 1)
    assert graph.focus == "c1"
    assert node_keys(graph) == ["a1", "a2", "a3", "a4", "e1", "e2"]
    assert edge_triples(graph) == PIPELINE_EDGES
    with pytest.raises(errors.InvalidArgumentError, match="context"):
        lineage_graph(store, "context", 1, hops=2)


def test_an_unknown_id_is_not_found(store):
    with pytest.raises(errors.NotFoundError, match="No execution with id 9"):
        lineage_graph(store, "execution", 9)


# -- labels -------------------------------------------------------------------------------
def test_quotes_newlines_unicode_and_long_uris_keep_dot_and_mermaid_whole(tmp_path):
    store = mlmd_log.MetadataStore(pb.ConnectionConfig(fake_database=pb.FakeDatabaseConfig()))
    try:
        type_id = store.put_artifact_type(pb.ArtifactType(name='Data"Set'))
        name = 'say "hi"\nC:\\new\\t }]; <b>#quot; modèle ✓'
        uri = "gs://bucket/" + "very-long-directory/" * 10 + "données.tfrecord"
        [artifact_id] = store.put_artifacts([pb.Artifact(type_id=type_id, name=name, uri=uri)])
        graph = lineage_graph(store, "artifact", artifact_id)
    finally:
        store.close()
    dot, mermaid = to_dot(graph), to_mermaid(graph)
    [node_line] = [line for line in dot.splitlines() if line.strip().startswith("a1 [")]
    assert node_line.startswith('  a1 [label="Data\\"Set #1\\nsay \\"hi\\" C:\\\\new\\\\t }]; <b>#quot; modèle ✓\\n'
                                'gs://bucket/very-long-d…rectory/données.tfrecord", ')
    [label] = [line for line in mermaid.splitlines() if line.startswith("  a1(")]
    assert label == ('  a1("Data#34;Set #35;1<br/>say #34;hi#34; C:\\new\\t }]; #60;b#62;#35;quot; modèle ✓<br/>'
                     'gs://bucket/very-long-d…rectory/données.tfrecord")')
    assert json.loads(to_json(graph))["nodes"][0]["name"] == name  # JSON keeps the name whole
    if HAS_DOT:  # Graphviz itself parses the DOT
        done = subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True, timeout=60)
        assert done.returncode == 0 and b"</svg>" in done.stdout, done.stderr


# -- the command ---------------------------------------------------------------------------
def test_the_command_prints_each_format_from_a_data_dir_and_a_projection(data_dir, store):
    graph = lineage_graph(store, "artifact", 4, "upstream", 2)
    for fmt, render in (("dot", to_dot), ("mermaid", to_mermaid), ("json", to_json)):
        done = mlmd_log_cli("artifact", "4", "--direction", "upstream", "--hops", "2", "--format", fmt,
                            "--data-dir", "data", cwd=data_dir.parent)
        assert done.returncode == 0 and done.stdout == render(graph), done.stderr
    done = mlmd_log_cli("context", "1", "--format", "json", "--projection", f"sqlite:///{data_dir / 'mlmd.sqlite'}",
                        cwd=data_dir.parent)
    assert done.returncode == 0 and done.stdout == to_json(lineage_graph(store, "context", 1)), done.stderr


def test_the_command_reads_from_a_grpc_server(data_dir, store):
    from mlmd_log.server import MetadataStoreServer, ServeConfig

    expected = to_json(lineage_graph(store, "execution", 2, "upstream"))
    with MetadataStoreServer(ServeConfig(StoreConfig.from_directory(str(data_dir)), port=0)).start() as server:
        done = mlmd_log_cli("execution", "2", "--direction", "upstream", "--format", "json",
                            "--grpc", f"127.0.0.1:{server.port}", cwd=data_dir.parent)
    assert done.returncode == 0 and done.stdout == expected, done.stderr


def test_mistakes_are_one_line_and_usage_errors_exit_2(data_dir):
    for argv, words in ((["artifact", "99", "--data-dir", "data"], "NotFoundError: No artifact with id 99"),
                        (["artifact", "1", "--data-dir", "nowhere"], "NotFoundError"),
                        (["artifact", "1", "--grpc", "nohost"], "--grpc is HOST:PORT"),
                        (["artifact", "1", "--output", "x.pdf", "--data-dir", "data"], "x.pdf")):
        done = mlmd_log_cli(*argv, cwd=data_dir.parent)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("mlmd-log: "), done.stderr
        assert words in done.stderr
    for usage_error in (["model", "1", "--data-dir", "data"], ["artifact", "1", "--grpc", "h:1", "--data-dir", "data"]):
        assert mlmd_log_cli(*usage_error, cwd=data_dir.parent).returncode == 2


@pytest.mark.skipif(not HAS_DOT, reason=NO_DOT)
def test_output_svg_and_png_are_drawn_by_dot(data_dir, store):
    done = mlmd_log_cli("artifact", "4", "--output", "lineage.svg", "--data-dir", "data", cwd=data_dir.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "wrote lineage.svg: 6 nodes, 5 edges, 1 contexts\n"
    svg = (data_dir.parent / "lineage.svg").read_text()
    assert "</svg>" in svg and "Trainer #2" in svg and "Experiment #1" in svg
    png = data_dir.parent / "lineage.png"
    write_picture(lineage_graph(store, "context", 1), str(png))
    assert png.read_bytes().startswith(b"\x89PNG")


def test_without_dot_a_picture_is_one_line_naming_it(data_dir, tmp_path):
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    done = mlmd_log_cli("artifact", "4", "--output", "lineage.svg", "--data-dir", "data", cwd=data_dir.parent,
                        env={"PATH": str(empty_path), "PYTHONPATH": ":".join(sys.path)})
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "FailedPreconditionError" in done.stderr and "`dot` is not installed" in done.stderr
    assert not (data_dir.parent / "lineage.svg").exists()


def test_the_readme_commands_run(tmp_path):
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = text[text.index("## Lineage you can look at\n"):]
    shell = section[section.index("```sh\n") + 6:section.index("```", section.index("```sh\n") + 6)]
    commands = [line.split("  #")[0].strip() for line in shell.splitlines() if line.strip()]
    assert len(commands) == 5 and all(c.startswith("mlmd-log ") for c in commands)
    for command in commands:
        if "--output" in command and not HAS_DOT:
            continue
        done = subprocess.run([sys.executable, "-m", "mlmd_log", *command.split()[1:]], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{command}\n{done.stderr}"
    assert (tmp_path / "lineage.svg").exists() or not HAS_DOT


def test_a_node_in_two_contexts_is_drawn_once_and_listed_in_both():
    from mlmd_log.lineage_render import graph_from_lineage

    lineage = pb.LineageGraph(
        artifacts=[pb.Artifact(id=1, type_id=1)], executions=[pb.Execution(id=1, type_id=2)],
        contexts=[pb.Context(id=2, type_id=3, name="run"), pb.Context(id=1, type_id=3, name="exp")],
        events=[pb.Event(artifact_id=1, execution_id=1, type=pb.Event.UNKNOWN)] * 2,  # (a duplicate: one edge)
        attributions=[pb.Attribution(artifact_id=1, context_id=1), pb.Attribution(artifact_id=1, context_id=2)],
        associations=[pb.Association(execution_id=1, context_id=2)],
        artifact_types=[pb.ArtifactType(id=1, name="Data")], execution_types=[pb.ExecutionType(id=2, name="Run")],
        context_types=[pb.ContextType(id=3, name="Group")])
    graph = graph_from_lineage(lineage, "e1")
    assert [(g.key, g.members) for g in graph.contexts] == [("c1", ("a1",)), ("c2", ("a1", "e1"))]
    dot = to_dot(graph)
    assert [line.split(" [")[0].strip() for line in dot.splitlines() if line.strip().startswith(("a1 [", "e1 ["))] \
        == ["a1", "e1"]  # a1 inside cluster c1 only, e1 inside c2
    assert dot.index("a1 [") < dot.index("subgraph cluster_c2") < dot.index("e1 [")
    assert '  a1 -> e1 [label="UNKNOWN", style=dashed];' in dot.splitlines()
    assert "  a1 -.->|UNKNOWN| e1" in to_mermaid(graph).splitlines()
