"""The road not taken, measured: the same proxying on an ASGI stack, for `make bench`.

    python -m tests.bench.asgi_proxy --port 8081 --upstream http://127.0.0.1:8080

A minimal streaming reverse proxy written the obvious ASGI way: uvicorn (httptools, uvloop)
serves the client side, one shared aiohttp `ClientSession` (keep-alive pool) the upstream side,
bodies streamed both ways. aiohttp's client, not httpx's: on this machine one httpx
`AsyncClient` request costs about 1.5 ms against 0.4 ms for aiohttp's, which would make the
comparison unfair to the ASGI design. It routes nothing and counts nothing, so it is a floor for
that design; the interceptor's benchmark prints its throughput beside the interceptor's.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import uvicorn

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"}


def build_app(upstream: str) -> Callable[..., Awaitable[None]]:
    sessions: list[aiohttp.ClientSession] = []

    def session() -> aiohttp.ClientSession:  # made on the server's loop, at the first request
        if not sessions:
            sessions.append(aiohttp.ClientSession(upstream, connector=aiohttp.TCPConnector(limit=256)))
        return sessions[0]

    async def app(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                  send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            return

        async def body() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                yield message.get("body", b"")
                if not message.get("more_body"):
                    return

        headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k.decode().lower() not in HOP]
        target = scope["path"] + (("?" + scope["query_string"].decode()) if scope["query_string"] else "")
        has_body = scope["method"] not in ("GET", "HEAD")
        async with session().request(scope["method"], target, headers=headers, data=body() if has_body else None,
                                     auto_decompress=False) as response:
            out = [(k, v) for k, v in response.raw_headers if k.decode().lower() not in HOP]
            await send({"type": "http.response.start", "status": response.status, "headers": out})
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    uvicorn.run(build_app(args.upstream), host="127.0.0.1", port=args.port, http="httptools", loop="uvloop",
                lifespan="off", access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
