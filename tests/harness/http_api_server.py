"""A real HTTP(S) server in the test process, for the metrics-api scaler: bodies the test sets, requests it records.

`HttpApiServer` serves, on a loopback address and a free port, whatever body (and status) the
test put at a path, and records every request (path, query, headers). With `tls` it speaks HTTPS
with the test CA's server certificate and verifies a client certificate when one is given (or
requires one). With `required_headers` it answers 401 to a request missing one of them, so a
test sees credentials refused the way a real API refuses them.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Self
from urllib.parse import parse_qsl, urlsplit

from tests.harness.ports import free_port
from tests.harness.tls_material import TLSMaterial


@dataclass(frozen=True)
class SeenRequest:
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]


@dataclass
class Answer:
    body: bytes
    status: int = 200
    content_type: str = "application/json"


@dataclass
class _State:
    answers: dict[str, Answer] = field(default_factory=dict)
    seen: list[SeenRequest] = field(default_factory=list)
    required_headers: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    state: _State

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        state = self.state
        with state.lock:
            state.seen.append(SeenRequest(url.path, dict(parse_qsl(url.query)), dict(self.headers.items())))
            answer = state.answers.get(url.path, Answer(b"not found", 404, "text/plain"))
            required = dict(state.required_headers)
        if any(self.headers.get(name) != value for name, value in required.items()):
            answer = Answer(b"unauthorized", 401, "text/plain")
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test asserts on `seen` instead."""


class HttpApiServer:
    """Use as a context manager; `url` is where it listens."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, tls: TLSMaterial | None = None,
                 require_client_certificate: bool = False) -> None:
        self.host, self.port = host, port or free_port()
        self.tls = tls
        self._require_certificate = require_client_certificate
        self._state = _State()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def seen(self) -> list[SeenRequest]:
        with self._state.lock:
            return list(self._state.seen)

    def answer(self, path: str, body: str | bytes, status: int = 200, content_type: str = "application/json") -> None:
        with self._state.lock:
            self._state.answers[path] = Answer(body.encode() if isinstance(body, str) else body, status, content_type)

    def require_headers(self, headers: Mapping[str, str]) -> None:
        with self._state.lock:
            self._state.required_headers = dict(headers)

    def forget(self) -> None:
        """Drop what was recorded and required (answers stay)."""
        with self._state.lock:
            self._state.seen.clear()
            self._state.required_headers = {}

    def __enter__(self) -> Self:
        handler = type("Handler", (_Handler,), {"state": self._state})
        server = ThreadingHTTPServer((self.host, self.port), handler)
        server.daemon_threads = True
        if self.tls is not None:
            server.socket = self._context().wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=f"http-api-{self.port}", daemon=True)
        self._thread.start()
        return self

    def _context(self) -> ssl.SSLContext:
        assert self.tls is not None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with TemporaryDirectory(prefix="http-api-") as directory:
            files = self.tls.write_server_files(Path(directory))
            context.load_cert_chain(files.cert, files.key)
            context.load_verify_locations(files.ca)
        context.verify_mode = ssl.CERT_REQUIRED if self._require_certificate else ssl.CERT_OPTIONAL
        return context

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
