"""HTTP/1.1 connections to upstream endpoints, kept alive and reused, one request at a time.

An `UpstreamConnection` is an asyncio protocol with an httptools response parser: the response
head, each body piece and the end go straight to the `Exchange` it serves, which hands them to
the client side. Flow control is the transports': when the client cannot take more, the client
side pauses this connection's reading; when this connection's write buffer fills with a request
body, it pauses the client's reading.

A HEAD response ends at its header block (httptools cannot be told that it has no body, so the
parser is replaced). A 101 answer turns the connection into a byte tunnel (WebSocket). The pool
keeps idle connections per address, newest first, up to `max_idle`, and forgets any that the
upstream closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Protocol, cast

import httptools

from adapter.interceptor.messages import (
    HOP_BY_HOP,
    NO_BODY_STATUSES,
    Headers,
    RequestHead,
    ResponseHead,
    connection_tokens,
)

log = logging.getLogger("eventscale.interceptor.upstream")

Address = tuple[str, int]


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Small writes (an event, a head) go out at once, not when the peer's delayed ACK comes."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Exchange(Protocol):
    """What an upstream connection reports to (see `adapter.interceptor.exchange`)."""

    head: RequestHead

    def response_start(self, head: ResponseHead) -> None: ...

    def response_data(self, data: bytes) -> None: ...

    def response_flush(self) -> None: ...

    def response_end(self) -> None: ...

    def upstream_lost(self, error: str) -> None: ...

    def upgraded(self, head: ResponseHead, rest: bytes) -> None: ...

    def pause_request(self) -> None: ...

    def resume_request(self) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, pool: UpstreamPool, address: Address) -> None:
        self.pool, self.address = pool, address
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.reused = False
        self.closed = False
        self.response_started = False
        self.tunnel: Callable[[bytes], None] | None = None  # after a 101: where our bytes go
        self.tunnel_closed: Callable[[], None] | None = None
        self.tunnel_pause: Callable[[bool], None] | None = None  # our write buffer filled (True) or drained
        self._parser = httptools.HttpResponseParser(self)
        self._headers: Headers = []
        self._reason = b""
        self._chunked_request = False
        self._head_done = False
        self._upgrade_head: ResponseHead | None = None
        self._reuse_after_head = True
        self._until_close = False  # the response has neither a length nor chunks: its end is the connection's
        self._idle_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        no_delay(transport)

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel(data)
            return
        if self.exchange is None:  # bytes on an idle connection: the upstream is confused
            self.close()
            return
        exchange = self.exchange
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgraded(data[upgrade.args[0]:])
        except httptools.HttpParserError as exc:
            self._lost(f"invalid response: {exc}")
        exchange.response_flush()
        if self._head_done:  # a HEAD response: the header block was all of it
            self._head_done = False
            self._parser = httptools.HttpResponseParser(self)
            self._finish_response(reuse=self._reuse_after_head)

    def eof_received(self) -> bool | None:
        if self.tunnel_closed is not None:
            self.tunnel_closed()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.tunnel_closed is not None:
            self.tunnel_closed()
        elif self.exchange is not None and self._until_close and exc is None:
            self._finish_response()  # a response delimited by the connection's end is complete now
        elif self.exchange is not None:
            self._lost(str(exc) if exc else "the upstream closed the connection")

    def pause_writing(self) -> None:
        if self.tunnel_pause is not None:
            self.tunnel_pause(True)
        elif self.exchange is not None:
            self.exchange.pause_request()

    def resume_writing(self) -> None:
        if self.tunnel_pause is not None:
            self.tunnel_pause(False)
        elif self.exchange is not None:
            self.exchange.resume_request()

    # -- httptools callbacks -------------------------------------------------------------------

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._headers, self._reason = [], b""
            return
        assert self.exchange is not None
        head = self._response_head(status)
        self.response_started = True
        chunked = any(n == b"transfer-encoding" and b"chunked" in v.lower() for n, v in self._headers)
        self._until_close = head.has_body and head.content_length is None and not chunked
        if status != 101:
            self.exchange.response_start(head)
            if self.exchange.head.is_head:
                self._head_done = True
                # an upstream that sends the body anyway would leave it on the connection: not reused
                self._reuse_after_head = head.content_length in (None, 0) and not chunked
        else:
            self._upgrade_head = head

    def on_body(self, data: bytes) -> None:
        if self.exchange is not None and not self._head_done:  # a body after a HEAD answer is not passed on
            self.exchange.response_data(data)

    def on_message_complete(self) -> None:
        if self.exchange is not None and self.response_started and not self._head_done and self._upgrade_head is None:
            self._finish_response()

    # -- sending a request ------------------------------------------------------------------------

    def start(self, exchange: Exchange) -> None:
        """Send `exchange`'s request head; its body follows through `send_data` and `send_end`."""
        assert self.transport is not None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self.exchange = exchange
        self.response_started = False
        self._until_close = False
        self._upgrade_head = None
        self._headers, self._reason = [], b""
        head = exchange.head
        self._chunked_request = head.has_body and head.content_length is None
        self.transport.write(head.encode())

    def send_data(self, data: bytes) -> None:
        if self.transport is None or self.closed or not data:
            return
        if self._chunked_request:
            self.transport.writelines([b"%x\r\n" % len(data), data, b"\r\n"])
        else:
            self.transport.write(data)

    def send_end(self) -> None:
        if self._chunked_request and self.transport is not None and not self.closed:
            self.transport.write(b"0\r\n\r\n")

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        self.exchange = None
        if self.transport is not None:
            self.transport.abort()

    def write_raw(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def end_raw(self) -> None:
        if self.transport is not None and not self.closed and self.transport.can_write_eof():
            self.transport.write_eof()

    # -- internals -----------------------------------------------------------------------------

    def _response_head(self, status: int) -> ResponseHead:
        headers = self._headers
        named = connection_tokens(headers)
        length = next((v for n, v in headers if n == b"content-length"), None)
        kept = [(n, v) for n, v in headers if n not in HOP_BY_HOP and n not in named and n != b"content-length"]
        no_body = status in NO_BODY_STATUSES or status < 200
        upgrade = next((v for n, v in headers if n == b"upgrade"), None) if status == 101 else None
        content_length = int(length) if length is not None and length.strip().isdigit() else None
        return ResponseHead(status, self._reason or b"", kept, None if no_body else content_length,
                            not no_body and content_length != 0, upgrade)

    def _finish_response(self, reuse: bool = True) -> None:
        exchange, self.exchange = self.exchange, None
        keep_alive = reuse and not self.closed and self._parser.should_keep_alive()
        if exchange is not None:
            exchange.response_end()
        if keep_alive and not self.closed:
            self.pool.release(self)
        else:
            self.close()

    def _upgraded(self, rest: bytes) -> None:
        exchange, head = self.exchange, self._upgrade_head
        if exchange is None or head is None:
            self.close()
            return
        exchange.upgraded(head, rest)

    def _lost(self, reason: str) -> None:
        exchange, self.exchange = self.exchange, None
        if self.transport is not None:
            self.transport.abort()
        self.closed = True
        if exchange is not None:
            exchange.upstream_lost(reason)

    def idle_since_now(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        self._idle_timer = loop.call_later(timeout, self.close)


class UpstreamPool:
    """Idle keep-alive connections per address; `acquire` reuses one or connects."""

    def __init__(self, *, max_idle: int = 256, idle_timeout: float = 30.0, connect_timeout: float = 5.0) -> None:
        self.max_idle, self.idle_timeout, self.connect_timeout = max_idle, idle_timeout, connect_timeout
        self._idle: dict[Address, list[UpstreamConnection]] = {}
        self.connects = 0

    def take_idle(self, address: Address) -> UpstreamConnection | None:
        """An idle kept-alive connection to `address`, newest first, if there is one."""
        idle = self._idle.get(address)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                connection.reused = True
                return connection
        return None

    async def acquire(self, address: Address, *, fresh: bool = False) -> UpstreamConnection:
        """An idle connection to `address`, or a new one (always new with `fresh`)."""
        connection = None if fresh else self.take_idle(address)
        if connection is not None:
            return connection
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.connect_timeout):
            _, connection = await loop.create_connection(lambda: UpstreamConnection(self, address), *address)
        self.connects += 1
        return connection

    def release(self, connection: UpstreamConnection) -> None:
        idle = self._idle.setdefault(connection.address, [])
        if len(idle) >= self.max_idle:
            connection.close()
            return
        idle.append(connection)
        connection.idle_since_now(self.idle_timeout)

    def forget(self, connection: UpstreamConnection) -> None:
        idle = self._idle.get(connection.address)
        if idle is not None and connection in idle:
            idle.remove(connection)
            if not idle:
                del self._idle[connection.address]

    def idle_count(self) -> int:
        return sum(len(v) for v in self._idle.values())

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
