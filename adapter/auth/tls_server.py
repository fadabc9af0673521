"""Hand the TLS peer certificate to the ASGI app, which uvicorn does not do.

uvicorn builds the ASGI scope without the ASGI TLS extension, so the app cannot see who
connected. We subclass uvicorn's protocol: when a connection is made we read the peer
certificate from the transport's `ssl_object` once, and wrap that connection's app so that every
request scope carries `scope["extensions"]["tls"]` as the ASGI TLS extension specifies
(`client_cert_chain`: PEM strings, leaf first; `tls_version`; `cipher_suite`).

The TLS context asks for a certificate but does not require one (CERT_OPTIONAL) so that kubelet
probes and anonymous discovery work; a certificate that chains to neither trusted CA fails the
handshake. Which CA a certificate belongs to is decided later, per certificate, by `authn`.

The same protocol bounds what a client can make the server hold (`HttpLimits`), as Go's HTTP
server does for kube-apiserver: a request head (request line and headers) of at most 1 MiB and
1,000 header fields (431 past either), received within `head_timeout` of the connection or of
the head's first byte (408 otherwise: a slowloris trickle, an HTTP/0.9 line that never ends), and
at most `max_connections` open connections (503 to the next one). Every such answer, and every
request the HTTP parser rejects (400), is a metav1.Status body, then the connection is closed.

Memory per connection is given back when it closes (`adapter.kube.glibc`): each TLS connection holds a 256 KiB
read buffer (the event loop's SSLProtocol, uvloop's or asyncio's) and OpenSSL state; left to its
defaults glibc serves later buffers from the heap and keeps the heap after a burst of connections
(1,000 connections kept about 300 MB for the life of the process). A fixed mmap threshold keeps every large buffer in a
mapping of its own, unmapped when freed, and a `malloc_trim` shortly after connections close
returns the small allocations' free pages.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import typing
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from adapter.kube.glibc import GLIBC
from adapter.kube.wire import status_body

log = logging.getLogger("eventscale.http")

Scope = dict[str, Any]


@dataclass(frozen=True)
class HttpLimits:
    max_head_bytes: int = 1024 * 1024  # Go's http.DefaultMaxHeaderBytes, what kube-apiserver allows
    max_headers: int = 1000
    head_timeout: float = 10.0  # seconds to receive a whole request head
    max_connections: int = 2000




class _StopParsing(Exception):
    """Raised in a parser callback (the parser then fails the request) after noting the refusal."""


class _WithPeerCertificate:
    """The app of one connection: adds the TLS extension to each request scope."""

    __slots__ = ("_app", "_tls")

    def __init__(self, app: Any, tls: dict[str, Any]) -> None:
        self._app = app
        self._tls = tls

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        scope.setdefault("extensions", {})["tls"] = self._tls
        await self._app(scope, receive, send)


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    cipher = ssl_object.cipher()
    return {
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "tls_version": ssl_object.version(),
        "cipher_suite": cipher[0] if cipher else None,
    }


READ_BUFFER = memoryview(bytearray(64 * 1024))  # what every connection's decrypted bytes are read into


def shared_read_buffer(sizehint: int) -> memoryview:
    """`get_buffer` of every TLS protocol of this process, server or client side: reads happen one
    at a time, on the event loop, and are copied out before anything else runs. As a plain
    Protocol, the loop's TLS layer allocates a 256 KiB chunk for every read, which the fixed mmap
    threshold (`adapter.kube.glibc`) turns into an mmap and an munmap per read."""
    return READ_BUFFER


class _Reader(typing.Protocol):
    def data_received(self, data: bytes) -> None: ...


class FeedsWeakly:
    """A protocol's `buffer_updated` (the bytes read into `READ_BUFFER`, passed to its
    `data_received`), holding the protocol weakly.

    The event loop's TLS layer keeps the app protocol's `get_buffer` and `buffer_updated` after the
    connection is lost (found with CPython 3.11's); bound methods would keep the protocol, its
    transport and the TLS layer's 256 KiB buffer alive until the cyclic garbage collector runs.
    """

    def __get__(self, protocol: _Reader, owner: type) -> Callable[[int], None]:
        alive = weakref.ref(protocol)

        def buffer_updated(nbytes: int) -> None:
            if (found := alive()) is not None:
                found.data_received(bytes(READ_BUFFER[:nbytes]))

        return buffer_updated


class _JoinedWrites:
    """The connection's transport as uvicorn sees it: writes made in one turn of the event loop
    leave as one.

    uvicorn writes a response's head and its body with two calls; under TLS each call is a record of
    its own, encrypted and sent with a send() of its own. Joined, a metric GET costs one record and
    one system call fewer. The joined bytes are written at the next turn of the loop (or at once
    when the connection is closed); everything else is the transport's own.
    """

    __slots__ = ("_pending", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class BufferedReads(asyncio.BufferedProtocol):
    """What the event loop's TLS layer is given for a server connection: uvicorn's protocol, read
    as a BufferedProtocol into the buffer all connections share (`shared_read_buffer`).

    uvicorn's protocol is an asyncio.Protocol, and uvloop reads into a protocol's buffer only when it
    is not one (the standard loop asks only for `BufferedProtocol`); read as a plain Protocol, every
    read took a fresh 256 KiB chunk (an mmap, an mremap and an munmap under the fixed threshold) and
    asyncio's loop lost half of a metric GET's throughput at 32 connections.
    """

    __slots__ = ("__weakref__", "data_received", "protocol")
    get_buffer = staticmethod(shared_read_buffer)
    buffer_updated = FeedsWeakly()  # type: ignore[assignment]  # the method, holding this object weakly

    def __init__(self, protocol: asyncio.Protocol) -> None:
        self.protocol = protocol
        self.data_received: Callable[[bytes], None] = protocol.data_received  # what `buffer_updated` feeds

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.protocol.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.protocol.connection_lost(exc)

    def eof_received(self) -> bool | None:
        return self.protocol.eof_received()

    def pause_writing(self) -> None:
        self.protocol.pause_writing()

    def resume_writing(self) -> None:
        self.protocol.resume_writing()


class PeerCertificateProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus the ASGI TLS extension and the limits of `HttpLimits`."""

    limits: ClassVar[HttpLimits] = HttpLimits()

    @classmethod
    def serving(cls, limits: HttpLimits) -> Callable[..., BufferedReads]:
        """uvicorn's `http` protocol factory: one connection's protocol, with these limits, read buffered."""
        bounded = type("BoundedPeerCertificateProtocol", (cls,), {"limits": limits})
        return lambda **options: BufferedReads(bounded(**options))

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_JoinedWrites(transport))  # type: ignore[arg-type]  # a Transport in all it is used for
        self._head_bytes = self._header_count = 0
        self._reading_head, self._refused = True, False
        self._refusal: tuple[int, str] | None = None  # what to answer once the parser has stopped
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_started: float | None = self.loop.time()  # None: not within a request head
        if len(self.connections) > self.limits.max_connections:
            self._refuse(503, f"too many connections (at most {self.limits.max_connections})")
            return
        tls = tls_extension(transport)
        if tls is not None:
            self.app = _WithPeerCertificate(self.app, tls)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)
        # uvicorn cancels its keep-alive timer only when the connection ended without an error; a
        # TLS peer that hangs up without close_notify ends with one, and the armed timer would keep
        # this protocol, its TLS object and buffers alive for --timeout-keep-alive seconds.
        self._unset_keepalive_if_required()
        GLIBC.trim_soon(self.loop)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._reading_head:
            if self._head_started is None:
                self._head_started = self.loop.time()
                self._arm_head_timer()
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_head_bytes:
                self._refuse(431, f"request head larger than {self.limits.max_head_bytes} bytes")
                return
        super().data_received(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._refusal = (431, f"more than {self.limits.max_headers} header fields")
            raise _StopParsing
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head, self._head_started = False, None  # the armed timer finds no head and ends
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_head, self._head_bytes, self._header_count = True, 0, 0

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request its parser refused (or a callback stopped): a Status."""
        self._refuse(*(self._refusal or (400, "malformed HTTP request")))

    def _arm_head_timer(self) -> None:
        """One timer per connection, not per request: it is armed when a head begins and no timer is
        pending; when it fires it refuses an overdue head, re-arms for a newer one, or ends."""
        if self._head_timer is None and self._head_started is not None:
            self._head_timer = self.loop.call_at(self._head_started + self.limits.head_timeout,
                                                 self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._refused or self._head_started is None:
            return
        if self.loop.time() >= self._head_started + self.limits.head_timeout:
            self._refuse(408, f"request head not received within {self.limits.head_timeout:g}s")
        else:
            self._arm_head_timer()

    def _refuse(self, code: int, message: str) -> None:
        """Answer `code` with a Status body, then close: nothing more is read from this connection."""
        self._refused = True
        self._cancel_head_timer()
        if self.transport.is_closing():
            return
        body = status_body(code, message)
        log.info("client=%s refused=%d %s", self.client[0] if self.client else "?", code, message)
        self.transport.write(b"".join([
            STATUS_LINE[code], b"content-type: application/json\r\n",
            b"content-length: ", str(len(body)).encode(), b"\r\n", b"connection: close\r\n\r\n", body,
        ]))
        self.transport.close()


def client_certificate(scope: Scope) -> str | None:
    """The peer's leaf certificate (PEM) of this request, if one was presented."""
    chain = scope.get("extensions", {}).get("tls", {}).get("client_cert_chain")
    return chain[0] if chain else None


def server_context(cert: Path, key: Path, client_cas: list[bytes]) -> ssl.SSLContext:
    """TLS 1.2+ server context that verifies an optional client certificate against `client_cas`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    context.verify_mode = ssl.CERT_OPTIONAL
    for pem in client_cas:
        context.load_verify_locations(cadata=pem.decode())
    context.set_alpn_protocols(["http/1.1"])
    return context
