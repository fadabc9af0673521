"""The cluster half of the fault matrix: the adapter killed, the Kubernetes API down, the Lease lost.

Two adapter + controller pairs on the real control plane (`controller_stack`), one Redis. A busy
ScaledObject (12 messages, target 5: 3 replicas) and an idle one (0 replicas) live through each
fault in turn; the busy workload must never be scaled down while its source has work, the idle
one must not be woken, and after each fault the system is back within a polling interval (plus
a Lease duration where leadership moves). Controller kill -9 mid-activation and mid-cooldown are
in tests/e2e/test_controller.py (`test_killed_leader_during_*`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from cluster_adapter import NAMESPACE, apply, metric_value
from controller_stack import LEASE_SECONDS, ReplicaLog, Stack, deployment, scaled_object, wait_condition, wait_replicas
from controlplane import wait_for
from kubernetes import client

from tests.harness.redis_servers import RedisServer

pytestmark = pytest.mark.e2e

COOLDOWN = 4
INTRUDER_LEASE = 8  # seconds the intruder's Lease is valid after its last renewal
BUSY_ITEMS, TARGET = 12, 5


@pytest.fixture
def world(stack: Stack, redis: RedisServer, namespace: str) -> Iterator[dict[str, ReplicaLog]]:
    """`busy` at 3 replicas with work waiting, `idle` at 0; a ReplicaLog on each."""
    def trigger(key: str) -> dict[str, Any]:
        return {"type": "redis", "metadata": {"address": redis.address, "listName": key, "listLength": str(TARGET)}}

    redis.admin().delete(f"{namespace}-busy", f"{namespace}-idle")
    redis.admin().rpush(f"{namespace}-busy", *range(BUSY_ITEMS))
    apply(stack.cp, namespace, deployment("busy", 0), deployment("idle", 0),
          scaled_object("busy", [trigger(f"{namespace}-busy")], cooldownPeriod=COOLDOWN),
          scaled_object("idle", [trigger(f"{namespace}-idle")], cooldownPeriod=COOLDOWN))
    wait_replicas(stack.cp, namespace, "busy", 3, timeout=60)
    wait_condition(stack.cp, namespace, "idle", "Active", ("False", "ScalerNotActive"))
    logs = {name: ReplicaLog(stack.cp, namespace, name) for name in ("busy", "idle")}
    try:
        yield logs
    finally:
        for log in logs.values():
            log.stop()
        stack.restart_stopped()


def assert_untouched(logs: dict[str, ReplicaLog]) -> None:
    assert min(logs["busy"].values) >= 1, logs["busy"].changes  # never down while 12 messages wait
    assert logs["idle"].values == [0], logs["idle"].changes  # never woken without work


def assert_still_acting(stack: Stack, redis: RedisServer, namespace: str, logs: dict[str, ReplicaLog],
                        within: float) -> float:
    """Work for `idle` is acted on within `within` seconds; returns how long it took."""
    pushed = time.time()
    redis.admin().rpush(f"{namespace}-idle", 1)
    seen: float = logs["idle"].seen(1, after=pushed, timeout=within + 20)
    assert seen - pushed <= within, seen - pushed
    return seen - pushed


def test_adapter_killed_nothing_scales_down(stack: Stack, redis: RedisServer, namespace: str,
                                            world: dict[str, ReplicaLog]) -> None:
    leader = stack.leader()
    pod = next(p for p in stack.pods if p.controller is leader)
    assert pod.adapter.process is not None
    pod.adapter.process.kill()  # kill -9: the leader's sidecar reads no activity any more
    pod.adapter.process.wait(10)
    time.sleep(3 * COOLDOWN)  # well past the cooldown the busy object would need to go to 0
    assert_untouched(world)
    pod.adapter.start(timeout=60)
    restarted = time.time()
    wait_for(lambda: metric_value(stack.cp, namespace, "s0-redis-" + f"{namespace}-busy", "busy") == str(BUSY_ITEMS),
             timeout=30, what="the busy metric through kube-apiserver", interval=0.2)
    print(f"adapter kill -9: metric back {time.time() - restarted:.2f}s after the restart was ready")
    assert_still_acting(stack, redis, namespace, world, within=1 + 5)  # a poll, the activity client reconnecting
    assert min(world["busy"].values) >= 1


def test_kubernetes_api_down_and_back(stack: Stack, redis: RedisServer, namespace: str,
                                      world: dict[str, ReplicaLog]) -> None:
    stack.cp.kill_apiserver()
    try:
        time.sleep(2 * LEASE_SECONDS)  # past the Lease: no controller can renew it
        assert all(p.controller.running and p.adapter.process and p.adapter.process.poll() is None
                   for p in stack.pods), stack.logs()
    finally:
        stack.cp.restart_apiserver()
    back = time.time()
    stack.leader(timeout=LEASE_SECONDS + 15)
    took = assert_still_acting(stack, redis, namespace, world, within=LEASE_SECONDS + 1 + 5)
    print(f"kubernetes API down: acting again {time.time() - back:.2f}s after it was back (activation {took:.2f}s)")
    assert min(world["busy"].values) >= 1, world["busy"].changes
    for pod in stack.pods:
        with pod.adapter.client(None) as client:
            assert client.get("/readyz").status_code == 200


def test_lease_taken_by_someone_else(stack: Stack, redis: RedisServer, namespace: str,
                                     world: dict[str, ReplicaLog]) -> None:
    """Another holder keeps the Lease for a while: nobody of ours acts, then one takes over and acts once."""
    stack.leader()
    with stack.cp.api_client() as api:
        leases = client.CoordinationV1Api(api)
        taken_until = time.time() + 3 * LEASE_SECONDS
        pushed = False
        while time.time() < taken_until:
            now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
            leases.patch_namespaced_lease("eventscale-controller", NAMESPACE, {"spec": {
                "holderIdentity": "intruder", "renewTime": now, "leaseDurationSeconds": INTRUDER_LEASE}})
            if not pushed and time.time() > taken_until - 2 * LEASE_SECONDS:
                redis.admin().rpush(f"{namespace}-idle", 1)  # the old leader has seen it lost the Lease
                pushed = True
            time.sleep(0.3)
    assert_untouched(world)
    released = time.time()
    stack.leader(timeout=INTRUDER_LEASE + 10)
    seen = world["idle"].seen(1, after=released, timeout=INTRUDER_LEASE + 20)
    print(f"lease loss: work acted on {seen - released:.2f}s after the intruder stopped renewing")
    assert seen - released <= INTRUDER_LEASE + 1 + 5
    time.sleep(2)
    assert world["idle"].values == [0, 1] and min(world["busy"].values) >= 1
