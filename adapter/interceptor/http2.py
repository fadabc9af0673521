"""The client side of HTTP/2 (h2c with prior knowledge, h2c by upgrade, h2 over TLS by ALPN).

The `h2` library keeps the protocol state; each stream is one `Exchange` whose request goes to
the upstream as HTTP/1.1. Flow control is end to end without buffering bodies whole:

* request bodies: received DATA is acknowledged (opening the client's window again) as soon as
  it has been handed to the upstream connection; while that connection's write buffer is full,
  acknowledgements wait, so the client stops at its window;
* response bodies: DATA is sent as far as the stream's and the connection's windows allow; what
  does not fit waits on the stream, and past `PENDING_LIMIT` bytes the upstream connection stops
  being read until WINDOW_UPDATE frames make room.

An upstream that fails mid-response resets the stream (INTERNAL_ERROR); the client sees a
stream error, not a short body passed off as complete. WebSocket over HTTP/2 (RFC 8441) is not
offered: clients fall back to HTTP/1.1 for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from adapter.interceptor.exchange import Exchange, Outcome
from adapter.interceptor.messages import (
    Headers,
    LocalAnswer,
    RequestHead,
    ResponseHead,
    end_to_end,
    forwarded_for,
    path_of,
    split_host,
)
from adapter.interceptor.upstream import UpstreamConnection

if TYPE_CHECKING:
    from adapter.interceptor.proxy import Proxy

log = logging.getLogger("eventscale.interceptor.http2")

STREAM_WINDOW = 1 << 20
CONNECTION_WINDOW = 16 << 20
PENDING_LIMIT = 256 * 1024
MAX_STREAMS = 1000


class Http2Stream:
    """`Downstream` for one stream."""

    def __init__(self, connection: Http2Connection, stream_id: int, head: RequestHead) -> None:
        self.connection, self.stream_id = connection, stream_id
        self.exchange = Exchange(connection.proxy, self, head)
        self.unacknowledged = 0
        self.paused = False
        self.closed = False
        self._pending: deque[bytes] = deque()
        self._pending_bytes = 0
        self._pending_end = False
        self._response_paused = False

    # -- request body flow control ------------------------------------------------------------------

    def received(self, data: bytes, flow_controlled: int) -> None:
        self.exchange.request_data(data)
        if self.paused:
            self.unacknowledged += flow_controlled
        else:
            self.connection.acknowledge(self.stream_id, flow_controlled)

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False
        if self.unacknowledged:
            self.connection.acknowledge(self.stream_id, self.unacknowledged)
            self.unacknowledged = 0
            self.connection.flush()

    # -- the response ---------------------------------------------------------------------------------

    def send_continue(self) -> None:
        self.connection.send_headers(self.stream_id, [(b":status", b"100")], end=False)
        self.connection.flush()

    def start_response(self, head: ResponseHead) -> None:
        headers: Headers = [(b":status", str(head.status).encode()), *head.headers]
        if head.content_length is not None:
            headers.append((b"content-length", str(head.content_length).encode()))
        end = not head.has_body or self.exchange.head.is_head
        self.connection.send_headers(self.stream_id, headers, end=end)
        if end:
            self.closed = True

    def send_data(self, data: bytes) -> None:
        if self.closed or not data:
            return
        self._pending.append(data)
        self._pending_bytes += len(data)
        self.drain()

    def flush(self) -> None:
        self.connection.flush()

    def end_response(self) -> None:
        if not self.closed:
            self._pending_end = True
            self.drain()
        self.connection.stream_done(self)

    def drain(self) -> None:
        """Send what the windows allow; pause or resume the upstream by what is left."""
        connection = self.connection
        while self._pending and not self.closed:
            window = connection.window(self.stream_id)
            if window <= 0:
                break
            chunk = self._pending.popleft()
            size = min(len(chunk), window, connection.max_frame)
            if size < len(chunk):
                self._pending.appendleft(chunk[size:])
            self._pending_bytes -= size
            connection.send_data(self.stream_id, chunk[:size])
        if not self._pending and self._pending_end and not self.closed:
            self.closed = True
            connection.end_stream(self.stream_id)
            connection.stream_done(self)
        if self._pending_bytes > PENDING_LIMIT and not self._response_paused:
            self._response_paused = True
            self.exchange.pause_response()
        elif self._pending_bytes <= PENDING_LIMIT // 2 and self._response_paused:
            self._response_paused = False
            self.exchange.resume_response()
        connection.flush()

    def reset(self) -> None:
        if not self.closed:
            self.closed = True
            self.connection.reset(self.stream_id)
        self.connection.stream_done(self)

    def answer(self, answer: LocalAnswer) -> None:
        if self.closed:
            return
        headers: Headers = [(b":status", str(answer.status).encode()),
                            (b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(answer.body)).encode()), *answer.headers]
        if self.exchange.head.is_head:
            self.connection.send_headers(self.stream_id, headers, end=True)
        else:
            self.connection.send_headers(self.stream_id, headers, end=False)
            self.connection.send_data(self.stream_id, answer.body, end=True)
        self.closed = True
        self.connection.flush()
        self.connection.stream_done(self)

    def start_tunnel(self, head: ResponseHead, upstream: UpstreamConnection, rest: bytes,
                     closed: asyncio.Future[Outcome]) -> None:
        upstream.close()  # never asked for: requests over HTTP/2 are not forwarded with Upgrade
        self.reset()
        if not closed.done():
            closed.set_result(Outcome.FAILED)


class Http2Connection(asyncio.Protocol):
    def __init__(self, proxy: Proxy, scheme: bytes) -> None:
        self.proxy, self.scheme = proxy, scheme
        self.transport: asyncio.Transport | None = None
        self.client = ""
        self.streams: dict[int, Http2Stream] = {}
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config=config)

    @property
    def max_frame(self) -> int:
        return int(self.h2.max_outbound_frame_size)

    # -- asyncio.Protocol -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport,
                        upgraded: tuple[bytes, RequestHead] | None = None) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        peer = transport.get_extra_info("peername")
        self.client = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        self.proxy.connections.add(self)
        codes = h2.settings.SettingCodes
        settings: dict[h2.settings.SettingCodes | int, int] = {
            codes.INITIAL_WINDOW_SIZE: STREAM_WINDOW, codes.MAX_CONCURRENT_STREAMS: MAX_STREAMS,
            codes.ENABLE_CONNECT_PROTOCOL: 0}
        if upgraded is not None:
            self.h2.initiate_upgrade_connection(upgraded[0])
        else:
            self.h2.initiate_connection()
        self.h2.update_settings(settings)
        self.h2.increment_flow_control_window(CONNECTION_WINDOW)
        if upgraded is not None:
            self._open(1, upgraded[1])
        self.flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            log.info("client=%s HTTP/2 protocol error: %s", self.client, exc)
            self.flush()
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            self._event(event)
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.proxy.connections.discard(self)
        for stream in list(self.streams.values()):
            stream.exchange.abort()
        self.streams.clear()
        self.transport = None

    def pause_writing(self) -> None:
        for stream in self.streams.values():
            stream.exchange.pause_response()

    def resume_writing(self) -> None:
        for stream in list(self.streams.values()):
            stream.exchange.resume_response()

    # -- events ---------------------------------------------------------------------------------------

    def _event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._request(event)
        elif isinstance(event, h2.events.DataReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None and event.data is not None:
                stream.received(event.data, event.flow_controlled_length or 0)
            elif event.flow_controlled_length:
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.exchange.request_end()
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.pop(event.stream_id or 0, None)
            if stream is not None:
                stream.closed = True
                stream.exchange.abort()
        elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            for stream in list(self.streams.values()):
                stream.drain()
        elif isinstance(event, h2.events.ConnectionTerminated) and self.transport is not None:
            self.transport.close()

    def _request(self, event: h2.events.RequestReceived) -> None:
        assert event.stream_id is not None and event.headers is not None
        pseudo: dict[bytes, bytes] = {}
        headers: Headers = []
        cookies: list[bytes] = []
        for raw_name, raw_value in event.headers:
            name, value = bytes(raw_name), bytes(raw_value)
            if name.startswith(b":"):
                pseudo[name] = value
            elif name == b"cookie":
                cookies.append(value)
            else:
                headers.append((name, value))
        if cookies:
            headers.append((b"cookie", b"; ".join(cookies)))
        authority = pseudo.get(b":authority") or next((v for n, v in headers if n == b"host"), b"")
        target = pseudo.get(b":path", b"/")
        length = next((v for n, v in headers if n == b"content-length"), None)
        has_body = event.stream_ended is None
        content_length = int(length) if length is not None and length.isdigit() and has_body else None
        kept = forwarded_for([(b"host", authority), *end_to_end(headers)], self.client, self.scheme)
        head = RequestHead(pseudo.get(b":method", b"GET"), target, split_host(authority), path_of(target), kept,
                           content_length, has_body, client=self.client)
        self._open(event.stream_id, head)

    def _open(self, stream_id: int, head: RequestHead) -> None:
        stream = self.streams[stream_id] = Http2Stream(self, stream_id, head)
        stream.exchange.start()

    # -- what streams send ----------------------------------------------------------------------------

    def window(self, stream_id: int) -> int:
        try:
            return int(self.h2.local_flow_control_window(stream_id))
        except (h2.exceptions.StreamClosedError, h2.exceptions.NoSuchStreamError):
            return 0

    def send_headers(self, stream_id: int, headers: Headers, *, end: bool) -> None:
        """Queued: written with what follows it from the same upstream read (`flush`)."""
        self._safely(lambda: self.h2.send_headers(stream_id, headers, end_stream=end))

    def send_data(self, stream_id: int, data: bytes, end: bool = False) -> None:
        self._safely(lambda: self.h2.send_data(stream_id, data, end_stream=end))

    def end_stream(self, stream_id: int) -> None:
        self._safely(lambda: self.h2.end_stream(stream_id))

    def reset(self, stream_id: int) -> None:
        self._safely(lambda: self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR))
        self.flush()

    def acknowledge(self, stream_id: int, size: int) -> None:
        if size:
            self._safely(lambda: self.h2.acknowledge_received_data(size, stream_id))

    def stream_done(self, stream: Http2Stream) -> None:
        if self.streams.get(stream.stream_id) is stream and stream.closed:
            del self.streams[stream.stream_id]

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def _safely(self, action: Callable[[], object]) -> None:
        """A stream the client reset or closed meanwhile is not an error of ours."""
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.NoSuchStreamError,
                                 h2.exceptions.ProtocolError):
            action()
