"""``mlmd-log ui``: a small read-only web page over any store a MetadataStore opens.

Standard library only (``http.server``), reading through the public ``MetadataStore`` API,
so it shows the same thing on an embedded store, a projection or a gRPC server. Pages::

    /                                   types of each kind, with node counts
    /artifacts?type=T&filter=F          a kind's nodes (of type T, matching MLMD filter F)
    /executions?...  /contexts?...
    /node/artifact/ID                   fields, properties, events, contexts (or members)
    /lineage/artifact/ID?direction=&hops=   the lineage graph (SVG drawn by Graphviz's dot)

Each has a JSON twin under ``/api/`` (``/api/artifacts?...``, ``/api/node/...``,
``/api/lineage/...``). Every value from the store goes through ``html.escape``; a store
error (a bad filter, a missing node) is its MLMD message with HTTP 400 or 404, never a
traceback.
"""
from __future__ import annotations

import html
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Optional
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from google.protobuf import json_format

from mlmd_log import errors
from mlmd_log.lineage_render import DIRECTIONS, lineage_graph, to_dict, to_mermaid, write_picture
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.store import ListOptions, OrderByField

HOST = "127.0.0.1"
DEFAULT_PORT = 8765
LIST_LIMIT = 500  # nodes a list page shows (the first, by id)
COUNT_LIMIT = 1000  # nodes of a type the index counts, at most
KINDS = ("artifact", "execution", "context")
PLURAL = {"artifacts": "artifact", "executions": "execution", "contexts": "context"}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
.error { margin: .8em 0; background: #fdd; border: 1px solid #c66; padding: .6em; white-space: pre-wrap; }
.props { margin: 0; padding-left: 1em; }
input[name=filter] { width: 40em; }
pre { background: #f6f6f6; padding: .6em; overflow: auto; }
.graph svg { max-width: 100%; height: auto; }
"""


class PageError(Exception):
    """A request the page refuses: HTTP status and a message shown as is (escaped)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# -- reading --------------------------------------------------------------------------
def value_of(value: pb.Value) -> Any:
    """An MLMD Value as a plain JSON value."""
    which = value.WhichOneof("value")
    if which == "struct_value":
        return json_format.MessageToDict(value.struct_value)
    if which == "proto_value":
        return {"@type": value.proto_value.type_url}
    return getattr(value, which) if which else None


def properties_of(properties: Any) -> dict:
    return {name: value_of(properties[name]) for name in sorted(properties)}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _state(kind: str, node: Any) -> str:
    if kind == "artifact" and node.HasField("state"):
        return pb.Artifact.State.Name(node.state)
    if kind == "execution" and node.HasField("last_known_state"):
        return pb.Execution.State.Name(node.last_known_state)
    return ""


def _type_names(store: Any, kind: str) -> dict:
    return {t.id: t.name for t in getattr(store, f"get_{kind}_types")()}


def node_dict(kind: str, node: Any, type_names: dict) -> dict:
    """What a page shows of a node, as plain data (the JSON twins return it)."""
    out = {"kind": kind, "id": node.id, "type": type_names.get(node.type_id) or node.type or f"type {node.type_id}",
           "type_id": node.type_id, "name": node.name, "state": _state(kind, node),
           "create_time_since_epoch": node.create_time_since_epoch,
           "last_update_time_since_epoch": node.last_update_time_since_epoch,
           "properties": properties_of(node.properties), "custom_properties": properties_of(node.custom_properties)}
    if kind == "artifact":
        out["uri"] = node.uri
    if node.external_id:
        out["external_id"] = node.external_id
    return out


def _filter_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def list_nodes(store: Any, kind: str, type_name: str = "", filter_query: str = "") -> list:
    """A kind's nodes of ``type_name`` (all types when empty) matching ``filter_query``
    (MLMD's filter language; its InvalidArgumentError as the store raises it), by id."""
    clauses = []
    if type_name:
        clauses.append(f"type = {_filter_literal(type_name)}")
    if filter_query.strip():
        clauses.append(f"({filter_query})" if type_name else filter_query)
    options = ListOptions(limit=LIST_LIMIT, order_by=OrderByField.ID, is_asc=True,
                          filter_query=" AND ".join(clauses) or None)
    nodes = getattr(store, f"get_{kind}s")(list_options=options)
    names = _type_names(store, kind)
    return [node_dict(kind, n, names) for n in nodes]


def type_counts(store: Any) -> dict:
    """Each kind's types with how many nodes each has: counted up to COUNT_LIMIT (MLMD has
    no count call, and the index should not read a big store whole), then ``count_capped``."""
    out = {}
    for kind in KINDS:
        rows = []
        for t in getattr(store, f"get_{kind}_types")():
            options = ListOptions(limit=COUNT_LIMIT + 1, order_by=OrderByField.ID,
                                  filter_query=f"type_id = {int(t.id)}")
            count = len(getattr(store, f"get_{kind}s")(list_options=options))
            rows.append({"id": t.id, "name": t.name, "version": t.version, "count": min(count, COUNT_LIMIT),
                         "count_capped": count > COUNT_LIMIT,
                         "properties": {p: pb.PropertyType.Name(v) for p, v in sorted(t.properties.items())}})
        out[kind] = rows
    return out


def _get_node(store: Any, kind: str, node_id: int) -> Any:
    found = getattr(store, f"get_{kind}s_by_id")([node_id])
    if not found:
        raise PageError(HTTPStatus.NOT_FOUND, f"No {kind} with id {node_id}")
    return found[0]


def _event_dict(event: pb.Event) -> dict:
    return {"artifact_id": event.artifact_id, "execution_id": event.execution_id,
            "type": pb.Event.Type.Name(event.type), "milliseconds_since_epoch": event.milliseconds_since_epoch,
            "path": [s.key if s.HasField("key") else s.index for s in event.path.steps]}


def _by_id(nodes: Iterable[Any]) -> list:
    return sorted(nodes, key=lambda n: n.id)


def node_detail(store: Any, kind: str, node_id: int) -> dict:
    """A node with its events and contexts (a context: its members, parents, children),
    each list by id (the store's own orders differ by call)."""
    node = node_dict(kind, _get_node(store, kind, node_id), _type_names(store, kind))
    context_names = _type_names(store, "context")
    if kind == "artifact":
        node["events"] = [_event_dict(e) for e in store.get_events_by_artifact_ids([node_id])]
        node["contexts"] = [node_dict("context", c, context_names)
                            for c in _by_id(store.get_contexts_by_artifact(node_id))]
    elif kind == "execution":
        node["events"] = [_event_dict(e) for e in store.get_events_by_execution_ids([node_id])]
        node["contexts"] = [node_dict("context", c, context_names)
                            for c in _by_id(store.get_contexts_by_execution(node_id))]
    else:
        node["artifacts"] = [node_dict("artifact", a, _type_names(store, "artifact"))
                             for a in _by_id(store.get_artifacts_by_context(node_id))]
        node["executions"] = [node_dict("execution", e, _type_names(store, "execution"))
                              for e in _by_id(store.get_executions_by_context(node_id))]
        node["parent_contexts"] = [node_dict("context", c, context_names)
                                   for c in _by_id(store.get_parent_contexts_by_context(node_id))]
        node["child_contexts"] = [node_dict("context", c, context_names)
                                  for c in _by_id(store.get_children_contexts_by_context(node_id))]
    return node


def svg_of(graph: Any) -> Optional[str]:
    """The graph drawn as SVG by Graphviz's dot (write_picture), or None without dot."""
    if shutil.which("dot") is None:
        return None
    with tempfile.TemporaryDirectory(prefix="mlmd-log-ui-") as tmp:
        path = os.path.join(tmp, "lineage.svg")
        write_picture(graph, path)
        with open(path, encoding="utf-8") as f:
            text = f.read()
    start = text.find("<svg")  # drop the XML declaration and DOCTYPE: the SVG goes inline
    return text[start:] if start >= 0 else text


# -- HTML -----------------------------------------------------------------------------
def _when(ms: int) -> str:
    """Milliseconds since the epoch, with the UTC time they name."""
    import datetime

    if not ms:
        return ""
    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return f"{ms} ({moment.isoformat(timespec='milliseconds').replace('+00:00', 'Z')})"


def esc(value: Any) -> str:
    return html.escape(_text(value), quote=True)


def _page(title: str, body: str) -> str:
    nav = " ".join(f'<a href="/{k}s">{k.capitalize()}s</a>' for k in KINDS)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{esc(title)} - mlmd-log</title>"
            f"<style>{_STYLE}</style></head><body><nav><a href=\"/\">Types</a> {nav}</nav>"
            f"<h1>{esc(title)}</h1>\n{body}\n</body></html>\n")


def _node_link(kind: str, node_id: int, text: Optional[str] = None) -> str:
    return f'<a class="node-link" href="/node/{kind}/{int(node_id)}">{esc(text or f"{kind} {node_id}")}</a>'


def _props_html(props: dict) -> str:
    if not props:
        return ""
    items = "".join(f"<li><b>{esc(k)}</b> = {esc(v)}</li>" for k, v in props.items())
    return f'<ul class="props">{items}</ul>'


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]], css_id: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>\n" for row in rows)
    ident = f' id="{esc(css_id)}"' if css_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>"


