"""One ScaledObject, brought in line: labels and finalizer, checks, HPA, activation, status.

`reconcile(key)` is idempotent and reads only caches (ScaledObjects, HPAs, Deployments and
StatefulSets, the adapter's activity; a GET of `/scale` only for other target kinds); it writes
only what differs. In order:

1. Deleted (our finalizer): restore `originalReplicaCount` when asked, drop the HPA and the
   finalizer.
2. Metadata: the `scaledobject.keda.sh/name` label; the finalizer while
   `restoreToOriginalReplicaCount` is set.
3. Checks, each failure reported as Ready=False ScaledObjectCheckFailed with a Warning Event
   and nothing else touched (other objects are unaffected): the spec and annotations parse, the
   target exists and has `/scale`, no other ScaledObject or foreign HPA drives the same target
   (unless `transfer-hpa-ownership`), every trigger resolved in the adapter.
4. Paused (`paused`, `paused-replicas`): no HPA, target held at the paused count.
5. The HPA created or updated; a renamed one replaced.
6. The activation decision (`decide`) when the adapter's view is fresh and every trigger has
   been read; scaling goes through `/scale` with the resourceVersion just read, so a concurrent
   change (the HPA's) wins and is looked at again.
7. Status and Events.

Returns the seconds after which the object should be looked at again (its pollingInterval, or
sooner when a cooldown ends), or None.
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
from adapter.controller.decide import (
    Decision,
    Inputs,
    Pause,
    annotation_errors,
    decide,
    flag,
    pause_of,
)
from adapter.controller.guarded_api import ControllerKube, GroupVersionKindResource, SoKey, TargetError
from adapter.controller.hpa import HpaMetric, TargetKind, desired_hpa, owned_by, targets, up_to_date, updated
from adapter.controller.object_cache import ObjectCache, as_scale
from adapter.controller.status import health, merge_patch, newly_failing, triggers_activity
from adapter.keda.activity import ObjectActivity
from adapter.keda.fallback import in_fallback
from adapter.keda.names import (
    FINALIZER,
    FORCE_ACTIVATION,
    LEGACY_GROUP,
    LEGACY_SCALED_OBJECTS,
    SCALED_OBJECT_LABEL,
    SCALED_OBJECTS,
    TRANSFER_HPA_OWNERSHIP,
)
from adapter.keda.objects import InvalidObject, ScaledObject, parse_scaled_object
from adapter.kube.client import ApiStatusError, Object
from adapter.kube.resources import HPAS, WORKLOADS, Resource
from adapter.kube.wire import parse_timestamp, timestamp

log = logging.getLogger("eventscale.reconciler")

NOT_YET = 5.0  # look again this soon when the adapter has not caught up with a change


class CheckFailed(Exception):
    """A ScaledObject that cannot be acted on; the message goes to its Ready condition."""


def resource_of(key: SoKey) -> Resource:
    return LEGACY_SCALED_OBJECTS if key[0] == LEGACY_GROUP else SCALED_OBJECTS


def target_of(raw: Object) -> tuple[str, str]:
    """(kind, name) of a raw ScaledObject's target, without a full parse."""
    spec = raw.get("spec") or {}
    ref = spec.get("scaleTargetRef") or {}
    if str(raw.get("apiVersion", "")).startswith(LEGACY_GROUP + "/"):
        return "Deployment", str(ref.get("deploymentName") or "")
    return str(ref.get("kind") or "Deployment"), str(ref.get("name") or "")


@dataclass
class Look:
    """One reconcile's findings and the status it will write."""

    key: SoKey
    raw: Object
    fields: dict[str, Any] = field(default_factory=dict)
    conditions: list[c.Condition] = field(default_factory=list)

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.raw.get("status") or {})


