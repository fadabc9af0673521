"""Socket settings shared by the processes' own HTTP clients (the interceptor's upstreams, delegation)."""

from __future__ import annotations

import asyncio
import contextlib
import socket


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Small writes (an event, a head, a request) go out at once, not when the peer's delayed ACK comes."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
