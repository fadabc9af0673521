"""ScaledJobs: every `pollingInterval`, Jobs created from `jobTargetRef` for the work waiting.

The adapter reads a ScaledJob's triggers like any ScaledObject's (same scalers, shared
clients, batched reads) and its values reach this process in the activity document. Here,
per ScaledJob and per poll, from the watch-fed `JobCache` (no API call to look): take its Jobs
(label `scaledjob.keda.sh/name`), delete those made from an older generation of the spec
(`rollout.strategy` default; gradual lets them finish), prune finished ones beyond
`successfulJobsHistoryLimit`/`failedJobsHistoryLimit`, count those not finished (and, for the
accurate and eager strategies, those whose pods are not yet running), create what
`adapter.controller.job_count` says, and patch the status KEDA writes (conditions Ready,
Active, Fallback, Paused with KEDA's reasons, `lastActiveTime`, `triggersTypes`,
`authenticationsTypes`) only where it differs: an idle ScaledJob's poll makes no API call. A
poll is also run as soon as the ScaledJob or its activity changes, so a message waits one
adapter read, not a read plus a poll.

Events are KEDA's (pkg/eventreason), sent on a change of state rather than on every poll:
ScaledJobReady, ScaledJobCheckFailed, KEDAScalerFailed, ScaledJobActive/Inactive,
ScaledJobPaused/Unpaused, KEDAJobsCreated, KEDAJobCreateFailed, ScaledJobRolloutCleanup*,
ScaledJobDeleted. A ScaledJob has no fallback: its Fallback condition stays Unknown, as KEDA's.

Only the leader polls; every write is leader-checked and rate-limited by `ControllerKube`. A
ScaledJob that cannot be parsed, or whose triggers the adapter reports as broken, gets
Ready=False with the reason on its status and creates nothing; no other ScaledJob is held up.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from adapter.controller import conditions as c
from adapter.controller.activity_client import ActivityClient
from adapter.controller.decide import pause_of
from adapter.controller.events import EventRecorder, Involved
from adapter.controller.guarded_api import ControllerKube, NotLeading
from adapter.controller.hpa import VERSION
from adapter.controller.job_cache import CachedJob, CachedPod, JobCache
from adapter.controller.job_count import TriggerLoad, demand, jobs_to_create
from adapter.controller.status import merge_patch
from adapter.keda.activity import Key, ObjectActivity, object_key, split_key
from adapter.keda.names import JOB_GENERATION, LEGACY_JOB_LABEL, SCALED_JOB_LABEL
from adapter.keda.objects import InvalidObject
from adapter.keda.scaled_job import SCALED_JOB_KIND, ScaledJob, is_job_object, parse_scaled_job
from adapter.keda.scaled_object_status import Condition, ScaledObjectStatus, merged, parse_status
from adapter.kube.client import ApiStatusError, Object
from adapter.kube.resources import Resource
from adapter.kube.wire import timestamp

log = logging.getLogger("eventscale.scaledjobs")

MANAGED_BY = "eventscale"
# KEDA's Event reasons for ScaledJobs (pkg/eventreason)
JOBS_CREATED = "KEDAJobsCreated"
JOB_CREATE_FAILED = "KEDAJobCreateFailed"
ROLLOUT_STARTED = "ScaledJobRolloutCleanupStarted"
ROLLOUT_CLEANED = "ScaledJobRolloutCleanupCompleted"
ROLLOUT_FAILED = "ScaledJobRolloutCleanupFailed"
SCALED_JOB_READY = "ScaledJobReady"
CHECK_FAILED = "ScaledJobCheckFailed"
SCALED_JOB_ACTIVE = "ScaledJobActive"
SCALED_JOB_INACTIVE = "ScaledJobInactive"
SCALER_FAILED = "KEDAScalerFailed"
DELETED = "ScaledJobDeleted"
RETRY = 2.0  # seconds before a failed poll is tried again (at most its pollingInterval)

READY, TRIGGER_ERROR, PARTIAL_TRIGGER_ERROR = c.ready_conditions("ScaledJob")
PAUSED = c.paused("ScaledJob")
UNPAUSED = Condition("Paused", "False", "ScaledJobUnpaused", "ScaledJob is unpaused")
NEVER_PAUSED = Condition("Paused", "False")  # as KEDA initializes it
CHECK_FAILED_ACTIVE = c.active_unknown("ScaledJob")


def jobs_path(namespace: str, name: str = "") -> str:
    base = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    return f"{base}/{name}" if name else base


def status_path(obj: Object) -> str:
    """The status subresource of a ScaledJob, or of a 2019 `scaleType: job` ScaledObject."""
    meta = obj["metadata"]
    plural = "scaledjobs" if obj.get("kind") == SCALED_JOB_KIND else "scaledobjects"
    return f"/apis/{obj['apiVersion']}/namespaces/{meta['namespace']}/{plural}/{meta['name']}/status"


def keep_scaled_job(obj: Object) -> Object:
    """What the cache keeps of a ScaledJob: all but managedFields."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {**obj, "metadata": meta}