def _nodes_table(kind: str, nodes: list, css_id: str = "nodes") -> str:
    headers = ["id", "type", "name"] + (["uri"] if kind == "artifact" else []) + \
        ([] if kind == "context" else ["state"]) + ["properties", "custom properties"]
    rows = []
    for n in nodes:
        row = [_node_link(kind, n["id"], str(n["id"])), esc(n["type"]), esc(n["name"])]
        if kind == "artifact":
            row.append(esc(n["uri"]))
        if kind != "context":
            row.append(esc(n["state"]))
        row += [_props_html(n["properties"]), _props_html(n["custom_properties"])]
        rows.append(row)
    return _table(headers, rows, css_id)


def html_index(counts: dict) -> str:
    parts = []
    for kind in KINDS:
        rows = [[f'<a href="/{kind}s?{urlencode({"type": t["name"]})}">{esc(t["name"])}</a>',
                 esc(t["version"]), esc(f'{t["count"]}+' if t["count_capped"] else t["count"]),
                 esc(", ".join(f"{p}: {v}" for p, v in t["properties"].items()))] for t in counts[kind]]
        parts.append(f'<h2><a href="/{kind}s">{kind.capitalize()} types</a></h2>' +
                     _table(["type", "version", "count", "properties"], rows, f"{kind}-types"))
    return _page("Types", "\n".join(parts))


