"""API benchmark: metric GETs over HTTPS keep-alive against the adapter and against the floor.

1,000 cron ScaledObjects are loaded (with `useCachedMetrics`, so every GET is a cache hit);
the Go load generator cycles through their metric URLs. For each server: throughput as fast as
it answers at concurrency 1 and 32, and latency percentiles at a fixed 1,000 requests/s.
Servers run one at a time, alternating, so they never share the two cores.

`BENCH_API_BASELINE=<git revision>` adds the adapter of that revision (exported from this
repository into a temporary directory, run with the same interpreter) as a third server, so a
change is compared with the code before it in the same run:

    BENCH_API_BASELINE=9d902b5 python -m tests.bench api
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from tests.bench.loadgen import build_loadgen
from tests.harness.adapter_process import ROOT, running_adapter
from tests.harness.ports import free_port

SCALED_OBJECTS = 1000
ROUNDS = 2


def write_objects(directory: Path, count: int) -> list[str]:
    documents, paths = [], []
    for i in range(count):
        name = f"so-{i:04d}"
        documents.append(json.dumps({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": "bench"},
            "spec": {"scaleTargetRef": {"name": name}, "pollingInterval": 3600, "triggers": [{
                "type": "cron", "useCachedMetrics": True,
                "metadata": {"timezone": "UTC", "start": "0 0 1 1 *", "end": "59 23 31 12 *",
                             "desiredReplicas": str(i + 1)}}]},
        }))
        selector = quote(f"scaledobject.keda.sh/name={name}", safe="")
        paths.append(f"/apis/external.metrics.k8s.io/v1beta1/namespaces/bench/s0-cron-UTC-0011x-59233112x"
                     f"?labelSelector={selector}")
    (directory / "objects.yaml").write_text("\n---\n".join(documents))
    return paths


def load(loadgen: Path, certs: Path, urls: list[str], concurrency: int, rate: float, seconds: float) -> dict[str, Any]:
    command = [str(loadgen), "-ca", str(certs / "ca.crt"), "-cert", str(certs / "admin.crt"), "-key",
               str(certs / "admin.key"), "-c", str(concurrency), "-d", f"{seconds}s", "-rate", str(rate)]
    result = subprocess.run(command, input="\n".join(urls), capture_output=True, text=True, check=True)
    return dict(json.loads(result.stdout))


@contextlib.contextmanager
def floor_server(certs: Path, body: bytes, work: Path) -> Iterator[int]:
    """The floor (a minimal server answering `body`) on a free port, stopped on exit."""
    (work / "body.json").write_bytes(body)
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "tests.bench.floor", "--cert-dir", str(certs), "--port",
                                str(port), "--body", str(work / "body.json")])
    try:
        wait_until_answering(port, certs)
        yield port
    finally:
        process.terminate()
        process.wait()


def wait_until_answering(port: int, certs: Path) -> None:
    context = httpx.create_ssl_context(verify=str(certs / "ca.crt"))
    for _ in range(200):
        try:
            httpx.get(f"https://127.0.0.1:{port}/", verify=context, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("floor server did not start")


SCENARIOS = [("max", 1, 0.0), ("max", 32, 0.0), ("1000/s", 1, 1000.0), ("1000/s", 32, 1000.0)]
if os.environ.get("BENCH_ONLY"):  # e.g. BENCH_ONLY=1000/s to run only the fixed-rate scenarios
    SCENARIOS = [s for s in SCENARIOS if s[0] == os.environ["BENCH_ONLY"]]


def run(seconds: float = 5.0) -> dict[str, Any]:
    loadgen = build_loadgen()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as running:
        work = Path(tmp)
        (work / "objects").mkdir()
        paths = write_objects(work / "objects", SCALED_OBJECTS)
        adapter = running.enter_context(running_adapter(work / "objects", work / "certs", work / "adapter.log"))
        with adapter.client() as client:
            body = client.get(paths[0]).content
            assert client.get(paths[-1]).json()["items"][0]["value"] == "1k"  # desiredReplicas 1000
        ports = {"floor": running.enter_context(floor_server(work / "certs", body, work)), "adapter": adapter.port}
        if revision := os.environ.get("BENCH_API_BASELINE"):
            baseline = running.enter_context(running_adapter(
                work / "objects", work / "certs", work / "baseline.log", root=export(revision, work / "baseline")))
            ports["baseline"] = baseline.port
        return summarize(measure(loadgen, work / "certs", ports, paths, seconds))


def export(revision: str, into: Path) -> Path:
    """The source tree of `revision` of this repository, written to `into`."""
    into.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def measure(loadgen: Path, certs: Path, ports: dict[str, int], paths: list[str],
            seconds: float) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Each scenario on each server, servers alternating, ROUNDS times."""
    results: dict[str, dict[str, list[dict[str, Any]]]] = {name: {} for name in ports}
    for _ in range(ROUNDS):
        for name, port in ports.items():
            urls = [f"https://127.0.0.1:{port}{p}" for p in paths]
            for label, concurrency, rate in SCENARIOS:
                runs = results[name].setdefault(f"{label} c={concurrency}", [])
                runs.append(load(loadgen, certs, urls, concurrency, rate, seconds))
    return results


def summarize(results: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name, scenarios in results.items():
        for key, runs in scenarios.items():
            summary.setdefault(key, {})[name] = {
                "per_second": round(statistics.median(r["per_second"] for r in runs)),
                "p50_ms": round(statistics.median(r["p50_ms"] for r in runs), 2),
                "p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 2),
                "errors": sum(r["errors"] for r in runs),
            }
    for pair in summary.values():
        pair["throughput_ratio"] = round(pair["adapter"]["per_second"] / max(pair["floor"]["per_second"], 1), 2)
        if "baseline" in pair:
            pair["baseline_ratio"] = round(pair["adapter"]["per_second"] / max(pair["baseline"]["per_second"], 1), 2)
    return summary


def print_report(summary: dict[str, Any]) -> None:
    print(f"API: metric GET over HTTPS keep-alive, {SCALED_OBJECTS} ScaledObjects, cache hits "
          f"(median of {ROUNDS} alternating rounds)")
    print(f"  {'scenario':<14}{'server':<9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for key, pair in summary.items():
        for name in ("floor", "baseline", "adapter"):
            if (row := pair.get(name)) is not None:
                print(f"  {key:<14}{name:<9}{row['per_second']:>9}{row['p50_ms']:>9}{row['p99_ms']:>9}"
                      f"{row['errors']:>8}")
        print(f"  {key:<14}adapter/floor throughput ratio: {pair['throughput_ratio']}")
        if "baseline_ratio" in pair:
            print(f"  {key:<14}adapter/baseline throughput ratio: {pair['baseline_ratio']}")
