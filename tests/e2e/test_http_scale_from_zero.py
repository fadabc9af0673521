"""HTTP scale from zero on the real control plane, with the real HPA controller.

Two adapter + controller pods (`controller_stack`), the interceptor in cluster mode as its
ServiceAccount (watching ScaledObjects, Services and EndpointSlices; pushing to both adapters
with its token, authorized by SubjectAccessReview), and a played kubelet that starts the
workload in a network namespace when its Deployment leaves 0 and publishes its EndpointSlice.

The story: a Deployment at 0 and one ScaledObject with an `http` trigger and a `redis` trigger;
the first request waits and succeeds; the HPA scales on requests in flight; idle past the
cooldown the Deployment goes back to 0; the next request wakes it again; 100 concurrent first
requests all succeed. And an HTTPScaledObject written for KEDA's http-add-on takes the same path.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster_adapter import apply
from controller_stack import ReplicaLog, Stack, deployment, get, scaled_object, wait_condition
from controlplane import wait_for
from http_stack import PlayedKubelet, cluster_interceptor, service

from tests.harness.interceptor_process import InterceptorProcess
from tests.harness.netns import NetworkNamespace
from tests.harness.redis_servers import RedisServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def interceptor(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InterceptorProcess]:
    work = tmp_path_factory.mktemp("interceptor")
    with cluster_interceptor(stack.cp, work, [pod.adapter for pod in stack.pods], "--hold-timeout", "30") as running:
        yield running


@pytest.fixture(scope="module")
def netns() -> Iterator[NetworkNamespace]:
    with NetworkNamespace() as created:
        yield created


def http_trigger(host: str, **metadata: str) -> dict[str, Any]:
    return {"type": "http", "metadata": {"hosts": host, "port": "80", "targetPendingRequests": "10", **metadata}}


async def get_all(proxy: InterceptorProcess, host: str, path: str, count: int,
                  timeout: float = 60) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=proxy.url, headers={"host": host}, timeout=timeout, limits=limits) as client:
        return list(await asyncio.gather(*(client.get(path) for _ in range(count))))


def first_request(proxy: InterceptorProcess, host: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.get(f"{proxy.url}/echo/first", headers={"host": host}, timeout=60)
    return response, time.monotonic() - started


def test_scale_from_zero_story(stack: Stack, interceptor: InterceptorProcess, netns: NetworkNamespace,
                               redis: RedisServer, namespace: str, tmp_path: Path) -> None:
    cp, ns, host = stack.cp, namespace, "story.example.com"
    redis_trigger = {"type": "redis", "metadata": {"address": redis.address, "listName": f"{ns}-orders",
                                                   "listLength": "5"}}
    apply(cp, ns, deployment("web", 0), service("web"), scaled_object("web", [http_trigger(host), redis_trigger]))
    wait_condition(cp, ns, "web", "Ready", ("True", "ScaledObjectReady"))
    hpa = get(cp, "hpa", ns, "keda-hpa-web") or {}
    assert [m["external"]["metric"]["name"] for m in hpa["spec"]["metrics"]] == [
        "s0-http-story-example-com", f"s1-redis-{ns}-orders"]
    kubelet = PlayedKubelet(cp, ns, "web", netns, tmp_path / "web.log").start()
    log = ReplicaLog(cp, ns, "web")
    try:
        log.seen(0)  # the watch is under way before anything happens
        # the first request waits for the workload and succeeds
        response, took = first_request(interceptor, host)
        assert response.status_code == 200 and response.json()["path"] == "/echo/first", response.text
        assert response.headers["x-upstream"] == "web" and took < 15
        assert log.values[:2] == [0, 1]

        # the HPA scales on requests in flight: 40 slow requests at 10 per replica -> 4 replicas
        slow = asyncio.run(_slow_burst(interceptor, host, log))
        assert [r.status_code for r in slow] == [200] * 40
        assert 4 in log.values

        # idle past the cooldown: back to 0, and the workload is stopped
        idle_since = time.time()
        log.seen(0, after=idle_since, timeout=60)
        wait_for(lambda: kubelet.seen("stopped", after=idle_since), timeout=20, what="the workload stopped")

        # the next request wakes it again
        woke_at = time.time()
        response, took = first_request(interceptor, host)
        assert response.status_code == 200 and took < 15, (response.text, kubelet.events, log.changes)
        log.seen(1, after=woke_at, timeout=5)
        log.seen(0, after=time.time(), timeout=60)
    finally:
        log.stop()
        kubelet.stop()


async def _slow_burst(proxy: InterceptorProcess, host: str, log: ReplicaLog) -> list[httpx.Response]:
    burst = asyncio.ensure_future(get_all(proxy, host, "/slow?seconds=12", 40))
    deadline = time.monotonic() + 30
    while 4 not in log.values and time.monotonic() < deadline and not burst.done():
        await asyncio.sleep(0.2)
    return await burst


def test_a_hundred_concurrent_first_requests_all_succeed(stack: Stack, interceptor: InterceptorProcess,
                                                         netns: NetworkNamespace, namespace: str,
                                                         tmp_path: Path) -> None:
    cp, ns, host = stack.cp, namespace, "crowd.example.com"
    apply(cp, ns, deployment("crowd", 0), service("crowd"),
          scaled_object("crowd", [http_trigger(host, targetPendingRequests="100")]))
    wait_condition(cp, ns, "crowd", "Ready", ("True", "ScaledObjectReady"))
    kubelet = PlayedKubelet(cp, ns, "crowd", netns, tmp_path / "crowd.log").start()
    try:
        responses = asyncio.run(get_all(interceptor, host, "/hello", 100))
        assert [r.status_code for r in responses] == [200] * 100
        assert {r.text for r in responses} == {"hello"}
    finally:
        kubelet.stop()


def test_an_http_scaled_object_takes_the_same_path(stack: Stack, interceptor: InterceptorProcess,
                                                   netns: NetworkNamespace, namespace: str, tmp_path: Path) -> None:
    cp, ns, host = stack.cp, namespace, "addon.example.com"
    hso = {"apiVersion": "http.keda.sh/v1alpha1", "kind": "HTTPScaledObject", "metadata": {"name": "addon"},
           "spec": {"hosts": [host], "scaleTargetRef": {"name": "addon", "kind": "Deployment", "apiVersion": "apps/v1",
                                                        "service": "addon", "port": 80},
                    "replicas": {"min": 0, "max": 3}, "scaledownPeriod": 5,
                    "scalingMetric": {"concurrency": {"targetValue": 10}}}}
    apply(cp, ns, deployment("addon", 0), service("addon"), hso)
    made = wait_for(lambda: get(cp, "scaledobject.keda.sh", ns, "addon"), timeout=20, what="its ScaledObject")
    owner = made["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("HTTPScaledObject", "addon", True)
    wait_condition(cp, ns, "addon", "Ready", ("True", "ScaledObjectReady"))
    wait_condition(cp, ns, "addon", "Ready", ("True", "ScaledObjectCreated"), resource="httpscaledobject.http.keda.sh")
    kubelet = PlayedKubelet(cp, ns, "addon", netns, tmp_path / "addon.log").start()
    try:
        response, _ = first_request(interceptor, host)
        assert response.status_code == 200 and response.headers["x-upstream"] == "addon"
    finally:
        kubelet.stop()
    cp.kubectl("delete", "httpscaledobject.http.keda.sh", "addon", "-n", ns)
    wait_for(lambda: get(cp, "scaledobject.keda.sh", ns, "addon") is None, timeout=30,
             what="its ScaledObject collected with it")
