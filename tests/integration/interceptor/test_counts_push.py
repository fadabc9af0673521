"""Counts from interceptors to the adapter, both real processes in standalone mode.

A request held at zero endpoints must reach the adapter's activity feed (what the controller
long-polls) within milliseconds, not at a pollingInterval; two interceptor replicas add up;
a replica that stops pushing drops out after its report's ttl; pushes are authenticated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.harness.adapter_process import AdapterProcess
from tests.harness.http_upstream import UpstreamProcess
from tests.harness.interceptor_process import InterceptorProcess, http_scaled_object, wait_for, write_objects
from tests.harness.ports import free_port

pytestmark = pytest.mark.interceptor

METRIC = "s0-http-shop-example-com"


def objects(directory: Path) -> Path:
    so = http_scaled_object("shop", hosts="shop.example.com", targetPendingRequests="10", holdTimeout="20s")
    so["spec"]["pollingInterval"] = 300  # what arrives early arrives by push, not by poll
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "shop"},
                  "spec": {"template": {"spec": {"containers": [{"name": "app"}]}}}}
    return write_objects(directory, deployment, so)


class ActivityAdapter(AdapterProcess):
    """An adapter serving its activity feed on a known internal port."""

    internal_port: int


@pytest.fixture
def adapter(tmp_path: Path) -> Iterator[ActivityAdapter]:
    internal = free_port()
    process = ActivityAdapter(objects(tmp_path / "objects"), tmp_path / "certs", tmp_path / "adapter.log",
                              extra_args=("--internal-port", str(internal)))
    process.internal_port = internal
    process.start()
    try:
        yield process
    finally:
        process.stop()


def interceptor(adapter: AdapterProcess, upstream_port: int, log: Path, *extra: str) -> InterceptorProcess:
    certs = adapter.cert_dir
    assert adapter.local_dir is not None
    return InterceptorProcess(("--local-dir", str(adapter.local_dir), "--upstream", f"127.0.0.1:{upstream_port}",
                               "--adapter-url", adapter.base_url, "--adapter-ca", str(certs / "ca.crt"),
                               "--adapter-cert", str(certs / "admin.crt"), "--adapter-key", str(certs / "admin.key"),
                               *extra), log)


def activity(adapter: ActivityAdapter, since: str | None = None, wait: float = 0) -> tuple[str, dict[str, Any]]:
    """The controller's view: the whole feed, or (with `since`) the long poll for what changed."""
    query = f"?since={since}&wait={wait}" if since else ""
    response = httpx.get(f"http://127.0.0.1:{adapter.internal_port}/activity{query}", timeout=wait + 5)
    if response.status_code == 304:
        assert since is not None
        return since, {}
    document = response.json()
    objects = document["scaledObjects"]
    return document["generation"], objects[0]["triggers"][0] if objects else {}


def metric_value(adapter: AdapterProcess) -> str:
    selector = quote("scaledobject.keda.sh/name=shop", safe="")
    with adapter.client() as client:
        body = client.get(f"/apis/external.metrics.k8s.io/v1beta1/namespaces/default/{METRIC}"
                          f"?labelSelector={selector}").json()
    return str(body["items"][0]["value"])


def held_get(proxy: InterceptorProcess) -> httpx.Response:
    return httpx.get(f"{proxy.url}/hello", headers={"host": "shop.example.com"}, timeout=30)


def test_a_held_request_reaches_the_activity_feed_at_once_and_replicas_add_up(
        adapter: ActivityAdapter, tmp_path: Path) -> None:
    upstream_port = free_port()
    with interceptor(adapter, upstream_port, tmp_path / "a.log") as a, \
            interceptor(adapter, upstream_port, tmp_path / "b.log") as b, ThreadPoolExecutor(8) as pool:
        generation, trigger = activity(adapter)
        assert (trigger["value"], trigger["active"]) == (0.0, False)
        sent = time.monotonic()
        first = pool.submit(held_get, a)
        generation, trigger = activity(adapter, generation, wait=10)  # the long poll the controller makes
        heard_after = time.monotonic() - sent
        assert (trigger["value"], trigger["active"]) == (1.0, True)
        assert heard_after < 0.5, heard_after  # pushed; the pollingInterval is 300 s
        others = [pool.submit(held_get, b) for _ in range(2)]
        wait_for(lambda: activity(adapter)[1]["value"] == 3.0, what="both interceptors' counts added up")
        assert metric_value(adapter) == "3"  # what the HPA reads

        with UpstreamProcess("127.0.0.1", upstream_port, tmp_path / "upstream.log"):
            assert [f.result(20).text for f in [first, *others]] == ["hello"] * 3
            wait_for(lambda: activity(adapter)[1]["value"] == 0.0, what="the counts back to 0")
            assert metric_value(adapter) == "0"


def test_a_replica_that_stops_pushing_drops_out(adapter: ActivityAdapter, tmp_path: Path) -> None:
    with interceptor(adapter, free_port(), tmp_path / "a.log") as a, ThreadPoolExecutor(2) as pool:
        held = pool.submit(held_get, a)
        wait_for(lambda: activity(adapter)[1]["active"], what="the held request seen")
        assert a.process is not None
        a.process.kill()  # no goodbye: only the report's ttl (3 s) ends its counts
        killed = time.monotonic()
        wait_for(lambda: not activity(adapter)[1]["active"], timeout=10, interval=0.1, what="the counts expired")
        assert 2.5 < time.monotonic() - killed < 8
        with pytest.raises(httpx.HTTPError):
            held.result(10)


def test_pushes_are_authenticated(adapter: AdapterProcess) -> None:
    body = json.dumps({"interceptor": "x", "sequence": 1, "ttl": 3, "routes": []})
    with adapter.client(identity=None) as anonymous:
        assert anonymous.post("/interceptor/counts", content=body).status_code == 401
    with adapter.client() as client:
        assert client.post("/interceptor/counts", content=body).status_code == 200
        bad = client.post("/interceptor/counts", content=b'{"interceptor": "x"}')
        assert bad.status_code == 400 and "invalid interceptor counts" in bad.json()["message"]