def _same_but_status(old: Object, new: Object) -> bool:
    def essence(o: Object) -> tuple[Any, ...]:
        meta = o.get("metadata") or {}
        return meta.get("generation"), meta.get("labels"), meta.get("annotations"), o.get("spec")
    return essence(old) == essence(new)


def job_label(job: ScaledJob) -> str:
    """The label that marks a ScaledJob's Jobs and pods: `scaledjob.keda.sh/name`, or KEDA 1.x's
    `scaledobject` for a 2019 object, so a ScaledJob and a 2019 object of one name never count
    each other's Jobs."""
    return LEGACY_JOB_LABEL if job.legacy else SCALED_JOB_LABEL


def job_manifest(job: ScaledJob) -> Object:
    """One Job of the ScaledJob: its template, KEDA's labels and annotations, owned by it."""
    spec = copy.deepcopy(dict(job.job_spec))
    template = spec.setdefault("template", {})
    own = {job_label(job): job.name}
    template.setdefault("metadata", {}).setdefault("labels", {}).update(own)
    pod = template.setdefault("spec", {})
    pod.setdefault("restartPolicy", "OnFailure")  # a Job refuses Always, a pod's default
    labels = {"app.kubernetes.io/name": job.name, "app.kubernetes.io/version": VERSION,
              "app.kubernetes.io/part-of": job.name, "app.kubernetes.io/managed-by": MANAGED_BY,
              **own,
              **{k: v for k, v in job.labels.items() if k not in job.excluded_labels}}
    annotations = {JOB_GENERATION: str(job.generation), **job.annotations}
    owner = {"apiVersion": job.api_version, "kind": job.kind, "name": job.name, "uid": job.uid,
             "controller": True, "blockOwnerDeletion": True}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"generateName": f"{job.name}-", "namespace": job.namespace, "labels": labels,
                         "annotations": annotations, "ownerReferences": [owner]},
            "spec": spec}


def of_other_generation(job: CachedJob, generation: int) -> bool:
    """A Job made from another generation of its ScaledJob's spec (or with no record of one)."""
    return job.generation != str(generation)


def beyond_history(jobs: Sequence[CachedJob], successful_limit: int, failed_limit: int) -> list[CachedJob]:
    """The finished Jobs to delete: the oldest beyond each history limit."""
    doomed: list[CachedJob] = []
    for outcome, limit in (("Complete", successful_limit), ("Failed", failed_limit)):
        done = sorted((j for j in jobs if j.finished == outcome), key=lambda j: j.finished_at)
        doomed += done[:max(0, len(done) - limit)]
    return doomed


def pending_jobs(jobs: Sequence[CachedJob], pods: Sequence[CachedPod], conditions: Sequence[str]) -> int:
    """Jobs not finished whose pods are not yet at work: none Running or Succeeded, or (with
    `pendingPodConditions`) not every one of those conditions True on their pods."""
    by_job: dict[str, list[CachedPod]] = {}
    for pod in pods:
        if pod.job_name:
            by_job.setdefault(pod.job_name, []).append(pod)
    count = 0
    for job in jobs:
        if job.finished is not None:
            continue
        own = by_job.get(job.name, [])
        if conditions:
            met = sum(1 for p in own for cond in conditions if cond in p.true_conditions)
            count += met != len(conditions)
        else:
            count += not any(p.phase in ("Running", "Succeeded") for p in own)
    return count


def types_of(job: ScaledJob) -> dict[str, str]:
    """KEDA's `triggersTypes` and `authenticationsTypes`: each distinct value once, in order, comma-separated."""
    types = dict.fromkeys(t.type for t in job.triggers)
    auths = dict.fromkeys(t.auth_ref.name for t in job.triggers if t.auth_ref is not None)
    return {"triggersTypes": ",".join(types), "authenticationsTypes": ",".join(auths)}


