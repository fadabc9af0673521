"""The interceptor's own small listener: `/healthz`, `/readyz` and `/metrics`, apart from traffic.

Kept off the proxy's port so that probes and scrapes are never routed (no host or path can be
taken from a workload) and the proxy's ports carry nothing but requests for workloads. Requests
are read just far enough to know the path; the answers are a few hundred bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from adapter.interceptor.proxy import Proxy
from adapter.interceptor.push import CountsPusher


def exposition(proxy: Proxy, pusher: CountsPusher | None) -> str:
    lines = ["# HELP eventscale_interceptor_pending_requests Requests held or forwarded, not yet answered.",
             "# TYPE eventscale_interceptor_pending_requests gauge"]
    counters = sorted(proxy.counters.counters(), key=lambda c: str(c.route))
    labels = {id(c): f'namespace="{c.route.key.namespace}",scaledobject="{c.route.key.scaled_object}"'
              for c in counters}
    lines += [f"eventscale_interceptor_pending_requests{{{labels[id(c)]}}} {c.pending}" for c in counters]
    lines += ["# HELP eventscale_interceptor_held_requests Requests waiting for a ready endpoint.",
              "# TYPE eventscale_interceptor_held_requests gauge"]
    lines += [f"eventscale_interceptor_held_requests{{{labels[id(c)]}}} {c.held}" for c in counters]
    lines += ["# HELP eventscale_interceptor_requests_total Requests routed since start.",
              "# TYPE eventscale_interceptor_requests_total counter"]
    lines += [f"eventscale_interceptor_requests_total{{{labels[id(c)]}}} {c.total}" for c in counters]
    lines += ["# HELP eventscale_interceptor_upstream_connects_total Connections opened to upstreams.",
              "# TYPE eventscale_interceptor_upstream_connects_total counter",
              f"eventscale_interceptor_upstream_connects_total {proxy.pool.connects}"]
    if pusher is not None:
        lines += ["# HELP eventscale_interceptor_pushes_total Count reports sent to adapters, and failed.",
                  "# TYPE eventscale_interceptor_pushes_total counter",
                  f"eventscale_interceptor_pushes_total {pusher.pushes}",
                  "# TYPE eventscale_interceptor_push_failures_total counter",
                  f"eventscale_interceptor_push_failures_total {pusher.failures}",
                  "# HELP eventscale_interceptor_urgent_push_seconds The last push made for a held request: "
                  "from holding it to every adapter's answer.",
                  "# TYPE eventscale_interceptor_urgent_push_seconds gauge",
                  f"eventscale_interceptor_urgent_push_seconds {pusher.urgent_seconds:.6f}"]
    return "\n".join(lines) + "\n"


class AdminListener:
    def __init__(self, proxy: Proxy, pusher: CountsPusher | None, ready: Callable[[], bool]) -> None:
        self.proxy, self.pusher, self.ready = proxy, pusher, ready

    async def listen(self, host: str, port: int) -> asyncio.Server:
        return await asyncio.start_server(self._serve, host, port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
            parts = head.split(b" ", 2)
            path = parts[1].split(b"?")[0].decode("latin-1") if len(parts) > 1 else ""
            status, body, kind = self._answer(path)
            writer.write(b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
                         % (status, b"OK" if status == 200 else b"Error", kind, len(body), body))
            await writer.drain()
        writer.close()

    def _answer(self, path: str) -> tuple[int, bytes, bytes]:
        text = b"text/plain; charset=utf-8"
        if path in ("/healthz", "/livez"):
            return 200, b"ok", text
        if path == "/readyz":
            return (200, b"ok", text) if self.ready() else (503, b"routes not synced yet", text)
        if path == "/metrics":
            return 200, exposition(self.proxy, self.pusher).encode(), b"text/plain; version=0.0.4; charset=utf-8"
        return 404, b"not found", text
