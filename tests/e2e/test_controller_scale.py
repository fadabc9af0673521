"""What one change costs the controller among 10,000 ScaledObjects: O(1) cache entries.

The controller's caches are filled the way its watches fill them: one real ScaledObject,
Deployment and HPA listed from the real kube-apiserver, plus 9,999 more of each delivered as
watch events, with an in-process adapter (real catalog, store and activity feed, over httpx's
ASGI transport) that knows all 10,000. A spec change of the real object, made through the
API, arrives by watch; the test counts the cache entries handed out while it wakes its
object and while that object is reconciled (its HPA patched for real). With the scans this
replaced, the count was in the tens of thousands; here it is a handful, whatever the number
of other objects, so the N^2 shape cannot come back unnoticed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster_adapter import CRDS, apply
from controller_stack import deployment
from controlplane import ControlPlane

from adapter.api.activity_feed import ActivityFeed, build_internal_app
from adapter.catalog.catalog import Catalog
from adapter.controller.controller import Controller, ControllerOptions
from adapter.controller.events import EventRecorder
from adapter.controller.guarded_api import ControllerKube
from adapter.controller.hpa import HpaMetric, TargetKind, desired_hpa
from adapter.controller.object_cache import parse_cached_scaled_object
from adapter.controller.reconciler import Reconciler
from adapter.controller.work_queue import RateLimiter
from adapter.keda.names import KEDA_GROUP, SCALED_OBJECTS
from adapter.keda.objects import parse_scaled_object
from adapter.kube.autoscaling import Scale, parse_hpa
from adapter.kube.client import KubeApi
from adapter.kube.resources import DEPLOYMENTS, HPAS
from adapter.store.store import MetricStore
from scalers import ScalerRegistry
from tests.unit.controller.test_activity_client import GaugeScaler

pytestmark = pytest.mark.e2e

OBJECTS = 10_000
TOUCHED_PER_CHANGE = 10  # a few lookups by key and by index; nothing that grows with OBJECTS
ROOT = Path(__file__).resolve().parents[2]


def scaled_object(name: str, namespace: str, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": namespace, **extra},
            "spec": {"scaleTargetRef": {"name": name}, "maxReplicaCount": 5,
                     "triggers": [{"type": "gauge", "metadata": {"key": name}}]}}


def others(namespace: str) -> list[dict[str, Any]]:
    return [scaled_object(f"other-{i:05d}", namespace, uid=f"uid-{i}", generation=1, resourceVersion="1",
                          creationTimestamp="2026-01-01T00:00:00Z") for i in range(OBJECTS - 1)]


def their_hpa(raw: dict[str, Any]) -> dict[str, Any]:
    so = parse_scaled_object(raw)
    hpa = desired_hpa(so, TargetKind("apps/v1", "Deployment"), [HpaMetric(f"s0-gauge-{so.name}", "AverageValue", 5)])
    hpa["metadata"]["resourceVersion"] = "1"
    return hpa


@pytest.fixture
async def kube(control_plane: ControlPlane) -> AsyncIterator[KubeApi]:
    control_plane.kubectl("apply", "-k", str(ROOT / "manifests" / "crds"), timeout=120)
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{c}" for c in CRDS))
    api = KubeApi.connect(control_plane.kubeconfig)
    yield api
    await api.aclose()


async def wait_until(probe: Any, what: str, timeout: float = 30) -> Any:
    async with asyncio.timeout(timeout):
        while not (found := probe()):
            await asyncio.sleep(0.05)
    assert found, what
    return found


async def test_one_change_among_10000_touches_a_constant_number_of_cache_entries(
        control_plane: ControlPlane, kube: KubeApi, namespace: str) -> None:
    cp, ns = control_plane, namespace
    apply(cp, ns, deployment("real", 0), scaled_object("real", ns))
    real = json.loads(cp.kubectl("get", "scaledobject.keda.sh", "real", "-n", ns, "-o", "json").stdout)
    synthetic = others(ns)

    values: dict[str, Any] = {"real": 0, **{o["metadata"]["name"]: 0 for o in synthetic}}
    catalog, store = Catalog(ScalerRegistry(entries=(), scalers=[GaugeScaler(values)])), MetricStore()
    store.follow(catalog)
    feed = ActivityFeed(catalog, store)
    catalog.replace_all([(o, "test") for o in (real, *synthetic)])
    await store.refresh(store.entries())

    controller = Controller(kube, ControllerOptions(identity="scale-test", lease_namespace=ns, activity_wait=2),
                            activity_transport=httpx.ASGITransport(app=build_internal_app(feed)))
    reconciler = Reconciler(ControllerKube(kube, RateLimiter(50, 100)), controller.cache, controller.activity,
                            EventRecorder(ControllerKube(kube, RateLimiter(50, 100)), "scale-test"))
    async with asyncio.TaskGroup() as group:
        controller.follow(group)
        try:
            await wait_until(lambda: all(r.listed.is_set() for r in controller.reflectors), "caches listed")
            await wait_until(lambda: len(controller.activity.objects) >= OBJECTS, "the activity of every object")
            cache = controller.cache
            for raw in synthetic:  # as watch events would deliver them
                name = raw["metadata"]["name"]
                cache.changed(SCALED_OBJECTS, parse_cached_scaled_object(raw), deleted=False)
                cache.changed(HPAS, parse_hpa(their_hpa(raw)), deleted=False)
                cache.changed(DEPLOYMENTS, Scale(ns, name, "1", 0), deleted=False)
            key = (KEDA_GROUP, ns, "real")
            assert await reconciler.reconcile(key) is None  # creates the HPA and writes the status
            await wait_until(lambda: (s := cache.scaled_object(key)) and s.status.hpa_name, "the status seen")
            while len(controller.queue):  # what the start-up woke, drained
                controller.queue.done(await controller.queue.get())

            woken_from = cache.touched
            changed = await kube.request("PATCH", f"/apis/keda.sh/v1alpha1/namespaces/{ns}/scaledobjects/real",
                                         body={"spec": {"maxReplicaCount": 7}},
                                         content_type="application/merge-patch+json")
            catalog.apply(changed)  # what the adapter's own watch does
            await wait_until(lambda: (s := cache.scaled_object(key)) and s.spec and s.spec.max_replica_count == 7,
                             "the change watched")
            await wait_until(lambda: (a := controller.activity.get(ns, "real")) and a.generation == 2,
                             "the adapter's view of the change")
            woken = cache.touched - woken_from
            assert [await controller.queue.get()] == [key] and len(controller.queue) == 0
            reconciled_from = cache.touched
            await reconciler.reconcile(key)
            reconciled = cache.touched - reconciled_from
        finally:
            for task in asyncio.all_tasks():
                if task.get_name().startswith(("watch-", "activity")):
                    task.cancel()
    hpa = json.loads(cp.kubectl("get", "hpa", "keda-hpa-real", "-n", ns, "-o", "json").stdout)
    assert hpa["spec"]["maxReplicas"] == 7
    assert cache.count(SCALED_OBJECTS) >= OBJECTS and cache.count(HPAS) >= OBJECTS
    print(f"\nentries touched among {OBJECTS}: waking {woken}, reconciling {reconciled}")
    assert woken <= TOUCHED_PER_CHANGE and reconciled <= TOUCHED_PER_CHANGE
    await store.aclose()
