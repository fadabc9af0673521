"""`advanced.scalingModifiers` end to end: one composite metric, read by the real HPA controller.

Two Redis lists are two named triggers; the formula weighs one of them. The HPA the controller
writes has the one External metric `composite-metric` (KEDA's name), kube-apiserver answers it
through the APIService (`kubectl get --raw`), the controller activates only when the composite
is above `activationTarget`, and the HPA scales on ceil(composite / target).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from cluster_adapter import apply, metric_value
from controller_stack import ReplicaLog, Stack, deployment, get, scaled_object, status, wait_condition, wait_replicas
from controlplane import wait_for

from tests.harness.redis_servers import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.stack(replicas=1)]


def list_trigger(server: RedisServer, name: str, key: str) -> dict[str, Any]:
    return {"type": "redis", "name": name, "metadata": {"address": server.address, "listName": key,
                                                        "listLength": "5"}}


def test_hpa_scales_on_the_composite_metric(stack: Stack, redis: RedisServer, namespace: str) -> None:
    cp, ns = stack.cp, namespace
    modifiers = {"formula": "jobs + urgent * 3", "target": "5", "activationTarget": "2"}
    so = scaled_object("worker", [list_trigger(redis, "jobs", f"{ns}-jobs"),
                                  list_trigger(redis, "urgent", f"{ns}-urgent")])
    so["spec"]["advanced"]["scalingModifiers"] = modifiers
    apply(cp, ns, deployment("worker", 0), so)
    hpa = wait_for(lambda: get(cp, "hpa", ns, "keda-hpa-worker"), what="the HPA")
    assert hpa["spec"]["metrics"] == [{"type": "External", "external": {
        "metric": {"name": "composite-metric", "selector": {"matchLabels": {"scaledobject.keda.sh/name": "worker"}}},
        "target": {"type": "AverageValue", "averageValue": "5"}}}]
    ready = wait_condition(cp, ns, "worker", "Ready", ("True", "ScaledObjectReady"))
    assert ready["compositeScalerName"] == "composite-metric"
    assert ready["externalMetricNames"] == [f"s0-redis-{ns}-jobs", f"s1-redis-{ns}-urgent"]

    log = ReplicaLog(cp, ns, "worker")
    try:
        admin = redis.admin()
        admin.rpush(f"{ns}-jobs", *range(2))  # composite 2: not above activationTarget 2
        wait_for(lambda: metric_value(cp, ns, "composite-metric", "worker") == "2", timeout=20,
                 what="composite-metric at 2 through kube-apiserver")
        assert wait_condition(cp, ns, "worker", "Active", ("False", "ScalerNotActive"))
        assert log.values == [0]

        filled_at = time.time()
        admin.rpush(f"{ns}-urgent", *range(4))  # 2 + 4 * 3 = 14: active, and ceil(14 / 5) = 3 replicas
        log.seen(1, after=filled_at, timeout=15)
        wait_for(lambda: metric_value(cp, ns, "composite-metric", "worker") == "14", timeout=20,
                 what="composite-metric at 14 through kube-apiserver")
        wait_replicas(cp, ns, "worker", 3, timeout=30)
        assert log.values[:3] == [0, 1, 3]  # the controller takes 0 -> 1, the HPA 1 -> 3 on the composite
        assert wait_condition(cp, ns, "worker", "Active", ("True", "ScalerActive"))

        admin.delete(f"{ns}-jobs", f"{ns}-urgent")
        drained_at = time.time()
        log.seen(0, after=drained_at, timeout=40)  # the HPA to 1, then the controller after cooldown
        assert status(cp, ns, "worker")["compositeScalerName"] == "composite-metric"
    finally:
        log.stop()
