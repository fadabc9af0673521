"""What a client can make the TLS listener hold, over raw TLS sockets to the real `serve` process.

Request heads are bounded in size (1 MiB), in header count (1,000) and in time (here 1 s); open
connections are capped (here 20). Each refusal is a metav1.Status body and a closed connection,
and other clients are served meanwhile. Also: no websocket upgrade, and the internal listener's
POST /replicas refuses counts (replicas, readyReplicas) that are not whole numbers from 0 to 2**31 - 1.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness.adapter_process import AdapterProcess, running_adapter
from tests.harness.ports import free_port

HEAD_TIMEOUT = 1.0
MAX_CONNECTIONS = 20


@pytest.fixture(scope="module")
def internal_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory, internal_port: int) -> Iterator[AdapterProcess]:
    work = tmp_path_factory.mktemp("limits")
    objects = work / "objects"
    objects.mkdir()
    (objects / "so.yaml").write_text(json.dumps({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "so"},
        "spec": {"scaleTargetRef": {"name": "w"}, "triggers": [{"type": "cron", "metadata": {
            "timezone": "UTC", "start": "0 0 1 1 *", "end": "59 23 31 12 *", "desiredReplicas": "2"}}]}}))
    with running_adapter(objects, work / "certs", work / "adapter.log", "--internal-port", str(internal_port),
                         "--request-head-timeout", str(HEAD_TIMEOUT),
                         "--max-connections", str(MAX_CONNECTIONS)) as process:
        yield process


def connect(adapter: AdapterProcess, identity: str | None = None) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", adapter.port), timeout=10)
    return adapter.tls(identity).wrap_socket(raw, server_hostname="localhost")


def read_all(conn: ssl.SSLSocket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (or `timeout`)."""
    conn.settimeout(timeout)
    chunks = []
    try:
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    except (TimeoutError, ConnectionResetError, ssl.SSLError):
        pass
    return b"".join(chunks)


def status_of(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), answer[:300]
    status = json.loads(body)
    assert status["kind"] == "Status" and status["status"] == "Failure"
    return int(head.split()[1]), status


def send_slowly(conn: ssl.SSLSocket, data: bytes, step: float) -> None:
    try:
        for byte in data:
            conn.sendall(bytes([byte]))
            time.sleep(step)
    except OSError:
        pass


def send_chunks(conn: ssl.SSLSocket, data: bytes, size: int = 64 * 1024, pause: float = 0.01) -> None:
    try:
        for start in range(0, len(data), size):
            conn.sendall(data[start:start + size])
            time.sleep(pause)
    except OSError:  # the server closed before the whole head was sent
        pass


@pytest.mark.parametrize("header", [b"x-big: " + b"a" * (2 * 1024 * 1024) + b"\r\n",
                                    b"".join(b"x-h%d: v\r\n" % i for i in range(1001))])
def test_large_heads_are_431_and_others_are_served(adapter: AdapterProcess, header: bytes) -> None:
    conn = connect(adapter)
    sender = threading.Thread(target=send_chunks, args=(conn, b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + header))
    try:
        sender.start()
        with adapter.client(None) as other:
            slowest = 0.0
            while sender.is_alive():
                started = time.monotonic()
                assert other.get("/healthz").status_code == 200
                slowest = max(slowest, time.monotonic() - started)
        assert slowest < 0.5, slowest
        code, status = status_of(read_all(conn))
        assert code == 431 and status["code"] == 431
    finally:
        sender.join()
        conn.close()


@pytest.mark.parametrize("first_bytes, trickled", [
    (b"", b""),  # connects and says nothing
    (b"GET /\r\n", b""),  # an HTTP/0.9 request line
    (b"GET /healthz HTTP/1.1\r\nx-slow: ", b"abcdefghijklmnopqrstuvwxyz"),  # slowloris: a byte every 0.2 s
])
def test_a_head_not_received_in_time_is_408(adapter: AdapterProcess, first_bytes: bytes, trickled: bytes) -> None:
    conn = connect(adapter)
    try:
        conn.sendall(first_bytes)
        trickle = threading.Thread(target=send_slowly, args=(conn, trickled, 0.2), daemon=True)
        trickle.start()
        started = time.monotonic()
        answer = read_all(conn, timeout=HEAD_TIMEOUT + 5)
        assert time.monotonic() - started < HEAD_TIMEOUT + 2
        code, status = status_of(answer)
        assert code == 408 and "not received within 1s" in str(status["message"])
    finally:
        conn.close()


