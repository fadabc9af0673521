"""One request through the interceptor: route, count, hold while no endpoint is ready, forward.

    route = routes.match(host, path)          no route: 404
    counter.begin()                           pending + 1, one arrival in the rate window
    address = ready endpoint, else hold:      held + 1 (the first held request pushes counts
                                              at once); 503 + Retry-After past the route's
                                              limit; 504 past its hold timeout
    connect (pooled)                          refused: the request never reached it, so it
                                              tries another ready endpoint; when every one
                                              refused, it is held and tries them again at the
                                              next change or after a pause (50 ms doubling to
                                              1 s): a pod listed ready before it listens, or
                                              gone before the EndpointSlice says so; 502 if
                                              they still refuse at the hold timeout
    send head, then the body as it arrives    a reused connection that closes before any
    relay the response as it arrives          answer is retried once on a fresh connection
                                              (bodiless requests only)
    counter.end()

Until an upstream connection is attached the request body is kept (at most `BUFFER_LIMIT`
bytes, then the client is paused), so a held upload costs one socket buffer, not its size. An
upstream that fails after the response started is shown to the client as the failure it is
(the client connection or stream is reset), never as a complete answer; one that fails before
answering gives a 502 naming the error.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
from typing import TYPE_CHECKING, Protocol

from adapter.interceptor.messages import LocalAnswer, RequestHead, ResponseHead
from adapter.interceptor.upstream import UpstreamConnection

if TYPE_CHECKING:
    from adapter.interceptor.counting import RouteCounter
    from adapter.interceptor.proxy import Proxy
    from adapter.interceptor.routing import Route
    from adapter.interceptor.upstream import Address

log = logging.getLogger("eventscale.interceptor.exchange")

BUFFER_LIMIT = 64 * 1024
REFUSED_PAUSE = 0.05  # first pause before endpoints that refused are tried again


class Outcome(enum.Enum):
    DONE = "done"
    RETRY = "retry"  # the request never reached the upstream: it may be sent again
    FAILED = "failed"


class Downstream(Protocol):
    """The client side of one request: an HTTP/1.1 connection or an HTTP/2 stream."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def send_continue(self) -> None: ...

    def start_response(self, head: ResponseHead) -> None: ...

    def send_data(self, data: bytes) -> None: ...

    def flush(self) -> None:
        """The upstream's read is handled: write what it produced."""

    def end_response(self) -> None: ...

    def reset(self) -> None:
        """The response cannot be completed: abort it where the client sees that it is cut."""

    def answer(self, answer: LocalAnswer) -> None: ...

    def start_tunnel(self, head: ResponseHead, upstream: UpstreamConnection, rest: bytes,
                     closed: asyncio.Future[Outcome]) -> None:
        """After a 101: relay bytes both ways until either side closes, then set `closed`."""


