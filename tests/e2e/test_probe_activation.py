"""Activation probes on the real control plane: objects at zero are read every second, in one
request per server, so a message to a Redis that publishes no keyspace events still wakes its
workload within about a second with `pollingInterval: 30`.

The Redis server is left as installed (no `notify-keyspace-events`): the adapter says so in its
log and relies on the probes. Run with `-s` to see the figures (latency, Redis requests per
second while every object is idle).
"""

from __future__ import annotations

import statistics
import time

import pytest
from cluster_adapter import apply
from controller_stack import ReplicaLog, Stack, condition, deployment, scaled_object, status
from controlplane import ControlPlane, wait_for

from tests.harness.redis_servers import RedisServer, Traffic

pytestmark = [pytest.mark.e2e, pytest.mark.stack(replicas=1)]

OBJECTS = 20
SAMPLES = 4
IDLE_WINDOW = 5.0  # seconds over which idle traffic is counted


def after(moment: float) -> bool | None:
    return time.monotonic() >= moment or None


def test_idle_objects_are_probed_in_one_request_per_second(control_plane: ControlPlane, stack: Stack,
                                                           redis: RedisServer, namespace: str) -> None:
    cp = control_plane
    names = [f"idle-{i}" for i in range(OBJECTS)]
    triggers = {name: {"type": "redis", "metadata": {"address": redis.address, "listName": f"{namespace}:{name}",
                                                      "listLength": "5"}} for name in names}
    apply(cp, namespace, *(deployment(name, 0) for name in names),
          *(scaled_object(name, [triggers[name]], pollingInterval=30) for name in names))
    wait_for(lambda: all(condition(status(cp, namespace, n), "Ready") == ("True", "ScaledObjectReady")
                         for n in names), timeout=60, what="every ScaledObject ready")
    adapter = stack.pods[0].adapter
    wait_for(lambda: "keyspace notifications are off" in adapter.log(), timeout=20,
             what="the adapter's word that Redis publishes no keyspace events")

    traffic, started = Traffic(redis), time.monotonic()
    wait_for(lambda: after(started + IDLE_WINDOW), timeout=IDLE_WINDOW + 5, what="the idle window", interval=0.1)
    idle, elapsed = traffic.since(), time.monotonic() - started
    requests_per_second = idle.commands.get("evalsha", 0) / elapsed  # one script call per batched read

    sampled = names[:SAMPLES]
    logs = {name: ReplicaLog(cp, namespace, name) for name in sampled}
    try:
        pushed = []
        begin = time.monotonic()
        for i, name in enumerate(sampled):
            # spread over one probe interval: every phase of the probe grid is sampled
            wait_for(lambda i=i: after(begin + i / SAMPLES), timeout=5, what="the next push moment",
                     interval=0.02)
            pushed.append(time.time())
            redis.admin().lpush(f"{namespace}:{name}", "job")
        latencies = [logs[name].seen(1, after=at, timeout=10) - at for name, at in zip(sampled, pushed, strict=True)]
    finally:
        for log in logs.values():
            log.stop()
    print(f"\nprobes: {OBJECTS} idle objects (pollingInterval 30): {requests_per_second:.2f} requests/s to Redis "
          f"({idle.total_commands / elapsed:.1f} commands/s, the script's own calls included); LPUSH to "
          f"spec.replicas 1 p50={statistics.median(latencies):.3f}s max={max(latencies):.3f}s ({SAMPLES} samples)")
    assert requests_per_second <= 1.5, idle  # one batched read a second for all of them, not 20
    assert max(latencies) < 3.0, latencies  # a probe a second, then the controller: well under pollingInterval
