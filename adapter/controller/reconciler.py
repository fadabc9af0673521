"""One ScaledObject, brought in line: finalizer, checks, HPA, activation, status.

`reconcile(key)` is idempotent and reads only caches (ScaledObjects, HPAs, the Scales of
Deployments and StatefulSets, the adapter's activity; a GET of `/scale` only for other target
kinds), each through an index, so its cost does not depend on how many other objects exist;
it writes only what differs. One pass is a `Pass`: the object and everything found about it on
the way. In order:

1. Deleted (our finalizer): delete the HPA, then restore `originalReplicaCount` when asked
   (the HPA, still there, would scale it back), then drop the finalizer.
2. The finalizer while `restoreToOriginalReplicaCount` is set (with the
   `scaledobject.keda.sh/name` label, in the same write).
3. Checks, each failure reported as Ready=False ScaledObjectCheckFailed with a Warning Event
   and nothing else touched (other objects are unaffected): the spec and annotations parse, the
   target exists and has `/scale`, no other ScaledObject or foreign HPA drives the same target
   (unless `transfer-hpa-ownership`), every trigger resolved in the adapter.
4. With `restoreToOriginalReplicaCount`, the target's count is recorded in the status before
   anything (the HPA, a scale-down) can change it.
5. Paused (`paused`, `paused-replicas`): no HPA, target held at the paused count.
6. The HPA created or updated; a renamed one replaced. With native scale-to-zero
   (`native_zero`) an eligible object's HPA has minReplicas 0 and owns 0 <-> N: of the
   decision below only the step to 1 of a target the HPA left at 0 is made here.
7. Only on a fresh view of the adapter where every trigger has been read: the activation
   decision (`decide`), scaling through `/scale` with the resourceVersion just read (a
   concurrent change, the HPA's, wins and is looked at again), then status and Events. An
   unknown activity is not health: on a stale or incomplete view, Ready, Active and the rest of
   the status are left as they were.

Returns the seconds after which the object must be looked at again (the end of a cooldown,
the next `lastActiveTime` refresh while active, an unwatched target's next look), or None:
then only a change wakes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from adapter.controller import conditions as c
from adapter.controller import events
from adapter.controller.activity_client import ActivityClient
from adapter.controller.decide import Decision, Inputs, Pause, annotation_errors, decide, flag, pause_of
from adapter.controller.guarded_api import ControllerKube, GroupVersionKindResource, SoKey, TargetError
from adapter.controller.hpa import TargetKind, desired_hpa, hpa_metrics, hpa_patch, up_to_date
from adapter.controller.native_zero import NEVER_AT_ZERO, native_step, not_native
from adapter.controller.object_cache import CachedScaledObject, ObjectCache, workload_resource
from adapter.controller.status import health, merge_patch, newly_failing, triggers_activity
from adapter.keda.activity import ObjectActivity
from adapter.keda.fallback import any_in_fallback
from adapter.keda.names import FINALIZER, FORCE_ACTIVATION, SCALED_OBJECT_LABEL, TRANSFER_HPA_OWNERSHIP
from adapter.keda.objects import ScaledObject
from adapter.keda.scaled_object_status import Condition, merged
from adapter.kube.autoscaling import Scale, parse_scale
from adapter.kube.client import ApiStatusError
from adapter.kube.wire import parse_timestamp, timestamp

log = logging.getLogger("eventscale.reconciler")


UNWATCHED_RETRY = 30.0  # a target kind not served yet, or an unwatched target not there yet: look again


class CheckFailed(Exception):
    """A ScaledObject that cannot be acted on; the message goes to its Ready condition.

    `retry_after` is set when nothing would wake the object once the cause is gone (a CRD
    installed later, a custom resource created later: neither is watched)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Pass:
    """One reconcile of one ScaledObject: what it found, and the status it will write."""

    obj: CachedScaledObject
    now: float
    so: ScaledObject | None = None
    target: GroupVersionKindResource | None = None
    scale: Scale | None = None
    activity: ObjectActivity | None = None
    pause: Pause = field(default_factory=Pause)
    fields: dict[str, Any] = field(default_factory=dict)
    conditions: list[Condition] = field(default_factory=list)

    @property
    def key(self) -> SoKey:
        return self.obj.key

    @property
    def spec(self) -> ScaledObject:
        assert self.so is not None
        return self.so

    @property
    def gvkr(self) -> GroupVersionKindResource:
        assert self.target is not None
        return self.target

    @property
    def current(self) -> Scale:
        assert self.scale is not None
        return self.scale

    @property
    def adapter_view(self) -> ObjectActivity:
        assert self.activity is not None
        return self.activity

    @property
    def what(self) -> str:
        return f"{self.gvkr.kind_string} {self.obj.namespace}/{self.spec.target.name}"


