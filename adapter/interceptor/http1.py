"""The client side of HTTP/1.1 (and 1.0): an asyncio protocol with an httptools request parser.

Requests of one connection are answered in order; pipelined ones wait in `_queue` (reading
pauses while more than a few wait). Each request becomes an `Exchange`. Response bodies are
framed for this client: the upstream's length when it gave one, chunked otherwise (or, for an
HTTP/1.0 client, delimited by closing the connection). A response the upstream could not finish
is cut by closing the connection, so the client sees a truncated body and not a complete one.

Three things turn a connection into something else: the HTTP/2 preface (h2c with prior
knowledge), `Upgrade: h2c` (HTTP/1.1 upgrade to HTTP/2) and an upstream's 101 (a WebSocket
tunnel: bytes relayed both ways with each side's flow control pausing the other).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import httptools

from adapter.interceptor.exchange import Exchange, Outcome
from adapter.interceptor.messages import (
    REASONS,
    Headers,
    LocalAnswer,
    RequestHead,
    ResponseHead,
    connection_tokens,
    end_to_end,
    forwarded_for,
    path_of,
    split_host,
)
from adapter.interceptor.upstream import UpstreamConnection, no_delay

if TYPE_CHECKING:
    from adapter.interceptor.proxy import Proxy

log = logging.getLogger("eventscale.interceptor.http1")

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_HEADER_BYTES = 64 * 1024
MAX_QUEUED = 8


@dataclass
class _Request:
    exchange: Exchange
    close_after: bool  # the client asked for the connection to end with this request
    http10: bool


class Http1Connection(asyncio.Protocol):
    def __init__(self, proxy: Proxy, scheme: bytes) -> None:
        self.proxy, self.scheme = proxy, scheme
        self.transport: asyncio.Transport | None = None
        self.client = ""
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: Headers = []
        self._header_bytes = 0
        self._current: Exchange | None = None  # the request being parsed
        self._queue: deque[_Request] = deque()  # the one answering first, then pipelined ones
        self._chunked_response = False
        self._close_after = False  # set when the request being answered is the connection's last
        self._first = True
        self._tunnel: UpstreamConnection | None = None
        self._reading_paused = False
        self._idle: asyncio.TimerHandle | None = None
        self._h2c: RequestHead | None = None  # a request asking to upgrade to HTTP/2
        self._early_tunnel_bytes = b""  # sent after an Upgrade request, before the upstream's 101
        self._headers_too_large = False
        self._out: list[bytes] = []  # response bytes of one upstream read, written at `flush`

    # -- asyncio.Protocol ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        no_delay(transport)
        peer = transport.get_extra_info("peername")
        self.client = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            self._switch_to_h2(b"", None)
            return
        self.proxy.connections.add(self)
        self._arm_idle()

    def data_received(self, data: bytes) -> None:
        if self._tunnel is not None:
            self._tunnel.write_raw(data)
            return
        if self._first:
            self._first = False
            if data.startswith(H2_PREFACE[:len(data)]) and len(data) >= 3:
                self._switch_to_h2(data, None)
                return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgrade_request(data[upgrade.args[0]:])
        except httptools.HttpParserError as exc:
            if self._headers_too_large:
                self._refuse(431, "request headers too large")
            else:
                self._refuse(400, f"malformed request: {exc}")

    def eof_received(self) -> bool | None:
        if self._tunnel is not None:
            self._tunnel.end_raw()
            return True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.proxy.connections.discard(self)
        if self._idle is not None:
            self._idle.cancel()
        if self._tunnel is not None:
            self._tunnel.close()
        for exchange in {*(r.exchange for r in self._queue), *([self._current] if self._current else [])}:
            exchange.abort()
        self._queue.clear()
        self.transport = None

    def pause_writing(self) -> None:
        if self._tunnel is not None:
            self._tunnel.pause_reading()
        elif self._queue:
            self._queue[0].exchange.pause_response()

    def resume_writing(self) -> None:
        if self._tunnel is not None:
            self._tunnel.resume_reading()
        elif self._queue:
            self._queue[0].exchange.resume_response()

    # -- httptools callbacks -------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url, self._headers, self._header_bytes = b"", [], 0
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            self._headers_too_large = True
            raise ValueError("request headers too large")
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        head = self._request_head()
        if self._asks_for_h2c() and not head.has_body and not self._queue:
            self._h2c = head  # answered in _upgrade_request, once httptools stops at the header block
            return
        exchange = Exchange(self.proxy, self, head)
        self._current = exchange
        parser = self._parser
        self._queue.append(_Request(exchange, not parser.should_keep_alive(), parser.get_http_version() == "1.0"))
        if len(self._queue) == 1:
            self._begin()
        elif len(self._queue) > MAX_QUEUED:
            self.pause_reading()

    def on_body(self, body: bytes) -> None:
        if self._current is not None:
            self._current.request_data(body)

    def on_message_complete(self) -> None:
        if self._current is not None:
            self._current.request_end()
            self._current = None

    # -- the request head, as it goes upstream -------------------------------------------------------

    def _request_head(self) -> RequestHead:
        parser, headers = self._parser, self._headers
        host = next((v for n, v in headers if n == b"host"), b"")
        length = next((v for n, v in headers if n == b"content-length"), None)
        chunked = any(n == b"transfer-encoding" and b"chunked" in v.lower() for n, v in headers)
        tokens = connection_tokens(headers)
        upgrade = next((v for n, v in headers if n == b"upgrade"), None) if b"upgrade" in tokens else None
        if upgrade is not None and upgrade.lower() == b"h2c":
            upgrade = None  # answered here (see _upgrade_request), never forwarded
        kept = forwarded_for([(b"host", host), *end_to_end(headers)], self.client, self.scheme)
        expect = any(n == b"expect" and v.lower() == b"100-continue" for n, v in headers)
        kept = [(n, v) for n, v in kept if n != b"expect"]
        content_length = int(length) if length is not None and not chunked else None
        has_body = chunked or bool(content_length)
        return RequestHead(parser.get_method(), self._url, split_host(host), path_of(self._url), kept,
                           content_length if has_body else None, has_body, upgrade, expect, self.client)

    # -- Downstream: what the exchange at the head of the queue sends --------------------------------

    def pause_reading(self) -> None:
        if self.transport is not None and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and self._reading_paused and len(self._queue) <= MAX_QUEUED:
            self._reading_paused = False
            self.transport.resume_reading()

    def send_continue(self) -> None:
        if self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def start_response(self, head: ResponseHead) -> None:
        if self.transport is None:
            return
        request = self._queue[0]
        exchange, http10 = request.exchange, request.http10
        lines = [b"HTTP/1.1 %d " % head.status, head.reason or REASONS.get(head.status, b"OK"), b"\r\n"]
        for name, value in head.headers:
            lines += [name, b": ", value, b"\r\n"]
        self._chunked_response = False
        if head.content_length is not None:
            lines += [b"content-length: ", str(head.content_length).encode(), b"\r\n"]
        elif head.has_body and not exchange.head.is_head:
            if http10:
                self._close_after = True
            else:
                self._chunked_response = True
                lines.append(b"transfer-encoding: chunked\r\n")
        if self._close_after:
            lines.append(b"connection: close\r\n")
        lines.append(b"\r\n")
        self._out.append(b"".join(lines))

    def send_data(self, data: bytes) -> None:
        if self.transport is None or not data:
            return
        if self._chunked_response:
            self._out += [b"%x\r\n" % len(data), data, b"\r\n"]
        else:
            self._out.append(data)

    def flush(self) -> None:
        """Write what one upstream read produced in one call (head and body in one packet)."""
        if self._out:
            out, self._out = self._out, []
            if self.transport is not None:
                self.transport.writelines(out)

    def end_response(self) -> None:
        if self._chunked_response:
            self._out.append(b"0\r\n\r\n")
        self.flush()
        self._next()

    def reset(self) -> None:
        self.flush()
        if self.transport is not None:
            self.transport.abort()

    def answer(self, answer: LocalAnswer) -> None:
        if self.transport is None:
            return
        self._out = []  # a response the upstream began cannot be followed by an answer of ours
        body = answer.body
        lines = [b"HTTP/1.1 %d " % answer.status, REASONS.get(answer.status, b"Error"), b"\r\n",
                 b"content-type: text/plain; charset=utf-8\r\ncontent-length: ", str(len(body)).encode(), b"\r\n"]
        for name, value in answer.headers:
            lines += [name, b": ", value, b"\r\n"]
        exchange = self._queue[0].exchange if self._queue else None
        if exchange is not None and self._current is exchange:
            self._close_after = True  # its body was not read: the connection cannot be reused
        if self._close_after:
            lines.append(b"connection: close\r\n")
        lines += [b"\r\n", b"" if exchange is not None and exchange.head.is_head else body]
        self.transport.write(b"".join(lines))
        self._next()

    def start_tunnel(self, head: ResponseHead, upstream: UpstreamConnection, rest: bytes,
                     closed: asyncio.Future[Outcome]) -> None:
        if self.transport is None:
            upstream.close()
            return
        lines = [b"HTTP/1.1 101 ", head.reason or b"Switching Protocols", b"\r\nconnection: upgrade\r\nupgrade: ",
                 head.upgrade or b"", b"\r\n"]
        for name, value in head.headers:
            lines += [name, b": ", value, b"\r\n"]
        self.transport.write(b"".join([*lines, b"\r\n", rest]))
        transport = self.transport
        self._tunnel = upstream
        upstream.exchange = None
        upstream.tunnel = transport.write

        def upstream_closed() -> None:
            if transport.can_write_eof() and not transport.is_closing():
                transport.write_eof()
            if not closed.done():
                closed.set_result(Outcome.DONE)

        upstream.tunnel_closed = upstream_closed
        upstream.tunnel_pause = lambda paused: self.pause_reading() if paused else self.resume_reading()
        if self._early_tunnel_bytes:
            upstream.write_raw(self._early_tunnel_bytes)
            self._early_tunnel_bytes = b""
        self.resume_reading()

    # -- internals -----------------------------------------------------------------------------------

    def _begin(self) -> None:
        """Start answering the request at the head of the queue."""
        request = self._queue[0]
        self._close_after = request.close_after
        request.exchange.start()

    def _next(self) -> None:
        if self._queue:
            self._queue.popleft()
        if self._close_after:
            if self.transport is not None:
                self.transport.close()
            return
        if self._queue:
            self._begin()
        else:
            self._arm_idle()
        self.resume_reading()

    def _arm_idle(self) -> None:
        if self.transport is not None and self.proxy.keep_alive_timeout > 0:
            self._idle = asyncio.get_running_loop().call_later(self.proxy.keep_alive_timeout, self._idle_out)

    def _idle_out(self) -> None:
        if self.transport is not None and not self._queue:
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        if self.transport is not None:
            self._close_after = True
            body = (message + "\n").encode()
            self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                                 b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                                 % (status, REASONS.get(status, b"Error"), len(body), body))
            self.transport.close()

    def _upgrade_request(self, rest: bytes) -> None:
        """httptools stops at an Upgrade request's header block; `rest` is what followed it."""
        if self._h2c is not None:
            raw = next((v for n, v in self._headers if n == b"http2-settings"), b"").strip()
            settings = raw + b"=" * (-len(raw) % 4)  # h2 decodes it; clients leave the padding out
            try:
                base64.urlsafe_b64decode(settings)
            except ValueError:
                self._refuse(400, "HTTP2-Settings is not base64url")
                return
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: h2c\r\n\r\n")
            self._switch_to_h2(rest, (settings, self._h2c))
            return
        self.pause_reading()  # tunnel bytes wait in the socket until the upstream agrees (101)
        self._early_tunnel_bytes = rest
        self._close_after = True  # httptools parses nothing after an Upgrade request
        if self._current is not None:
            self._current.request_end()
            self._current = None

    def _asks_for_h2c(self) -> bool:
        tokens = connection_tokens(self._headers)
        wanted = next((v for n, v in self._headers if n == b"upgrade"), b"").lower()
        return wanted == b"h2c" and b"upgrade" in tokens and b"http2-settings" in tokens

    def _switch_to_h2(self, data: bytes, upgraded: tuple[bytes, RequestHead] | None) -> None:
        """Hand the transport to an HTTP/2 connection; `upgraded`: (HTTP2-Settings, the request of stream 1)."""
        from adapter.interceptor.http2 import Http2Connection

        assert self.transport is not None
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self.proxy.connections.discard(self)
        h2 = Http2Connection(self.proxy, self.scheme)
        self.transport.set_protocol(h2)
        h2.connection_made(self.transport, upgraded)
        self.transport = None
        if data:
            h2.data_received(data)
