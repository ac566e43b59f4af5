"""`mlmd-log ui`: the read-only web page, over plain HTTP (urllib) and in headless Chromium
(selenium). One `mlmd-log ui --port 0` process serves a store holding a small pipeline (ids
as a fresh store assigns them), all inside one Experiment context:

    raw (a1) -INPUT-> Transform (e1) -OUTPUT-> features (a3) -INPUT-> Trainer (e2, FAILED) -OUTPUT-> model (a4)
                                                   schema (a2) -INPUT-^

model has version=1 and a custom property whose value is an HTML <script> (it must come out
escaped). The browser tests skip when chromium or chromedriver is absent, except in CI
(`CI` set), where .ci/run installs them and they fail instead.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest

import mlmd_log
from mlmd_log.client import StoreConfig
from mlmd_log.proto import metadata_store_pb2 as pb

SCRIPT = "<script>alert('x')</script>"
HAS_DOT = shutil.which("dot") is not None


def record_pipeline(store: mlmd_log.MetadataStore) -> None:
    data = store.put_artifact_type(pb.ArtifactType(name="DataSet", properties={"split": pb.STRING}))
    model_type = store.put_artifact_type(pb.ArtifactType(name="Model", properties={"version": pb.INT}))
    transform = store.put_execution_type(pb.ExecutionType(name="Transform"))
    trainer = store.put_execution_type(pb.ExecutionType(name="Trainer"))
    experiment = store.put_context_type(pb.ContextType(name="Experiment"))

    def dataset(name: str, uri: str, split: str) -> pb.Artifact:
        artifact = pb.Artifact(type_id=data, name=name, uri=uri)
        artifact.properties["split"].string_value = split
        return artifact

    raw_id, schema_id = store.put_artifacts([dataset("raw", "/data/raw", "train"),
                                             dataset("schema", "/data/schema.pbtxt", "all")])
    [raw, schema] = store.get_artifacts_by_id([raw_id, schema_id])
    _, [_, features_id], [context_id] = store.put_execution(
        pb.Execution(type_id=transform, name="transform", last_known_state=pb.Execution.COMPLETE),
        [(raw, pb.Event(type=pb.Event.INPUT)),
         (dataset("features", "/data/features", "train"), pb.Event(type=pb.Event.OUTPUT))],
        [pb.Context(type_id=experiment, name="exp-1")])
    [features] = store.get_artifacts_by_id([features_id])
    model = pb.Artifact(type_id=model_type, name="model", uri="/models/1")
    model.properties["version"].int_value = 1
    model.custom_properties["note"].string_value = SCRIPT
    store.put_execution(
        pb.Execution(type_id=trainer, name="train", last_known_state=pb.Execution.FAILED),
        [(features, pb.Event(type=pb.Event.INPUT)), (schema, pb.Event(type=pb.Event.INPUT)),
         (model, pb.Event(type=pb.Event.OUTPUT))],
        store.get_contexts_by_id([context_id]))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("ui") / "data"
    store = mlmd_log.MetadataStore(StoreConfig.from_directory(str(path)))
    try:
        record_pipeline(store)
    finally:
        store.close()
    return path


def start_ui(*argv: str, cwd, env=None) -> tuple:
    """`mlmd-log ui ARGV --port 0` as a process, and the URL its first line prints."""
    process = subprocess.Popen([sys.executable, "-m", "mlmd_log", "ui", "--port", "0", *argv], cwd=str(cwd),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = process.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:\d+/", line)
    if not found:
        process.kill()
        raise AssertionError(f"no URL in {line!r}: {process.communicate(timeout=30)}")
    return process, found.group(0)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


@pytest.fixture(scope="module")
def ui(data_dir):
    process, url = start_ui("--data-dir", str(data_dir), cwd=data_dir.parent)
    yield url
    stop(process)


def get(url: str) -> tuple:
    """(status, content type, body text) of a GET, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.headers["Content-Type"], response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode("utf-8")


def page(ui: str, path: str, **query: str) -> str:
    return ui + path.lstrip("/") + ("?" + urllib.parse.urlencode(query) if query else "")


# -- plain HTTP -----------------------------------------------------------------------
def test_the_index_lists_each_kinds_types_with_counts(ui):
    status, kind, body = get(ui)
    assert status == 200 and kind.startswith("text/html")
    for name in ("DataSet", "Model", "Transform", "Trainer", "Experiment"):
        assert f">{name}</a>" in body
    status, _, text = get(page(ui, "/api/"))
    counts = json.loads(text)
    assert {t["name"]: t["count"] for t in counts["artifact"]} == {"DataSet": 3, "Model": 1}
    assert {t["name"]: t["count"] for t in counts["execution"]} == {"Transform": 1, "Trainer": 1}
    assert {t["name"]: t["count"] for t in counts["context"]} == {"Experiment": 1}


