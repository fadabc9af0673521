"""Interceptor benchmark: proxy overhead, and cold start from zero on the real control plane.

* Overhead: the Go load generator asks an upstream directly and through the interceptor
  (standalone mode, one route, its own process on uvloop), in one run, alternating, `ROUNDS`
  times (medians); beside them the same proxying written the ASGI way (`asgi_proxy`: uvicorn +
  aiohttp's client), the design the interceptor was measured against. Two upstreams: the Go hello server
  (the interceptor's own ceiling: the upstream costs almost nothing) and the aiohttp test
  upstream (a Python application). At 1 and 64 connections as fast as answered (goal: >= 0.5x
  the direct throughput), and at a fixed 1,000 requests/s over 16 connections (goal: p99
  added latency <= 2 ms).
* Cold start: two adapter + controller pods, the interceptor in cluster mode and a played
  kubelet (`tests/e2e/http_stack.py`, the workload process already running) on the e2e control
  plane. For each run a fresh Deployment at 0 with an `http` trigger gets one request; times:
  the interceptor's urgent push answered by both adapters (its /metrics), the adapter's
  activity feed showing the trigger active (a long poll, as the controller makes it), the
  Deployment leaving 0, the EndpointSlice published, the response's first byte. The
  interceptor's own share is push + (EndpointSlice -> first byte); goal < 50 ms. Runs with the
  workload ready at once, and ready 1 s after its scale-up.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests" / "cluster"), str(ROOT / "tests" / "e2e")]

from tests.bench.loadgen import build_loadgen  # noqa: E402
from tests.harness.http_upstream import UpstreamProcess  # noqa: E402
from tests.harness.interceptor_process import InterceptorProcess, http_scaled_object, write_objects  # noqa: E402
from tests.harness.ports import free_port  # noqa: E402

ROUNDS = 2
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
SCENARIOS = [("max", 1, 0.0), ("max", 64, 0.0), ("1000/s", 16, 1000.0)]
COLD_RUNS = 5


def load(loadgen: Path, url: str, concurrency: int, rate: float) -> dict[str, Any]:
    command = [str(loadgen), "-c", str(concurrency), "-d", f"{SECONDS}s", "-rate", str(rate)]
    result = subprocess.run(command, input=url, capture_output=True, text=True, check=True)
    return dict(json.loads(result.stdout))


@contextmanager
def go_upstream(loadgen: Path, work: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    process = subprocess.Popen([str(loadgen), "-serve", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                httpx.get(f"http://127.0.0.1:{port}/hello", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield "127.0.0.1", port
    finally:
        process.terminate()
        process.wait()


@contextmanager
def python_upstream(loadgen: Path, work: Path) -> Iterator[tuple[str, int]]:
    with UpstreamProcess("127.0.0.1", free_port(), work / "upstream.log") as upstream:
        yield upstream.address


@contextmanager
def asgi_proxy(upstream: str) -> Iterator[int]:
    """The ASGI design (`asgi_proxy`: uvicorn + aiohttp's client) in front of the same upstream."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "tests.bench.asgi_proxy", "--port", str(port), "--upstream",
                                upstream], cwd=ROOT)
    try:
        for _ in range(400):
            try:
                httpx.get(f"http://127.0.0.1:{port}/hello", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait()


def overhead() -> dict[str, Any]:
    loadgen = build_loadgen()
    summary: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, upstream in (("go", go_upstream), ("aiohttp", python_upstream)):
            with upstream(loadgen, work) as (host, port):
                objects = write_objects(work / f"objects-{name}", http_scaled_object("bench"))
                with InterceptorProcess(("--local-dir", str(objects), "--upstream", f"{host}:{port}"),
                                        work / f"interceptor-{name}.log") as proxy, \
                        asgi_proxy(f"http://{host}:{port}") as asgi_port:
                    urls = {"direct": f"http://{host}:{port}/hello", "interceptor": f"{proxy.url}/hello",
                            "asgi": f"http://127.0.0.1:{asgi_port}/hello"}
                    summary[name] = _pairs(loadgen, urls)
    return summary


def _pairs(loadgen: Path, urls: dict[str, str]) -> dict[str, Any]:
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for _ in range(ROUNDS):
        for label, concurrency, rate in SCENARIOS:
            for side, url in urls.items():
                runs.setdefault(f"{label} c={concurrency}", {}).setdefault(side, []).append(
                    load(loadgen, url, concurrency, rate))
    found: dict[str, Any] = {}
    for key, sides in runs.items():
        row = {side: {"per_second": round(statistics.median(r["per_second"] for r in results)),
                      "p50_ms": round(statistics.median(r["p50_ms"] for r in results), 3),
                      "p99_ms": round(statistics.median(r["p99_ms"] for r in results), 3),
                      "errors": sum(r["errors"] for r in results)} for side, results in sides.items()}
        row["ratio"] = round(row["interceptor"]["per_second"] / max(row["direct"]["per_second"], 1), 2)
        row["asgi_ratio"] = round(row["asgi"]["per_second"] / max(row["direct"]["per_second"], 1), 2)
        row["added_p99_ms"] = round(row["interceptor"]["p99_ms"] - row["direct"]["p99_ms"], 3)
        found[key] = row
    return found


# -- cold start on the control plane -----------------------------------------------------------------


def cold_start() -> dict[str, Any]:
    from cluster_adapter import apply
    from controller_stack import Stack, deployment, scaled_object, wait_condition
    from controlplane import ControlPlane
    from http_stack import PlayedKubelet, cluster_interceptor, service

    from tests.harness.netns import NetworkNamespace

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, ControlPlane() as cp, NetworkNamespace() as netns:
        work = Path(tmp)
        stack = Stack(cp, work).start()
        try:
            with cluster_interceptor(cp, work, [p.adapter for p in stack.pods]) as proxy:
                internal = _internal_port(stack)
                for delay in (0.0, 1.0):
                    runs = []
                    for i in range(COLD_RUNS):
                        ns, name, host = f"cold-{uuid.uuid4().hex[:6]}", f"w{i}", f"w{i}.cold.example.com"
                        cp.kubectl("create", "namespace", ns)
                        trigger = {"type": "http", "metadata": {"hosts": host, "port": "80"}}
                        apply(cp, ns, deployment(name, 0), service(name), scaled_object(name, [trigger]))
                        wait_condition(cp, ns, name, "Ready", ("True", "ScaledObjectReady"))
                        kubelet = PlayedKubelet(cp, ns, name, netns, work / f"{ns}.log", start_delay=delay,
                                                prestarted=True).start()
                        try:
                            runs.append(_one_cold_start(proxy, internal, ns, name, host, kubelet))
                        finally:
                            kubelet.stop()
                            cp.kubectl("delete", "namespace", ns, "--wait=false", check=False)
                    results[f"start {delay:g}s"] = _cold_summary(runs)
        finally:
            stack.stop()
    return results


def _internal_port(stack: Any) -> int:
    args = list(stack.pods[0].adapter.extra_args)
    return int(args[len(args) - 1 - args[::-1].index("--internal-port") + 1])


def _one_cold_start(proxy: InterceptorProcess, internal: int, namespace: str, name: str, host: str,
                    kubelet: Any) -> dict[str, float]:
    feed = f"http://127.0.0.1:{internal}/activity"
    etag = httpx.get(feed, timeout=10).headers["etag"]
    with httpx.Client(timeout=60) as client:
        sent = time.time()
        request = client.build_request("GET", f"{proxy.url}/hello", headers={"host": host})
        first_byte: dict[str, float] = {}

        def send() -> None:
            response = client.send(request, stream=True)
            first_byte["at"] = time.time()
            response.read()
            first_byte["status"] = response.status_code

        thread = threading.Thread(target=send)
        thread.start()
        active_at = _wait_active(feed, etag, namespace, name)
        thread.join(60)
    assert first_byte.get("status") == 200, first_byte
    from controlplane import wait_for

    # the kubelet's thread notes "published" when the API call returns, which may be after the answer
    published = wait_for(lambda: kubelet.seen("published", sent), 10, "the EndpointSlice published", 0.01)
    scaled = kubelet.seen("replicas>0", sent)
    push = proxy.metrics()["eventscale_interceptor_urgent_push_seconds"]
    return {"pushed": push, "active": active_at - sent, "scaled": scaled - sent, "published": published - sent,
            "first_byte": first_byte["at"] - sent, "interceptor_share": push + (first_byte["at"] - published)}


def _wait_active(feed: str, etag: str, namespace: str, name: str) -> float:
    deadline = time.time() + 30
    while time.time() < deadline:
        response = httpx.get(f"{feed}?wait=10", headers={"if-none-match": etag}, timeout=15)
        etag = response.headers["etag"]
        if response.status_code == 200:
            for obj in response.json()["scaledObjects"]:
                if (obj["namespace"], obj["name"]) == (namespace, name) and any(t["active"] for t in obj["triggers"]):
                    return time.time()
    raise RuntimeError(f"{namespace}/{name} never active in the adapter")


def _cold_summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    return {key: {"p50_ms": round(1000 * statistics.median(r[key] for r in runs), 1),
                  "max_ms": round(1000 * max(r[key] for r in runs), 1)} for key in runs[0]}


def run() -> dict[str, Any]:
    return {"overhead": overhead(), "cold_start": cold_start()}


def print_report(summary: dict[str, Any]) -> None:
    print(f"Interceptor: proxy overhead, direct vs through the interceptor (median of {ROUNDS} alternating rounds)")
    print(f"  {'upstream':<9}{'scenario':<14}{'side':<13}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for upstream, rows in summary["overhead"].items():
        for key, row in rows.items():
            for side in ("direct", "interceptor", "asgi"):
                r = row[side]
                print(f"  {upstream:<9}{key:<14}{side:<13}{r['per_second']:>8}{r['p50_ms']:>9}{r['p99_ms']:>9}"
                      f"{r['errors']:>8}")
            print(f"  {upstream:<9}{key:<14}ratio {row['ratio']} (goal >= 0.5; asgi {row['asgi_ratio']}), "
                  f"added p99 {row['added_p99_ms']} ms")
    print(f"Interceptor: cold start from zero on the control plane ({COLD_RUNS} runs each; ms after the request)")
    for label, parts in summary["cold_start"].items():
        line = ", ".join(f"{k} p50 {v['p50_ms']} max {v['max_ms']}" for k, v in parts.items())
        print(f"  workload {label}: {line}")
    print("  (pushed: held -> both adapters accepted the counts; active: the adapter's activity feed says so;"
          " scaled: the Deployment left 0;\n   published: its EndpointSlice; interceptor_share = pushed +"
          " (published -> first byte); goal < 50 ms)")
