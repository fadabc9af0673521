"""A real HTTP upstream for the interceptor's tests: aiohttp's server, in its own process.

    python -m tests.harness.http_upstream --host 127.0.0.1 --port 8080 [--start-delay 1.0] [--name a]

Routes (each answer names the replica in `x-upstream`):

    GET  /hello                 "hello" (the benchmark's answer)
    ANY  /echo/...              JSON: method, path, query, headers, body size and sha256
    POST /upload                reads the body as a stream: {"size", "sha256"}
    GET  /sse?events=N&gap=S    server-sent events, one every S seconds
    GET  /chunked?chunks=N      N chunks of a chunked response
    GET  /big?size=BYTES        a large body, streamed
    GET  /slow?seconds=S        answers after S seconds
    GET  /abort-mid             half a body, then the connection is reset
    GET  /abort-before          the connection is reset without an answer
    GET  /ws                    WebSocket echo (text and binary)
    GET  /status/CODE           that status, with a body

`--start-delay` waits before listening, like an application that takes time to start. The
process prints `listening <host> <port>` once it accepts connections. `UpstreamProcess` runs it
(optionally inside a network namespace) and waits for that line.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from aiohttp import WSMsgType, web

ROOT = Path(__file__).resolve().parents[2]


def build_app(name: str) -> web.Application:
    routes = web.RouteTableDef()
    tag = {"x-upstream": name}

    @routes.get("/hello")
    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="hello", headers=tag)

    @routes.route("*", "/echo/{tail:.*}")
    async def echo(request: web.Request) -> web.Response:
        digest, size = hashlib.sha256(), 0
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            size += len(chunk)
        body = {"method": request.method, "path": request.path, "query": request.query_string,
                "headers": {k.lower(): v for k, v in request.headers.items()}, "size": size,
                "sha256": digest.hexdigest(), "version": f"{request.version.major}.{request.version.minor}"}
        return web.json_response(body, headers=tag)

    @routes.post("/upload")
    async def upload(request: web.Request) -> web.Response:
        digest, size = hashlib.sha256(), 0
        async for chunk in request.content.iter_chunked(65536):
            digest.update(chunk)
            size += len(chunk)
        return web.json_response({"size": size, "sha256": digest.hexdigest()}, headers=tag)

    @routes.get("/sse")
    async def sse(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache", **tag})
        await response.prepare(request)
        for i in range(int(request.query.get("events", "3"))):
            await response.write(f"id: {i}\ndata: event {i} at {time.time():.6f}\n\n".encode())
            await asyncio.sleep(float(request.query.get("gap", "0.1")))
        await response.write_eof()
        return response

    @routes.get("/chunked")
    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers=tag)
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(int(request.query.get("chunks", "5"))):
            await response.write(f"chunk {i}\n".encode())
        await response.write_eof()
        return response

    @routes.get("/big")
    async def big(request: web.Request) -> web.StreamResponse:
        size = int(request.query.get("size", str(1 << 20)))
        response = web.StreamResponse(headers=tag)
        response.content_length = size
        await response.prepare(request)
        block = bytes(range(256)) * 256
        sent = 0
        while sent < size:
            piece = block[: min(len(block), size - sent)]
            await response.write(piece)
            sent += len(piece)
        await response.write_eof()
        return response

    @routes.get("/slow")
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("seconds", "1")))
        return web.Response(text="slow", headers=tag)

    @routes.get("/abort-mid")
    async def abort_mid(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers=tag)
        response.content_length = 100_000
        await response.prepare(request)
        await response.write(b"x" * 10_000)
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.abort()
        return response

    @routes.get("/abort-before")
    async def abort_before(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.abort()
        return web.Response(text="never sent")

    @routes.get("/ws")
    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await ws.send_str(f"{name}: {message.data}")
            elif message.type == WSMsgType.BINARY:
                await ws.send_bytes(message.data)
        return ws

    @routes.get("/status/{code}")
    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text=f"status {request.match_info['code']}",
                            headers=tag)

    app = web.Application(client_max_size=1 << 30)
    app.add_routes(routes)
    return app


async def serve(host: str, port: int, name: str, start_delay: float) -> None:
    await asyncio.sleep(start_delay)
    runner = web.AppRunner(build_app(name), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    print(f"listening {host} {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


class UpstreamProcess:
    """The upstream as a child process, in `netns` when given (`ip netns exec`)."""

    def __init__(self, host: str, port: int, log: Path, *, name: str = "upstream", start_delay: float = 0.0,
                 netns: str | None = None) -> None:
        self.host, self.port, self.log, self.name = host, port, log, name
        self.start_delay, self.netns = start_delay, netns
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self._log_offset = 0

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "tests.harness.http_upstream", "--host", self.host, "--port", str(self.port),
                   "--name", self.name, "--start-delay", str(self.start_delay)]
        return ["ip", "netns", "exec", self.netns, *command] if self.netns else command

    def start(self) -> UpstreamProcess:
        self.started_at = time.monotonic()
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0  # earlier runs' lines
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.command(), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        return self

    def wait_listening(self, timeout: float = 30.0) -> float:
        """Seconds from start until it printed that it listens."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if f"listening {self.host} {self.port}" in self.log.read_text(errors="replace")[self._log_offset:]:
                return time.monotonic() - self.started_at
            if self.process.poll() is not None:
                raise RuntimeError(f"upstream exited with {self.process.returncode}:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.01)
        raise RuntimeError(f"upstream not listening within {timeout}s:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def __enter__(self) -> UpstreamProcess:
        self.start()
        self.wait_listening()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="upstream")
    parser.add_argument("--start-delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.name, args.start_delay))


if __name__ == "__main__":
    main()
