"""A late Lease renewal pauses the workers instead of sending every queued object round.

Found at 100,000 ScaledObjects on a saturated kube-apiserver: while a renewal was late, each
worker took object after object from the queue, each refused (`NotLeading`) before it reached
the network, each logged and queued again, the queue never yielding the event loop; 40,000
attempts in a minute, and the renewal's own answer waited behind them. Now a worker that finds
the renewal late puts its object back and waits for the renewal; then every object is tried.

The controller is the real one with its real queue, reconciler and guarded API, pointed at a
port nothing listens on. Each object asks for its replica count restored, so its reconcile
begins with a write (the finalizer): refused while the renewal is late; once it is in, it
fails on the network, which counts as a reconcile (backed off), unlike a refusal for the Lease.
"""

from __future__ import annotations

import asyncio

from adapter.controller.controller import Controller, ControllerOptions
from adapter.controller.object_cache import parse_cached_scaled_object
from adapter.keda.names import SCALED_OBJECTS
from adapter.kube.client import KubeApi
from adapter.kube.credentials import Credentials
from tests.harness.ports import free_port

OBJECTS = 200
WORKERS = 4


def scaled_object(name: str) -> dict[str, object]:
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "generation": 1,
                         "resourceVersion": "1", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"scaleTargetRef": {"name": name}, "advanced": {"restoreToOriginalReplicaCount": True},
                     "triggers": [{"type": "cron", "metadata": {
                "timezone": "UTC", "start": "0 8 * * *", "end": "0 9 * * *", "desiredReplicas": "2"}}]}}


async def wait_until(probe: object, what: str) -> None:
    async with asyncio.timeout(10):
        while not probe():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_workers_wait_for_a_late_renewal_then_try_every_object() -> None:
    api = KubeApi(Credentials(f"https://127.0.0.1:{free_port()}"), timeout=5)  # nothing listens there
    controller = Controller(api, ControllerOptions(identity="late", workers=WORKERS, activity_wait=0))
    for i in range(OBJECTS):
        controller.cache.changed(SCALED_OBJECTS, parse_cached_scaled_object(scaled_object(f"so-{i:03d}")),
                                 deleted=False)
    elector = controller.elector
    elector.leading = True  # led, and the last renewal is older than the renew deadline
    assert not elector.valid()
    controller._start_leading()
    try:
        await wait_until(lambda: controller.waits_for_renewal >= WORKERS, "every worker waiting")
        for _ in range(20):  # the loop is free: nothing else is tried while they wait
            await asyncio.sleep(0)
        assert controller.waits_for_renewal == WORKERS and controller.reconciles == 0
        assert len(controller.queue) == OBJECTS  # the refused objects are queued again, none lost

        elector._renewed()  # what a renewal that goes through does
        await wait_until(lambda: controller.reconciles >= OBJECTS, "every object reconciled")
        assert controller.waits_for_renewal == WORKERS
        assert controller.ready_after is not None  # the first pass counts real attempts only
    finally:
        controller._stop_leading()
        await api.aclose()