def html_list(kind: str, type_name: str, filter_query: str, nodes: Optional[list], error: str = "") -> str:
    form = (f'<form method="get" action="/{kind}s">'
            f'<label>type <input name="type" value="{esc(type_name)}" size="16"></label> '
            f'<label>filter <input name="filter" value="{esc(filter_query)}" '
            f'placeholder="MLMD filter, e.g. name = \'model\' or properties.version.int_value &gt; 1"></label> '
            f'<button type="submit">List</button></form>')
    if error:
        body = f'<div class="error" id="error">{esc(error)}</div>'
    else:
        more = f" (the first {LIST_LIMIT})" if len(nodes) >= LIST_LIMIT else ""
        body = f'<p id="count">{len(nodes)} {kind}s{more}</p>' + _nodes_table(kind, nodes)
    title = f"{kind.capitalize()}s" + (f" of type {type_name}" if type_name else "")
    return _page(title, form + body)


def html_node(kind: str, node: dict) -> str:
    fields = [("id", node["id"]), ("type", f'{node["type"]} (id {node["type_id"]})'), ("name", node["name"])]
    if kind == "artifact":
        fields.append(("uri", node["uri"]))
    if node.get("external_id"):
        fields.append(("external_id", node["external_id"]))
    if kind != "context":
        fields.append(("state", node["state"]))
    fields += [("create_time_since_epoch", _when(node["create_time_since_epoch"])),
               ("last_update_time_since_epoch", _when(node["last_update_time_since_epoch"]))]
    parts = [_table(["field", "value"], [[esc(k), esc(v)] for k, v in fields], "fields"),
             f'<p><a id="lineage-link" href="/lineage/{kind}/{node["id"]}">Lineage graph</a></p>',
             "<h2>Properties</h2>" + (_props_html(node["properties"]) or "<p>none</p>"),
             "<h2>Custom properties</h2>" + (_props_html(node["custom_properties"]) or "<p>none</p>")]
    if "events" in node:
        rows = [[_node_link("artifact", e["artifact_id"]), _node_link("execution", e["execution_id"]),
                 esc(e["type"]), esc(e["path"]), esc(_when(e["milliseconds_since_epoch"]))] for e in node["events"]]
        parts.append("<h2>Events</h2>" + _table(["artifact", "execution", "type", "path", "time (ms since epoch)"],
                                                rows, "events"))
        parts.append("<h2>Contexts</h2>" + _nodes_table("context", node["contexts"], "contexts"))
    else:
        for key, member in (("artifacts", "artifact"), ("executions", "execution"),
                            ("parent_contexts", "context"), ("child_contexts", "context")):
            parts.append(f"<h2>{esc(key.replace('_', ' ').capitalize())}</h2>" +
                         _nodes_table(member, node[key], key.replace("_", "-")))
    return _page(f'{kind.capitalize()} {node["id"]}: {node["name"] or node["type"]}', "\n".join(parts))


