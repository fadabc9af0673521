"""Endpoints from Services and EndpointSlices (as the watches hand them over), and the counters."""

from __future__ import annotations

import asyncio
from typing import Any

from adapter.interceptor.counting import Counters, RouteCounter
from adapter.interceptor.endpoints import ClusterEndpoints
from adapter.interceptor.routing import HoldBounds, Route
from adapter.kube.endpoints import strip_service, strip_slice
from adapter.kube.resources import ENDPOINT_SLICES, SERVICES
from scalers.http.http_trigger_config import RouteKey

KEY = RouteKey("shop", "web", (), ("/",))


def route(port: str = "80", service: str = "web", window: float = 10.0, granularity: float = 1.0) -> Route:
    return Route(KEY, ("shop", service), port, HoldBounds(), window, granularity)


def service(ports: list[dict[str, Any]], name: str = "web") -> dict[str, Any]:
    return strip_service({"metadata": {"name": name, "namespace": "shop"}, "spec": {"ports": ports}})


def endpoint_slice(name: str, ports: list[dict[str, Any]], *endpoints: tuple[str, bool | None],
                   service_name: str = "web") -> dict[str, Any]:
    return strip_slice({
        "metadata": {"name": name, "namespace": "shop", "labels": {"kubernetes.io/service-name": service_name}},
        "ports": ports,
        "endpoints": [{"addresses": [a], **({"conditions": {"ready": r}} if r is not None else {})}
                      for a, r in endpoints],
    })


def test_ports_resolve_by_number_and_name_and_only_ready_endpoints_count() -> None:
    index = ClusterEndpoints()
    index.listed(SERVICES, [service([{"name": "http", "port": 80, "targetPort": 8080},
                                     {"name": "admin", "port": 9000, "targetPort": "admin"}])])
    index.listed(ENDPOINT_SLICES, [
        endpoint_slice("web-a", [{"name": "http", "port": 8080}, {"name": "admin", "port": 9901}],
                       ("10.1.0.1", True), ("10.1.0.2", False), ("10.1.0.3", None)),
        endpoint_slice("web-b", [{"name": "http", "port": 8080}], ("10.1.0.4", True)),
        endpoint_slice("other", [{"name": "http", "port": 1}], ("10.9.9.9", True), service_name="other"),
    ])
    assert index.ready(route("80")) == [("10.1.0.1", 8080), ("10.1.0.3", 8080), ("10.1.0.4", 8080)]
    assert index.ready(route("admin")) == [("10.1.0.1", 9901), ("10.1.0.3", 9901)]
    assert index.ready(route("81")) == [] and index.ready(route("80", service="missing")) == []


async def test_changes_wake_waiters_and_refresh_the_cache() -> None:
    index = ClusterEndpoints()
    index.listed(SERVICES, [service([{"name": "", "port": 80}])])
    index.listed(ENDPOINT_SLICES, [])
    assert index.ready(route()) == []
    waiter = asyncio.ensure_future(index.wait_change(("shop", "web"), 5))
    await asyncio.sleep(0)
    index.changed(ENDPOINT_SLICES, endpoint_slice("web-a", [{"name": "", "port": 8080}], ("10.1.0.1", True)),
                  deleted=False)
    await asyncio.wait_for(waiter, 1)
    assert index.ready(route()) == [("10.1.0.1", 8080)]
    index.changed(ENDPOINT_SLICES, endpoint_slice("web-a", [], ), deleted=True)
    assert index.ready(route()) == []


def test_rate_over_the_window_and_counters_that_survive_a_route_update() -> None:
    now = [100.0]
    counter = RouteCounter(route(window=10.0, granularity=1.0), clock=lambda: now[0])
    for second in range(20):  # 3 arrivals a second for 20 s
        now[0] = 100.0 + second
        for _ in range(3):
            counter.begin()
            counter.end()
    assert counter.rate() == 3.0  # only the last 10 s count
    now[0] += 30
    assert counter.rate() == 0.0 and counter.total == 60

    counters = Counters(clock=lambda: now[0])
    counters.set_routes([route()])
    kept = counters.of(route())
    kept.begin()
    assert kept.hold() and not kept.hold()  # the first held request is the one that says so
    counters.set_routes([route(port="81")])  # same key and window: the same counter
    assert counters.of(route(port="81")) is kept
    report = counters.report("i-1", 7, 3.0)
    assert [(c.route, c.pending, c.held) for c in report.routes] == [(KEY, 1, 2)]
    counters.set_routes([route(window=30.0)])  # a new window starts counting anew
    assert counters.of(route(window=30.0)) is not kept
