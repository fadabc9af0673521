"""The interceptor's proxy: listeners, and what every connection shares.

`Proxy` holds the route table, the per-route counters, the endpoints and the upstream pool.
A plain listener speaks HTTP/1.1 and h2c (prior knowledge or upgrade); a TLS listener offers
h2 and http/1.1 by ALPN. Routes and endpoints are replaced by their sources between requests
(everything runs on one event loop), so a request sees one consistent table.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterable
from typing import Any

from adapter.interceptor.counting import Counters
from adapter.interceptor.endpoints import Endpoints
from adapter.interceptor.http1 import Http1Connection
from adapter.interceptor.routing import Route, RouteTable
from adapter.interceptor.upstream import UpstreamPool

HeldListener = Callable[[Route], None]


class Proxy:
    def __init__(self, endpoints: Endpoints, *, keep_alive_timeout: float = 75.0,
                 pool: UpstreamPool | None = None) -> None:
        self.endpoints = endpoints
        self.keep_alive_timeout = keep_alive_timeout
        self.pool = pool or UpstreamPool()
        self.routes = RouteTable()
        self.counters = Counters()
        self.connections: set[Any] = set()
        self.held_listeners: list[HeldListener] = []

    def set_routes(self, routes: Iterable[Route]) -> None:
        self.routes = RouteTable(routes)
        self.counters.set_routes(self.routes.routes)

    def first_held(self, route: Route) -> None:
        """A route's first request began to wait for an endpoint: its counts must go out now."""
        for listener in self.held_listeners:
            listener(route)

    async def listen(self, host: str, port: int, context: ssl.SSLContext | None = None) -> asyncio.Server:
        scheme = b"https" if context is not None else b"http"
        loop = asyncio.get_running_loop()
        return await loop.create_server(lambda: Http1Connection(self, scheme), host, port, ssl=context,
                                        backlog=1024, reuse_address=True)

    def close(self) -> None:
        for connection in list(self.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.close()
        self.pool.close()


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """TLS for the client side, h2 preferred to http/1.1 by ALPN."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context
