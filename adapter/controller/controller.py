"""The controller process: watches, the adapter's activity, leader election, and the workers.

Every replica keeps the same state warm: ScaledObjects of both API groups, HPAs, and the
replica counts of Deployments and StatefulSets by watch, the adapter's activity by long poll
(with when each object was last seen active). Only the leader runs workers. What wakes an
object, and how:

* a ScaledObject or HPA change other than status, an activity change: urgent (front of queue);
* its target's replica count changing: routine;
* leadership gained: every object (active ones urgent);
* its own schedule: routine, after its pollingInterval (or when its cooldown ends).

A failed reconcile is retried with a per-object backoff (0.5 s doubling to 30 s; a conflict
after 0.2 s). `workers` reconciles run at once; the rate limiter bounds their API calls.

Both replicas also tell their own adapter the HPA's current replica count of objects whose
fallback behaviour needs it (`currentReplicas*`), since either adapter may answer the HPA.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import httpx

from adapter.controller.activity_client import ActivityClient
from adapter.controller.events import EventRecorder
from adapter.controller.guarded_api import ControllerKube, NotLeading, SoKey, so_key
from adapter.controller.http_scaled_objects import HttpScaledObjectMirror
from adapter.controller.leader import LeaderElector
from adapter.controller.object_cache import ObjectCache, interesting, transform, workload
from adapter.controller.queue import RateLimiter, WorkQueue
from adapter.controller.reconciler import Reconciler, target_of
from adapter.keda.activity import ReplicaCount
from adapter.keda.names import KEDA_GROUPS, LEGACY_GROUP, LEGACY_SCALED_OBJECTS, SCALED_OBJECTS
from adapter.kube.client import ApiStatusError, KubeApi, Object
from adapter.kube.resources import DEPLOYMENTS, HPAS, STATEFUL_SETS, Resource
from adapter.kube.watch import Reflector

log = logging.getLogger("eventscale.controller")

CURRENT_REPLICAS_BEHAVIORS = ("currentReplicas", "currentReplicasIfHigher", "currentReplicasIfLower")


@dataclass
class ControllerOptions:
    identity: str
    adapter_url: str = "http://127.0.0.1:9022"
    lease_namespace: str = "eventscale"
    lease_name: str = "eventscale-controller"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    qps: float = 50.0
    burst: int = 100
    workers: int = 4
    activity_wait: float = 10.0
    resync_period: float = 1800.0


def owner_key(hpa: Object) -> SoKey | None:
    meta = hpa.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        group = str(ref.get("apiVersion", "")).split("/")[0]
        if ref.get("kind") == "ScaledObject" and group in KEDA_GROUPS and ref.get("controller"):
            return group, str(meta.get("namespace")), str(ref.get("name"))
    return None


class Controller:
    def __init__(self, api: KubeApi, options: ControllerOptions) -> None:
        self.api, self.options = api, options
        self.elector = LeaderElector(api, options.lease_namespace, options.lease_name, options.identity,
                                     lease_duration=options.lease_duration, renew_deadline=options.renew_deadline,
                                     retry_period=options.retry_period)
        self.kube = ControllerKube(api, RateLimiter(options.qps, options.burst), self.elector.valid)
        self.cache = ObjectCache(self._on_object)
        self.activity = ActivityClient(options.adapter_url, self._on_activity, wait=options.activity_wait)
        self.reconciler = Reconciler(self.kube, self.cache, self.activity, EventRecorder(self.kube, options.identity))
        self.queue: WorkQueue[SoKey] = WorkQueue()
        self.reflectors = [Reflector(api, r, self.cache, transform, resync=options.resync_period)
                           for r in (SCALED_OBJECTS, LEGACY_SCALED_OBJECTS, HPAS)]
        self.reflectors += [Reflector(api, r, self.cache, workload, resync=options.resync_period)
                            for r in (DEPLOYMENTS, STATEFUL_SETS)]
        self.reconciles = 0
        self._failures: dict[SoKey, int] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._replicas: dict[tuple[str, str], int] = {}  # reported to the adapter
        self._replicas_changed = asyncio.Event()

    # -- running -------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for reflector in self.reflectors:
                    group.create_task(reflector.run(), name=f"watch-{reflector.resource}")
                group.create_task(self.activity.run(), name="activity")
                group.create_task(self._report_replicas(), name="replicas")
                await asyncio.gather(*(r.listed.wait() for r in self.reflectors))
                log.info("caches synced identity=%s; campaigning for lease %s/%s", self.options.identity,
                         self.options.lease_namespace, self.options.lease_name)
                group.create_task(self.elector.run(self._start_leading, self._stop_leading), name="leader")
        finally:
            self._stop_leading()
            await self.elector.release()
            await self.activity.aclose()

    def _start_leading(self) -> None:
        self._workers = [asyncio.create_task(self._work(), name=f"worker-{i}") for i in range(self.options.workers)]
        for resource in (SCALED_OBJECTS, LEGACY_SCALED_OBJECTS):
            for obj in self.cache.items(resource):
                key = so_key(obj)
                found = self.activity.get(key[1], key[2])
                self.queue.add(key, urgent=found is not None and found.active)

    def _stop_leading(self) -> None:
        for task in self._workers:
            task.cancel()
        self._workers = []
        self.queue.clear_timers()

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            delay: float | None = None
            try:
                delay = await self.reconciler.reconcile(key)
                self._failures.pop(key, None)
            except NotLeading:
                log.info("object=%s/%s not reconciled: not leading", key[1], key[2])
            except (ApiStatusError, httpx.HTTPError) as exc:
                delay = self._backoff(key, exc)
            except Exception as exc:  # one object's bug must not stop the others
                log.exception("object=%s/%s reconcile failed", key[1], key[2])
                delay = self._backoff(key, exc)
            finally:
                self.reconciles += 1
                self.queue.done(key)
            if delay is not None and self.elector.leading:
                self.queue.add_after(key, delay)

    def _backoff(self, key: SoKey, exc: BaseException) -> float:
        if isinstance(exc, ApiStatusError) and exc.code == 409:
            return 0.2
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        delay = min(30.0, 0.5 * 2.0 ** (failures - 1))
        log.warning("object=%s/%s error=%r retry_in=%.1fs", key[1], key[2], str(exc) or type(exc).__name__, delay)
        return delay

    # -- what wakes an object --------------------------------------------------------------------

    def _on_object(self, resource: Resource, old: Object | None, new: Object | None) -> None:
        if resource is HPAS:
            self._on_hpa(old, new)
            return
        if resource in (DEPLOYMENTS, STATEFUL_SETS):
            self._on_workload(resource, old, new)
            return
        key = so_key(new or old or {})
        if new is None:
            self.queue.forget(key)
            self._replicas.pop((key[1], key[2]), None)
        elif interesting(old, new):
            self.queue.add(key, urgent=True)
            hpa = self.cache.get(HPAS, key[1], str(((new.get("status") or {}).get("hpaName")) or ""))
            if hpa is not None:
                self._note_replicas(key, hpa)
        if old is None or new is None or (old.get("spec") or {}).get("scaleTargetRef") != \
                (new.get("spec") or {}).get("scaleTargetRef"):
            self._wake_not_ready(key[1])  # a target freed or taken: rivals may change

    def _on_hpa(self, old: Object | None, new: Object | None) -> None:
        owner = owner_key(new or old or {})
        if owner is None:
            if old is None or new is None:
                self._wake_not_ready(str(((new or old or {}).get("metadata") or {}).get("namespace")))
            return
        if interesting(old, new):
            self.queue.add(owner, urgent=True)
        if new is not None:
            self._note_replicas(owner, new)

    def _on_workload(self, resource: Resource, old: Object | None, new: Object | None) -> None:
        """A target scaled (by the HPA, by hand) or created: its ScaledObjects look again."""
        if old is not None and new is not None and old.get("spec") == new.get("spec"):
            return
        meta = (new or old or {}).get("metadata") or {}
        target = (resource.kind, str(meta.get("name")))
        for so_resource in (SCALED_OBJECTS, LEGACY_SCALED_OBJECTS):
            for obj in self.cache.items(so_resource):
                if (obj.get("metadata") or {}).get("namespace") == meta.get("namespace") and \
                        target_of(obj) == target:
                    self.queue.add(so_key(obj))

    def _on_activity(self, changed: set[tuple[str, str]]) -> None:
        for namespace, name in changed:
            for group in KEDA_GROUPS:
                resource = LEGACY_SCALED_OBJECTS if group == LEGACY_GROUP else SCALED_OBJECTS
                if self.cache.get(resource, namespace, name) is not None:
                    self.queue.add((group, namespace, name), urgent=True)

    def _wake_not_ready(self, namespace: str) -> None:
        for resource in (SCALED_OBJECTS, LEGACY_SCALED_OBJECTS):
            for obj in self.cache.items(resource):
                if (obj.get("metadata") or {}).get("namespace") == namespace and not _ready(obj):
                    self.queue.add(so_key(obj))

    # -- current replicas for the adapter's fallback answers ------------------------------------

    def _note_replicas(self, owner: SoKey, hpa: Object) -> None:
        resource = LEGACY_SCALED_OBJECTS if owner[0] == LEGACY_GROUP else SCALED_OBJECTS
        so = self.cache.get(resource, owner[1], owner[2]) or {}
        behavior = ((so.get("spec") or {}).get("fallback") or {}).get("behavior")
        current = (hpa.get("status") or {}).get("currentReplicas")
        if behavior in CURRENT_REPLICAS_BEHAVIORS and isinstance(current, int) and \
                self._replicas.get((owner[1], owner[2])) != current:
            self._replicas[(owner[1], owner[2])] = current
            self._replicas_changed.set()

    async def _report_replicas(self) -> None:
        """Send the counts when they change, and all of them every 30 s (a restarted adapter)."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30):
                    await self._replicas_changed.wait()
            self._replicas_changed.clear()
            if not self._replicas:
                continue
            try:
                counts = [ReplicaCount(ns, name, n) for (ns, name), n in self._replicas.items()]
                await self.activity.report_replicas(counts)
            except httpx.HTTPError as exc:
                log.warning("adapter=%s replicas not reported: %s", self.options.adapter_url, exc)
                self._replicas_changed.set()
            await asyncio.sleep(0.5)


def _ready(obj: Object) -> bool:
    return any(cond.get("type") == "Ready" and cond.get("status") == "True"
               for cond in (obj.get("status") or {}).get("conditions") or [])


async def run_controller(api: KubeApi, options: ControllerOptions, stop: asyncio.Event) -> None:
    """Run until `stop` is set; then release the Lease and close clients."""
    controller = Controller(api, options)
    mirror = HttpScaledObjectMirror(api, controller.kube, lambda: controller.elector.leading,
                                    resync=min(options.resync_period, 30.0))
    task = asyncio.create_task(_together(controller.run(), mirror.run()))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    stopping.cancel()
    await api.aclose()


async def _together(*work: Coroutine[Any, Any, None]) -> None:
    async with asyncio.TaskGroup() as group:
        for one in work:
            group.create_task(one)