class Reconciler:
    def __init__(self, kube: ControllerKube, cache: ObjectCache, activity: ActivityClient,
                 recorder: events.EventRecorder, wall: Callable[[], float] = time.time) -> None:
        self.kube, self.cache, self.activity, self.recorder, self.wall = kube, cache, activity, recorder, wall

    # -- the whole pass ------------------------------------------------------------------------

    async def reconcile(self, key: SoKey) -> float | None:
        raw = self.cache.get(resource_of(key), key[1], key[2])
        if raw is None:
            return None
        if (raw.get("metadata") or {}).get("deletionTimestamp"):
            await self._finalize(key, raw)
            return None
        look = Look(key, raw)
        try:
            so = self._parse(raw)
            look.raw = await self._ensure_metadata(key, raw, so)
            target, scale = await self._target(so)
            self._check_conflicts(so, target)
            activity = self._activity(so)
        except CheckFailed as failed:
            await self._report_failed(look, str(failed))
            return None
        if activity is None:
            return NOT_YET
        return await self._act(look, so, target, scale, activity)

    async def _act(self, look: Look, so: ScaledObject, target: GroupVersionKindResource, scale: Object,
                   activity: ObjectActivity) -> float | None:
        pause = pause_of(so.annotations)
        self._describe(look, so, target, scale, activity)
        if pause.stopped:
            await self._hold_paused(look, so, target, scale, pause)
            await self._write_status(look, ready=True)
            return float(so.polling_interval)
        self._pause_condition(look, pause)
        await self._sync_hpa(look, so, target, activity, pause)
        delay = await self._activate(look, so, target, scale, activity, pause)
        await self._scaler_events(look, activity)
        await self._write_status(look, ready=True)
        return delay

    # -- checks --------------------------------------------------------------------------------

    @staticmethod
    def _parse(raw: Object) -> ScaledObject:
        try:
            so = parse_scaled_object(raw)
        except InvalidObject as exc:
            raise CheckFailed(str(exc)) from None
        problem = annotation_errors(so.annotations)
        if problem:
            raise CheckFailed(problem)
        return so

    async def _target(self, so: ScaledObject) -> tuple[GroupVersionKindResource, Object]:
        try:
            target = await self.kube.targets.resolve(so.target.api_version, so.target.kind)
            return target, await self._read_scale(target, so.namespace, so.target.name)
        except TargetError as exc:
            raise CheckFailed(f"ScaledObject doesn't have correct scaleTargetRef specification: {exc}") from None
        except ApiStatusError as exc:
            if exc.code == 404:
                raise CheckFailed(f"Target resource doesn't exist: {so.target.kind} {so.namespace}/"
                                  f"{so.target.name}") from None
            raise

    async def _read_scale(self, target: GroupVersionKindResource, namespace: str, name: str) -> Object:
        """The target's Scale: from the workload cache for Deployments and StatefulSets, else GET."""
        resource = WORKLOADS.get((target.api_version, target.kind))
        if resource is None or resource not in self.cache.synced:
            return await self.kube.get_scale(target, namespace, name)
        found = self.cache.get(resource, namespace, name)
        if found is None:
            raise ApiStatusError(404, f"{target.kind} {namespace}/{name} not found", "NotFound")
        return as_scale(found)

    async def _write_scale(self, target: GroupVersionKindResource, scale: Object, replicas: int) -> None:
        written = await self.kube.put_scale(target, scale, replicas)
        resource = WORKLOADS.get((target.api_version, target.kind))
        meta = scale.get("metadata") or {}
        cached = self.cache.get(resource, meta.get("namespace", ""), meta.get("name", "")) if resource else None
        if resource is not None and cached is not None:
            version = (written.get("metadata") or {}).get("resourceVersion")
            self.cache.put(resource, {**cached, "metadata": {**cached["metadata"], "resourceVersion": version},
                                      "spec": {"replicas": replicas}})

    def _check_conflicts(self, so: ScaledObject, target: GroupVersionKindResource) -> None:
        workload = f"the workload '{so.target.name}' of type '{target.kind_string}'"
        for other in self._rivals(so):
            raise CheckFailed(f"{workload} is already managed by the ScaledObject '{other}'")
        adopt = flag(so.annotations, TRANSFER_HPA_OWNERSHIP)
        for hpa in self.cache.items(HPAS):
            meta = hpa.get("metadata") or {}
            if meta.get("namespace") != so.namespace or owned_by(hpa, so.uid):
                continue
            if adopt and meta.get("name") == so.hpa_name:
                continue
            if targets(hpa, target.kind, so.target.name):
                raise CheckFailed(f"{workload} is already managed by the hpa '{meta.get('name')}'")
            if meta.get("name") == so.hpa_name:
                raise CheckFailed(f"the HPA '{so.hpa_name}' exists and is not owned by this ScaledObject "
                                  f"(annotate {TRANSFER_HPA_OWNERSHIP}: \"true\" to adopt it)")

    def _rivals(self, so: ScaledObject) -> list[str]:
        """Older ScaledObjects (either group) of this namespace with the same target."""
        mine = (so.creation_timestamp, so.name)
        found = []
        for resource in (SCALED_OBJECTS, LEGACY_SCALED_OBJECTS):
            for raw in self.cache.items(resource):
                meta = raw.get("metadata") or {}
                if meta.get("namespace") != so.namespace or meta.get("uid") == so.uid or meta.get("deletionTimestamp"):
                    continue
                theirs = (str(meta.get("creationTimestamp") or ""), str(meta.get("name")))
                if target_of(raw) == (so.target.kind, so.target.name) and theirs < mine:
                    found.append(str(meta.get("name")))
        return found

    def _activity(self, so: ScaledObject) -> ObjectActivity | None:
        """The adapter's view of this object, once it has seen this generation (else None)."""
        found = self.activity.get(so.namespace, so.name)
        if found is None or (found.uid and so.uid and found.uid != so.uid) or found.generation < so.generation:
            return None
        if found.error:
            raise CheckFailed(found.error)
        if found.resolve_errors:
            raise CheckFailed("; ".join(found.resolve_errors))
        return found

    # -- writes ----------------------------------------------------------------------------------

    async def _ensure_metadata(self, key: SoKey, raw: Object, so: ScaledObject) -> Object:
        meta = raw.get("metadata") or {}
        finalizers = list(meta.get("finalizers") or [])
        wanted = [f for f in finalizers if f != FINALIZER] + ([FINALIZER] if so.restore_to_original_replica_count
                                                             else [])
        labelled = (meta.get("labels") or {}).get(SCALED_OBJECT_LABEL) == so.name
        if labelled and sorted(wanted) == sorted(finalizers):
            return raw
        patch: dict[str, Any] = {"metadata": {"resourceVersion": meta.get("resourceVersion"),
                                              "labels": {SCALED_OBJECT_LABEL: so.name}}}
        if sorted(wanted) != sorted(finalizers):
            patch["metadata"]["finalizers"] = wanted
        written = await self.kube.patch_scaled_object(key, patch)
        self.cache.put(resource_of(key), written)
        return self.cache.get(resource_of(key), key[1], key[2]) or raw

    async def _hold_paused(self, look: Look, so: ScaledObject, target: GroupVersionKindResource, scale: Object,
                           pause: Pause) -> None:
        await self._delete_hpa(so, so.hpa_name)
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        if pause.replicas is not None and current != pause.replicas:
            await self._write_scale(target, scale, pause.replicas)
            log.info("object=%s/%s paused at replicas=%d (was %d)", so.namespace, so.name, pause.replicas, current)
        look.fields["pausedReplicaCount"] = pause.replicas
        look.conditions.append(c.PAUSED)

    def _pause_condition(self, look: Look, pause: Pause) -> None:
        look.fields["pausedReplicaCount"] = None
        if pause.any:
            look.conditions.append(c.PAUSED)
        elif c.observed(look.status).get("Paused", c.UNPAUSED).status == "True":
            look.conditions.append(c.UNPAUSED)

    async def _delete_hpa(self, so: ScaledObject, name: str) -> None:
        found = self.cache.get(HPAS, so.namespace, name)
        if found is not None and owned_by(found, so.uid):
            await self.kube.delete_hpa(so.namespace, name)
            self.cache.changed(HPAS, found, deleted=True)
            log.info("object=%s/%s hpa=%s deleted", so.namespace, so.name, name)

    async def _sync_hpa(self, look: Look, so: ScaledObject, target: GroupVersionKindResource,
                        activity: ObjectActivity, pause: Pause) -> None:
        old_name = look.status.get("hpaName")
        if old_name and old_name != so.hpa_name:
            await self._delete_hpa(so, str(old_name))
        metrics = [HpaMetric(t.metric_name, t.metric_type, t.target or 0.0, t.resource) for t in activity.triggers
                   if t.resolved and (t.target is not None or t.resource is not None)]
        wanted = desired_hpa(so, TargetKind(target.api_version, target.kind), metrics,
                             pause_scale_in=pause.scale_in, pause_scale_out=pause.scale_out)
        found = self.cache.get(HPAS, so.namespace, so.hpa_name)
        if found is None:
            written = await self.kube.create_hpa(wanted)
            log.info("object=%s/%s hpa=%s created", so.namespace, so.name, so.hpa_name)
        elif not up_to_date(wanted, found):
            written = await self.kube.replace_hpa(updated(wanted, found))
            log.info("object=%s/%s hpa=%s updated", so.namespace, so.name, so.hpa_name)
        else:
            return
        self.cache.put(HPAS, written)

    async def _activate(self, look: Look, so: ScaledObject, target: GroupVersionKindResource, scale: Object,
                        activity: ObjectActivity, pause: Pause) -> float:
        if not (self.activity.fresh and activity.known):
            return NOT_YET
        now = self.wall()
        inputs = self._inputs(look, so, scale, activity, pause)
        decision = decide(inputs, now)
        look.conditions.append(decision.active)
        if decision.ready is not None:
            look.conditions.append(decision.ready)
        if decision.last_active is not None:
            look.fields["lastActiveTime"] = timestamp(decision.last_active)
        if decision.scale_to is not None and decision.scale_to != inputs.current:
            await self._scale(look, so, target, scale, decision, activity)
        delay = float(so.polling_interval)
        if decision.recheck_at is not None:
            delay = min(delay, max(0.0, decision.recheck_at - now) + 0.05)
        return delay

    def _inputs(self, look: Look, so: ScaledObject, scale: Object, activity: ObjectActivity, pause: Pause) -> Inputs:
        written = parse_timestamp(look.status.get("lastActiveTime"))
        seen = self.activity.last_active.get((so.namespace, so.name))
        known = [t for t in (written, seen) if t is not None]
        return Inputs(
            min_replicas=so.min_replica_count, idle_replicas=so.idle_replica_count,
            cooldown=so.cooldown_period, initial_cooldown=so.initial_cooldown_period,
            created_at=parse_timestamp(so.creation_timestamp) or self.wall(), last_active=max(known) if known else None,
            current=int((scale.get("spec") or {}).get("replicas") or 0),
            active=activity.active, error=activity.failing,
            fallback=so.fallback is not None and so.fallback.replicas != 0,
            forced=flag(so.annotations, FORCE_ACTIVATION),
            pause_scale_in=pause.scale_in, pause_scale_out=pause.scale_out,
        )

    async def _scale(self, look: Look, so: ScaledObject, target: GroupVersionKindResource, scale: Object,
                     decision: Decision, activity: ObjectActivity) -> None:
        assert decision.scale_to is not None
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        what = f"{target.kind_string} {so.namespace}/{so.target.name}"
        try:
            await self._write_scale(target, scale, decision.scale_to)
        except ApiStatusError as exc:
            if exc.code != 409 and decision.action in ("activate", "deactivate"):
                verb = "scale" if decision.action == "activate" else "deactivate"
                reason = events.ACTIVATION_FAILED if decision.action == "activate" else events.DEACTIVATION_FAILED
                await self.recorder.record(look.raw, "Warning", reason,
                                           f"Failed to {verb} {what} from {current} to {decision.scale_to}")
            raise
        log.info("object=%s/%s action=%s replicas=%d->%d", so.namespace, so.name, decision.action, current,
                 decision.scale_to)
        if decision.action == "activate":
            cause = ("caused by forced activation annotation" if flag(so.annotations, FORCE_ACTIVATION) else
                     "triggered by " + ";".join(t.metric_name for t in activity.triggers if t.active))
            await self.recorder.record(look.raw, "Normal", events.ACTIVATED,
                                       f"Scaled {what} from {current} to {decision.scale_to}, {cause}")
        elif decision.action == "deactivate":
            await self.recorder.record(look.raw, "Normal", events.DEACTIVATED,
                                       f"Deactivated {what} from {current} to {decision.scale_to}")

    async def _scaler_events(self, look: Look, activity: ObjectActivity) -> None:
        for trigger in newly_failing(activity.triggers, look.status):
            await self.recorder.record(look.raw, "Warning", events.SCALER_FAILED,
                                       f"trigger {trigger.index} ({trigger.metric_name}): {trigger.error}")

    # -- status ----------------------------------------------------------------------------------

    def _describe(self, look: Look, so: ScaledObject, target: GroupVersionKindResource, scale: Object,
                  activity: ObjectActivity) -> None:
        triggers = activity.triggers
        original = look.status.get("originalReplicaCount")
        look.fields.update(
            scaleTargetKind=target.kind_string, scaleTargetGVKR=target.as_status(),
            originalReplicaCount=original if original is not None else int((scale.get("spec") or {}).get("replicas")
                                                                          or 0),
            externalMetricNames=[t.metric_name for t in triggers if t.polled], hpaName=so.hpa_name,
            resourceMetricNames=[t.resource.resource for t in triggers if t.resource] or None,
            health=health(triggers), triggersActivity=triggers_activity(triggers),
        )
        falling_back = any(in_fallback(so.fallback, t.failures) for t in triggers if t.error)
        look.conditions.append(c.FALLBACK if falling_back else c.NO_FALLBACK)

    async def _write_status(self, look: Look, ready: bool) -> None:
        before = c.observed(look.status)
        updates = ([c.READY] if ready else []) + look.conditions
        wanted = {**look.fields, "conditions": c.merged(before, updates)}
        patch = merge_patch(look.status, wanted)
        if patch:
            written = await self.kube.patch_scaled_object(look.key, {"status": patch}, "status")
            self.cache.put(resource_of(look.key), written)
        was = before.get("Ready")
        if c.observed(wanted)["Ready"].status == "True" and (was is None or was.status != "True"):
            await self.recorder.record(look.raw, "Normal", events.READY, "ScaledObject is ready for scaling")

    async def _report_failed(self, look: Look, message: str) -> None:
        failed = c.check_failed(message)
        look.conditions += [failed, c.ACTIVE_UNKNOWN]
        if not (look.raw.get("spec") or {}).get("fallback"):
            look.conditions.append(c.NO_FALLBACK)
        if c.observed(look.status).get("Ready") != failed:
            log.warning("object=%s/%s check failed: %s", look.key[1], look.key[2], message)
            await self.recorder.record(look.raw, "Warning", events.CHECK_FAILED, message)
        await self._write_status(look, ready=False)

    # -- deletion ---------------------------------------------------------------------------------

    async def _finalize(self, key: SoKey, raw: Object) -> None:
        meta = raw.get("metadata") or {}
        finalizers = list(meta.get("finalizers") or [])
        if FINALIZER not in finalizers:
            return
        try:
            so = parse_scaled_object(raw)
        except InvalidObject:
            so = None
        if so is not None:
            await self._restore(so, raw)
            await self._delete_hpa(so, so.hpa_name)
        patch = {"metadata": {"resourceVersion": meta.get("resourceVersion"),
                              "finalizers": [f for f in finalizers if f != FINALIZER]}}
        written = await self.kube.patch_scaled_object(key, patch)
        self.cache.put(resource_of(key), written)
        await self.recorder.record(raw, "Normal", events.DELETED, "ScaledObject was deleted")

    async def _restore(self, so: ScaledObject, raw: Object) -> None:
        original = (raw.get("status") or {}).get("originalReplicaCount")
        if not so.restore_to_original_replica_count or original is None:
            return
        try:
            target = await self.kube.targets.resolve(so.target.api_version, so.target.kind)
            scale = await self._read_scale(target, so.namespace, so.target.name)
        except (TargetError, ApiStatusError) as exc:
            log.warning("object=%s/%s target not restored: %s", so.namespace, so.name, exc)
            return
        if int((scale.get("spec") or {}).get("replicas") or 0) != int(original):
            await self._write_scale(target, scale, int(original))
            log.info("object=%s/%s deleted: target restored to replicas=%d", so.namespace, so.name, int(original))
