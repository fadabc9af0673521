"""Delegated GET latency against a direct GET to the delegate, in the same run.

Two standalone adapters: `theirs` serves a cron ScaledObject; `ours` serves nothing and has
`--delegate-to` theirs. The same metric is read sequentially over one keep-alive connection,
straight from theirs and through ours; the difference at p50 is what delegation adds
(goal: < 1 ms). Beside it, the CPU time (user + system) the measured server's process spent per
GET (for a delegated GET: ours only, not theirs), which the machine's load does not inflate as
much. `BENCH_DELEGATION_BASELINE=<git revision>` adds ours of that revision (as
`BENCH_API_BASELINE` does for `bench api`), measured in the same interleaved rounds:

    BENCH_DELEGATION_BASELINE=5a790b4 python -m tests.bench delegation
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.bench.api import export
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


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        delegation = ("--internal-port", "0", "--delegate-to", theirs.base_url,
                      "--delegate-ca-file", str(certs / "ca.crt"),
                      "--delegate-client-cert", str(certs / "front-proxy-client.crt"),
                      "--delegate-client-key", str(certs / "front-proxy-client.key"))
        servers = {"direct": theirs,
                   "delegated": AdapterProcess(work / "ours", work / "our-certs", work / "ours.log",
                                               extra_args=delegation)}
        if revision := os.environ.get("BENCH_DELEGATION_BASELINE"):
            servers[f"delegated ({revision})"] = AdapterProcess(
                work / "ours", work / "baseline-certs", work / "baseline.log", extra_args=delegation,
                root=export(revision, work / "baseline"))
        found: dict[str, list[float]] = {name: [] for name in servers}
        cpu = dict.fromkeys(servers, 0.0)
        try:
            for server in servers.values():
                if server is not theirs:
                    server.start()
            clients = {name: server.client() for name, server in servers.items()}
            for _ in range(2):  # interleaved halves, so load changes hit every server
                for name, client in clients.items():
                    pid = servers[name].process.pid  # type: ignore[union-attr]
                    before = _cpu_seconds(pid)
                    found[name] += _latencies(client, count // 2)
                    cpu[name] += _cpu_seconds(pid) - before
            for client in clients.values():
                client.close()
        finally:
            for server in servers.values():
                server.stop()
    runs = count + 2 * 50  # the warm-up GETs are counted in the CPU time too
    return {"count": count, "servers": {name: {**_summary(values), "cpu_us": cpu[name] / runs * 1e6}
                                        for name, values in found.items()}}


def print_report(summary: dict[str, Any]) -> None:
    servers = summary["servers"]
    print(f"delegation: {summary['count']} sequential GETs each, one keep-alive connection (ms)")
    for name, figures in servers.items():
        print(f"  {name:28} p50 {figures['p50']:.2f}  p95 {figures['p95']:.2f}  max {figures['max']:.2f}"
              f"  (server CPU {figures['cpu_us']:.0f} µs per GET)")
    direct = servers["direct"]["p50"]
    for name in servers:
        if name != "direct":
            print(f"  added at p50, {name}: {servers[name]['p50'] - direct:.2f} ms (goal < 1 ms)")