def test_lists_by_type_and_filter_show_properties(ui):
    status, _, body = get(page(ui, "/artifacts"))
    assert status == 200 and '<p id="count">4 artifacts</p>' in body
    assert "<b>split</b> = train" in body and "<b>version</b> = 1" in body
    _, _, text = get(page(ui, "/api/artifacts", type="DataSet"))
    assert [a["name"] for a in json.loads(text)] == ["raw", "schema", "features"]
    _, _, text = get(page(ui, "/api/artifacts", type="DataSet", filter="properties.split.string_value = 'train'"))
    assert [a["name"] for a in json.loads(text)] == ["raw", "features"]
    _, _, text = get(page(ui, "/api/executions", filter="last_known_state = FAILED"))
    assert [(e["name"], e["state"]) for e in json.loads(text)] == [("train", "FAILED")]
    _, _, text = get(page(ui, "/api/contexts", filter="name = 'exp-1'"))
    assert [c["id"] for c in json.loads(text)] == [1]
    _, _, text = get(page(ui, "/api/artifacts", type="No'Such"))  # a quote in a type name stays a literal
    assert json.loads(text) == []


def test_a_bad_filter_is_mlmds_message_with_400_never_a_traceback(ui):
    status, kind, body = get(page(ui, "/artifacts", filter="name = "))
    assert status == 400 and kind.startswith("text/html")
    assert 'class="error"' in body and "InvalidArgumentError" in body and "Traceback" not in body
    assert 'value="name = "' in body  # the form keeps what was typed
    status, kind, text = get(page(ui, "/api/artifacts", filter="nonsense ((("))
    assert status == 400 and kind.startswith("application/json") and "InvalidArgumentError" in json.loads(text)["error"]


def test_every_value_is_escaped(ui):
    escaped = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"
    for path in ("/artifacts", "/node/artifact/4", "/lineage/artifact/4"):
        status, _, body = get(page(ui, path))
        assert status == 200 and "<script" not in body, path
        if path != "/lineage/artifact/4":  # (the graph shows no custom properties)
            assert escaped in body, path
    _, _, body = get(page(ui, "/artifacts", filter="<b>oops</b>"))
    assert "<b>oops</b>" not in body and "&lt;b&gt;oops&lt;/b&gt;" in body
    status, _, body = get(page(ui, "/no/<i>such</i>"))
    assert status == 404 and "<i>" not in body
    with urllib.request.urlopen(page(ui, "/artifacts"), timeout=60) as response:
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_a_node_page_has_fields_events_contexts_and_a_lineage_link(ui):
    status, _, body = get(page(ui, "/node/artifact/3"))
    assert status == 200 and "/data/features" in body and 'href="/lineage/artifact/3"' in body
    node = json.loads(get(page(ui, "/api/node/artifact/3"))[2])
    assert [(e["execution_id"], e["type"]) for e in node["events"]] == [(1, "OUTPUT"), (2, "INPUT")]
    assert [c["name"] for c in node["contexts"]] == ["exp-1"]
    context = json.loads(get(page(ui, "/api/node/context/1"))[2])
    assert [a["id"] for a in context["artifacts"]] == [1, 2, 3, 4]
    assert [e["id"] for e in context["executions"]] == [1, 2]
    execution = json.loads(get(page(ui, "/api/node/execution/2"))[2])
    assert execution["state"] == "FAILED" and len(execution["events"]) == 3


def test_missing_nodes_and_pages_are_404_bad_ids_400(ui):
    for path, status in (("/node/artifact/99", 404), ("/lineage/execution/99", 404), ("/node/model/1", 404),
                         ("/nothing", 404), ("/node/artifact/x", 400), ("/lineage/artifact/1?hops=z", 400)):
        got, _, body = get(page(ui, path))
        assert got == status and "Traceback" not in body, path