class Exchange:
    def __init__(self, proxy: Proxy, downstream: Downstream, head: RequestHead) -> None:
        self.proxy, self.downstream, self.head = proxy, downstream, head
        self.upstream: UpstreamConnection | None = None
        self.task: asyncio.Task[None] | None = None
        self.aborted = False
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._request_done = not head.has_body
        self._paused_for_buffer = False
        self._done: asyncio.Future[Outcome] | None = None  # awaited by `run`, set by `_finish`
        self._counter: RouteCounter | None = None  # counting this request until `_end`

    def start(self) -> None:
        """Route and count; forward at once over an idle kept-alive connection when there is one
        (no task: the common case costs callbacks only), else in a task that may hold and connect."""
        route = self.proxy.routes.match(self.head.host, self.head.path)
        if route is None:
            self.downstream.answer(LocalAnswer(404, f"no route for host {self.head.host!r} path {self.head.path!r}"))
            return
        self._counter = counter = self.proxy.counters.of(route)
        counter.begin()
        address = self._pick(route, counter, [])
        connection = self.proxy.pool.take_idle(address) if address is not None else None
        if connection is not None:
            self._attach(connection)
        else:
            self.task = asyncio.get_running_loop().create_task(self.run(route, counter))

    async def run(self, route: Route, counter: RouteCounter, retried: bool = False) -> None:
        try:
            await self._forward(route, counter, retried)
        except LocalAnswer as answer:
            if answer.status >= 500:
                log.info("route=%s status=%d %s", route, answer.status, answer.message)
            if not self.aborted:
                self.downstream.answer(answer)
        finally:
            self._end()

    def _end(self) -> None:
        counter, self._counter = self._counter, None
        if counter is not None:
            counter.end()

    # -- choosing and reaching an endpoint ---------------------------------------------------------

    async def _forward(self, route: Route, counter: RouteCounter, retried: bool) -> None:
        loop = asyncio.get_running_loop()
        deadline: float | None = None  # set when this request first has to wait
        refused: list[Address] = []  # endpoints that refused this request since the last change
        error, pause = "", REFUSED_PAUSE
        while True:
            address = self._pick(route, counter, refused)
            if address is None:
                deadline = deadline or loop.time() + route.bounds.timeout
                # endpoints that refused are tried again after a pause (doubling), or at a change
                await self._hold(route, counter, deadline, error, pause if refused else None)
                if refused:
                    pause = min(pause * 2, 1.0)
                refused.clear()
                continue
            try:
                connection = await self.proxy.pool.acquire(address, fresh=retried)
            except (OSError, TimeoutError) as exc:
                error = f"{address[0]}:{address[1]}: {str(exc) or type(exc).__name__}"
                self.proxy.endpoints.failed(route, address)
                refused.append(address)
                log.info("route=%s connect failed (%s); trying %s", route, error,
                         "another endpoint" if self._pick(route, counter, refused, turn=False) else "when one is ready")
                continue
            outcome = await self._exchange_with(connection)
            if outcome is not Outcome.RETRY:
                return
            if retried:
                raise LocalAnswer(502, f"the upstream of {route} closed the connection twice before answering")
            retried = True

    async def _hold(self, route: Route, counter: RouteCounter, deadline: float, error: str,
                    pause: float | None) -> None:
        """Wait until the route's endpoints change (or `pause` seconds pass); 503 past the route's
        limit, 504 (502 when its endpoints refused connections) once `deadline` passes."""
        if counter.held >= route.bounds.limit:
            retry_after = str(max(1, math.ceil(min(route.bounds.timeout, 5.0)))).encode()
            raise LocalAnswer(503, f"{route} is starting: {counter.held} requests already wait for it",
                              ((b"retry-after", retry_after),))
        if counter.hold():
            self.proxy.first_held(route)
        loop = asyncio.get_running_loop()
        try:
            remaining = deadline - loop.time()
            if remaining > 0:
                await self.proxy.endpoints.wait_change(route.service, min(remaining, pause or remaining))
            if loop.time() >= deadline and not self.proxy.endpoints.ready(route):
                raise LocalAnswer(504, f"{route} has no ready endpoint after {route.bounds.timeout:g}s")
            if loop.time() >= deadline:
                raise LocalAnswer(502, f"the endpoints of {route} refused connections for "
                                       f"{route.bounds.timeout:g}s (last: {error})")
        finally:
            counter.release()

    def _pick(self, route: Route, counter: RouteCounter, refused: list[Address], turn: bool = True) -> Address | None:
        candidates = [a for a in self.proxy.endpoints.ready(route) if a not in refused]
        if not candidates:
            return None
        if turn:
            counter.turn += 1
        return candidates[counter.turn % len(candidates)]

    async def _exchange_with(self, connection: UpstreamConnection) -> Outcome:
        self._done = asyncio.get_running_loop().create_future()
        self._attach(connection)
        outcome = await self._done
        self._done = None
        return outcome

    def _attach(self, connection: UpstreamConnection) -> None:
        """Send the request on `connection`: its head, what of the body arrived, the rest as it comes."""
        self.upstream = connection
        connection.start(self)
        for chunk in self._buffer:
            connection.send_data(chunk)
        self._buffer, self._buffered = [], 0
        if self._request_done:
            connection.send_end()
        elif self.head.expect_continue:
            self.downstream.send_continue()
        if self._paused_for_buffer:
            self._paused_for_buffer = False
            self.downstream.resume_reading()

    def _finish(self, outcome: Outcome) -> None:
        if self._done is not None:  # `run` awaits the outcome
            if not self._done.done():
                self._done.set_result(outcome)
        elif self.task is None:  # forwarded at once by `start`
            if outcome is Outcome.RETRY and not self.aborted and self._counter is not None:
                route = self._counter.route
                self.task = asyncio.get_running_loop().create_task(self.run(route, self._counter, retried=True))
            else:
                self._end()

    # -- from the client side ----------------------------------------------------------------------

    def request_data(self, data: bytes) -> None:
        if self.upstream is not None and not self.upstream.closed:
            self.upstream.send_data(data)
            return
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered > BUFFER_LIMIT and not self._paused_for_buffer:
            self._paused_for_buffer = True
            self.downstream.pause_reading()

    def request_end(self) -> None:
        self._request_done = True
        if self.upstream is not None and not self.upstream.closed:
            self.upstream.send_end()

    def abort(self) -> None:
        """The client went away: drop the upstream connection (it is mid-request) and stop waiting."""
        if self.aborted:
            return
        self.aborted = True
        upstream, self.upstream = self.upstream, None
        if upstream is not None and upstream.exchange is self:
            upstream.close()
        self._finish(Outcome.FAILED)
        if self.task is not None and not self.task.done() and self._done is None:
            self.task.cancel()  # still holding or connecting: nothing to wait for

    def pause_response(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_response(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()

    # -- from the upstream connection --------------------------------------------------------------

    def pause_request(self) -> None:
        self.downstream.pause_reading()

    def resume_request(self) -> None:
        self.downstream.resume_reading()

    def response_start(self, head: ResponseHead) -> None:
        if not self.aborted:
            self.downstream.start_response(head)

    def response_data(self, data: bytes) -> None:
        if not self.aborted:
            self.downstream.send_data(data)

    def response_flush(self) -> None:
        if not self.aborted:
            self.downstream.flush()

    def response_end(self) -> None:
        self.upstream = None
        if not self.aborted:
            self.downstream.end_response()
        self._finish(Outcome.DONE)

    def upstream_lost(self, error: str) -> None:
        connection, self.upstream = self.upstream, None
        if self.aborted:
            return
        if connection is not None and connection.response_started:
            log.info("upstream=%s:%d failed mid-response: %s", *connection.address, error)
            self.downstream.reset()
            self._finish(Outcome.FAILED)
        elif connection is not None and connection.reused and not self.head.has_body:
            self._finish(Outcome.RETRY)
        else:
            log.info("upstream=%s:%d failed before answering: %s", *(connection.address if connection else ("?", 0)),
                     error)
            self.downstream.answer(LocalAnswer(502, f"the upstream failed before answering: {error}"))
            self._finish(Outcome.FAILED)

    def upgraded(self, head: ResponseHead, rest: bytes) -> None:
        connection = self.upstream
        if connection is None or self.aborted:
            return
        self.upstream = None
        closed = self._done
        if closed is None:  # forwarded at once by `start`: the tunnel's end ends the count
            closed = asyncio.get_running_loop().create_future()
            closed.add_done_callback(lambda _: self._end())
        self.downstream.start_tunnel(head, connection, rest, closed)

