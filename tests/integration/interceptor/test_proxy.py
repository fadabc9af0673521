"""The interceptor as a proxy: real clients (httpx, curl, websockets, raw sockets) through it to a
real upstream (aiohttp), over HTTP/1.1, h2c and h2 over TLS.

Each test asserts what the client sees and, where it matters, what the interceptor counted
(its /metrics) or how much memory it used (its RSS), so buffering or leaks show up as failures.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import websockets

from tests.harness.http_upstream import UpstreamProcess
from tests.harness.interceptor_process import InterceptorProcess, wait_for

pytestmark = pytest.mark.interceptor


def curl(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--max-time", str(timeout), *args], capture_output=True, text=True,
                          timeout=timeout + 10)


def test_http11_request_and_response_are_forwarded(interceptor: InterceptorProcess) -> None:
    response = httpx.get(f"{interceptor.url}/echo/a/b?x=1", headers={"x-custom": "kept", "connection": "keep-alive, "
                                                                     "x-hop", "x-hop": "dropped"})
    assert response.status_code == 200 and response.headers["x-upstream"] == "upstream"
    echoed = response.json()
    assert (echoed["method"], echoed["path"], echoed["query"], echoed["version"]) == ("GET", "/echo/a/b", "x=1", "1.1")
    headers = echoed["headers"]
    assert headers["x-custom"] == "kept" and "x-hop" not in headers  # named in Connection: hop-by-hop
    assert headers["host"] == f"127.0.0.1:{interceptor.port}"
    assert headers["x-forwarded-for"] == "127.0.0.1" and headers["x-forwarded-proto"] == "http"


def test_upstream_statuses_and_errors_reach_the_client_unchanged(interceptor: InterceptorProcess) -> None:
    for code in (201, 404, 418, 500, 503):
        response = httpx.get(f"{interceptor.url}/status/{code}")
        assert (response.status_code, response.text, response.headers["x-upstream"]) == (code, f"status {code}",
                                                                                          "upstream")


def test_host_and_path_prefix_routing(interceptor: InterceptorProcess) -> None:
    before = interceptor.gauge("requests_total", "default/api")
    assert httpx.get(f"{interceptor.url}/echo/v1", headers={"host": "api.example.com"}).status_code == 200  # /echo: web
    response = httpx.get(f"{interceptor.url}/v1/x", headers={"host": "API.example.com:8080"})
    assert response.status_code == 404 and "aiohttp" in response.headers["server"]  # routed; the upstream has no /v1
    assert interceptor.gauge("requests_total", "default/api") == before + 1


def test_curl_http2_prior_knowledge_upgrade_and_tls(interceptor: InterceptorProcess,
                                                    tls_files: tuple[Path, Path, Path]) -> None:
    ca = str(tls_files[0])
    for args in (["--http2-prior-knowledge", f"{interceptor.url}/echo/h2c"],
                 ["--http2", f"{interceptor.url}/echo/upgrade"],
                 ["--http2", "--cacert", ca, f"{interceptor.tls_url}/echo/tls"],
                 ["--http1.1", "--cacert", ca, f"{interceptor.tls_url}/echo/tls1"]):
        result = curl("-w", "\n%{http_version} %{http_code}", *args)
        body, _, status = result.stdout.rpartition("\n")
        assert result.returncode == 0, result.stderr
        expected = "1.1" if "--http1.1" in args else "2"
        assert status == f"{expected} 200", (args, status)
        assert json.loads(body)["path"] == "/" + args[-1].split("/", 3)[3]
        assert json.loads(body)["headers"]["x-forwarded-proto"] == ("https" if "https" in args[-1] else "http")


async def test_httpx_http2_many_streams_on_one_connection(interceptor: InterceptorProcess) -> None:
    async with httpx.AsyncClient(http1=False, http2=True, base_url=interceptor.url) as client:
        responses = await asyncio.gather(*(client.get(f"/echo/{i}") for i in range(50)))
    assert {r.http_version for r in responses} == {"HTTP/2"}
    assert sorted(r.json()["path"] for r in responses) == sorted(f"/echo/{i}" for i in range(50))


def test_server_sent_events_arrive_as_they_are_sent(interceptor: InterceptorProcess) -> None:
    gap = 0.3
    seen: list[tuple[float, float]] = []  # (received, sent)
    with httpx.stream("GET", f"{interceptor.url}/sse?events=4&gap={gap}", timeout=10) as response:
        assert response.headers["content-type"] == "text/event-stream"
        for line in response.iter_lines():
            if line.startswith("data: "):
                seen.append((time.time(), float(line.split(" at ")[1])))
    assert len(seen) == 4
    assert all(received - sent < gap / 2 for received, sent in seen)  # not held back until the end
    assert seen[-1][0] - seen[0][0] > 2.5 * gap


async def test_http2_streams_server_sent_events(interceptor: InterceptorProcess) -> None:
    async with httpx.AsyncClient(http1=False, http2=True, base_url=interceptor.url, timeout=10) as client, \
            client.stream("GET", "/sse?events=3&gap=0.3") as response:
        lags = [time.time() - float(line.split(" at ")[1]) async for line in response.aiter_lines()
                if line.startswith("data: ")]
    assert len(lags) == 3 and max(lags) < 0.15


def test_chunked_response_is_relayed(interceptor: InterceptorProcess) -> None:
    response = httpx.get(f"{interceptor.url}/chunked?chunks=20")
    assert response.headers.get("transfer-encoding") == "chunked"
    assert response.text == "".join(f"chunk {i}\n" for i in range(20))


def _blocks(total: int, size: int = 1 << 20) -> Iterator[bytes]:
    block = bytes(range(256)) * (size // 256)
    for _ in range(total // size):
        yield block


async def _ablocks(total: int) -> AsyncIterator[bytes]:
    for block in _blocks(total):
        yield block


def test_large_uploads_stream_without_buffering(interceptor: InterceptorProcess) -> None:
    size = 256 << 20
    digest = hashlib.sha256()
    for block in _blocks(size):
        digest.update(block)
    before = interceptor.rss_bytes()
    chunked = httpx.post(f"{interceptor.url}/upload", content=_blocks(size), timeout=120)  # no length: chunked
    sized = httpx.post(f"{interceptor.url}/upload", content=_blocks(size), headers={"content-length": str(size)},
                       timeout=120)
    for response in (chunked, sized):
        assert response.json() == {"size": size, "sha256": digest.hexdigest()}
    assert interceptor.rss_bytes() - before < 48 << 20  # 512 MiB went through; far less was ever held


async def test_large_upload_over_http2(interceptor: InterceptorProcess) -> None:
    size = 64 << 20
    digest = hashlib.sha256()
    for block in _blocks(size):
        digest.update(block)
    async with httpx.AsyncClient(http1=False, http2=True, timeout=120) as client:
        response = await client.post(f"{interceptor.url}/upload", content=_ablocks(size))
    assert response.http_version == "HTTP/2" and response.json() == {"size": size, "sha256": digest.hexdigest()}


def test_large_download_streams_with_backpressure(interceptor: InterceptorProcess) -> None:
    size = 256 << 20
    before = interceptor.rss_bytes()
    received = 0
    with httpx.stream("GET", f"{interceptor.url}/big?size={size}", timeout=120) as response:
        for chunk in response.iter_raw(1 << 20):
            received += len(chunk)
            if received < 8 << 20:
                time.sleep(0.02)  # a slow reader at first: the interceptor must not read ahead for it
    assert received == size
    assert interceptor.rss_bytes() - before < 48 << 20


def test_curl_upload_with_expect_100_continue(interceptor: InterceptorProcess, tmp_path: Path) -> None:
    payload = tmp_path / "payload"
    payload.write_bytes(b"p" * (3 << 20))
    result = curl("-H", "Expect: 100-continue", "--data-binary", f"@{payload}", f"{interceptor.url}/upload")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"size": 3 << 20, "sha256": hashlib.sha256(payload.read_bytes()).hexdigest()}


async def test_websocket_upgrade_is_tunnelled(interceptor: InterceptorProcess) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{interceptor.port}/ws") as ws:
        await ws.send("hello")
        assert await ws.recv() == "upstream: hello"
        payload = bytes(range(256)) * 4096
        await ws.send(payload)
        assert await ws.recv() == payload
    wait_for(lambda: interceptor.gauge("pending_requests", "default/web") == 0, what="the tunnel to be counted done")


def test_head_and_bodiless_statuses(interceptor: InterceptorProcess) -> None:
    with httpx.Client(base_url=interceptor.url) as client:  # one connection: framing errors would show next
        head = client.head("/big?size=1000")
        assert head.status_code == 200 and head.headers["content-length"] == "1000" and head.content == b""
        assert client.get("/status/204").status_code == 204
        assert client.get("/hello").text == "hello"


def test_pipelined_requests_are_answered_in_order(interceptor: InterceptorProcess) -> None:
    with socket.create_connection(("127.0.0.1", interceptor.port), timeout=10) as sock:
        sock.sendall(b"GET /echo/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /slow?seconds=0.2 HTTP/1.1\r\nHost: a\r\n\r\n"
                     b"GET /echo/3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.1 200") == 3
    first, second, third = data.index(b'"/echo/1"'), data.index(b"slow"), data.index(b'"/echo/3"')
    assert first < second < third


def test_upstream_reset_mid_response_is_not_passed_off_as_complete(interceptor: InterceptorProcess) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{interceptor.url}/abort-mid")
    result = curl("--http2-prior-knowledge", f"{interceptor.url}/abort-mid", "-o", "/dev/null")
    assert result.returncode != 0  # the stream is reset, not ended


def test_upstream_reset_before_answering_is_a_502(interceptor: InterceptorProcess) -> None:
    response = httpx.get(f"{interceptor.url}/abort-before")
    assert response.status_code == 502 and "failed before answering" in response.text


def test_slow_upstream_is_waited_for_and_counted(interceptor: InterceptorProcess) -> None:
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        slow = pool.submit(httpx.get, f"{interceptor.url}/slow?seconds=1.5", timeout=10)
        wait_for(lambda: interceptor.gauge("pending_requests", "default/web") >= 1, what="the slow request pending")
        assert slow.result(10).text == "slow" and time.monotonic() - started >= 1.5
    wait_for(lambda: interceptor.gauge("pending_requests", "default/web") == 0, what="pending back to 0")


def test_client_disconnect_mid_request_frees_the_upstream_connection(interceptor: InterceptorProcess) -> None:
    with socket.create_connection(("127.0.0.1", interceptor.port), timeout=10) as sock:
        sock.sendall(b"GET /slow?seconds=30 HTTP/1.1\r\nHost: a\r\n\r\n")
        wait_for(lambda: interceptor.gauge("pending_requests", "default/web") >= 1, what="the request pending")
    wait_for(lambda: interceptor.gauge("pending_requests", "default/web") == 0, timeout=5,
             what="the abandoned request to be dropped")


def test_held_requests_past_the_limit_get_503_and_past_the_timeout_504(interceptor: InterceptorProcess) -> None:
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=interceptor.url, headers={"host": "held.example.com"},
                                     timeout=10) as client:
            return list(await asyncio.gather(*(client.get("/x") for _ in range(6))))

    started = time.monotonic()
    responses = asyncio.run(burst())
    elapsed = time.monotonic() - started
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [503, 503, 503, 504, 504, 504]  # holdLimit 3, holdTimeout 1s
    assert all(r.headers["retry-after"] == "1" for r in responses if r.status_code == 503)
    assert "no ready endpoint after 1s" in next(r.text for r in responses if r.status_code == 504)
    assert 0.9 < elapsed < 5
    assert interceptor.gauge("held_requests", "default/held") == 0


def test_client_disconnect_while_held_releases_the_hold(interceptor: InterceptorProcess) -> None:
    with socket.create_connection(("127.0.0.1", interceptor.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: held.example.com\r\n\r\n")
        wait_for(lambda: interceptor.gauge("held_requests", "default/held") == 1, what="the request held")
    wait_for(lambda: interceptor.gauge("held_requests", "default/held") == 0, timeout=0.9,
             what="the hold released before its timeout")


def test_unknown_host_is_404_from_the_interceptor(upstream: UpstreamProcess, tmp_path: Path) -> None:
    from tests.harness.interceptor_process import http_scaled_object, write_objects

    objects = write_objects(tmp_path / "objects", http_scaled_object("only", hosts="only.example.com"))
    with InterceptorProcess(("--local-dir", str(objects), "--upstream", f"{upstream.host}:{upstream.port}"),
                            tmp_path / "log") as proxy:
        response = httpx.get(f"{proxy.url}/", headers={"host": "other.example.com"})
        assert response.status_code == 404 and "no route for host 'other.example.com'" in response.text
        assert httpx.get(f"{proxy.url}/hello", headers={"host": "only.example.com"}).text == "hello"


def test_tls_context_offers_h2_and_http11(interceptor: InterceptorProcess, tls_files: tuple[Path, Path, Path]) -> None:
    for protocols in (["h2"], ["http/1.1"]):
        context = ssl.create_default_context(cafile=str(tls_files[0]))
        context.set_alpn_protocols(protocols)
        with socket.create_connection(("127.0.0.1", interceptor.tls_port or 0)) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.selected_alpn_protocol() == protocols[0]
