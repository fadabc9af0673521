"""20,000 requests held and released, in rounds, and the interceptor's memory stays flat.

Each round: the upstream is down, 1,000 clients send a request each (all held), the upstream
comes up (an aiohttp server in this process, on the interceptor's configured address), every
request is answered, the upstream goes down again. The interceptor's resident memory must stop
growing: flat over the last rounds, and not far above where it was after the second (the first
rounds warm up allocator pools, which grow in steps for about the first 12,000 requests; what
"flat" and "not far" allow is said at the assertion).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiohttp import web

from tests.harness.http_upstream import build_app
from tests.harness.interceptor_process import InterceptorProcess, http_scaled_object, write_objects
from tests.harness.ports import free_port

pytestmark = pytest.mark.interceptor

ROUNDS, PER_ROUND = 20, 1000
LAST = 6  # rounds over which memory must be flat
REQUEST = b"GET /hello HTTP/1.1\r\nHost: wake.example.com\r\nConnection: close\r\n\r\n"


async def one_request(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(REQUEST)
        return await asyncio.wait_for(reader.read(-1), 60)
    finally:
        writer.close()


async def held_count(proxy: InterceptorProcess) -> float:
    return await asyncio.to_thread(proxy.gauge, "held_requests", "default/wake")


async def one_round(proxy: InterceptorProcess, upstream_port: int) -> None:
    requests = [asyncio.ensure_future(one_request(proxy.port)) for _ in range(PER_ROUND)]
    deadline = time.monotonic() + 60
    while await held_count(proxy) < PER_ROUND:
        assert time.monotonic() < deadline, f"only {await held_count(proxy)} held"
        assert not any(r.done() for r in requests), "a request was answered while the upstream was down"
        await asyncio.sleep(0.05)
    runner = web.AppRunner(build_app("wake"), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", upstream_port).start()
    try:
        answers = await asyncio.gather(*requests)
    finally:
        await runner.cleanup()
    assert all(a.startswith(b"HTTP/1.1 200") and a.endswith(b"hello") for a in answers)
    assert await held_count(proxy) == 0


async def test_memory_stays_flat_over_10000_held_and_released_requests(tmp_path: Path) -> None:
    upstream_port = free_port()
    objects = write_objects(tmp_path / "objects", http_scaled_object("wake", hosts="wake.example.com",
                                                                     holdLimit="5000", holdTimeout="60s"))
    with InterceptorProcess(("--local-dir", str(objects), "--upstream", f"127.0.0.1:{upstream_port}"),
                            tmp_path / "interceptor.log") as proxy:
        rss = []
        for _ in range(ROUNDS):
            await one_round(proxy, upstream_port)
            rss.append(proxy.rss_bytes())
        assert proxy.gauge("requests_total", "default/wake") == ROUNDS * PER_ROUND
    # A held request is a connection, a parser, an exchange, a task and their buffers: several KiB. Keeping
    # any of that per request would grow the last 5,000 requests by 20 MiB or more and the 19,000 after the
    # second round by over 50; the allocator's own steps were seen to add up to 16 MiB over the first
    # 12,000 requests, and up to 3.6 MiB more over the last 5,000 on a busy machine: 8 MiB there still
    # catches anything kept per request (1.7 KiB each).
    by_round = [round(r / 2**20, 1) for r in rss]
    assert rss[-1] - rss[-LAST] < 8 << 20, f"still growing; resident memory by round (MiB): {by_round}"
    assert rss[-1] - rss[1] < 24 << 20, f"resident memory by round (MiB): {by_round}"
