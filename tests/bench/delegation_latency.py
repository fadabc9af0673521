"""Delegated GET latency against a direct GET to the delegate, in the same run.

Two standalone adapters: `theirs` serves a cron ScaledObject; `ours` serves nothing and has
`--delegate-to` theirs. The same metric is read sequentially over one keep-alive connection,
straight from theirs and through ours; the difference at p50 is what delegation adds
(goal: < 1 ms).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.harness.adapter_process import AdapterProcess

PATH = ("/apis/external.metrics.k8s.io/v1beta1/namespaces/default/s0-cron-UTC-0011x-59233112x"
        "?labelSelector=scaledobject.keda.sh%2Fname%3Dtheirs")
OBJECT = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "theirs"},
          "spec": {"scaleTargetRef": {"name": "theirs"}, "triggers": [{"type": "cron", "metadata": {
              "timezone": "UTC", "start": "0 0 1 1 *", "end": "59 23 31 12 *", "desiredReplicas": "42"}}]}}


def _latencies(client: httpx.Client, count: int) -> list[float]:
    for _ in range(50):  # warm up: connections, caches
        assert client.get(PATH).status_code == 200
    found = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(PATH)
        found.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    return found


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": statistics.median(ordered), "p95": ordered[int(len(ordered) * 0.95) - 1], "max": ordered[-1]}


def run(count: int = 1000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "theirs").mkdir()
        (work / "ours").mkdir()
        (work / "theirs" / "o.yaml").write_text(json.dumps(OBJECT))
        theirs = AdapterProcess(work / "theirs", work / "their-certs", work / "theirs.log",
                                extra_args=("--internal-port", "0"))
        theirs.start()
        certs = theirs.cert_dir
        ours = AdapterProcess(work / "ours", work / "our-certs", work / "ours.log", extra_args=(
            "--internal-port", "0", "--delegate-to", theirs.base_url, "--delegate-ca-file", str(certs / "ca.crt"),
            "--delegate-client-cert", str(certs / "front-proxy-client.crt"),
            "--delegate-client-key", str(certs / "front-proxy-client.key")))
        try:
            ours.start()
            with theirs.client() as direct, ours.client() as delegated:
                direct_ms, delegated_ms = [], []
                for _ in range(2):  # interleaved halves, so load changes hit both
                    direct_ms += _latencies(direct, count // 2)
                    delegated_ms += _latencies(delegated, count // 2)
        finally:
            ours.stop()
            theirs.stop()
    return {"count": count, "direct": _summary(direct_ms), "delegated": _summary(delegated_ms)}


def print_report(summary: dict[str, Any]) -> None:
    direct, delegated = summary["direct"], summary["delegated"]
    print(f"delegation: {summary['count']} sequential GETs each, one keep-alive connection (ms)")
    for name, figures in (("direct to the delegate", direct), ("through --delegate-to", delegated)):
        print(f"  {name:24} p50 {figures['p50']:.2f}  p95 {figures['p95']:.2f}  max {figures['max']:.2f}")
    print(f"  added at p50: {delegated['p50'] - direct['p50']:.2f} ms (goal < 1 ms)")
