"""Cluster-mode endpoints in a running proxy: the ClusterEndpoints fed Services and EndpointSlices
exactly as the watches hand them over, real sockets, the real upstream.

(kube-apiserver refuses loopback addresses in EndpointSlices, so the end-to-end tests put the
upstream in a network namespace; here the index is fed directly and loopback is fine.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from adapter.interceptor.endpoints import ClusterEndpoints
from adapter.interceptor.proxy import Proxy
from adapter.interceptor.routing import HoldBounds, routes_of
from adapter.kube.endpoints import strip_service, strip_slice
from adapter.kube.resources import ENDPOINT_SLICES, SERVICES
from tests.harness.http_upstream import UpstreamProcess
from tests.harness.interceptor_process import http_scaled_object
from tests.harness.ports import free_port

pytestmark = pytest.mark.interceptor


def slice_of(*addresses: tuple[str, int]) -> dict[str, Any]:
    return strip_slice({"metadata": {"name": "web-abc", "namespace": "shop",
                                     "labels": {"kubernetes.io/service-name": "web"}},
                        "ports": [{"name": "http", "port": addresses[0][1] if addresses else 8080}],
                        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a, _ in addresses]})


@pytest.fixture
async def proxied() -> AsyncIterator[tuple[Proxy, ClusterEndpoints, str]]:
    index = ClusterEndpoints()
    proxy = Proxy(index)
    proxy.set_routes(routes_of(http_scaled_object("web", "shop", holdTimeout="5s"), HoldBounds()))
    index.listed(SERVICES, [strip_service({"metadata": {"name": "web", "namespace": "shop"},
                                           "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})])
    index.listed(ENDPOINT_SLICES, [])
    port = free_port()
    server = await proxy.listen("127.0.0.1", port)
    try:
        yield proxy, index, f"http://127.0.0.1:{port}"
    finally:
        server.close()
        proxy.close()


async def test_a_request_that_never_reached_an_endpoint_is_retried_on_another(
        proxied: tuple[Proxy, ClusterEndpoints, str], upstream: UpstreamProcess,
        caplog: pytest.LogCaptureFixture) -> None:
    _, index, url = proxied
    dead = ("127.0.0.2", upstream.port)  # nothing listens there
    two = strip_slice({"metadata": {"name": "web-abc", "namespace": "shop",
                                    "labels": {"kubernetes.io/service-name": "web"}},
                       "ports": [{"name": "http", "port": upstream.port}],
                       "endpoints": [{"addresses": [dead[0]]}, {"addresses": [upstream.host]}]})
    index.changed(ENDPOINT_SLICES, two, deleted=False)
    caplog.set_level(logging.INFO, "eventscale.interceptor.exchange")
    async with httpx.AsyncClient(base_url=url) as client:
        responses = [await client.get("/hello", headers={"connection": "close"}) for _ in range(8)]
    assert [r.status_code for r in responses] == [200] * 8
    assert any("127.0.0.2" in r.message and "trying another endpoint" in r.message for r in caplog.records)


async def test_a_held_request_goes_out_when_its_endpoint_slice_appears(
        proxied: tuple[Proxy, ClusterEndpoints, str], upstream: UpstreamProcess) -> None:
    proxy, index, url = proxied
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        request = asyncio.ensure_future(client.get("/hello"))
        while not any(c.held for c in proxy.counters.counters()):
            await asyncio.sleep(0.005)
        published = time.monotonic()
        index.changed(ENDPOINT_SLICES, slice_of(upstream.address), deleted=False)
        response = await request
        forwarded_in = time.monotonic() - published
    assert response.text == "hello" and forwarded_in < 0.5  # on the event, not on a poll
    assert [c.held for c in proxy.counters.counters()] == [0]


async def test_many_held_requests_all_go_out_and_spread_over_endpoints(
        proxied: tuple[Proxy, ClusterEndpoints, str], tmp_path: Any) -> None:
    proxy, index, url = proxied
    port = free_port()
    with UpstreamProcess("127.0.0.1", port, tmp_path / "a.log", name="a") as a, \
            UpstreamProcess("127.0.0.3", port, tmp_path / "b.log", name="b") as b:
        async with httpx.AsyncClient(base_url=url, timeout=10, limits=httpx.Limits(max_connections=200)) as client:
            requests = [asyncio.ensure_future(client.get("/hello")) for _ in range(100)]
            while sum(c.held for c in proxy.counters.counters()) < 100:
                await asyncio.sleep(0.01)
            index.changed(ENDPOINT_SLICES, slice_of(a.address, b.address), deleted=False)
            responses = await asyncio.gather(*requests)
    assert [r.status_code for r in responses] == [200] * 100
    by_replica = {name: sum(r.headers["x-upstream"] == name for r in responses) for name in ("a", "b")}
    assert min(by_replica.values()) >= 30, by_replica


async def test_an_endpoint_listed_before_it_listens_is_tried_again(
        proxied: tuple[Proxy, ClusterEndpoints, str], tmp_path: Any) -> None:
    proxy, index, url = proxied
    port = free_port()
    index.changed(ENDPOINT_SLICES, slice_of(("127.0.0.1", port)), deleted=False)  # ready, says the slice
    starting = UpstreamProcess("127.0.0.1", port, tmp_path / "late.log", start_delay=1.0).start()
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            response = await client.get("/hello")  # refused at first; no EndpointSlice change follows
        assert response.text == "hello"
        assert [c.held for c in proxy.counters.counters()] == [0]
    finally:
        starting.stop()