def trigger_loads(activity: ObjectActivity) -> tuple[list[TriggerLoad], int]:
    """The readings usable for scaling, and how many triggers failed."""
    loads = [TriggerLoad(t.value, t.target or 0.0, t.active) for t in activity.triggers
             if t.resolved and t.error is None and t.value is not None]
    failed = sum(1 for t in activity.triggers if not t.resolved or t.error is not None)
    return loads, failed


class ScaledJobs:
    """The ScaledJob cache (a watch `Sink`) and the poll loop the leader runs."""

    def __init__(self, kube: ControllerKube, activity: ActivityClient, events: EventRecorder,
                 leading: Callable[[], bool], jobs: JobCache | None = None, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.kube, self.activity, self.events, self.leading = kube, activity, events, leading
        self.jobs = jobs or JobCache()
        self.clock, self.wall = clock, wall
        self.objects: dict[Key, Object] = {}
        self.polls = 0
        self.created = 0
        self._due: dict[Key, float] = {}
        self._wake = asyncio.Event()

    # -- the watch sink --------------------------------------------------------------------------

    def listed(self, resource: Resource, objects: list[Object]) -> None:
        fresh = {_key(o): o for o in objects if is_job_object(o)}
        for key in [k for k in self.objects if split_key(k)[0] == resource.kind and k not in fresh]:
            self._forget(key)
        for key, obj in fresh.items():
            self._put(key, obj)

    def changed(self, resource: Resource, obj: Object, deleted: bool) -> None:
        """A ScaledJob, or a 2019 ScaledObject (kept while it has `scaleType: job`)."""
        key = _key(obj)
        if deleted and key in self.objects and obj.get("kind") == SCALED_JOB_KIND and self.leading():
            meta = obj.get("metadata") or {}
            self.events.record(Involved(str(obj.get("apiVersion") or ""), key[0], split_key(key)[2],
                                        str(meta.get("uid") or ""), str(meta.get("resourceVersion") or ""),
                                        SCALED_JOB_KIND), "Warning", DELETED, "ScaledJob was deleted")
        if deleted or not is_job_object(obj):
            self._forget(key)
        elif not _older(obj, self.objects.get(key)):
            self._put(key, obj)

    def _put(self, key: Key, obj: Object) -> None:
        old = self.objects.get(key)
        self.objects[key] = obj
        if old is None or not _same_but_status(old, obj):
            self.poke(key)

    def _forget(self, key: Key) -> None:
        self.objects.pop(key, None)
        self._due.pop(key, None)

    def poke(self, key: Key) -> None:
        """Poll this ScaledJob now."""
        if key in self.objects:
            self._due[key] = self.clock()
            self._wake.set()

    def on_activity(self, changed: set[Key]) -> None:
        for key in changed:
            self.poke(key)

    # -- polling ---------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            now = self.clock()
            for key in sorted(k for k, at in self._due.items() if at <= now):
                await self._poll_guarded(key)
            self._wake.clear()
            soonest = min(self._due.values(), default=now + 60.0)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, soonest - self.clock())):
                    await self._wake.wait()

    async def _poll_guarded(self, key: Key) -> None:
        obj = self.objects.get(key)
        if obj is None:
            return
        interval = _polling_interval(obj)
        self._due[key] = self.clock() + interval
        if not self.leading():
            return
        try:
            await self.poll(obj)
        except NotLeading:
            return
        except (ApiStatusError, httpx.HTTPError) as exc:
            log.warning("scaledjob=%s/%s error=%r retry_in=%.1fs", *key, str(exc) or type(exc).__name__,
                        min(RETRY, interval))
            self._due[key] = self.clock() + min(RETRY, interval)
        except Exception:  # one ScaledJob's bug must not stop the others
            log.exception("scaledjob=%s/%s poll failed", *key)
            self._due[key] = self.clock() + min(RETRY, interval)
        finally:
            self.polls += 1

    async def poll(self, obj: Object) -> None:
        """One poll of one ScaledJob (see the module docstring)."""
        try:
            job = parse_scaled_job(obj)
        except InvalidObject as exc:
            await self._check_failed(obj, None, str(exc))
            return
        if not self.jobs.ready(job.uses_pending):
            self._due[_key(obj)] = self.clock() + min(RETRY, job.polling_interval)
            return  # the Jobs are not listed yet: counting none would create them twice
        owner = _key(obj)
        jobs = await self._roll_out(job, obj, self.jobs.jobs_of(owner))
        jobs = await self._prune(job, obj, jobs)
        written = parse_status(obj.get("status"))
        if pause_of(job.annotations).stopped:
            if not written.is_true("Paused"):
                self.events.record(_involved(job, obj), "Normal", PAUSED.reason, PAUSED.message)
            await self._write_status(obj, job, [PAUSED])
            return
        activity = self.activity.objects.get(object_key(job.kind, job.namespace, job.name))
        if activity is None or not self.activity.fresh:
            return  # the adapter has not read it yet, or is not answering: decide nothing
        if activity.error:
            await self._check_failed(obj, job, activity.error)
            return
        loads, failed = trigger_loads(activity)
        running = [j for j in jobs if j.finished is None]
        pending = 0
        if job.uses_pending and running:
            pending = pending_jobs(running, self.jobs.pods_of(owner), job.scaling.pending_pod_conditions)
        wanted = demand(loads, job.scaling.multiple_scalers_calculation, job.min_jobs, job.max_jobs)
        await self._create(job, obj, jobs_to_create(job.scaling, wanted, len(running), pending, job.min_jobs,
                                                    job.max_jobs))
        ready = READY if not failed else PARTIAL_TRIGGER_ERROR if wanted.active else TRIGGER_ERROR
        self._note_transitions(job, obj, written, ready, wanted.active, activity)
        await self._write_status(obj, job, [ready, c.ACTIVE if wanted.active else c.NOT_ACTIVE, *_unpaused(written)],
                                 last_active=timestamp(self.wall()) if wanted.active else None)

    def _note_transitions(self, job: ScaledJob, obj: Object, written: ScaledObjectStatus, ready: Condition,
                          active: bool, activity: ObjectActivity) -> None:
        """KEDA's Events on a change of state: ready, a trigger failing, active, inactive, unpaused."""
        involved = _involved(job, obj)
        was_ready = written.condition("Ready")
        if ready == READY and not written.is_true("Ready"):
            self.events.record(involved, "Normal", SCALED_JOB_READY, "ScaledJob is ready for scaling")
        elif ready != READY and (was_ready is None or was_ready.reason != ready.reason):
            self.events.record(involved, "Warning", SCALER_FAILED, _first_error(activity) or ready.message)
        if active and not written.is_true("Active"):
            self.events.record(involved, "Normal", SCALED_JOB_ACTIVE, c.ACTIVE.message)
        elif not active and written.is_true("Active"):
            self.events.record(involved, "Normal", SCALED_JOB_INACTIVE, c.NOT_ACTIVE.message)
        if written.is_true("Paused"):
            self.events.record(involved, "Normal", UNPAUSED.reason, UNPAUSED.message)

    async def _check_failed(self, obj: Object, job: ScaledJob | None, message: str) -> None:
        written, failed = parse_status(obj.get("status")), c.check_failed(message, "ScaledJob")
        if written.condition("Ready") != failed:
            meta = obj.get("metadata") or {}
            involved = _involved(job, obj) if job is not None else Involved(
                str(obj.get("apiVersion") or ""), str(meta.get("namespace") or ""), str(meta.get("name") or ""),
                str(meta.get("uid") or ""), str(meta.get("resourceVersion") or ""), str(obj.get("kind") or ""))
            self.events.record(involved, "Warning", CHECK_FAILED, message)
        await self._write_status(obj, job, [failed, CHECK_FAILED_ACTIVE, *_unpaused(written)])

    async def _roll_out(self, job: ScaledJob, obj: Object, jobs: list[CachedJob]) -> list[CachedJob]:
        """Rollout default (or immediate): delete the Jobs made from another generation of the spec."""
        if job.rollout_strategy == "gradual":
            return jobs
        old = [j for j in jobs if of_other_generation(j, job.generation)]
        if not old:
            return jobs
        involved = _involved(job, obj)
        self.events.record(involved, "Normal", ROLLOUT_STARTED,
                           f"Deleting {len(old)} jobs owned by the previous version of the scaledJob")
        policy = "Foreground" if job.propagation_policy == "foreground" else "Background"
        failed = 0
        for found in old:
            try:
                await self._delete(found, policy)
            except ApiStatusError as exc:
                failed += 1
                self.events.record(involved, "Warning", ROLLOUT_FAILED, f"Failed to delete job {found.name}: {exc}")
        log.info("scaledjob=%s/%s deleted jobs=%d of an older spec", job.namespace, job.name, len(old) - failed)
        if not failed:
            self.events.record(involved, "Normal", ROLLOUT_CLEANED,
                               f"Deleted {len(old)} jobs owned by the previous version of the scaledJob")
        return [j for j in jobs if j not in old]

    async def _prune(self, job: ScaledJob, obj: Object, jobs: list[CachedJob]) -> list[CachedJob]:
        doomed = beyond_history(jobs, job.successful_jobs_history_limit, job.failed_jobs_history_limit)
        for found in doomed:
            with contextlib.suppress(ApiStatusError):  # gone already, or refused: the next poll tries again
                await self._delete(found, "Background")
            log.info("scaledjob=%s/%s deleted job=%s beyond the history limit", job.namespace, job.name, found.name)
        return [j for j in jobs if j not in doomed]

    async def _delete(self, found: CachedJob, policy: str) -> None:
        try:
            await self.kube.delete(jobs_path(found.namespace, found.name), policy)
        except ApiStatusError as exc:
            if exc.code != 404:
                raise
        self.jobs.deleted(found)

    async def _create(self, job: ScaledJob, obj: Object, count: int) -> None:
        if count <= 0:
            return
        manifest = job_manifest(job)
        made = 0
        for _ in range(count):
            try:
                answer = await self.kube.write("POST", jobs_path(job.namespace), manifest)
            except ApiStatusError as exc:
                self.events.record(_involved(job, obj), "Warning", JOB_CREATE_FAILED,
                                   f"Failed to create job {job.name}-: {exc}")
                break  # the same refusal (quota, admission, RBAC) would meet every other one
            self.jobs.created(answer, job_label(job))
            made += 1
        self.created += made
        if made:
            log.info("scaledjob=%s/%s created jobs=%d", job.namespace, job.name, made)
            self.events.record(_involved(job, obj), "Normal", JOBS_CREATED, f"Created {made} jobs")

    async def _write_status(self, obj: Object, job: ScaledJob | None, updates: list[Condition],
                            last_active: str | None = None) -> None:
        """Patch what differs from the status written; nothing when nothing does."""
        current = obj.get("status") or {}
        wanted: dict[str, Any] = {"conditions": merged(parse_status(current).conditions, updates)}
        if job is not None:
            wanted.update(types_of(job))
        if last_active is not None:
            wanted["lastActiveTime"] = last_active
        patch = merge_patch(current, wanted)
        if patch:
            answer = await self.kube.write("PATCH", status_path(obj), {"status": patch}, "application/merge-patch+json")
            self.objects[_key(obj)] = keep_scaled_job(answer)