def test_keep_alive_requests_each_get_a_new_head_time(adapter: AdapterProcess) -> None:
    """The head timeout is per request head, not per connection: a slow-but-steady client is served."""
    with adapter.client(None) as client:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
            time.sleep(HEAD_TIMEOUT * 0.7)
        assert client.get("/healthz").status_code == 200


def test_parser_errors_are_400_status(adapter: AdapterProcess) -> None:
    conn = connect(adapter)
    try:
        conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        code, status = status_of(read_all(conn))
        assert code == 400 and status["reason"] == "BadRequest"
    finally:
        conn.close()


def test_connections_past_the_cap_are_503_and_the_cap_frees_up(adapter: AdapterProcess) -> None:
    held = []
    try:
        for _ in range(MAX_CONNECTIONS):
            held.append(connect(adapter))
        extra = connect(adapter)
        code, status = status_of(read_all(extra))
        extra.close()
        assert code == 503 and "too many connections" in str(status["message"])
    finally:
        for conn in held:
            conn.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            with adapter.client(None) as client:
                if client.get("/healthz").status_code == 200:
                    break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the cap did not free up"
        time.sleep(0.1)


def test_websocket_upgrades_are_plain_authenticated_http(adapter: AdapterProcess) -> None:
    handshake = (b"GET /apis/external.metrics.k8s.io/v1beta1 HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\n"
                 b"upgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 b"\r\n")
    for identity, expected in ((None, b" 401 "), ("admin", b" 200 ")):
        conn = connect(adapter, identity)
        try:
            conn.sendall(handshake)
            conn.settimeout(10)
            answer = conn.recv(65536)
            assert answer.startswith(b"HTTP/1.1") and expected in answer.split(b"\r\n")[0], answer[:200]
        finally:
            conn.close()


@pytest.mark.parametrize("body, code", [
    (b'{"items": [{"namespace": "default", "name": "so", "replicas": 3}]}', 204),
    (b'{"complete": true, "items": [{"namespace": "default", "name": "so", "replicas": null, "atZero": true}]}', 204),
    (b'{"items": [{"namespace": "default", "name": "so", "replicas": -1}]}', 400),
    (b'{"items": [{"namespace": "default", "name": "so", "replicas": 1e400}]}', 400),
    (b'{"items": [{"namespace": "default", "name": "so", "replicas": 1e3}]}', 400),
    (b'{"items": [{"namespace": "default", "name": "so", "replicas": 2147483648}]}', 400),
    (b'{"items": [{"namespace": "default", "name": "so", "replicas": ' + b"9" * 5000 + b"}]}", 400),
    (b'{"items": [{"namespace": "default", "name": "so", "replicas": NaN}]}', 400),
    (b'{"items": [{"namespace": "default", "name": "so", "readyReplicas": 4}]}', 204),
    (b'{"items": [{"namespace": "default", "name": "so", "readyReplicas": 2.5}]}', 400),
    (b'{"items": [{"namespace": "default", "name": "so", "readyReplicas": 2147483648}]}', 400),
    (b'{"items": "all"}', 400),
    (b"not json", 400),
])
def test_replica_counts_are_checked(adapter: AdapterProcess, internal_port: int, body: bytes, code: int) -> None:
    response = httpx.post(f"http://127.0.0.1:{internal_port}/replicas", content=body, timeout=10)
    assert response.status_code == code, response.text
    if code == 400:
        assert "Traceback" not in response.text and "error" in response.json()


def test_refusals_leave_no_traceback(adapter: AdapterProcess) -> None:
    assert "Traceback" not in Path(adapter.log_path).read_text()
