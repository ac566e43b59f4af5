"""Readiness check for the local Kafka broker: a real Metadata request, stdlib only.

compose/kafka.sh runs this before any virtualenv exists (CI starts the broker before
scripts/test.sh installs kafka-python), so it speaks the wire protocol itself: one
Metadata v4 request (supported by Kafka 1.0 through 4.x) for no topics. The broker is
ready when it answers with at least one live broker and a known controller id, i.e. it
has joined the KRaft quorum, caught up on metadata and accepts client requests.

    python3 ready.py HOST:PORT [TIMEOUT_SECONDS]   -> exit 0 when ready, 1 otherwise
"""
from __future__ import annotations

import socket
import struct
import sys
import time

METADATA_API_KEY = 3
METADATA_VERSION = 4
CLIENT_ID = b"mlmd-log-ready"


def metadata_request(correlation_id: int) -> bytes:
    header = struct.pack(">hhih", METADATA_API_KEY, METADATA_VERSION, correlation_id, len(CLIENT_ID))
    body = struct.pack(">i?", 0, False)  # topics: empty array (none); allow_auto_topic_creation
    payload = header + CLIENT_ID + body
    return struct.pack(">i", len(payload)) + payload


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        data += chunk
    return data


def probe(host: str, port: int, timeout: float = 2.0) -> tuple[int, int]:
    """Send one Metadata request; return (number of live brokers, controller id)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(metadata_request(1))
        (size,) = struct.unpack(">i", recv_exact(sock, 4))
        resp = recv_exact(sock, size)
    pos = 4 + 4  # correlation id, throttle_time_ms
    (n_brokers,) = struct.unpack_from(">i", resp, pos)
    pos += 4
    for _ in range(n_brokers):
        pos += 4  # node id
        (host_len,) = struct.unpack_from(">h", resp, pos)
        pos += 2 + host_len + 4  # host, port
        (rack_len,) = struct.unpack_from(">h", resp, pos)
        pos += 2 + max(rack_len, 0)
    (cluster_len,) = struct.unpack_from(">h", resp, pos)
    pos += 2 + max(cluster_len, 0)
    (controller_id,) = struct.unpack_from(">i", resp, pos)
    return n_brokers, controller_id


def wait_ready(address: str, timeout: float) -> bool:
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout
    while True:
        try:
            brokers, controller = probe(host, int(port))
            if brokers >= 1 and controller >= 0:
                return True
        except (OSError, ConnectionError, struct.error):
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.25)


if __name__ == "__main__":
    sys.exit(0 if wait_ready(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 0) else 1)