def _first_error(activity: ObjectActivity) -> str:
    """The first failing trigger's error (masked by the adapter), for a KEDAScalerFailed Event."""
    for trigger in activity.triggers:
        if trigger.error:
            return trigger.error
        if not trigger.resolved:
            return f"trigger {trigger.index} ({trigger.type}) could not be built"
    return ""


def _unpaused(written: ScaledObjectStatus) -> list[Condition]:
    """KEDA's Paused once the annotation is gone: ScaledJobUnpaused after a pause, else as it was (False)."""
    if written.is_true("Paused"):
        return [UNPAUSED]
    return [] if written.condition("Paused") is not None else [NEVER_PAUSED]


def _involved(job: ScaledJob, obj: Object) -> Involved:
    meta = obj.get("metadata") or {}
    return Involved(job.api_version, job.namespace, job.name, job.uid, str(meta.get("resourceVersion") or ""),
                    job.kind)


def _older(obj: Object, known: Object | None) -> bool:
    """An event for a version older than the one cached (our own status write's answer)."""
    def version(o: Object | None) -> int | None:
        text = str(((o or {}).get("metadata") or {}).get("resourceVersion") or "")
        return int(text) if text.isdigit() else None
    seen, have = version(obj), version(known)
    return seen is not None and have is not None and seen < have


def _key(obj: Object) -> Key:
    """The `object_key`: a ScaledJob and a 2019 ScaledObject of one name are two objects."""
    meta = obj.get("metadata") or {}
    return object_key(str(obj.get("kind") or SCALED_JOB_KIND), str(meta.get("namespace") or ""),
                      str(meta.get("name") or ""))


def _polling_interval(obj: Object) -> float:
    value = (obj.get("spec") or {}).get("pollingInterval")
    return float(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 30.0
