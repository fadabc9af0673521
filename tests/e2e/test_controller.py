"""The controller end to end: real kube-apiserver, real HPA controller, real Redis and RabbitMQ.

Two adapter + controller pairs run as local processes (see `controller_stack`). There is no
kubelet, so Pods stay Pending; the HPA still counts them (`status.replicas`) for AverageValue
metrics, which is all its arithmetic needs: replicas = ceil(length / target). Polling is 1 s,
cooldowns a few seconds, and the HPAs' behavior has no stabilization window, so each story
takes seconds.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from cluster_adapter import apply, metric_value, rabbitmq_auth
from controller_stack import (
    FAST_HPA,
    LEASE_SECONDS,
    ReplicaLog,
    Stack,
    condition,
    deployment,
    events,
    get,
    reasons,
    replicas,
    scaled_object,
    status,
    wait_condition,
    wait_replicas,
)
from controlplane import ControlPlane, wait_for
from kubernetes import client, watch

from adapter.kube.wire import parse_timestamp
from tests.harness.rabbitmq_server import PASSWORD, USER, RabbitMQServer
from tests.harness.redis_servers import RedisServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def rabbitmq() -> Iterator[RabbitMQServer]:
    with RabbitMQServer() as server:
        yield server


def redis_trigger(server: RedisServer, key: str, **metadata: str) -> dict[str, Any]:
    return {"type": "redis", "metadata": {"address": server.address, "listName": key, "listLength": "5", **metadata}}


def hpa_of(cp: ControlPlane, namespace: str, name: str) -> dict[str, Any] | None:
    hpa: dict[str, Any] | None = get(cp, "hpa", namespace, name)
    return hpa


def existing_hpa(cp: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    hpa = hpa_of(cp, namespace, name)
    assert hpa is not None, f"no HPA {namespace}/{name}"
    return hpa


def desired(cp: ControlPlane, namespace: str, name: str) -> int | None:
    found = hpa_of(cp, namespace, name)
    return None if found is None else (found.get("status") or {}).get("desiredReplicas")


def assert_story(cp: ControlPlane, ns: str, name: str, metric: str, fill: Any, drain: Any, items: int,
                 target: int) -> None:
    """0 -> 1 (controller) -> ceil(items/target) (HPA) -> 1 (HPA) -> 0 (controller, after cooldown)."""
    log = ReplicaLog(cp, ns, name)
    try:
        ready = wait_condition(cp, ns, name, "Ready", ("True", "ScaledObjectReady"))
        assert condition(wait_condition(cp, ns, name, "Active", ("False", "ScalerNotActive")), "Paused")[0] == "Unknown"
        assert ready["hpaName"] == f"keda-hpa-{name}" and ready["externalMetricNames"] == [metric]
        assert ready["originalReplicaCount"] == 0 and ready["scaleTargetKind"] == "apps/v1.Deployment"
        assert "labels" not in (get(cp, "scaledobject.keda.sh", ns, name) or {})["metadata"]  # no write for it

        filled_at = time.time()
        fill()
        log.seen(1, after=filled_at, timeout=10)
        active = wait_condition(cp, ns, name, "Active", ("True", "ScalerActive"))
        assert active["triggersActivity"] == {metric: {"isActive": True}}
        assert active["health"] == {metric: {"numberOfFailures": 0, "status": "Happy"}}
        expected = math.ceil(items / target)
        wait_replicas(cp, ns, name, expected, timeout=30)
        assert desired(cp, ns, f"keda-hpa-{name}") == expected
        assert log.values[:3] == [0, 1, expected]  # the controller takes 0 -> 1, the HPA 1 -> N

        drained_at = time.time()
        drain()
        log.seen(1, after=drained_at, timeout=30)  # the HPA, down to its minReplicas
        cooling = wait_condition(cp, ns, name, "Active", ("False", "ScalerCooldown"))
        zero_at = log.seen(0, after=drained_at, timeout=30)
        last_active = parse_timestamp(cooling["lastActiveTime"])
        assert last_active is not None and zero_at >= last_active + 6 - 1  # cooldownPeriod 6, whole seconds
        wait_condition(cp, ns, name, "Active", ("False", "ScalerNotActive"))
        assert log.values == [0, 1, expected, 1, 0]
        assert [r for r in reasons(cp, ns, name) if r.startswith("KEDA")] == [
            "KEDAScaleTargetActivated", "KEDAScaleTargetDeactivated"]
        messages = [m for _, _, m, _ in events(cp, ns, name)]
        assert f"Scaled apps/v1.Deployment {ns}/{name} from 0 to 1, triggered by {metric}" in messages
        assert f"Deactivated apps/v1.Deployment {ns}/{name} from 1 to 0" in messages
    finally:
        log.stop()


def test_redis_list_story(stack: Stack, redis: RedisServer, namespace: str) -> None:
    cp, ns = stack.cp, namespace
    apply(cp, ns, deployment("worker", 0), scaled_object("worker", [redis_trigger(redis, f"{ns}-jobs")]))
    wait_for(lambda: hpa_of(cp, ns, "keda-hpa-worker"), what="the HPA")
    spec = existing_hpa(cp, ns, "keda-hpa-worker")["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 10)
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"}
    assert spec["metrics"] == [{"type": "External", "external": {
        "metric": {"name": f"s0-redis-{ns}-jobs", "selector": {"matchLabels": {"scaledobject.keda.sh/name": "worker"}}},
        "target": {"type": "AverageValue", "averageValue": "5"}}}]
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 0
    owner = existing_hpa(cp, ns, "keda-hpa-worker")["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("ScaledObject", "worker", True)
    admin = redis.admin()
    assert_story(cp, ns, "worker", f"s0-redis-{ns}-jobs", lambda: admin.rpush(f"{ns}-jobs", *range(23)),
                 lambda: admin.delete(f"{ns}-jobs"), items=23, target=5)


def test_rabbitmq_queue_story(stack: Stack, rabbitmq: RabbitMQServer, namespace: str) -> None:
    cp, ns, queue = stack.cp, namespace, f"{namespace}-orders"
    broker = rabbitmq_auth("broker", f"amqp://{USER}:{PASSWORD}@127.0.0.1:{rabbitmq.amqp_port}/")
    trigger = {"type": "rabbitmq", "metadata": {"queueName": queue, "mode": "QueueLength", "value": "5"},
               "authenticationRef": {"name": "broker"}}
    rabbitmq.fill("/", {queue: 0})
    apply(cp, ns, *broker, deployment("orders", 0), scaled_object("orders", [trigger]))

    def purge() -> None:
        with rabbitmq.amqp() as channel:
            channel.queue_purge(queue)

    def publish() -> None:  # in one transaction, so no read sees part of them
        with rabbitmq.amqp() as channel:
            channel.tx_select()
            for i in range(12):
                channel.basic_publish("", queue, str(i).encode(), pika.BasicProperties())
            channel.tx_commit()

    assert_story(cp, ns, "orders", f"s0-rabbitmq-{queue}", publish, purge, items=12, target=5)
    assert "s3cret" not in json.dumps(status(cp, ns, "orders"))


def test_killed_leader_during_cooldown_no_early_scale_down(stack: Stack, redis: RedisServer, namespace: str) -> None:
    cp, ns, admin = stack.cp, namespace, redis.admin()
    apply(cp, ns, deployment("batch", 0),
          scaled_object("batch", [redis_trigger(redis, f"{ns}-batch")], cooldownPeriod=8))
    wait_condition(cp, ns, "batch", "Ready", ("True", "ScaledObjectReady"))
    log = ReplicaLog(cp, ns, "batch")
    try:
        admin.rpush(f"{ns}-batch", 1, 2, 3)
        log.seen(1)
        time.sleep(1.5)
        admin.delete(f"{ns}-batch")
        cooling = wait_condition(cp, ns, "batch", "Active", ("False", "ScalerCooldown"))
        leader = stack.leader()
        leader.kill()
        killed_at = time.time()
        survivor = stack.leader(timeout=LEASE_SECONDS + 3)
        assert survivor is not leader and time.time() - killed_at < LEASE_SECONDS + 2
        zero_at = log.seen(0, after=killed_at, timeout=20)
        last_active = parse_timestamp(cooling["lastActiveTime"])
        assert last_active is not None and zero_at >= last_active + 8 - 1  # not before the cooldown ends
        assert zero_at <= last_active + 8 + LEASE_SECONDS + 3
        assert log.values == [0, 1, 0]  # no flapping
        assert reasons(cp, ns, "batch").count("KEDAScaleTargetDeactivated") == 1
    finally:
        log.stop()
        stack.restart_stopped()


def test_killed_leader_during_activation_survivor_activates_once(stack: Stack, redis: RedisServer,
                                                                   namespace: str) -> None:
    cp, ns, admin = stack.cp, namespace, redis.admin()
    apply(cp, ns, deployment("burst", 0), scaled_object("burst", [redis_trigger(redis, f"{ns}-burst")]))
    wait_condition(cp, ns, "burst", "Active", ("False", "ScalerNotActive"))
    stack.leader(timeout=LEASE_SECONDS + 10)  # the controller restarted by the last test may still follow
    log = ReplicaLog(cp, ns, "burst")
    try:
        leader = stack.leader()
        admin.rpush(f"{ns}-burst", *range(12))
        pushed_at = time.time()
        time.sleep(0.3)
        leader.kill()
        one_at = log.seen(1, timeout=LEASE_SECONDS + 15)
        assert one_at - pushed_at < LEASE_SECONDS + 0.5 + 3  # a takeover, then a poll
        log.seen(3, timeout=20)  # 12 / 5, by the HPA
        time.sleep(2)
        assert log.values == [0, 1, 3]  # activated once, never back to 0 while messages wait
        assert reasons(cp, ns, "burst").count("KEDAScaleTargetActivated") <= 1
        assert stack.leader() is not leader
    finally:
        log.stop()
        admin.delete(f"{ns}-burst")
        stack.restart_stopped()


def test_paused_objects_are_not_touched_and_delete_restores(stack: Stack, redis: RedisServer,
                                                            namespace: str) -> None:
    cp, ns, admin, key = stack.cp, namespace, redis.admin(), f"{namespace}-paused"
    advanced = {"restoreToOriginalReplicaCount": True, "horizontalPodAutoscalerConfig": {"behavior": FAST_HPA}}
    apply(cp, ns, deployment("api", 3), scaled_object("api", [redis_trigger(redis, key)], cooldownPeriod=2,
                                                      advanced=advanced))
    wait_replicas(cp, ns, "api", 0, timeout=20)  # never active, no initialCooldownPeriod: straight to 0
    found = get(cp, "scaledobject.keda.sh", ns, "api") or {}
    assert found["status"]["originalReplicaCount"] == 3 and "finalizer.keda.sh" in found["metadata"]["finalizers"]

    cp.kubectl("annotate", "so", "api", "-n", ns, "autoscaling.keda.sh/paused-replicas=2")
    wait_replicas(cp, ns, "api", 2)
    paused = wait_condition(cp, ns, "api", "Paused", ("True", "ScaledObjectPaused"))
    assert paused["pausedReplicaCount"] == 2
    wait_for(lambda: hpa_of(cp, ns, "keda-hpa-api") is None, what="the HPA deleted on pause")
    admin.rpush(key, *range(30))
    cp.kubectl("annotate", "so", "api", "-n", ns, "autoscaling.keda.sh/paused=true",
               "autoscaling.keda.sh/paused-replicas-")
    time.sleep(4)
    assert replicas(cp, ns, "api") == 2 and hpa_of(cp, ns, "keda-hpa-api") is None  # kept as it was
    assert condition(status(cp, ns, "api"), "Paused") == ("True", "ScaledObjectPaused")

    cp.kubectl("annotate", "so", "api", "-n", ns, "autoscaling.keda.sh/paused-")
    unpaused = wait_condition(cp, ns, "api", "Paused", ("False", "ScaledObjectUnpaused"))
    assert "pausedReplicaCount" not in unpaused
    wait_replicas(cp, ns, "api", 6, timeout=20)  # 30 / 5, by the HPA made again

    cp.kubectl("annotate", "so", "api", "-n", ns, "autoscaling.keda.sh/paused-scale-in=true")
    wait_for(lambda: scale_down_policy(cp, ns, "keda-hpa-api") == "Disabled", what="scale-down disabled")
    assert condition(status(cp, ns, "api"), "Paused") == ("True", "ScaledObjectPaused")
    admin.delete(key)
    time.sleep(5)  # past cooldownPeriod 2: neither the HPA nor the controller scales in
    assert replicas(cp, ns, "api") == 6
    cp.kubectl("annotate", "so", "api", "-n", ns, "autoscaling.keda.sh/paused-scale-in-")
    wait_for(lambda: scale_down_policy(cp, ns, "keda-hpa-api") != "Disabled", what="scale-down restored")
    wait_replicas(cp, ns, "api", 0, timeout=30)

    cp.kubectl("delete", "so", "api", "-n", ns, "--wait=true", "--timeout=30s")
    assert replicas(cp, ns, "api") == 3  # restoreToOriginalReplicaCount
    wait_for(lambda: hpa_of(cp, ns, "keda-hpa-api") is None, what="the HPA gone with its ScaledObject")


def scale_down_policy(cp: ControlPlane, namespace: str, name: str) -> str | None:
    found = hpa_of(cp, namespace, name) or {}
    return str(found["spec"]["behavior"]["scaleDown"].get("selectPolicy")) if found else None


WORKER_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "workers.e2e.eventscale.test"},
    "spec": {"group": "e2e.eventscale.test", "scope": "Namespaced",
             "names": {"kind": "Worker", "plural": "workers", "singular": "worker", "listKind": "WorkerList"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
                               "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}},
                           "subresources": {"scale": {"specReplicasPath": ".spec.replicas",
                                                      "statusReplicasPath": ".status.replicas"}}}]}}


def test_any_kind_with_a_scale_subresource(stack: Stack, redis: RedisServer, namespace: str) -> None:
    cp, ns, admin = stack.cp, namespace, redis.admin()
    cp.kubectl("apply", "-f", "-", input=json.dumps(WORKER_CRD))
    cp.kubectl("wait", "--for=condition=Established", "crd/workers.e2e.eventscale.test", "--timeout=30s")
    wait_for(lambda: "workers" in cp.kubectl("api-resources", "--api-group=e2e.eventscale.test").stdout,
             what="the Worker kind served")
    statefulset = deployment("db", 0)
    statefulset.update(kind="StatefulSet")
    statefulset["spec"]["serviceName"] = "db"
    worker = {"apiVersion": "e2e.eventscale.test/v1", "kind": "Worker", "metadata": {"name": "crunch"},
              "spec": {"replicas": 0}}
    forced = scaled_object("crunch", [redis_trigger(redis, f"{ns}-idle")],
                           annotations={"autoscaling.keda.sh/force-activation": "true"})
    forced["spec"]["scaleTargetRef"] = {"apiVersion": "e2e.eventscale.test/v1", "kind": "Worker", "name": "crunch"}
    on_db = scaled_object("db", [redis_trigger(redis, f"{ns}-db")])
    on_db["spec"]["scaleTargetRef"]["kind"] = "StatefulSet"
    apply(cp, ns, statefulset, worker, forced, on_db)
    try:
        wait_for(lambda: (get(cp, "worker", ns, "crunch") or {}).get("spec", {}).get("replicas") == 1,
                 what="the custom resource scaled through /scale")
        crunch = wait_condition(cp, ns, "crunch", "Active", ("True", "ScalerActive"))
        assert crunch["scaleTargetKind"] == "e2e.eventscale.test/v1.Worker"
        assert crunch["scaleTargetGVKR"]["resource"] == "workers"
        messages = [m for _, _, m, _ in events(cp, ns, "crunch")]
        assert any(m.endswith("from 0 to 1, caused by forced activation annotation") for m in messages)
    finally:
        cp.kubectl("delete", "crd", "workers.e2e.eventscale.test", "--wait=false", check=False)

    wait_condition(cp, ns, "db", "Ready", ("True", "ScaledObjectReady"))
    admin.rpush(f"{ns}-db", 1)
    wait_for(lambda: (get(cp, "statefulset", ns, "db") or {}).get("spec", {}).get("replicas") == 1,
             what="the StatefulSet activated")
    assert status(cp, ns, "db")["scaleTargetKind"] == "apps/v1.StatefulSet"
    admin.delete(f"{ns}-db")


def test_2019_format_end_to_end(stack: Stack, redis: RedisServer, namespace: str) -> None:
    cp, ns, admin, key = stack.cp, namespace, redis.admin(), f"{namespace}-legacy"
    legacy = {"apiVersion": "keda.k8s.io/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "legacy-so"},
              "spec": {"scaleTargetRef": {"deploymentName": "legacy", "containerName": "worker"},
                       "pollingInterval": 1, "cooldownPeriod": 3, "maxReplicaCount": 10,
                       "triggers": [{"type": "redis", "metadata": {"address": "REDIS_ADDRESS", "listName": key,
                                                                   "listLength": "5"}}]}}
    apply(cp, ns, deployment("legacy", 0, env={"REDIS_ADDRESS": redis.address}), legacy)
    wait_for(lambda: hpa_of(cp, ns, "keda-hpa-legacy"), what="keda-hpa-<deployment>")
    metric = existing_hpa(cp, ns, "keda-hpa-legacy")["spec"]["metrics"][0]["external"]["metric"]
    assert metric == {"name": f"s0-redis-{key}", "selector": {"matchLabels": {"deploymentName": "legacy"}}}
    admin.rpush(key, *range(12))
    wait_replicas(cp, ns, "legacy", 3, timeout=20)
    ready = wait_condition(cp, ns, "legacy-so", "Active", ("True", "ScalerActive"),
                           resource="scaledobjects.keda.k8s.io")
    assert condition(ready, "Ready") == ("True", "ScaledObjectReady")
    admin.delete(key)
    wait_replicas(cp, ns, "legacy", 0, timeout=30)


def test_invalid_objects_are_reported_and_others_unaffected(stack: Stack, redis: RedisServer,
                                                            namespace: str) -> None:
    cp, ns = stack.cp, namespace
    trigger = redis_trigger(redis, f"{ns}-v")
    foreign = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "theirs"},
               "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "taken"},
                        "minReplicas": 1, "maxReplicas": 2,
                        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                            "type": "Utilization", "averageUtilization": 50}}}]}}
    cases = {
        "dup": (scaled_object("dup", [{**trigger, "name": "a"}, {**trigger, "name": "a"}]),
                "triggers must have unique names, duplicated: a"),
        "idle": (scaled_object("idle", [trigger], idleReplicaCount=2, minReplicaCount=2),
                 "idleReplicaCount (2) must be less than minReplicaCount (2)"),
        "unknown": (scaled_object("unknown", [{"type": "nosuch", "metadata": {}}]),
                    'unknown trigger type "nosuch"'),
        "taken": (scaled_object("taken", [trigger]),
                  "the workload 'taken' of type 'apps/v1.Deployment' is already managed by the hpa 'theirs'"),
    }
    bounds = scaled_object("bounds", [trigger], minReplicaCount=5, maxReplicaCount=2)  # the CRD refuses it, as KEDA's
    rejected = cp.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(bounds), check=False)
    assert "minReplicaCount must be less than or equal to maxReplicaCount" in rejected.stderr
    apply(cp, ns, *(deployment(n, 0) for n in [*cases, "good"]), foreign)
    apply(cp, ns, scaled_object("good", [trigger]), *(so for so, _ in cases.values()))
    wait_condition(cp, ns, "good", "Ready", ("True", "ScaledObjectReady"))
    assert hpa_of(cp, ns, "keda-hpa-good") is not None
    apply(cp, ns, scaled_object("second", [trigger], target="good"))
    messages = {name: message for name, (_, message) in cases.items()}
    messages["second"] = ("the workload 'good' of type 'apps/v1.Deployment' is already managed by the "
                          "ScaledObject 'good'")
    for name, message in messages.items():
        failed = wait_condition(cp, ns, name, "Ready", ("False", "ScaledObjectCheckFailed"))
        assert message in next(c["message"] for c in failed["conditions"] if c["type"] == "Ready"), name
        assert condition(failed, "Active") == ("Unknown", "UnknownState")
        assert ("Warning", "ScaledObjectCheckFailed") in [(t, r) for t, r, _, _ in events(cp, ns, name)], name
        assert hpa_of(cp, ns, f"keda-hpa-{name}") is None
    cp.kubectl("delete", "hpa", "theirs", "-n", ns)  # the target is free now
    wait_condition(cp, ns, "taken", "Ready", ("True", "ScaledObjectReady"))


def test_fallback_replicas_when_the_scaler_keeps_failing(stack: Stack, namespace: str) -> None:
    cp, ns = stack.cp, namespace
    dead = {"type": "redis", "metadata": {"address": "127.0.0.1:1", "listName": "x", "listLength": "5"}}
    higher = {"failureThreshold": 1, "replicas": 2, "behavior": "currentReplicasIfHigher"}
    apply(cp, ns, deployment("fb", 1), deployment("fbc", 5),
          scaled_object("fb", [dead], minReplicaCount=1, fallback={"failureThreshold": 2, "replicas": 4}),
          scaled_object("fbc", [dead], minReplicaCount=1, fallback=higher))
    wait_replicas(cp, ns, "fb", 4, timeout=40)  # the HPA computes fallback.replicas from the answer
    # currentReplicasIfHigher: max(5 current, 2) = 5, known from the HPA through the controller
    wait_for(lambda: metric_value(cp, ns, "s0-redis-x", "fbc") == "25", timeout=20,
             what="the fallback answer 5 x target 5")
    assert replicas(cp, ns, "fbc") == 5 and desired(cp, ns, "keda-hpa-fbc") in (None, 5)
    found = wait_condition(cp, ns, "fb", "Fallback", ("True", "FallbackExists"))
    health = found["health"]["s0-redis-x"]
    assert health["status"] == "Failing" and health["numberOfFailures"] > 2
    assert condition(found, "Ready") == ("True", "ScaledObjectReady")  # a fallback is in place
    assert "KEDAScalerFailed" in reasons(cp, ns, "fb")
    time.sleep(3)
    assert replicas(cp, ns, "fb") == 4  # an error never scales down


def make_ready(cp: ControlPlane, namespace: str, app: str, count: int) -> None:
    """Play the kubelet (there is none): `count` pods of `app` not yet running become Running and
    Ready, through the status subresource."""
    def waiting() -> list[dict[str, Any]] | None:
        pods = cp.kubectl_json("get", "pods", "-n", namespace, "-l", f"app={app}")["items"]
        found = [p for p in pods if (p.get("status") or {}).get("phase") != "Running"]
        return found if len(found) >= count else None

    ready = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    for pod in wait_for(waiting, timeout=20, what=f"{count} pods of {app} not running")[:count]:
        cp.kubectl("patch", "pod", pod["metadata"]["name"], "-n", namespace, "--subresource=status",
                   "--type=merge", "-p", json.dumps(ready))


def test_fallback_for_value_metrics_divides_by_the_ready_pods(stack: Stack, namespace: str) -> None:
    """KEDA 2.20: a `metricType: Value` metric in fallback answers target x replicas / ready pods
    (Running and Ready, matched by the Scale's selector), so the HPA, which computes
    ceil(value / target x ready pods), lands on fallback.replicas; with a scalingModifiers
    composite of type Value too (fbm). While no pod is ready there is no fallback answer (fbv).

    A pod that gets ready is seen by the HPA's informer and the controller's watch at about the
    same time; an HPA sync between the two computes from different counts (then corrects). So
    fbm's pods are ready before it falls back, and fbv's maxReplicaCount is its fallback count,
    which keeps the outcome of such a sync what the test expects."""
    cp, ns = stack.cp, namespace
    dead = {"address": "127.0.0.1:1", "listName": "x", "listLength": "5"}
    composite = {"formula": "dead", "target": "5", "metricType": "Value"}
    apply(cp, ns, deployment("fbv", 3), deployment("fbm", 2))
    make_ready(cp, ns, "fbm", 2)
    apply(cp, ns,
          scaled_object("fbv", [{"type": "redis", "metricType": "Value", "metadata": dead}], minReplicaCount=1,
                        maxReplicaCount=5, fallback={"failureThreshold": 1, "replicas": 5}),
          scaled_object("fbm", [{"type": "redis", "name": "dead", "metadata": dead}], minReplicaCount=1,
                        fallback={"failureThreshold": 1, "replicas": 4},
                        advanced={"horizontalPodAutoscalerConfig": {"behavior": FAST_HPA},
                                  "scalingModifiers": composite}))
    for name in ("fbv", "fbm"):
        wait_condition(cp, ns, name, "Fallback", ("True", "FallbackExists"))
    # no kubelet, so none of fbv's pods runs: no value makes the HPA compute 5, the error stands
    assert metric_value(cp, ns, "s0-redis-x", "fbv") is None and replicas(cp, ns, "fbv") == 3

    wait_for(lambda: metric_value(cp, ns, "composite-metric", "fbm") == "10", timeout=20,
             what="5 x 4 replicas / 2 ready pods")  # target x replicas, 20, would make the HPA compute 8
    wait_replicas(cp, ns, "fbm", 4, timeout=20)  # its 2 new pods stay Pending: still 2 ready, still 4
    make_ready(cp, ns, "fbv", 3)
    wait_for(lambda: metric_value(cp, ns, "s0-redis-x", "fbv") == "8333m", timeout=20,
             what="5 x 5 replicas / 3 ready pods")  # not target x replicas (25)
    wait_replicas(cp, ns, "fbv", 5, timeout=20)
    make_ready(cp, ns, "fbv", 2)  # fbv's new pods get ready: the watch follows, so does the answer
    wait_for(lambda: metric_value(cp, ns, "s0-redis-x", "fbv") == "5", timeout=20, what="5 x 5 replicas / 5 ready")
    assert (replicas(cp, ns, "fbv"), desired(cp, ns, "keda-hpa-fbv")) == (5, 5)
    assert (replicas(cp, ns, "fbm"), desired(cp, ns, "keda-hpa-fbm")) == (4, 4)


class VersionLog:
    """Every watch event of one kind in a namespace as (resourceVersion, type, object): etcd
    orders resourceVersions across kinds, so the log says which write happened first."""

    def __init__(self, cp: ControlPlane, namespace: str, resource: str) -> None:
        self.events: list[tuple[int, str, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(cp, namespace, resource), daemon=True)
        self._thread.start()
        wait_for(lambda: self._started, what=f"the watch of {resource}")

    _started = False

    def _run(self, cp: ControlPlane, namespace: str, resource: str) -> None:
        group, version, plural = resource.split("/")
        with cp.api_client() as api:
            objects = client.CustomObjectsApi(api)
            version_seen = "0"
            while not self._stop.is_set():
                stream = watch.Watch().stream(  # type: ignore[no-untyped-call]  # kubernetes.watch is unannotated
                    objects.list_namespaced_custom_object, group, version, namespace, plural,
                    resource_version=version_seen, timeout_seconds=2)
                self._started = True
                for event in stream:
                    version_seen = event["object"]["metadata"]["resourceVersion"]
                    self.events.append((int(version_seen), event["type"], event["object"]))

    def first(self, test: Any) -> int | None:
        return next((v for v, kind, obj in self.events if test(kind, obj)), None)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def test_original_count_is_recorded_before_the_hpa_and_restored_after_it(stack: Stack, redis: RedisServer,
                                                                       namespace: str) -> None:
    """Issue 8, defect 3: the count is in the status before the HPA exists, and on delete the
    HPA is gone before the count is restored (it would scale it back)."""
    cp, ns = stack.cp, namespace
    objects = VersionLog(cp, ns, "keda.sh/v1alpha1/scaledobjects")
    hpas = VersionLog(cp, ns, "autoscaling/v2/horizontalpodautoscalers")
    targets = VersionLog(cp, ns, "apps/v1/deployments")
    try:
        advanced = {"restoreToOriginalReplicaCount": True, "horizontalPodAutoscalerConfig": {"behavior": FAST_HPA}}
        apply(cp, ns, deployment("keep", 3), scaled_object("keep", [redis_trigger(redis, f"{ns}-keep")],
                                                           advanced=advanced))
        wait_replicas(cp, ns, "keep", 0, timeout=30)
        recorded = wait_for(lambda: objects.first(
            lambda _, o: (o.get("status") or {}).get("originalReplicaCount") is not None), what="originalReplicaCount")
        created = wait_for(lambda: hpas.first(lambda kind, _: kind == "ADDED"), what="the HPA created")
        assert status(cp, ns, "keep")["originalReplicaCount"] == 3 and recorded < created

        cp.kubectl("delete", "so", "keep", "-n", ns, "--wait=true", "--timeout=30s")
        gone = wait_for(lambda: hpas.first(lambda kind, _: kind == "DELETED"), what="the HPA deleted")
        restored = wait_for(lambda: targets.first(lambda _, d: d["spec"]["replicas"] == 3 and
                                                  d["metadata"]["generation"] > 1), what="the count restored")
        assert gone < restored
        time.sleep(3)  # the HPA controller syncs every second: nothing scales it back
        assert replicas(cp, ns, "keep") == 3
    finally:
        for log in (objects, hpas, targets):
            log.stop()


def test_unknown_activity_is_not_health(stack: Stack, namespace: str) -> None:
    """Issue 8, defect 4: a failing ScaledObject must not turn Ready=True when the adapter that
    reports its failures stops answering."""
    cp, ns = stack.cp, namespace
    dead = {"type": "redis", "metadata": {"address": "127.0.0.1:1", "listName": "x", "listLength": "5"}}
    apply(cp, ns, deployment("lost", 1), scaled_object("lost", [dead], minReplicaCount=1))
    wait_condition(cp, ns, "lost", "Ready", ("False", "TriggerError"), timeout=30)
    leader = stack.leader()
    pod = next(p for p in stack.pods if p.controller is leader)
    pod.adapter.stop()
    try:
        stale_at = time.time() + 10 + 5  # the controller's activity wait + its freshness margin
        seen: list[tuple[str, str]] = []
        poked = False
        while time.time() < stale_at + 6:
            if not poked and time.time() > stale_at + 1:
                cp.kubectl("annotate", "so", "lost", "-n", ns, "eventscale.test/poke=1")  # a reconcile, now
                poked = True
            seen.append(condition(status(cp, ns, "lost"), "Ready"))
            time.sleep(0.5)
        assert set(seen) == {("False", "TriggerError")}
    finally:
        pod.adapter.start(timeout=60)
