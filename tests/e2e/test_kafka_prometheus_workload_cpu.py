"""Kafka, Prometheus, cpu/memory and kubernetes-workload ScaledObjects on the real control plane.

The same two adapter + controller pairs as the controller tests (`controller_stack`), a real
Kafka broker and a real Prometheus (the session's, from tests/conftest.py). The HPA controller is
kube-controller-manager's own; without a kubelet Pods stay Pending, which is all its arithmetic
and the kubernetes-workload count need. Each story: 0 -> 1 by the controller, 1 -> N by the
HPA, N -> 1 by the HPA, 1 -> 0 by the controller after the cooldown.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from cluster_adapter import apply
from controller_stack import (
    ReplicaLog,
    Stack,
    deployment,
    get,
    scaled_object,
    status,
    wait_condition,
    wait_replicas,
)
from controlplane import ControlPlane, wait_for

from tests.harness.kafka_server import KafkaServer
from tests.harness.prometheus_server import MetricsExporter, PrometheusServer

pytestmark = pytest.mark.e2e


def story(cp: ControlPlane, ns: str, name: str, metric: str, fill: Callable[[], None], drain: Callable[[], None],
          expected: int) -> None:
    """0 -> 1 (controller) -> expected (HPA) -> 1 (HPA) -> 0 (controller, after the cooldown)."""
    log = ReplicaLog(cp, ns, name)
    try:
        ready = wait_condition(cp, ns, name, "Ready", ("True", "ScaledObjectReady"), timeout=60)
        wait_condition(cp, ns, name, "Active", ("False", "ScalerNotActive"))
        assert ready["externalMetricNames"] == [metric]
        log.seen(0)  # the watch is running before anything changes
        filled_at = time.time()
        fill()
        log.seen(1, after=filled_at, timeout=30)
        wait_condition(cp, ns, name, "Active", ("True", "ScalerActive"))
        wait_replicas(cp, ns, name, expected, timeout=60)
        drained_at = time.time()
        drain()
        log.seen(1, after=drained_at, timeout=60)
        log.seen(0, after=drained_at, timeout=60)
        assert_up_and_back(log.values, expected)
    finally:
        log.stop()


def test_kafka_story(stack: Stack, kafka_server: KafkaServer, namespace: str) -> None:
    cp, ns = stack.cp, namespace
    topic, group = f"orders-{ns}", f"workers-{ns}"
    asyncio.run(kafka_server.create_topic(topic, 6))
    asyncio.run(kafka_server.commit_offsets(group, topic, dict.fromkeys(range(6), 0)))
    trigger = {"type": "kafka", "metadata": {"bootstrapServers": kafka_server.bootstrap, "consumerGroup": group,
                                             "topic": topic, "lagThreshold": "5"}}
    apply(cp, ns, deployment("consumer", 0), scaled_object("consumer", [trigger]))

    def produce() -> None:
        for partition, count in enumerate((4, 4, 4, 4, 4, 3)):  # 23 messages
            asyncio.run(kafka_server.produce(topic, count, partition))

    def consume() -> None:
        asyncio.run(kafka_server.commit_offsets(group, topic, dict(enumerate((4, 4, 4, 4, 4, 3)))))

    story(cp, ns, "consumer", f"s0-kafka-{topic}", produce, consume, expected=math.ceil(23 / 5))


def test_prometheus_story(stack: Stack, prometheus_server: PrometheusServer, metrics_exporter: MetricsExporter,
                          namespace: str) -> None:
    cp, ns = stack.cp, namespace
    gauge = f"es_e2e_backlog_{uuid.uuid4().hex[:8]}"
    metrics_exporter.set_gauge(gauge, 0)
    prometheus_server.wait_for_value(gauge, 0)
    trigger = {"type": "prometheus", "metadata": {"serverAddress": prometheus_server.url, "query": f"sum({gauge})",
                                                  "threshold": "4"}}
    apply(cp, ns, deployment("reporter", 0), scaled_object("reporter", [trigger]))
    story(cp, ns, "reporter", "s0-prometheus", lambda: metrics_exporter.set_gauge(gauge, 14),
          lambda: metrics_exporter.set_gauge(gauge, 0), expected=math.ceil(14 / 4))


def pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "job", "image": "registry.invalid/job:1"}]}}


def assert_up_and_back(values: list[int], expected: int) -> None:
    """0 -> 1 (the controller) -> up to `expected` (the HPA; in steps when the metric itself
    rises in steps, as a pod count does while pods are created) -> 1 -> 0."""
    top = values.index(expected) if expected in values else len(values)
    rising = values[1:top + 1]
    assert values[:2] == [0, 1] and rising == sorted(rising) and max(values) == expected, values
    assert values[top:] == [expected, 1, 0], values


def test_kubernetes_workload_follows_pods_created_and_deleted(stack: Stack, namespace: str) -> None:
    cp, ns = stack.cp, namespace
    trigger = {"type": "kubernetes-workload", "metadata": {"podSelector": "job=batch", "value": "2"}}
    apply(cp, ns, deployment("follower", 0), scaled_object("follower", [trigger]))
    pods = [pod(f"batch-{i}", {"job": "batch"}) for i in range(5)]
    noise = [pod("other", {"job": "other"})]

    def create() -> None:
        apply(cp, ns, *pods, *noise)

    def delete() -> None:
        cp.kubectl("delete", "pods", "-n", ns, "-l", "job=batch", "--wait=false")

    story(cp, ns, "follower", f"s0-workload-{ns}", create, delete, expected=math.ceil(5 / 2))


def test_a_cpu_trigger_yields_the_hpa_keda_writes(stack: Stack, namespace: str) -> None:
    cp, ns = stack.cp, namespace
    triggers = [{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "60"}},
                {"type": "memory", "metricType": "AverageValue", "metadata": {"value": "0.5Gi",
                                                                             "containerName": "worker"}}]
    apply(cp, ns, deployment("web", 0),
          scaled_object("web", triggers, minReplicaCount=2, maxReplicaCount=6, advanced={}))
    hpa = wait_for(lambda: get(cp, "hpa", ns, "keda-hpa-web"), timeout=30, what="the HPA")
    spec = hpa["spec"]
    # KEDA's getScaledObjectMetricSpecs: Resource / ContainerResource metrics, sorted by type
    assert spec["metrics"] == [
        {"type": "ContainerResource", "containerResource": {
            "name": "memory", "container": "worker", "target": {"type": "AverageValue", "averageValue": "512Mi"}}},
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
    ]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 6)
    assert "behavior" not in spec
    labels = hpa["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "keda-hpa-web" and labels["app.kubernetes.io/part-of"] == "web"
    owner = hpa["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("ScaledObject", "web", True)
    ready = wait_condition(cp, ns, "web", "Ready", ("True", "ScaledObjectReady"))
    assert ready.get("externalMetricNames") == [] and ready["resourceMetricNames"] == ["cpu", "memory"]
    wait_condition(cp, ns, "web", "Active", ("True", "ScalerActive"))  # only cpu/memory: always active (KEDA)
    wait_replicas(cp, ns, "web", 2, timeout=30)
    generation = (get(cp, "hpa", ns, "keda-hpa-web") or {})["metadata"]["generation"]
    time.sleep(3)  # several reconciles (pollingInterval 1 s): none may rewrite an HPA that is up to date
    assert (get(cp, "hpa", ns, "keda-hpa-web") or {})["metadata"]["generation"] == generation


def test_cpu_only_with_min_zero_is_refused_as_keda_refuses_it(stack: Stack, namespace: str) -> None:
    cp, ns = stack.cp, namespace
    trigger = {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "50"}}
    apply(cp, ns, deployment("idle", 1), scaled_object("idle", [trigger], minReplicaCount=0))
    found = wait_condition(cp, ns, "idle", "Ready", ("False", "ScaledObjectCheckFailed"))
    message = next(c["message"] for c in found["conditions"] if c["type"] == "Ready")
    assert "scaledobject has only cpu/memory triggers AND minReplica is 0" in message
    assert get(cp, "hpa", ns, "keda-hpa-idle") is None
    assert status(cp, ns, "idle").get("hpaName") is None