def test_the_lineage_page_draws_the_graph(ui):
    data = json.loads(get(page(ui, "/api/lineage/artifact/4"))[2])
    assert [n["key"] for n in data["nodes"]] == ["a1", "a2", "a3", "a4", "e1", "e2"]
    status, _, body = get(page(ui, "/lineage/artifact/4", direction="upstream", hops="1"))
    assert status == 200
    if HAS_DOT:
        assert '<div class="graph" id="graph"><svg' in body and "Trainer #2" in body and "Transform" not in body
    else:
        assert 'id="mermaid"' in body
    status, _, body = get(page(ui, "/lineage/context/1"))
    assert status == 200 and "exp-1" in body


def test_without_dot_the_lineage_page_shows_the_mermaid_text(data_dir, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    process, url = start_ui("--data-dir", str(data_dir), cwd=data_dir.parent, env={**os.environ, "PATH": str(empty)})
    try:
        status, _, body = get(page(url, "/lineage/artifact/4"))
    finally:
        stop(process)
    assert status == 200 and "<svg" not in body and '<pre id="mermaid">flowchart' in body
    assert "a1 --&gt;|INPUT| e1" in body  # the Mermaid text, escaped


def test_counts_stop_at_the_cap(data_dir, monkeypatch):
    from mlmd_log import ui as web

    monkeypatch.setattr(web, "COUNT_LIMIT", 2)
    store = mlmd_log.MetadataStore(f"sqlite:///{data_dir / 'mlmd.sqlite'}")
    try:
        counts = web.type_counts(store)
    finally:
        store.close()
    assert [(t["name"], t["count"], t["count_capped"]) for t in counts["artifact"]] == [("DataSet", 2, True),
                                                                                       ("Model", 1, False)]
    assert ">2+</td>" in web.html_index(counts)


def test_a_projection_url_and_a_grpc_server_serve_the_same_pages(data_dir, ui):
    from mlmd_log.server import MetadataStoreServer, ServeConfig

    expected = get(page(ui, "/api/artifacts"))[2]
    process, url = start_ui("--projection", f"sqlite:///{data_dir / 'mlmd.sqlite'}", cwd=data_dir.parent)
    try:
        assert get(page(url, "/api/artifacts"))[2] == expected
    finally:
        stop(process)
    with MetadataStoreServer(ServeConfig(StoreConfig.from_directory(str(data_dir)), port=0)).start() as server:
        process, url = start_ui("--grpc", f"127.0.0.1:{server.port}", cwd=data_dir.parent)
        try:
            assert get(page(url, "/api/artifacts"))[2] == expected
        finally:
            stop(process)


def test_a_request_for_another_host_name_is_refused(ui):
    port = urllib.parse.urlsplit(ui).port
    assert get(page(ui, "/").replace("127.0.0.1", "localhost"))[0] == 200
    request = urllib.request.Request(page(ui, "/api/artifacts"), headers={"Host": f"evil.example:{port}"})
    try:
        urllib.request.urlopen(request, timeout=60)
        raise AssertionError("served a rebound host name")
    except urllib.error.HTTPError as exc:
        assert exc.code == 403 and b"model" not in exc.read()


def test_names_with_markup_are_escaped_in_the_lineage_svg_too(tmp_path):
    """In process (ui.serve on a thread), on a store whose node and context names are markup."""
    import threading

    from mlmd_log import ui as web

    store = mlmd_log.MetadataStore(StoreConfig.from_directory(str(tmp_path / "data")))
    try:
        kind = store.put_artifact_type(pb.ArtifactType(name="T<i>"))
        step = store.put_execution_type(pb.ExecutionType(name="Step"))
        group = store.put_context_type(pb.ContextType(name="G"))
        store.put_execution(pb.Execution(type_id=step, name=SCRIPT),
                            [(pb.Artifact(type_id=kind, name=SCRIPT, uri="/x?a=<b>&c"),
                              pb.Event(type=pb.Event.OUTPUT))], [pb.Context(type_id=group, name=SCRIPT)])
        urls, stop = [], threading.Event()
        worker = threading.Thread(target=web.serve, args=(store, 0, urls.append, stop))
        worker.start()
        try:
            while not urls and worker.is_alive():
                worker.join(0.05)
            url = re.search(r"http://\S+/", urls[0]).group(0)
            for path in ("/", "/artifacts", "/executions", "/contexts", "/node/artifact/1", "/node/execution/1",
                         "/node/context/1", "/lineage/artifact/1", "/lineage/context/1"):
                status, _, body = get(page(url, path))
                assert status == 200 and "<script" not in body and "<i>" not in body and "<b>" not in body, path
            if HAS_DOT:
                assert "&lt;script&gt;" in get(page(url, "/lineage/execution/1"))[2]
        finally:
            stop.set()
            worker.join(30)
        assert not worker.is_alive()
    finally:
        store.close()


def test_sigterm_stops_it_cleanly(data_dir):
    process, url = start_ui("--data-dir", str(data_dir), cwd=data_dir.parent)
    assert get(url)[0] == 200
    process.terminate()
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0 and err == "", err


def test_a_port_in_use_is_one_line_and_exit_1(data_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "mlmd_log", "ui", "--port", str(port), "--data-dir",
                               str(data_dir)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and f"port {port} on 127.0.0.1 is in use" in done.stderr, done.stderr


def test_help_has_an_example():
    done = subprocess.run([sys.executable, "-m", "mlmd_log", "ui", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "Example: mlmd-log ui --data-dir" in " ".join(done.stdout.split())


# -- in a browser ---------------------------------------------------------------------
def _browser_problem() -> str:
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (Debian: apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install 'mlmd-log[test]')"
    return ""


@pytest.fixture(scope="module")
def browser():
    problem = _browser_problem()
    if problem:
        if os.environ.get("CI"):  # .ci/run installs them: a browser test never silently vanishes there
            pytest.fail(problem)
        pytest.skip(problem)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.implicitly_wait(10)
    yield driver
    driver.quit()


def _cells(driver, table_id: str) -> list:
    from selenium.webdriver.common.by import By

    return [[td.text for td in row.find_elements(By.TAG_NAME, "td")]
            for row in driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr")]


def test_browser_the_list_shows_artifacts_with_their_properties(browser, ui, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(page(ui, "/"))
    assert [r[:3] for r in _cells(browser, "artifact-types")] == [["DataSet", "", "3"], ["Model", "", "1"]]
    browser.save_screenshot(str(tmp_path / "types.png"))
    browser.find_element(By.LINK_TEXT, "DataSet").click()
    assert browser.title.startswith("Artifacts of type DataSet")
    rows = _cells(browser, "nodes")
    assert [(r[0], r[2], r[3], r[5]) for r in rows] == [("1", "raw", "/data/raw", "split = train"),
                                                        ("2", "schema", "/data/schema.pbtxt", "split = all"),
                                                        ("3", "features", "/data/features", "split = train")]
    browser.get(page(ui, "/artifacts"))
    [model] = [r for r in _cells(browser, "nodes") if r[2] == "model"]
    assert model[5] == "version = 1" and model[6] == f"note = {SCRIPT}"  # shown as text, not run
    browser.save_screenshot(str(tmp_path / "artifacts.png"))


def test_browser_a_filter_narrows_the_list_and_a_broken_one_shows_the_error(browser, ui, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(page(ui, "/artifacts"))
    box = browser.find_element(By.NAME, "filter")
    box.send_keys("name != 'schema' AND uri LIKE '/%'")
    box.submit()
    assert [r[2] for r in _cells(browser, "nodes")] == ["raw", "features", "model"]
    browser.save_screenshot(str(tmp_path / "filtered.png"))
    box = browser.find_element(By.NAME, "filter")
    box.clear()
    box.send_keys("name = ")
    box.submit()
    error = browser.find_element(By.ID, "error").text
    assert error.startswith("InvalidArgumentError") and not browser.find_elements(By.ID, "nodes")
    browser.save_screenshot(str(tmp_path / "bad-filter.png"))


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's `dot` is not installed (.ci/run installs it)")
def test_browser_a_node_then_its_lineage_shows_the_graph(browser, ui, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(page(ui, "/artifacts"))
    browser.find_element(By.LINK_TEXT, "4").click()
    assert browser.title.startswith("Artifact 4: model")
    assert ["note", SCRIPT] in [[li.text.split(" = ")[0], li.text.split(" = ", 1)[1]]
                                for li in browser.find_elements(By.CSS_SELECTOR, ".props li")]
    browser.save_screenshot(str(tmp_path / "node.png"))
    browser.find_element(By.ID, "lineage-link").click()
    assert browser.title.startswith("Lineage of artifact 4")
    svg = browser.find_element(By.CSS_SELECTOR, "#graph svg")
    labels = {t.text for t in svg.find_elements(By.CSS_SELECTOR, "g.node text")}
    assert {"DataSet #1", "raw", "DataSet #3", "features", "Transform #1", "Trainer #2", "FAILED",
            "Model #4", "model"} <= labels, labels
    assert len(svg.find_elements(By.CSS_SELECTOR, "g.edge")) == 5
    browser.save_screenshot(str(tmp_path / "lineage.png"))