def html_lineage(kind: str, node_id: int, graph: Any, svg: Optional[str], direction: str, hops: str) -> str:
    controls = ""
    if kind != "context":
        options = "".join(f'<option{" selected" if d == direction else ""}>{esc(d)}</option>' for d in DIRECTIONS)
        controls = (f'<form method="get">direction <select name="direction">{options}</select> '
                    f'hops <input name="hops" value="{esc(hops)}" size="4"> <button type="submit">Draw</button></form>')
    picture = (f'<div class="graph" id="graph">{svg}</div>' if svg is not None else
               '<p>Graphviz\'s <code>dot</code> is not installed here (Debian: apt-get install graphviz); '
               'the graph as Mermaid:</p>' f'<pre id="mermaid">{esc(to_mermaid(graph))}</pre>')
    rows = [[_node_link(n.kind, n.id, n.key), esc(n.type), esc(n.name), esc(n.uri or n.state)] for n in graph.nodes]
    rows += [[_node_link("context", g.id, g.key), esc(g.type), esc(g.name), esc(" ".join(g.members))]
             for g in graph.contexts]
    body = (f'<p>{_node_link(kind, node_id, f"back to {kind} {node_id}")} · '
            f'<a href="/api/lineage/{kind}/{node_id}">JSON</a> · {len(graph.nodes)} nodes, {len(graph.edges)} '
            f'events, {len(graph.contexts)} contexts</p>{controls}{picture}'
            + _table(["node", "type", "name", "uri / state / members"], rows, "graph-nodes"))
    return _page(f"Lineage of {kind} {node_id}", body)


def html_error(status: int, message: str) -> str:
    return _page(f"{status} {HTTPStatus(status).phrase}", f'<div class="error" id="error">{esc(message)}</div>')


# -- serving --------------------------------------------------------------------------
def _int(text: str, what: str) -> int:
    if not text.isdigit():
        raise PageError(HTTPStatus.BAD_REQUEST, f"{what} must be a number, not {text!r}")
    return int(text)


def _status_of(exc: errors.StatusError) -> int:
    if isinstance(exc, errors.NotFoundError):
        return HTTPStatus.NOT_FOUND
    if isinstance(exc, (errors.InvalidArgumentError, errors.OutOfRangeError, errors.FailedPreconditionError)):
        return HTTPStatus.BAD_REQUEST
    return HTTPStatus.INTERNAL_SERVER_ERROR


class UIServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, store: Any, port: int, host: str = HOST):
        self.store = store
        self.lock = threading.Lock()  # one store call at a time: requests come on threads
        super().__init__((host, port), _Handler)
        bound = self.server_address[1]
        self.allowed_hosts = {f"{host}:{bound}", f"localhost:{bound}"}
        if bound == 80:
            self.allowed_hosts |= {host, "localhost"}

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


