"""Memory per ScaledObject in the controller's caches, measured and bounded.

Each ScaledObject costs the controller its cached ScaledObject (spec parsed, status written),
its HPA and its target's Scale. The objects here are shaped as kube-apiserver serves them
(managedFields, a status with conditions and metrics, a whole Deployment), and go through the
same transforms and cache the watches use; tracemalloc counts what stays allocated.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

from adapter.controller import conditions as c
from adapter.controller.object_cache import ObjectCache, transform_for
from adapter.keda.names import SCALED_OBJECTS
from adapter.keda.scaled_object_status import merged
from adapter.kube.resources import DEPLOYMENTS, HPAS
from tests.harness.served_objects import hpa_spec

OBJECTS = 1000
BOUND_BYTES = 4 * 1024  # per ScaledObject with its HPA and Scale, cache indexes included (about 3.2 KB measured)

MANAGED = [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1", "time": "2026-01-01T00:00:00Z",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {f"f:field{i}": {} for i in range(12)}}}]


def metadata(name: str, i: int, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "bench", "uid": f"0c6f1d2e-{i:04d}-4b7e-9f35-5a1c1a9e{i:04d}",
            "resourceVersion": str(100000 + i), "generation": 2, "creationTimestamp": "2026-01-01T00:00:00Z",
            "managedFields": MANAGED, **extra}


def scaled_object(i: int) -> dict[str, Any]:
    name = f"so-{i:05d}"
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": metadata(name, i),
            "spec": {"scaleTargetRef": {"name": name}, "pollingInterval": 30, "cooldownPeriod": 300,
                     "maxReplicaCount": 10, "triggers": [{"type": "redis", "metadata": {
                         "address": "redis.bench.svc:6379", "listName": f"jobs-{i}", "listLength": "5"}}]},
            "status": {"scaleTargetKind": "apps/v1.Deployment", "originalReplicaCount": 0,
                       "scaleTargetGVKR": {"group": "apps", "version": "v1", "kind": "Deployment",
                                           "resource": "deployments"},
                       "externalMetricNames": [f"s0-redis-jobs-{i}"], "hpaName": f"keda-hpa-{name}",
                       "health": {f"s0-redis-jobs-{i}": {"numberOfFailures": 0, "status": "Happy"}},
                       "triggersActivity": {f"s0-redis-jobs-{i}": {"isActive": False}},
                       "conditions": merged({}, [c.READY, c.NOT_ACTIVE, c.NO_FALLBACK])}}


def hpa(i: int) -> dict[str, Any]:
    name = f"so-{i:05d}"
    owner = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": name, "uid": f"u-{i}",
             "controller": True, "blockOwnerDeletion": True}
    labels = {"app.kubernetes.io/name": f"keda-hpa-{name}", "app.kubernetes.io/version": "0.1.0",
              "app.kubernetes.io/part-of": name, "app.kubernetes.io/managed-by": "eventscale",
              "scaledobject.keda.sh/name": name}
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": metadata(f"keda-hpa-{name}", i, labels=labels, ownerReferences=[owner],
                                 annotations={"eventscale.io/hpa-spec-hash": "0123456789abcdef"}),
            "spec": hpa_spec("Deployment", name, f"s0-redis-jobs-{i}"),
            "status": {"currentReplicas": 0, "desiredReplicas": 0, "conditions": [
                {"type": t, "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z",
                 "reason": "ScalingDisabled",
                 "message": "scaling is disabled since the replica count of the target is zero"}
                for t in ("AbleToScale", "ScalingActive", "ScalingLimited")]}}


def deployment(i: int) -> dict[str, Any]:
    name = f"so-{i:05d}"
    container = {"name": "worker", "image": "registry.example/worker:1.2.3", "imagePullPolicy": "IfNotPresent",
                 "resources": {}, "terminationMessagePath": "/dev/termination-log"}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": metadata(name, i, labels={"app": name}, annotations={"deployment.kubernetes.io/revision": "1"}),
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}},
            "status": {"observedGeneration": 2, "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                 "message": "Deployment has minimum availability."}]}}


def kept_per_object(first: int) -> tuple[ObjectCache, float]:
    """A cache filled as its watches fill it with OBJECTS objects from `first`, and the bytes
    each object keeps allocated."""
    raws = {SCALED_OBJECTS: [scaled_object(i) for i in range(first, first + OBJECTS)],
            HPAS: [hpa(i) for i in range(first, first + OBJECTS)],
            DEPLOYMENTS: [deployment(i) for i in range(first, first + OBJECTS)]}
    cache = ObjectCache(lambda resource, old, new: None)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for resource, objects in raws.items():
        cache.listed(resource, [transform_for(resource)(raw) for raw in objects])
    gc.collect()
    kept = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    assert cache.count(SCALED_OBJECTS) == cache.count(HPAS) == cache.count(DEPLOYMENTS) == OBJECTS
    return cache, kept / OBJECTS


def test_memory_per_scaled_object_is_bounded() -> None:
    """Two caches one after the other, the smaller figure: the interpreter's table of interned
    strings (names are interned) doubles now and then, a megabyte at once, which one batch of
    1,000 objects may happen to pay for; the next batch does not (the table is far larger)."""
    first, one = kept_per_object(0)
    second, other = kept_per_object(OBJECTS)
    per_object = min(one, other)
    print(f"\ncontroller cache: {per_object / 1024:.1f} KB per ScaledObject (with its HPA and Scale; "
          f"batches {one / 1024:.1f}, {other / 1024:.1f})")
    assert per_object < BOUND_BYTES and first is not second
