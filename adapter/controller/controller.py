"""The controller process: watches, the adapter's activity, leader election, and the workers.

Every replica keeps the same state warm: ScaledObjects of both API groups, HPAs, and the
replica counts of Deployments and StatefulSets by watch, the adapter's activity by long poll
(with when each object was last seen active). Only the leader runs workers. Work is
proportional to what changed: nothing requeues every object. What wakes an object, and how:

* its ScaledObject changed (anything but status), its HPA changed, its activity changed:
  urgent (front of the queue);
* its target's replica count changed, or a ScaledObject or HPA that may conflict with it (same
  target, same HPA name) appeared, went or moved: routine; each found through an index;
* one of its timers came due (the end of a cooldown, the lastActiveTime refresh while active,
  a retry): routine, from one deadline queue;
* the adapter answering again after a gap, when it was deferred for a stale view;
* leadership gained: every object (active ones urgent), once.

A failed reconcile is retried with a per-object backoff (0.5 s doubling to 30 s; a conflict
after 0.2 s). `workers` reconciles run at once; the rate limiter bounds their API calls.

ScaledJobs have a poll loop of their own (`adapter.controller.job_creation`), run by the leader
with the same rate limiter, Lease check and activity view, reading their Jobs and pods from
watches (`adapter.controller.job_cache`).

Both replicas also tell their own adapter the HPA's current replica count of objects whose
fallback behaviour needs it (`currentReplicas*`), the ready pods of targets in fallback with a
Value metric (counted by `ready_pods`, only while in fallback), and which objects the HPA takes
to zero itself and from when their metrics may be served as 0 (native scale-to-zero, found out
at start by a dry-run HPA: `native_zero`), since either adapter may answer the HPA.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from typing import Any

import httpx

from adapter.controller.activity_client import ActivityClient
from adapter.controller.decide import pause_of
from adapter.controller.events import EventRecorder
from adapter.controller.guarded_api import ControllerKube, NotLeading, SoKey
from adapter.controller.http_scaled_objects import HttpScaledObjectMirror
from adapter.controller.job_cache import JOB_RESOURCES, POD_RESOURCES, JobCache
from adapter.controller.job_cache import transform_for as job_transform_for
from adapter.controller.job_creation import ScaledJobs, keep_scaled_job
from adapter.controller.leader import LeaderElector
from adapter.controller.native_zero import Mode, not_native, resolve, zero_from
from adapter.controller.object_cache import (
    SCALED_OBJECT_RESOURCES,
    CachedScaledObject,
    ObjectCache,
    owner_key,
    transform_for,
)
from adapter.controller.ready_pods import ReadyPods
from adapter.controller.reconciler import Reconciler
from adapter.controller.work_queue import RateLimiter, WorkQueue
from adapter.keda.activity import Key, TargetsReport, TargetState
from adapter.keda.fallback import any_in_fallback, needs_ready_count
from adapter.keda.names import KEDA_GROUPS, LEGACY_SCALED_OBJECTS, SCALED_JOBS
from adapter.kube.autoscaling import Hpa, Scale
from adapter.kube.client import ApiStatusError, KubeApi
from adapter.kube.glibc import GLIBC
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
    stats_interval: float = 30.0  # seconds between the log lines that say what the controller holds and did
    native_scale_to_zero: Mode = "auto"  # the HPA owns 0 <-> N where the cluster allows it (native_zero.py)


class Controller:
    def __init__(self, api: KubeApi, options: ControllerOptions,
                 activity_transport: httpx.AsyncBaseTransport | None = None, lease_api: KubeApi | None = None) -> None:
        self.api, self.options = api, options
        self.elector = LeaderElector(lease_api or api, options.lease_namespace, options.lease_name, options.identity,
                                     lease_duration=options.lease_duration, renew_deadline=options.renew_deadline,
                                     retry_period=options.retry_period)
        self.kube = ControllerKube(api, RateLimiter(options.qps, options.burst), self.elector.valid)
        self.cache = ObjectCache(self._on_object)
        self.activity = ActivityClient(options.adapter_url, self._on_activity, wait=options.activity_wait,
                                       on_fresh=self._on_adapter_back, transport=activity_transport)
        self.events = EventRecorder(self.kube, options.identity)
        self.reconciler = Reconciler(self.kube, self.cache, self.activity, self.events, note_at_zero=self._note_at_zero,
                                     note_native=self._note_native)
        self.queue: WorkQueue[SoKey] = WorkQueue()
        self.reflectors = [Reflector(api, r, self.cache, transform_for(r), resync=options.resync_period)
                           for r in (*SCALED_OBJECT_RESOURCES, HPAS, DEPLOYMENTS, STATEFUL_SETS)]
        self.jobs = JobCache()
        self.scaled_jobs = ScaledJobs(self.kube, self.activity, self.events, lambda: self.elector.leading, self.jobs)
        # not waited for: the CRDs are optional; 2019 ScaledObjects are read again for `scaleType: job`
        self.job_reflectors = [Reflector(api, r, self.scaled_jobs, keep_scaled_job, resync=options.resync_period)
                               for r in (SCALED_JOBS, LEGACY_SCALED_OBJECTS)]
        # the Jobs and pods of ScaledJobs (by label): ScaledJobs poll once these are listed
        self.job_cache_reflectors = [Reflector(api, r, self.jobs, job_transform_for(r), resync=options.resync_period)
                                     for r in (*JOB_RESOURCES, *POD_RESOURCES)]
        self.reconciles = 0
        self.waits_for_renewal = 0  # workers that found the Lease's renewal late
        self.started = time.monotonic()
        self.ready_after: float | None = None  # seconds from start to the first pass over every object
        self._first_pass: set[SoKey] | None = None
        self._failures: dict[SoKey, int] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._targets: dict[Key, TargetState] = {}  # reported to the adapter
        self._unsent: set[Key] = set()  # targets changed since the adapter's last report
        self._told: str | None = None  # the adapter process told every target (see TargetsReport)
        self._targets_changed = asyncio.Event()
        self._ready_changed = asyncio.Event()  # a ready count is reported at once (see _report_targets)
        self.ready_pods = ReadyPods(self.kube, self._note_ready)

    # -- running -------------------------------------------------------------------------------

    async def run(self) -> None:
        GLIBC.keep_large_buffers_apart()  # list pages are megabytes: each in a mapping of its own, unmapped when freed
        self.reconciler.native_zero = await resolve(self.options.native_scale_to_zero, self.api,
                                                    self.options.lease_namespace)
        try:
            async with asyncio.TaskGroup() as group:
                self.follow(group)
                group.create_task(self._report_targets(), name="targets")
                group.create_task(self.events.run(), name="events")
                group.create_task(self._log_stats(), name="stats")
                group.create_task(self._run_scaled_jobs(), name="scaledjobs")
                await asyncio.gather(*(r.listed.wait() for r in self.reflectors))
                log.info("caches synced in %.2fs identity=%s scaledobjects=%d hpas=%d; campaigning for lease %s/%s",
                         time.monotonic() - self.started, self.options.identity,
                         sum(self.cache.count(r) for r in SCALED_OBJECT_RESOURCES), self.cache.count(HPAS),
                         self.options.lease_namespace, self.options.lease_name)
                group.create_task(self.elector.run(self._start_leading, self._stop_leading), name="leader")
        finally:
            self._stop_leading()
            await self.ready_pods.aclose()
            await self.elector.release()
            await self.activity.aclose()

    async def _run_scaled_jobs(self) -> None:
        await asyncio.gather(*(r.listed.wait() for r in self.job_cache_reflectors))
        await self.scaled_jobs.run()

    def follow(self, group: asyncio.TaskGroup) -> None:
        """Keep the caches and the activity view current (what a follower does too)."""
        for reflector in (*self.reflectors, *self.job_reflectors, *self.job_cache_reflectors):
            group.create_task(reflector.run(), name=f"watch-{reflector.resource}")
        group.create_task(self.activity.run(), name="activity")

    def _start_leading(self) -> None:
        self._workers = [asyncio.create_task(self._work(), name=f"worker-{i}") for i in range(self.options.workers)]
        keys = set()
        for obj in self.cache.all_scaled_objects():
            found = self.activity.get(obj.namespace, obj.name)
            self.queue.add(obj.key, urgent=found is not None and found.active)
            keys.add(obj.key)
        if self.ready_after is None:
            self._first_pass = keys
            self._note_first_pass()

    def _stop_leading(self) -> None:
        for task in self._workers:
            task.cancel()
        self._workers = []
        self.queue.clear_timers()
        for key in [key for key, state in self._targets.items() if state.at_zero]:
            self._note_target(key, at_zero=False)  # the next leader's adapter probes them

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            delay: float | None = None
            late = False
            try:
                delay = await self.reconciler.reconcile(key)
                self._failures.pop(key, None)
            except NotLeading:
                late = True
            except (ApiStatusError, httpx.HTTPError) as exc:
                delay = self._backoff(key, exc)
            except Exception as exc:  # one object's bug must not stop the others
                log.exception("object=%s/%s reconcile failed", key[1], key[2])
                delay = self._backoff(key, exc)
            finally:
                self.queue.done(key)
            if late:
                await self._wait_for_renewal(key)
                continue
            self.reconciles += 1
            if self._first_pass is not None:
                self._first_pass.discard(key)
                self._note_first_pass()
            if delay is not None and self.elector.leading:
                self.queue.add_after(key, delay)
            else:
                self.queue.forget(key)

    async def _wait_for_renewal(self, key: SoKey) -> None:
        """The Lease's renewal is late, so nothing may be written: wait until it goes through,
        then start again with `key`. Trying every queued object in turn instead (each refused
        before it reached the network, the queue never yielding the loop) was, at 100,000
        objects on a saturated API server, a storm of attempts and log lines that kept the
        renewal itself from being read. A lost Lease cancels the workers (`_stop_leading`)."""
        self.queue.add(key, urgent=True)
        self.waits_for_renewal += 1
        log.info("object=%s/%s waits: the lease's renewal is late", key[1], key[2])
        await self.elector.until_valid()

    def _note_first_pass(self) -> None:
        if self._first_pass is not None and not self._first_pass:
            self._first_pass = None
            self.ready_after = time.monotonic() - self.started
            log.info("ready in %.2fs: every ScaledObject reconciled once reconciles=%d", self.ready_after,
                     self.reconciles)
            GLIBC.trim_soon(asyncio.get_running_loop())  # start-up's garbage (activity document, first pass) is free

    def _backoff(self, key: SoKey, exc: BaseException) -> float:
        if isinstance(exc, ApiStatusError) and exc.code == 409:
            return 0.2
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        delay = min(30.0, 0.5 * 2.0 ** (failures - 1))
        log.warning("object=%s/%s error=%r retry_in=%.1fs", key[1], key[2], str(exc) or type(exc).__name__, delay)
        return delay

    # -- what wakes an object --------------------------------------------------------------------

    def _on_object(self, resource: Resource, old: object, new: object) -> None:
        if resource is HPAS:
            self._on_hpa(old if isinstance(old, Hpa) else None, new if isinstance(new, Hpa) else None)
        elif resource in (DEPLOYMENTS, STATEFUL_SETS):
            self._on_workload(resource, old if isinstance(old, Scale) else None,
                              new if isinstance(new, Scale) else None)
        else:
            self._on_scaled_object(old if isinstance(old, CachedScaledObject) else None,
                                   new if isinstance(new, CachedScaledObject) else None)

    def _on_scaled_object(self, old: CachedScaledObject | None, new: CachedScaledObject | None) -> None:
        current = new or old
        assert current is not None
        if new is None:
            self.queue.forget(current.key)
            self._failures.pop(current.key, None)
            self.reconciler.forget(current.key)
            self.ready_pods.want((current.namespace, current.name), None)
            if self._targets.pop((current.namespace, current.name), None) is not None:
                self._unsent.add((current.namespace, current.name))
                self._targets_changed.set()
        else:
            self._note_native(new)
            self._note_fallback(new)
        if new is not None and (old is None or not old.same_but_status(new)):
            self.queue.add(new.key, urgent=True)
            hpa = self.cache.hpa(new.namespace, new.hpa_name or "")
            if hpa is not None:
                self._note_replicas(new.key, hpa)
        if old is None or new is None or old.target != new.target:  # a target freed or taken
            for target in {o.target_key for o in (old, new) if o is not None}:
                self._wake_target(*target, but=current.key)

    def _on_hpa(self, old: Hpa | None, new: Hpa | None) -> None:
        current = new or old
        assert current is not None
        owner = owner_key(current)
        if owner is not None and (old is None or new is None or (old != new and _hpa_essence(old) !=
                                  _hpa_essence(new))):
            self.queue.add(owner, urgent=True)
        if owner is not None and new is not None:
            self._note_replicas(owner, new)
        moved = old is None or new is None or old.target != new.target or old.owners != new.owners
        if moved and self.elector.leading:  # else leadership, when it comes, looks at every object
            for kind, name in {(h.target.kind, h.target.name) for h in (old, new) if h is not None}:
                self._wake_target(current.namespace, kind, name, but=owner)  # conflicts appeared or cleared
            for obj in self.cache.scaled_objects_of_hpa_name(current.namespace, current.name):
                if obj.key != owner:
                    self.queue.add(obj.key)

    def _on_workload(self, resource: Resource, old: Scale | None, new: Scale | None) -> None:
        """A target scaled (by the HPA, by hand) or created: its ScaledObjects look again."""
        if old is not None and new is not None and old.replicas == new.replicas:
            return
        current = new or old
        assert current is not None
        self._wake_target(current.namespace, resource.kind, current.name)

    def _wake_target(self, namespace: str, kind: str, name: str, but: SoKey | None = None) -> None:
        if not self.elector.leading:
            return  # leadership, when it comes, looks at every object (the initial lists: 100,000 lookups less)
        for obj in self.cache.scaled_objects_of_target(namespace, kind, name):
            if obj.key != but:
                self.queue.add(obj.key)

    def _on_activity(self, changed: set[Key]) -> None:
        self.scaled_jobs.on_activity(changed)
        for namespace, name in changed:
            for group in KEDA_GROUPS:
                obj = self.cache.scaled_object((group, namespace, name))
                if obj is not None:
                    self.queue.add(obj.key, urgent=True)
                    self._note_native(obj)
                    self._note_fallback(obj)

    def _on_adapter_back(self) -> None:
        waiting, self.reconciler.waiting_for_adapter = self.reconciler.waiting_for_adapter, set()
        for key in waiting:
            self.queue.add(key, urgent=True)

    # -- what the adapter is told of the targets: replica counts, which are at zero -------------

    def _note_replicas(self, owner: SoKey, hpa: Hpa) -> None:
        """Current counts, for the adapter's currentReplicas* fallback answers."""
        obj = self.cache.scaled_object(owner)
        fallback = obj.spec.fallback if obj is not None and obj.spec is not None else None
        if fallback is not None and fallback.behavior in CURRENT_REPLICAS_BEHAVIORS and \
                hpa.current_replicas is not None:
            self._note_target((owner[1], owner[2]), replicas=hpa.current_replicas)

    def _note_fallback(self, obj: CachedScaledObject) -> None:
        """Objects in fallback whose answer divides by the ready pods (a Value metric) have them
        counted while they stay in fallback; counting stops when they leave it."""
        so = obj.spec
        found = self.activity.get(obj.namespace, obj.name)
        counted = (so is not None and found is not None and needs_ready_count(so)
                   and any_in_fallback(so.fallback, found.triggers))
        self.ready_pods.want((obj.namespace, obj.name), so.target if counted and so is not None else None)

    def _note_ready(self, key: Key, ready: int | None) -> None:
        if self._note_target(key, ready=ready):
            self._ready_changed.set()

    def _note_at_zero(self, owner: SoKey, at_zero: bool) -> None:
        """Targets at zero (or idle) have their triggers probed and push-watched by the adapter."""
        self._note_target((owner[1], owner[2]), at_zero=at_zero)

    def _note_native(self, obj: CachedScaledObject) -> None:
        """Whether the HPA owns 0 <-> N for this object, and from when its adapter may serve 0:
        computed by both replicas from their caches, as either adapter may answer the HPA.
        While the object is active no zero is allowed (None): an adapter that sees activity end
        before its controller does holds the HPA at 1 rather than at 0, and the moment, which
        moves with every sighting of activity, is sent once, when activity ends."""
        so = obj.spec
        native = (self.reconciler.native_zero and so is not None and not obj.creates_jobs
                  and not pause_of(so.annotations).stopped and not_native(so) is None)
        found = self.activity.get(obj.namespace, obj.name)
        zero = None
        if native and so is not None and not (found is not None and found.active):
            zero = zero_from(so, self.reconciler.last_active(obj), time.time())
        self._note_target((obj.namespace, obj.name), native=native, zero_from=zero)

    def _note_target(self, key: Key, **changes: Any) -> bool:
        """Change what the adapter is told of this target; True when something changed."""
        before = self._targets.get(key) or TargetState(*key)
        if all(getattr(before, field) == value for field, value in changes.items()):
            return False  # the common case, at every reconcile: no new state object made
        after = replace(before, **changes)
        self._targets[key] = after
        self._unsent.add(key)
        self._targets_changed.set()
        return True

    async def _report_targets(self) -> None:
        """Tell the adapter the states that changed, when some do, and at least every 30 s (an
        adapter that restarted refuses a report based on its predecessor: it is then told
        every state, objects left out being scaled up with no current count to know). A follower
        reports none at zero, so its adapter neither probes nor listens to pushes for them.
        Reports are at least 0.5 s apart, but for a changed ready count: the HPA counts the same
        pods, and an answer computed from the old count makes it compute the wrong replicas."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30):
                    await self._targets_changed.wait()
            self._targets_changed.clear()
            self._ready_changed.clear()
            report, unsent = self._next_report(), self._unsent
            self._unsent = set()
            try:
                told = await self.activity.report_targets(report)
            except httpx.HTTPError as exc:
                log.warning("adapter=%s targets not reported: error=%r", self.options.adapter_url,
                            str(exc) or type(exc).__name__)
                self._unsent |= unsent
                self._targets_changed.set()
            else:
                self._told = told
                if told is None and not report.complete:  # another adapter process: tell it all
                    self._targets_changed.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await self._ready_changed.wait()

    def _next_report(self) -> TargetsReport:
        """Every state the adapter needs, or, once an adapter process was told them, the changes."""
        if self._told is None:
            return TargetsReport(tuple(t for t in self._targets.values() if t.reported), complete=True)
        changed = (self._targets.get(key) or TargetState(*key) for key in sorted(self._unsent))
        return TargetsReport(tuple(changed), base=self._told)

    async def _log_stats(self) -> None:
        """What the controller holds and has done, when it changed: for operators and benchmarks."""
        last = ""
        while True:
            await asyncio.sleep(self.options.stats_interval)
            calls = ",".join(f"{k.replace(' ', ':')}={v}" for k, v in sorted(self.kube.calls.items()))
            line = (f"scaledobjects={sum(self.cache.count(r) for r in SCALED_OBJECT_RESOURCES)} "
                    f"scaledjobs={len(self.scaled_jobs.objects)} scaledjob_polls={self.scaled_jobs.polls} "
                    f"jobs_created={self.scaled_jobs.created} jobs={self.jobs.count('Job')} "
                    f"hpas={self.cache.count(HPAS)} reconciles={self.reconciles} timed={self.queue.timed} "
                    f"ready_watched={self.ready_pods.watched} ready_watches={self.ready_pods.watches} "
                    f"activity_answers={self.activity.answers} activity_full={self.activity.full_answers} "
                    f"calls={calls or '-'}")
            if line != last:
                log.info("stats %s", line)
                last = line


def _hpa_essence(hpa: Hpa) -> tuple[object, ...]:
    """What of an HPA its ScaledObject decides: a change of anything else (its status) is not ours."""
    return hpa.labels, hpa.annotations, hpa.owners, hpa.target, hpa.spec_json, hpa.scaled_to_zero


async def run_controller(api: KubeApi, options: ControllerOptions, stop: asyncio.Event) -> None:
    """Run until `stop` is set; then release the Lease and close clients. The Lease is renewed
    over a connection of its own: with many workers busy, a renewal waiting for a pooled
    connection was late (PoolTimeout) and leadership was lost mid-work."""
    lease_api = KubeApi(api.credentials, timeout=options.renew_deadline)
    controller = Controller(api, options, lease_api=lease_api)
    mirror = HttpScaledObjectMirror(api, controller.kube, lambda: controller.elector.leading,
                                    resync=min(options.resync_period, 30.0))
    task = asyncio.create_task(_together(controller.run(), mirror.run()))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    stopping.cancel()
    await lease_api.aclose()
    await api.aclose()


async def _together(*work: Coroutine[Any, Any, None]) -> None:
    async with asyncio.TaskGroup() as group:
        for one in work:
            group.create_task(one)