class _Handler(BaseHTTPRequestHandler):
    server: UIServer
    server_version = "mlmd-log-ui"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # quiet: a page view is not news

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        host = self.headers.get("Host")
        if host is not None and host.lower() not in self.server.allowed_hosts:
            # another site's page whose name was pointed at 127.0.0.1 (DNS rebinding) reads nothing
            self._send(HTTPStatus.FORBIDDEN, "text/plain", f"Host {host!r} is not this server's\n")
            return
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        segments = [s for s in parts.path.split("/") if s]
        api = bool(segments) and segments[0] == "api"
        if api:
            segments = segments[1:]
        try:
            with self.server.lock:
                status, data, page = self._route(segments, query)
        except PageError as exc:
            status, data, page = exc.status, {"error": exc.message}, html_error(exc.status, exc.message)
        except errors.StatusError as exc:
            status = _status_of(exc)
            message = f"{type(exc).__name__}: {exc.message}"
            data, page = {"error": message}, html_error(status, message)
        except Exception as exc:  # noqa: BLE001 - a bug: one line on the page, the traceback on stderr
            traceback.print_exc(file=sys.stderr)
            status = HTTPStatus.INTERNAL_SERVER_ERROR
            message = f"internal error: {type(exc).__name__}"
            data, page = {"error": message}, html_error(status, message)
        if api:
            self._send(status, "application/json", json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        else:
            self._send(status, "text/html; charset=utf-8", page)

    def _send(self, status: int, content_type: str, text: str) -> None:
        body = text.encode("utf-8")
        self.send_response(status)
        charset = "" if "charset" in content_type else "; charset=utf-8"
        self.send_header("Content-Type", content_type + charset)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        # no script runs on these pages, whatever a value holds: escaping's second line
        self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; "
                                                    "form-action 'self'; frame-ancestors 'none'")
        self.end_headers()
        self.wfile.write(body)

    def _route(self, segments: list, query: dict) -> tuple:
        """(status, JSON data, HTML page) of a path; raises PageError or the store's error."""
        store = self.server.store
        if not segments or segments == ["types"]:
            counts = type_counts(store)
            return HTTPStatus.OK, counts, html_index(counts)
        if len(segments) == 1 and segments[0] in PLURAL:
            kind = PLURAL[segments[0]]
            type_name, filter_query = query.get("type", "").strip(), query.get("filter", "")
            try:
                nodes = list_nodes(store, kind, type_name, filter_query)
            except errors.InvalidArgumentError as exc:  # a bad filter: MLMD's message, on the page
                message = f"InvalidArgumentError: {exc.message}"
                return HTTPStatus.BAD_REQUEST, {"error": message}, html_list(kind, type_name, filter_query, None,
                                                                             message)
            return HTTPStatus.OK, nodes, html_list(kind, type_name, filter_query, nodes)
        if len(segments) == 3 and segments[0] in ("node", "lineage") and segments[1] in KINDS:
            kind, node_id = segments[1], _int(segments[2], "the id")
            if segments[0] == "node":
                node = node_detail(store, kind, node_id)
                return HTTPStatus.OK, node, html_node(kind, node)
            direction = query.get("direction", "") or None
            hops_text = query.get("hops", "").strip()
            hops = _int(hops_text, "hops") if hops_text else None
            if kind == "context":
                direction = hops = None
            graph = lineage_graph(store, kind, node_id, direction, hops)
            data = to_dict(graph)
            return HTTPStatus.OK, data, html_lineage(kind, node_id, graph, svg_of(graph), direction or "both",
                                                     hops_text)
        raise PageError(HTTPStatus.NOT_FOUND, f"no page {'/' + '/'.join(quote(s) for s in segments)}")


def make_server(store: Any, port: int = DEFAULT_PORT, host: str = HOST) -> UIServer:
    """The server, bound (port 0: a free one; ``server.url`` says which), not yet serving.
    A port in use is one OSError that says so."""
    try:
        return UIServer(store, port, host)
    except OSError as exc:
        if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise OSError(exc.errno, f"port {port} on {host} is in use (--port 0 picks a free one)") from None
        raise


def serve(store: Any, port: int = DEFAULT_PORT, announce: Callable[[str], None] = print,
          stop: Optional[threading.Event] = None) -> None:
    """Serves until ``stop`` is set; from the main thread SIGTERM and SIGINT (Ctrl-C) set it.
    Then stops taking requests and closes the socket; the store is the caller's to close."""
    from mlmd_log.process import stop_on_signals

    server = make_server(store, port)
    stop = stop or threading.Event()
    previous = stop_on_signals(stop) if threading.current_thread() is threading.main_thread() else {}
    worker = threading.Thread(target=server.serve_forever, name="mlmd-log-ui", daemon=True)
    worker.start()
    try:
        announce(f"mlmd-log ui: serving {server.url} (read-only; Ctrl-C stops)")
        while not stop.wait(1.0):
            pass
    finally:
        server.shutdown()
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
