"""Server hardening, through real gRPC calls.

1. Deadlines: the server's own limit on one RPC, and the caller's; a put answered at its
   deadline says whether its record is durable (then: do not retry) or was never written.
2. The large-request budget: large requests are served within a byte budget (the rest
   wait, then RESOURCE_EXHAUSTED, or are refused at once when the queue is full); small
   ones pass meanwhile. The largest request matches what the log takes.
3. Read-only mode: puts are PERMISSION_DENIED, reads are served (also via the CLI flag).
4. Access control: bearer tokens from a file and client certificates (the official
   client's ssl_config) mapped to read or write; health checks stay open.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

import mlmd_log
from mlmd_log import errors
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.proto import metadata_store_service_pb2 as svc
from mlmd_log.proto import metadata_store_service_pb2_grpc as rpc_pb
from mlmd_log.server import MetadataStoreServer, ServeConfig
from mlmd_log.server.access import AccessPolicy, parse_tokens
from mlmd_log.server.config import RequestLimits
from mlmd_log.client import EmbeddedTransport, StoreConfig
from pki import make_pki

ROOT = Path(__file__).resolve().parent.parent
KIB = 1024


def memory_store() -> StoreConfig:
    return StoreConfig(None, ":memory:", "none")


class Gated:
    """An embedded store whose calls can be slowed or held, to put the server in the
    states a deadline or the budget is about (it keeps the asynchronous-put protocol, so
    the server still puts in steps)."""

    def __init__(self, read_delay_s: float = 0.0, outcome_delay_s: float = 0.0, hold_big_puts: bool = False):
        self.inner = EmbeddedTransport(memory_store())
        self.read_delay_s, self.outcome_delay_s = read_delay_s, outcome_delay_s
        self.released = threading.Event()
        if not hold_big_puts:
            self.released.set()
        self.where = self.inner.where
        self.response = self.inner.response
        self.lock = threading.Lock()
        self.running_big = 0
        self.most_big_at_once = 0
        self.big_appends = 0

    def call(self, rpc: str, request: Any) -> Any:
        if rpc == "GetArtifactTypes":
            time.sleep(self.read_delay_s)
        return self.inner.call(rpc, request)

    def append(self, payloads: list[bytes]) -> list[int]:
        big = sum(map(len, payloads)) > 16 * KIB
        if big:
            with self.lock:
                self.running_big += 1
                self.big_appends += 1
                self.most_big_at_once = max(self.most_big_at_once, self.running_big)
            self.released.wait(30)
            time.sleep(0.05)  # (so that overlapping big puts would be seen overlapping)
            with self.lock:
                self.running_big -= 1
        return self.inner.append(payloads)

    def wait_for_outcomes(self, offsets: list[int], usual: Any = None) -> list[Any]:
        time.sleep(self.outcome_delay_s)
        return self.inner.wait_for_outcomes(offsets, usual)

    def close(self) -> None:
        self.released.set()
        self.inner.close()


def serve(transport: Any = None, **settings: Any) -> MetadataStoreServer:
    return MetadataStoreServer(ServeConfig(memory_store(), port=0, **settings), transport=transport).start()


def client(server: MetadataStoreServer, **fields: Any) -> mlmd_log.MetadataStore:
    return mlmd_log.MetadataStore(pb.MetadataStoreClientConfig(host="127.0.0.1", port=server.port, **fields))


def artifact(type_id: int, uri: str, size: int = 0) -> pb.Artifact:
    a = pb.Artifact(type_id=type_id, uri=uri)
    if size:
        a.custom_properties["blob"].string_value = "b" * size
    return a


# -- 1. deadlines --------------------------------------------------------------
def test_read_past_the_server_deadline_is_deadline_exceeded():
    server = serve(Gated(read_delay_s=1.5), limits=RequestLimits(rpc_deadline_seconds=0.3))
    try:
        store = client(server)
        started = time.monotonic()
        with pytest.raises(errors.DeadlineExceededError,
                           match=r"GetArtifactTypes did not finish within the server's deadline of 0.3s"):
            store.get_artifact_types()
        assert time.monotonic() - started < 1.2  # answered at the deadline, not when the read ended
        assert store.put_artifact_type(pb.ArtifactType(name="After")) > 0  # and still serving
    finally:
        server.stop(grace=5)


def test_put_durable_at_its_deadline_says_so_and_is_applied_once():
    transport = Gated(outcome_delay_s=1.5)
    server = serve(transport, limits=RequestLimits(rpc_deadline_seconds=0.5))
    try:
        store = client(server)
        type_id = transport.inner.call("PutArtifactType", svc.PutArtifactTypeRequest(
            artifact_type=pb.ArtifactType(name="T"))).type_id
        with pytest.raises(errors.DeadlineExceededError) as raised:
            store.put_artifacts([artifact(type_id, "/durable")])
        message = raised.value.message
        assert re.search(r"durable in the log at offset \d+ and will be applied", message), message
        assert "Do not retry" in message
        time.sleep(1.5)  # (the put finishes in the background)
        assert [a.uri for a in store.get_artifacts()] == ["/durable"]
    finally:
        server.stop(grace=5)


def test_put_queued_past_its_deadline_was_never_written():
    transport = Gated(read_delay_s=1.5)
    server = serve(transport, workers=1, limits=RequestLimits(rpc_deadline_seconds=0.4))
    try:
        store = client(server)
        type_id = store.put_artifact_type(pb.ArtifactType(name="T"))
        with pytest.raises(errors.DeadlineExceededError):
            store.get_artifact_types()  # its read keeps the one call thread for 1.5 s
        with pytest.raises(errors.DeadlineExceededError, match="did not start .* Nothing was written; retrying is safe"):
            store.put_artifacts([artifact(type_id, "/never")])
        time.sleep(1.5)
        assert store.get_artifacts() == []
    finally:
        server.stop(grace=5)


def test_caller_deadline_shorter_than_the_server_one_wins():
    server = serve(Gated(read_delay_s=2.0), limits=RequestLimits(rpc_deadline_seconds=60))
    try:
        started = time.monotonic()
        with pytest.raises(errors.DeadlineExceededError):
            client(server, client_timeout_sec=0.3).get_artifact_types()
        assert time.monotonic() - started < 1.5
    finally:
        server.stop(grace=5)


# -- 2. the large-request budget -------------------------------------------------
SMALL_BUDGET = RequestLimits(large_request_bytes=32 * KIB, large_request_budget_bytes=150 * KIB,
                             large_request_wait_seconds=20, large_request_queue_bytes=1024 * KIB)


def put_in_threads(store: mlmd_log.MetadataStore, type_id: int, sizes: list[int]) -> list[str]:
    """Puts one artifact of each size at once; each one's outcome, in order."""
    outcomes = [""] * len(sizes)

    def put(i: int) -> None:
        try:
            store.put_artifacts([artifact(type_id, f"/{i}", sizes[i])])
            outcomes[i] = "ok"
        except errors.StatusError as exc:
            outcomes[i] = f"{type(exc).__name__}: {exc.message}"

    threads = [threading.Thread(target=put, args=(i,)) for i in range(len(sizes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return outcomes


def wait_until(condition: Any, timeout_s: float = 10) -> None:
    """Polls ``condition`` until it holds (the test's next step then checks what follows)."""
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_large_requests_beyond_the_budget_are_served_one_after_another():
    transport = Gated()
    server = serve(transport, limits=SMALL_BUDGET)
    try:
        store = client(server)
        type_id = store.put_artifact_type(pb.ArtifactType(name="T"))
        assert put_in_threads(store, type_id, [100 * KIB] * 4) == ["ok"] * 4
        assert transport.most_big_at_once == 1  # 100 + 100 KiB never fit a 150 KiB budget
        assert len(store.get_artifacts()) == 4
    finally:
        server.stop(grace=5)


def test_large_request_waits_a_bounded_time_while_small_ones_pass():
    transport = Gated(hold_big_puts=True)
    limits = RequestLimits(large_request_bytes=32 * KIB, large_request_budget_bytes=150 * KIB,
                           large_request_wait_seconds=0.5, large_request_queue_bytes=1024 * KIB)
    server = serve(transport, limits=limits)
    try:
        store = client(server)
        type_id = store.put_artifact_type(pb.ArtifactType(name="T"))
        holder = threading.Thread(target=put_in_threads, args=(store, type_id, [100 * KIB]))
        holder.start()  # admitted, then held in the store
        wait_until(lambda: transport.running_big > 0)
        started = time.monotonic()
        [refused] = put_in_threads(store, type_id, [100 * KIB])
        assert refused.startswith("ResourceExhaustedError: PutArtifacts (0.1 MiB) waited for the server's "
                                  "large-request budget for 0.5s"), refused
        assert "nothing was written" in refused
        assert 0.4 < time.monotonic() - started < 5
        assert put_in_threads(store, type_id, [1 * KIB]) == ["ok"]  # small: no wait
        assert store.get_artifact_types()[0].name == "T"
        transport.released.set()
        holder.join(30)
        assert sorted(a.uri for a in store.get_artifacts()) == ["/0", "/0"]  # the held one and the small one
    finally:
        server.stop(grace=5)


def test_large_request_is_refused_at_once_when_the_queue_is_full():
    transport = Gated(hold_big_puts=True)
    limits = RequestLimits(large_request_bytes=32 * KIB, large_request_budget_bytes=150 * KIB,
                           large_request_wait_seconds=30, large_request_queue_bytes=150 * KIB)
    server = serve(transport, limits=limits)
    try:
        store = client(server)
        type_id = store.put_artifact_type(pb.ArtifactType(name="T"))
        first_two = threading.Thread(target=lambda: put_in_threads(store, type_id, [100 * KIB, 100 * KIB]))
        first_two.start()  # one admitted and held, one waiting (100 of 150 KiB queued)
        wait_until(lambda: not server.servicer.budget.describe().endswith("waiting in 0"))
        started = time.monotonic()
        [refused] = put_in_threads(store, type_id, [100 * KIB])
        assert time.monotonic() - started < 2
        assert refused.startswith("ResourceExhaustedError: A 0.1 MiB request cannot wait"), refused
        assert "the queue is full" in refused
        transport.released.set()
        first_two.join(30)
        assert len(store.get_artifacts()) == 2  # the held one and the one that waited
    finally:
        server.stop(grace=5)


def test_largest_request_is_what_the_log_takes_per_record():
    class SmallRecords(Gated):
        class log:
            max_record_bytes = 200 * KIB

    server = serve(SmallRecords())
    try:
        assert server.max_request_bytes == 200 * KIB - 64 * KIB
        store = client(server)
        type_id = store.put_artifact_type(pb.ArtifactType(name="T"))
        with pytest.raises(errors.ResourceExhaustedError, match="larger than max"):
            store.put_artifacts([artifact(type_id, "/too-big", 150 * KIB)])
        store.put_artifacts([artifact(type_id, "/fits", 100 * KIB)])
    finally:
        server.stop(grace=5)


def test_unparsable_request_is_invalid_argument():
    server = serve()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            put = channel.unary_unary("/ml_metadata.MetadataStoreService/PutArtifacts")
            with pytest.raises(grpc.RpcError) as raised:
                put(b"\xff\xff\xff", timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "Could not parse proto" in raised.value.details()
    finally:
        server.stop(grace=5)


# -- 3. read-only ----------------------------------------------------------------
def test_read_only_server_refuses_puts_and_serves_reads():
    server = serve(access=AccessPolicy(read_only=True))
    try:
        store = client(server)
        with pytest.raises(errors.PermissionDeniedError, match="PutArtifactType is refused: this server is read-only"):
            store.put_artifact_type(pb.ArtifactType(name="T"))
        with pytest.raises(errors.PermissionDeniedError):
            store.put_artifacts([pb.Artifact(type_id=1)])
        assert store.get_artifact_types() == []
        assert store.get_artifacts() == []
    finally:
        server.stop(grace=5)


def start_cli_server(*args: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "mlmd_log.cli", "serve", "--port", "0", *args],
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    line = proc.stderr.readline()
    match = re.search(r"listening on \S+:(\d+)", line)
    assert match, line + proc.stderr.read()
    return proc, int(match.group(1))


def test_serve_read_only_serves_readers_beside_the_writing_process(tmp_path):
    data_dir = tmp_path / "data"
    writer = mlmd_log.MetadataStore(StoreConfig.from_directory(str(data_dir)))  # (holds the log's lock)
    type_id = writer.put_artifact_type(pb.ArtifactType(name="Kept"))
    writer.put_artifacts([pb.Artifact(type_id=type_id, uri="/kept")])
    time.sleep(0.3)  # (the writer commits its projection every 50 ms)
    proc, port = start_cli_server("--data-dir", str(data_dir), "--read-only")
    try:
        remote = mlmd_log.MetadataStore(pb.MetadataStoreClientConfig(host="127.0.0.1", port=port))
        assert [a.uri for a in remote.get_artifacts()] == ["/kept"]
        with pytest.raises(errors.PermissionDeniedError, match="read-only"):
            remote.put_artifacts([pb.Artifact(type_id=type_id, uri="/refused")])
        writer.put_artifacts([pb.Artifact(type_id=type_id, uri="/later")])
        deadline = time.monotonic() + 5
        while len(remote.get_artifacts()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(a.uri for a in remote.get_artifacts()) == ["/kept", "/later"]
    finally:
        proc.terminate()
        proc.wait(30)
        writer.close()


# -- 4. bearer tokens ----------------------------------------------------------------
WRITE_TOKEN = "w-" + "1" * 30
READ_TOKEN = "r-" + "2" * 30
DIGEST_TOKEN = "d-" + "3" * 30  # listed by its SHA-256 digest only


def tokens_file(tmp_path: Path) -> str:
    path = tmp_path / "tokens"
    path.write_text("# permission token name\n"
                    f"write {WRITE_TOKEN} trainer\n"
                    f"read  {READ_TOKEN}  dashboard\n"
                    f"write sha256:{hashlib.sha256(DIGEST_TOKEN.encode()).hexdigest()} ci\n")
    path.chmod(0o600)
    return str(path)


def status_of(stub_method: Any, request: Any, token: str | None = None) -> str:
    metadata = [("authorization", f"Bearer {token}")] if token is not None else None
    try:
        stub_method(request, metadata=metadata, timeout=10)
        return "OK"
    except grpc.RpcError as exc:
        return exc.code().name


def test_bearer_tokens_grant_read_or_write(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    server = serve(access=AccessPolicy.build(tokens_file=tokens_file(tmp_path)))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = rpc_pb.MetadataStoreServiceStub(channel)
            put = svc.PutArtifactTypeRequest(artifact_type=pb.ArtifactType(name="T"))
            get = svc.GetArtifactTypesRequest()
            assert status_of(stub.PutArtifactType, put) == "UNAUTHENTICATED"
            assert status_of(stub.GetArtifactTypes, get) == "UNAUTHENTICATED"
            assert status_of(stub.GetArtifactTypes, get, "not-a-token-" + "x" * 20) == "UNAUTHENTICATED"
            assert status_of(stub.PutArtifactType, put, READ_TOKEN) == "PERMISSION_DENIED"
            assert status_of(stub.GetArtifactTypes, get, READ_TOKEN) == "OK"
            assert status_of(stub.PutArtifactType, put, WRITE_TOKEN) == "OK"
            assert status_of(stub.PutArtifactType, put, DIGEST_TOKEN) == "OK"
            with pytest.raises(grpc.RpcError) as raised:
                stub.PutArtifactType(put, metadata=[("authorization", f"Bearer {READ_TOKEN}")], timeout=10)
            assert raised.value.details() == "PutArtifactType needs write permission; dashboard has read"
            with pytest.raises(grpc.RpcError) as raised:
                stub.GetArtifactTypes(get, timeout=10)
            assert "authorization: Bearer <token>" in raised.value.details()
            reply = stub.GetArtifactTypes(get, metadata=[("authorization", f"bearer {WRITE_TOKEN}")], timeout=10)
            assert [t.name for t in reply.artifact_types] == ["T"]
    finally:
        server.stop(grace=5)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "dashboard" in logged  # (refusals are logged, by the token's name ...)
    assert not any(token in logged for token in (WRITE_TOKEN, READ_TOKEN, DIGEST_TOKEN))  # (... never by the token)


def test_health_checks_need_no_credentials(tmp_path):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    server = serve(access=AccessPolicy.build(read_only=True, tokens_file=tokens_file(tmp_path)))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="ml_metadata.MetadataStoreService"), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        server.stop(grace=5)


@pytest.mark.parametrize("line, complaint", [
    ("write short", "line 1: a token needs at least 16 characters"),
    ("admin " + "x" * 20, "permission must be read or write"),
    ("write sha256:abc", "line 1: sha256: needs 64 hex digits"),
    ("write", "line 1: expected PERMISSION TOKEN [NAME]"),
])
def test_tokens_file_errors_name_the_line_not_the_secret(line, complaint):
    with pytest.raises(errors.InvalidArgumentError, match=re.escape(complaint)) as raised:
        parse_tokens(line)
    assert "x" * 20 not in raised.value.message and "short" not in raised.value.message


def test_certificate_grants_need_mutual_tls():
    with pytest.raises(errors.InvalidArgumentError, match="client_verify"):
        MetadataStoreServer(ServeConfig(memory_store(), port=0, access=AccessPolicy.build(grant_read=["x"])))


# -- 4. client certificates, with the official client's ssl_config ----------------
MTLS_CLIENT = r'''
import json, sys
import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2 as pb
port, pki = int(sys.argv[1]), json.loads(sys.argv[2])
results = {}
for who in ("writer", "reader", "stranger", "no certificate"):
    config = pb.MetadataStoreClientConfig(host="localhost", port=port, client_timeout_sec=10)
    config.ssl_config.custom_ca = pki["ca"]
    if who != "no certificate":
        config.ssl_config.client_key = pki[who + " key"]
        config.ssl_config.server_cert = pki[who + " cert"]
    out = results[who] = []
    try:
        store = mlmd.MetadataStore(config)
    except Exception as e:
        out.append(type(e).__name__)
        continue
    for step in (lambda: store.put_artifact_type(pb.ArtifactType(name="T")),
                 lambda: [t.name for t in store.get_artifact_types()]):
        try:
            out.append(["ok", step()])
        except Exception as e:
            out.append([type(e).__name__, str(e)[:200]])
print(json.dumps(results))
'''


def test_client_certificates_grant_read_or_write_with_the_official_client(ref_python):
    pki = make_pki({"writer": (), "reader": ("reader.example",), "stranger": ()})
    ssl = pb.MetadataStoreServerConfig.SSLConfig(server_key=pki["server_key"], server_cert=pki["server_cert"],
                                                 custom_ca=pki["ca"], client_verify=True)
    access = AccessPolicy.build(grant_write=["writer"], grant_read=["reader.example"])  # a CN and a SAN
    with MetadataStoreServer(ServeConfig(memory_store(), port=0, ssl=ssl, access=access)).start() as server:
        run = subprocess.run([ref_python, "-c", MTLS_CLIENT, str(server.port), json.dumps(pki)],
                             capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout)
    assert results["writer"] == [["ok", 10], ["ok", ["T"]]]
    put, get = results["reader"]
    assert put[0] == "PermissionDeniedError" and "needs write permission" in put[1], put
    assert get == ["ok", ["T"]]
    put, get = results["stranger"]
    assert put[0] == get[0] == "PermissionDeniedError", results["stranger"]
    assert "client certificate 'stranger' has none" in get[1]
    # Without a certificate the mutual-TLS handshake itself fails.
    assert [step[0] for step in results["no certificate"]] in (["UnavailableError"] * 2, ["UnavailableError"])


def test_serve_warns_of_tokens_readable_by_others_and_sent_in_clear_text(tmp_path):
    path = Path(tokens_file(tmp_path))
    path.chmod(0o644)
    proc, port = start_cli_server("--data-dir", str(tmp_path / "data"), "--tokens-file", str(path))
    try:
        warnings = [proc.stderr.readline(), proc.stderr.readline()]
    finally:
        proc.terminate()
        proc.wait(30)
    assert "holds plain tokens and is readable by others" in warnings[0]
    assert "travel in clear text" in warnings[1]
    assert not any(token in "".join(warnings) for token in (WRITE_TOKEN, READ_TOKEN))


def test_shutdown_sends_away_large_requests_still_waiting_for_the_budget():
    transport = Gated(hold_big_puts=True)
    limits = RequestLimits(large_request_bytes=32 * KIB, large_request_budget_bytes=150 * KIB,
                           large_request_wait_seconds=60, large_request_queue_bytes=1024 * KIB)
    server = serve(transport, limits=limits)
    store = client(server)
    type_id = store.put_artifact_type(pb.ArtifactType(name="T"))
    outcomes: list[list[str]] = []
    puts = threading.Thread(target=lambda: outcomes.append(put_in_threads(store, type_id, [100 * KIB] * 2)))
    puts.start()
    wait_until(lambda: not server.servicer.budget.describe().endswith("waiting in 0"))
    threading.Timer(1.5, transport.released.set).start()  # (the admitted one ends after the grace period)
    started = time.monotonic()
    server.stop(grace=0.5)
    puts.join(30)
    assert time.monotonic() - started < 10
    assert outcomes[0] == ["UnavailableError: Cancelling all calls"] * 2, outcomes  # (cut off by the grace period)
    assert transport.big_appends == 1  # the one still waiting was not run for a caller who is gone


def test_largest_request_of_a_topic_with_an_archive_is_the_topics():
    from mlmd_log.server.grpc_server import max_request_bytes

    class Topic:
        max_record_bytes = 8 * 1024 * KIB

    class Archived:
        live = Topic()

    class Writer:
        log = Archived()

    assert max_request_bytes(64 * 1024 * KIB, Writer()) == 8 * 1024 * KIB - 64 * KIB
    assert max_request_bytes(4 * 1024 * KIB, Writer()) == 4 * 1024 * KIB  # (a smaller --max-message-bytes wins)


def test_projector_forgets_large_read_forms_and_never_serves_a_stale_one(tmp_path):
    """Large read forms are not kept in the projector's memory (a 60 MiB put stayed there
    for the next 100k writes); a node that grows past the bound must not be answered from
    its older, remembered form."""
    from mlmd_log.producer.records import RecordFactory
    from mlmd_log.projections.backend import SqliteBackend
    from mlmd_log.projections.engine import ARTIFACT
    from mlmd_log.projections.memory import FORM_KEPT_BYTES
    from mlmd_log.projections.projector import Projector

    db = SqliteBackend(str(tmp_path / "p.sqlite"))
    db.create_schema()
    projector, records = Projector(db), RecordFactory()

    def apply(rpc: str, request: Any, response_type: Any) -> Any:
        [outcome] = projector.apply_batch([(projector.next_offset, records.make(rpc, request).SerializeToString())])
        assert not outcome.error_code, outcome
        return response_type.FromString(outcome.response)

    type_id = apply("PutArtifactType", svc.PutArtifactTypeRequest(artifact_type=pb.ArtifactType(name="T")),
                    svc.PutArtifactTypeResponse).type_id
    [artifact_id] = apply("PutArtifacts", svc.PutArtifactsRequest(artifacts=[artifact(type_id, "/a")]),
                          svc.PutArtifactsResponse).artifact_ids
    assert projector.engine.load_node(ARTIFACT, artifact_id, read=False).uri == "/a"  # small: remembered
    grown = artifact(type_id, "/a", 2 * FORM_KEPT_BYTES)
    grown.id = artifact_id
    apply("PutArtifacts", svc.PutArtifactsRequest(artifacts=[grown]), svc.PutArtifactsResponse)
    assert projector.engine.load_node(ARTIFACT, artifact_id, read=False) is None  # large: not kept, nor the old one
    stored = projector.engine.load_node(ARTIFACT, artifact_id)  # (read back from its table)
    assert len(stored.custom_properties["blob"].string_value) == 2 * FORM_KEPT_BYTES
    db.close()


def test_our_client_sends_the_token_of_its_environment(tmp_path, monkeypatch):
    server = serve(access=AccessPolicy.build(tokens_file=tokens_file(tmp_path)))
    config = pb.MetadataStoreClientConfig(host="127.0.0.1", port=server.port, client_timeout_sec=10)
    try:
        monkeypatch.delenv("MLMD_LOG_TOKEN", raising=False)
        with pytest.raises(errors.UnauthenticatedError):
            mlmd_log.MetadataStore(config).get_artifact_types()
        monkeypatch.setenv("MLMD_LOG_TOKEN", READ_TOKEN)
        reader = mlmd_log.MetadataStore(config)
        before = [t.name for t in reader.get_artifact_types()]
        with pytest.raises(errors.PermissionDeniedError):
            reader.put_artifact_type(pb.ArtifactType(name="TokenWritten"))
        monkeypatch.setenv("MLMD_LOG_TOKEN", WRITE_TOKEN)
        writer = mlmd_log.MetadataStore(config)
        type_id = writer.put_artifact_type(pb.ArtifactType(name="TokenWritten"))
        assert "TokenWritten" not in before
        assert [t.id for t in writer.get_artifact_types() if t.name == "TokenWritten"] == [type_id]
    finally:
        server.stop(grace=5)