class Reconciler:
    def __init__(self, kube: ControllerKube, cache: ObjectCache, activity: ActivityClient,
                 recorder: events.EventRecorder, wall: Callable[[], float] = time.time,
                 note_at_zero: Callable[[SoKey, bool], None] = lambda key, at_zero: None,
                 note_native: Callable[[CachedScaledObject], None] = lambda obj: None) -> None:
        self.kube, self.cache, self.activity, self.recorder, self.wall = kube, cache, activity, recorder, wall
        self.note_at_zero = note_at_zero  # after each decision: whether the target rests at 0 (or idle)
        self.note_native = note_native  # after each decision: what the adapter serves a native object
        self.native_zero = False  # the cluster has native scale-to-zero and it is wanted (native_zero.py)
        self._not_native: dict[SoKey, str] = {}  # why an object keeps the controller path, as last logged
        self.waiting_for_adapter: set[SoKey] = set()  # deferred on a stale view: woken when it is fresh

    # -- the whole pass ------------------------------------------------------------------------

    async def reconcile(self, key: SoKey) -> float | None:
        obj = self.cache.scaled_object(key)
        if obj is None or obj.creates_jobs:  # a 2019 `scaleType: job` object is a ScaledJob's business
            return None
        if obj.deleting:
            await self._finalize(obj)
            return None
        p = Pass(obj, self.wall())
        try:
            p.so = self._parse(obj)
            await self._ensure_finalizer(p)
            await self._find_target(p)
            self._check_conflicts(p)
            p.activity = self._activity(p)
        except CheckFailed as failed:
            await self._report_failed(p, str(failed))
            return failed.retry_after
        if p.activity is None:
            return None  # the adapter has not seen this generation yet: its answer wakes us
        return await self._act(p)

    async def _act(self, p: Pass) -> float | None:
        p.pause = pause_of(p.spec.annotations)
        await self._record_original_count(p)
        if p.pause.stopped:
            self.note_at_zero(p.key, False)  # paused: no activation to hasten
            await self._hold_paused(p)
            self._describe(p)
            await self._write_status(p, ready=True)
            self.note_native(p.obj)
            return None
        self._pause_condition(p)
        native = self.native_for(p)
        await self._sync_hpa(p, native)
        if not self.activity.fresh:
            self.waiting_for_adapter.add(p.key)
            return None
        if not p.adapter_view.known:
            return None  # the first reads are on their way: their answer wakes us
        decision = decide(self._inputs(p), p.now)
        if native:
            hpa = self.cache.hpa(p.spec.namespace, p.spec.hpa_name)
            decision = native_step(decision, p.current.replicas, hpa is not None and hpa.scaled_to_zero)
        await self._activate(p, decision)
        self.note_at_zero(p.key, p.current.replicas <= (p.spec.idle_replica_count or 0))
        self._describe(p)
        await self._scaler_events(p)
        await self._write_status(p, ready=True)
        self.note_native(p.obj)
        return self._next_look(p, decision)

    def _next_look(self, p: Pass, decision: Decision) -> float | None:
        """While active, lastActiveTime is refreshed every pollingInterval (as KEDA does); during
        a cooldown the object is looked at when it ends. A target whose replica count is not
        watched (a custom resource, read with GET /scale) is looked at every pollingInterval,
        since nothing else tells when someone scales it."""
        delays = []
        watched = workload_resource(p.gvkr.api_version, p.gvkr.kind) is not None
        if p.adapter_view.active or flag(p.spec.annotations, FORCE_ACTIVATION) or not watched:
            delays.append(float(p.spec.polling_interval))
        if decision.recheck_at is not None:
            delays.append(max(0.0, decision.recheck_at - p.now) + 0.05)
        return min(delays) if delays else None

    # -- checks --------------------------------------------------------------------------------

    @staticmethod
    def _parse(obj: CachedScaledObject) -> ScaledObject:
        if obj.spec is None:
            raise CheckFailed(obj.invalid or "invalid ScaledObject")
        problem = annotation_errors(obj.spec.annotations)
        if problem:
            raise CheckFailed(problem)
        return obj.spec

    async def _find_target(self, p: Pass) -> None:
        so = p.spec
        try:
            p.target = await self.kube.targets.resolve(so.target.api_version, so.target.kind)
            p.scale = await self._read_scale(p.target, so.namespace, so.target.name)
        except TargetError as exc:
            raise CheckFailed(f"ScaledObject doesn't have correct scaleTargetRef specification: {exc}",
                              UNWATCHED_RETRY) from None
        except ApiStatusError as exc:
            if exc.code == 404:
                watched = workload_resource(so.target.api_version, so.target.kind) is not None
                raise CheckFailed(f"Target resource doesn't exist: {so.target.kind} {so.namespace}/"
                                  f"{so.target.name}", None if watched else UNWATCHED_RETRY) from None
            raise

    async def _read_scale(self, target: GroupVersionKindResource, namespace: str, name: str) -> Scale:
        """The target's Scale: from the workload cache for Deployments and StatefulSets, else GET."""
        resource = workload_resource(target.api_version, target.kind)
        if resource is None or resource not in self.cache.synced:
            return parse_scale(await self.kube.get_scale(target, namespace, name))
        found = self.cache.scale(resource, namespace, name)
        if found is None:
            raise ApiStatusError(404, f"{target.kind} {namespace}/{name} not found", "NotFound")
        return found

    async def _write_scale(self, target: GroupVersionKindResource, scale: Scale, replicas: int) -> Scale:
        written = parse_scale(await self.kube.put_scale(target, scale.body(replicas)))
        resource = workload_resource(target.api_version, target.kind)
        if resource is not None:
            self.cache.put_scale(resource, written)
        return written

    def _check_conflicts(self, p: Pass) -> None:
        so, target = p.spec, p.gvkr
        workload = f"the workload '{so.target.name}' of type '{target.kind_string}'"
        mine = (so.creation_timestamp, so.name)
        for other in self.cache.scaled_objects_of_target(so.namespace, so.target.kind, so.target.name):
            theirs = (other.created, other.name)
            if other.uid != so.uid and not other.deleting and theirs < mine:
                raise CheckFailed(f"{workload} is already managed by the ScaledObject '{other.name}'")
        adopt = flag(so.annotations, TRANSFER_HPA_OWNERSHIP)
        for hpa in self.cache.hpas_of_target(so.namespace, target.kind, so.target.name):
            if not hpa.owned_by(so.uid) and not (adopt and hpa.name == so.hpa_name):
                raise CheckFailed(f"{workload} is already managed by the hpa '{hpa.name}'")
        named = self.cache.hpa(so.namespace, so.hpa_name)
        if named is not None and not named.owned_by(so.uid) and not adopt:
            raise CheckFailed(f"the HPA '{so.hpa_name}' exists and is not owned by this ScaledObject "
                              f"(annotate {TRANSFER_HPA_OWNERSHIP}: \"true\" to adopt it)")

    def _activity(self, p: Pass) -> ObjectActivity | None:
        """The adapter's view of this object, once it has seen this generation (else None)."""
        so = p.spec
        found = self.activity.get(so.namespace, so.name)
        if found is None or (found.uid and so.uid and found.uid != so.uid) or found.generation < so.generation:
            return None
        if found.error:
            raise CheckFailed(found.error)
        if found.resolve_errors:
            raise CheckFailed("; ".join(found.resolve_errors))
        return found

    # -- writes ----------------------------------------------------------------------------------

    async def _ensure_finalizer(self, p: Pass) -> None:
        """The finalizer only while a restore is asked for; the label rides along with it, as
        nothing here reads it and a write of its own would cost every new object a call."""
        finalizers = list(p.obj.finalizers)
        wanted = [f for f in finalizers if f != FINALIZER] + ([FINALIZER] if p.spec.restore_to_original_replica_count
                                                             else [])
        if sorted(wanted) == sorted(finalizers):
            return
        patch = {"metadata": {"resourceVersion": p.obj.resource_version, "finalizers": wanted,
                              "labels": {SCALED_OBJECT_LABEL: p.obj.name}}}
        p.obj = self.cache.put_scaled_object(await self.kube.patch_scaled_object(p.key, patch))

    async def _record_original_count(self, p: Pass) -> None:
        """With a restore asked for, the count the target had before we or the HPA touch it."""
        if not p.spec.restore_to_original_replica_count or p.obj.status.original_replica_count is not None:
            return
        patch = {"status": {"originalReplicaCount": p.current.replicas}}
        p.obj = self.cache.put_scaled_object(await self.kube.patch_scaled_object(p.key, patch, "status"))

    async def _hold_paused(self, p: Pass) -> None:
        so = p.spec
        await self._delete_hpa(so, so.hpa_name)
        current = p.current.replicas
        if p.pause.replicas is not None and current != p.pause.replicas:
            p.scale = await self._write_scale(p.gvkr, p.current, p.pause.replicas)
            log.info("object=%s/%s paused at replicas=%d (was %d)", so.namespace, so.name, p.pause.replicas, current)
        p.fields["pausedReplicaCount"] = p.pause.replicas
        p.conditions.append(c.PAUSED)

    def _pause_condition(self, p: Pass) -> None:
        p.fields["pausedReplicaCount"] = None
        if p.pause.any:
            p.conditions.append(c.PAUSED)
        elif p.obj.status.is_true("Paused"):
            p.conditions.append(c.UNPAUSED)

    async def _delete_hpa(self, so: ScaledObject, name: str) -> None:
        found = self.cache.hpa(so.namespace, name)
        if found is not None and found.owned_by(so.uid):
            await self.kube.delete_hpa(so.namespace, name)
            self.cache.drop_hpa(found)
            log.info("object=%s/%s hpa=%s deleted", so.namespace, so.name, name)

    def forget(self, key: SoKey) -> None:
        self._not_native.pop(key, None)

    def native_for(self, p: Pass) -> bool:
        """Whether the HPA owns 0 <-> N for this object; why not is logged when it changes."""
        if not self.native_zero:
            return False
        why = not_native(p.spec)
        if why is None:
            self._not_native.pop(p.key, None)
        elif why != NEVER_AT_ZERO and self._not_native.get(p.key) != why:
            self._not_native[p.key] = why
            log.info("object=%s/%s native scale-to-zero not used (controller path): %s", p.spec.namespace,
                     p.spec.name, why)
        return why is None

    async def _sync_hpa(self, p: Pass, native: bool) -> None:
        so = p.spec
        old_name = p.obj.status.hpa_name
        if old_name and old_name != so.hpa_name:
            await self._delete_hpa(so, old_name)
        wanted = desired_hpa(so, TargetKind(p.gvkr.api_version, p.gvkr.kind), hpa_metrics(p.adapter_view),
                             pause_scale_in=p.pause.scale_in, pause_scale_out=p.pause.scale_out, native_zero=native)
        found = self.cache.hpa(so.namespace, so.hpa_name)
        if found is None:
            written = await self.kube.create_hpa(wanted)
            log.info("object=%s/%s hpa=%s created", so.namespace, so.name, so.hpa_name)
        elif not up_to_date(wanted, found):
            written = await self.kube.patch_hpa(so.namespace, so.hpa_name, hpa_patch(wanted, found))
            log.info("object=%s/%s hpa=%s updated", so.namespace, so.name, so.hpa_name)
        else:
            return
        self.cache.put_hpa(written)

    async def _activate(self, p: Pass, decision: Decision) -> None:
        p.conditions.append(decision.active)
        if decision.ready is not None:
            p.conditions.append(decision.ready)
        if decision.last_active is not None:
            p.fields["lastActiveTime"] = timestamp(decision.last_active)
        if decision.scale_to is not None and decision.scale_to != p.current.replicas:
            await self._scale(p, decision)

    def last_active(self, obj: CachedScaledObject) -> float | None:
        """The later of the status' lastActiveTime and when this replica last saw the object active."""
        written = parse_timestamp(obj.status.last_active_time)
        seen = self.activity.last_active.get((obj.namespace, obj.name))
        known = [t for t in (written, seen) if t is not None]
        return max(known) if known else None

    def _inputs(self, p: Pass) -> Inputs:
        so, activity = p.spec, p.adapter_view
        return Inputs(
            min_replicas=so.min_replica_count, idle_replicas=so.idle_replica_count,
            cooldown=so.cooldown_period, initial_cooldown=so.initial_cooldown_period,
            created_at=parse_timestamp(so.creation_timestamp) or p.now, last_active=self.last_active(p.obj),
            current=p.current.replicas, active=activity.active, error=activity.failing,
            fallback=so.fallback is not None and so.fallback.replicas != 0,
            forced=flag(so.annotations, FORCE_ACTIVATION),
            pause_scale_in=p.pause.scale_in, pause_scale_out=p.pause.scale_out,
        )

    async def _scale(self, p: Pass, decision: Decision) -> None:
        assert decision.scale_to is not None
        so, current = p.spec, p.current.replicas
        try:
            p.scale = await self._write_scale(p.gvkr, p.current, decision.scale_to)
        except ApiStatusError as exc:
            if exc.code != 409 and decision.action in ("activate", "deactivate"):
                verb = "scale" if decision.action == "activate" else "deactivate"
                reason = events.ACTIVATION_FAILED if decision.action == "activate" else events.DEACTIVATION_FAILED
                self._event(p, "Warning", reason,
                                  f"Failed to {verb} {p.what} from {current} to {decision.scale_to}")
            raise
        log.info("object=%s/%s action=%s replicas=%d->%d", so.namespace, so.name, decision.action, current,
                 decision.scale_to)
        if decision.action == "activate":
            cause = ("caused by forced activation annotation" if flag(so.annotations, FORCE_ACTIVATION) else
                     "triggered by " + ";".join(t.metric_name for t in p.adapter_view.triggers if t.active))
            self._event(p, "Normal", events.ACTIVATED,
                              f"Scaled {p.what} from {current} to {decision.scale_to}, {cause}")
        elif decision.action == "deactivate":
            self._event(p, "Normal", events.DEACTIVATED,
                              f"Deactivated {p.what} from {current} to {decision.scale_to}")

    async def _scaler_events(self, p: Pass) -> None:
        for trigger in newly_failing(p.adapter_view.triggers, p.obj.status):
            self._event(p, "Warning", events.SCALER_FAILED,
                              f"trigger {trigger.index} ({trigger.metric_name}): {trigger.error}")

    def _event(self, p: Pass, kind: str, reason: str, message: str) -> None:
        self.recorder.record(events.Involved.of(p.obj), kind, reason, message)

    # -- status ----------------------------------------------------------------------------------

    def _describe(self, p: Pass) -> None:
        triggers = p.adapter_view.triggers
        original = p.obj.status.original_replica_count
        p.fields.update(
            scaleTargetKind=p.gvkr.kind_string, scaleTargetGVKR=p.gvkr.as_status(),
            originalReplicaCount=original if original is not None else p.current.replicas,
            externalMetricNames=[t.metric_name for t in triggers if t.polled], hpaName=p.spec.hpa_name,
            resourceMetricNames=[t.resource.resource for t in triggers if t.resource] or None,
            compositeScalerName=p.adapter_view.composite.metric_name if p.adapter_view.composite else None,
            health=health(triggers), triggersActivity=triggers_activity(triggers),
        )
        p.conditions.append(c.FALLBACK if any_in_fallback(p.spec.fallback, triggers) else c.NO_FALLBACK)

    async def _write_status(self, p: Pass, ready: bool) -> None:
        """One merge patch with what differs from the status as cached; none when nothing does."""
        before = p.obj.status.conditions
        updates = ([c.READY] if ready else []) + p.conditions
        wanted = {**p.fields, "conditions": merged(before, updates)}
        patch = merge_patch(p.obj.status.as_json(), wanted)
        if patch:
            p.obj = self.cache.put_scaled_object(await self.kube.patch_scaled_object(p.key, {"status": patch},
                                                                                      "status"))
        was = before.get("Ready")
        if p.obj.status.is_true("Ready") and (was is None or was.status != "True"):
            self._event(p, "Normal", events.READY, "ScaledObject is ready for scaling")

    async def _report_failed(self, p: Pass, message: str) -> None:
        failed = c.check_failed(message)
        p.conditions += [failed, c.ACTIVE_UNKNOWN]
        if p.obj.spec is None or p.obj.spec.fallback is None:
            p.conditions.append(c.NO_FALLBACK)
        if p.obj.status.condition("Ready") != failed:
            log.warning("object=%s/%s check failed: %s", p.obj.namespace, p.obj.name, message)
            self._event(p, "Warning", events.CHECK_FAILED, message)
        await self._write_status(p, ready=False)

    # -- deletion ---------------------------------------------------------------------------------

    async def _finalize(self, obj: CachedScaledObject) -> None:
        if FINALIZER not in obj.finalizers:
            return
        if obj.spec is not None:
            await self._delete_hpa(obj.spec, obj.spec.hpa_name)  # first: it would scale the restored count back
            await self._restore(obj, obj.spec)
        patch = {"metadata": {"resourceVersion": obj.resource_version,
                              "finalizers": [f for f in obj.finalizers if f != FINALIZER]}}
        self.cache.put_scaled_object(await self.kube.patch_scaled_object(obj.key, patch))
        self.recorder.record(events.Involved.of(obj), "Normal", events.DELETED, "ScaledObject was deleted")

    async def _restore(self, obj: CachedScaledObject, so: ScaledObject) -> None:
        original = obj.status.original_replica_count
        if not so.restore_to_original_replica_count or original is None:
            return
        try:
            target = await self.kube.targets.resolve(so.target.api_version, so.target.kind)
            scale = await self._read_scale(target, so.namespace, so.target.name)
        except (TargetError, ApiStatusError) as exc:
            log.warning("object=%s/%s target not restored: %s", so.namespace, so.name, exc)
            return
        if scale.replicas != original:
            await self._write_scale(target, scale, original)
            log.info("object=%s/%s deleted: target restored to replicas=%d", so.namespace, so.name, original)

