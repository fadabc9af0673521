"""ScaledJob benchmark: message -> first Job created, and what 100 idle ScaledJobs cost per poll.

Everything real: the e2e control plane (kube-apiserver, kube-controller-manager with the Job
controller), one Redis server, one adapter and one controller as processes (`controller_stack`),
the controller logging its API calls and ScaledJob polls every second.

* Latency: time from RPUSH of one message to the watch event of the first Job of its ScaledJob
  (one Redis list each, target 1 message per Job). Pushes are spread over one pollingInterval so
  they land at every phase of the adapter's poll: pollingInterval 1 s (3 rounds of 10
  ScaledJobs) and 30 s (one round of 10: the wait for the poll tick dominates; bounded to one
  interval of pushes). Goal: <= pollingInterval + 0.5 s.
* 100 idle ScaledJobs (pollingInterval 1 s, 100 empty lists) on one Redis: connections the
  Redis server holds for the adapter (CLIENT LIST), Redis reads (round trips) per poll round,
  and the controller's API calls per ScaledJob poll over `WINDOW` seconds (goal 0: Jobs and pods
  come from watches and an unchanged status is not written). KEDA's shape for comparison: one
  scaler client, so one connection and one round trip per ScaledJob per poll.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests" / "cluster"), str(ROOT / "tests" / "e2e")]

from controller_stack import Stack, controller_stats, stats_after  # noqa: E402
from controlplane import ControlPlane, wait_for  # noqa: E402

from tests.bench.controller_load import (  # noqa: E402
    WatchLog,
    apply,
    fresh_namespace,
    latency_line,
    pushes_across_a_poll,
)
from tests.harness.redis_servers import RedisServer, Traffic, clients  # noqa: E402

LABEL = "scaledjob.keda.sh/name"
LATENCY_JOBS, SHORT_ROUNDS = 10, 3
IDLE, WINDOW = 100, 10


def scaled_job(name: str, redis: RedisServer, key: str, polling: int) -> dict[str, Any]:
    template = {"spec": {"containers": [{"name": "work", "image": "registry.invalid/worker:1"}]}}
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob", "metadata": {"name": name},
            "spec": {"jobTargetRef": {"template": template, "backoffLimit": 0}, "pollingInterval": polling,
                     "maxReplicaCount": 5, "triggers": [{"type": "redis", "metadata": {
                         "address": redis.address, "listName": key, "listLength": "1"}}]}}


def count_where(cp: ControlPlane, namespace: str, kind: str, status: str) -> int:
    """ScaledJobs of the namespace whose condition `kind` is `status`."""
    items = cp.kubectl_json("get", "scaledjobs", "-n", namespace)["items"]
    return sum(1 for sj in items for c in (sj.get("status") or {}).get("conditions") or []
               if c["type"] == kind and c["status"] == status)


def wait_all(cp: ControlPlane, namespace: str, n: int, kind: str, status: str, timeout: float) -> None:
    wait_for(lambda: count_where(cp, namespace, kind, status) == n, timeout, f"{n} ScaledJobs {kind}={status}", 0.5)


def latency(cp: ControlPlane, redis: RedisServer, interval: int, rounds: int) -> list[float]:
    with fresh_namespace(cp, f"bench-sj-latency-{interval}s") as ns:
        names = [f"l{r}-{i:02d}" for r in range(rounds) for i in range(LATENCY_JOBS)]
        apply(cp, ns, [scaled_job(n, redis, f"{ns}-{n}", interval) for n in names])
        wait_all(cp, ns, len(names), "Ready", "True", 60 + interval)
        log = WatchLog(cp, lambda api: client.BatchV1Api(api).list_namespaced_job, ns)
        try:
            samples: list[float] = []
            for r in range(rounds):
                samples += latency_round(redis, ns, names[r * LATENCY_JOBS:(r + 1) * LATENCY_JOBS], interval, log)
            return samples
        finally:
            log.stop()
            redis.admin().delete(*(f"{ns}-{n}" for n in names))


def latency_round(redis: RedisServer, ns: str, names: list[str], interval: int, log: WatchLog) -> list[float]:
    pushed = pushes_across_a_poll(redis, ns, names, interval)

    def first_job(name: str) -> float:
        found: float = wait_for(lambda: log.first_where(pushed[name], lambda j: (j.metadata.labels or {}).get(
            LABEL) == name), interval + 15, f"the first Job of {name}", 0.05)
        return found
    return [first_job(n) - pushed[n] for n in names]


def idle_cost(cp: ControlPlane, stack: Stack, redis: RedisServer) -> dict[str, Any]:
    with fresh_namespace(cp, "bench-sj-idle") as ns:
        apply(cp, ns, [scaled_job(f"sj-{i:03d}", redis, f"{ns}-{i}", 1) for i in range(IDLE)])
        wait_all(cp, ns, IDLE, "Active", "False", 120)
        polls, calls = stats_after(stack, controller_stats(stack)[0] + 2 * IDLE)  # their first writes are done
        traffic, began = Traffic(redis), time.monotonic()
        end_polls, end_calls = stats_after(stack, polls + WINDOW * IDLE, timeout=WINDOW * 3)
        seconds, seen = time.monotonic() - began, traffic.since()
        held = len(clients(redis, "eventscale"))
        cp.kubectl("delete", "scaledjobs", "--all", "-n", ns)
    made = {k: v - calls.get(k, 0) for k, v in end_calls.items() if v != calls.get(k, 0)}
    return {"objects": IDLE, "polls": end_polls - polls, "seconds": seconds, "calls": made,
            "redis_connections": held, "redis_reads_per_second": seen.reads / seconds,
            "redis_commands": seen.commands}


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, ControlPlane() as cp, RedisServer() as redis:
        stack = Stack(cp, Path(tmp)).start(1, "--stats-interval", "1")
        try:
            return {"idle": idle_cost(cp, stack, redis),
                    "latency": {1: latency(cp, redis, 1, SHORT_ROUNDS), 30: latency(cp, redis, 30, 1)}}
        finally:
            stack.stop()


def print_report(results: dict[str, Any]) -> None:
    print("ScaledJobs (real kube-apiserver and Job controller, Redis; one adapter + controller)")
    for interval, samples in sorted(results["latency"].items()):
        print(latency_line("message -> first Job", interval, samples))
    idle = results["idle"]
    n, polls = idle["objects"], max(1, idle["polls"])
    calls = sum(idle["calls"].values())
    rounds = idle["redis_reads_per_second"]  # pollingInterval 1: one poll round a second
    print(f"  {n} idle ScaledJobs on one Redis (pollingInterval 1s), {idle['polls']} polls over "
          f"{idle['seconds']:.1f}s:")
    print(f"    Redis connections held: {idle['redis_connections']} (KEDA's shape: {n}; ratio "
          f"{idle['redis_connections'] / n:.2f})")
    print(f"    Redis reads per poll round: {rounds:.1f} (KEDA's shape: {n}; ratio {rounds / n:.3f}); commands "
          f"{', '.join(f'{k} {v}' for k, v in sorted(idle['redis_commands'].items())) or '-'}")
    print(f"    API calls per ScaledJob poll: {calls / polls:.3f} ({calls} in all"
          f"{': ' + ', '.join(f'{k} {v}' for k, v in sorted(idle['calls'].items())) if calls else ''}; goal 0)")
