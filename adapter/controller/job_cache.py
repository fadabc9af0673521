"""The Jobs and pods of every ScaledJob, kept by watches and indexed by the ScaledJob that owns them.

A ScaledJob's poll needs its Jobs (running, finished, of which generation) and, for the
accurate and eager strategies, whether their pods are at work. Listing them on every poll costs
two API calls per ScaledJob per `pollingInterval` even when nothing happens (100 ScaledJobs
polled every second: 200 calls/s, more than the controller's whole rate limit). Instead four
`Reflector`s watch Jobs and pods that carry a ScaledJob's label (`scaledjob.keda.sh/name`, or
KEDA 1.x's `scaledobject` for the 2019 `scaleType: job` objects; the server filters by label,
so other Jobs and pods never reach this process), and each is kept here as a small typed view,
indexed by its owner: a poll reads the Jobs of its ScaledJob in time proportional to them and
makes no API call when nothing changed.

A Job the controller creates or deletes is put in or taken out at once from the server's
answer, so the next poll counts it even before the watch says so (else a poll 1 s later would
create the same Jobs again); a deleted Job stays gone until the watch confirms it, whatever
events still in flight say. An event older than what is cached (by resourceVersion) is ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from adapter.keda.activity import Key, object_key
from adapter.keda.names import JOB_GENERATION, LEGACY_JOB_LABEL, SCALED_JOB_LABEL
from adapter.keda.scaled_job import SCALED_JOB_KIND
from adapter.kube.client import Object
from adapter.kube.resources import Resource

OWNER_LABELS = {SCALED_JOB_LABEL: SCALED_JOB_KIND, LEGACY_JOB_LABEL: "ScaledObject"}  # label -> owner kind
JOB_RESOURCES = tuple(Resource("batch", "v1", "jobs", "Job", label_selector=label) for label in OWNER_LABELS)
POD_RESOURCES = tuple(Resource("", "v1", "pods", "Pod", label_selector=label) for label in OWNER_LABELS)
Name = tuple[str, str]  # namespace, name of a Job or a pod


@dataclass(frozen=True, slots=True)
class CachedJob:
    """What a poll reads of a Job: its owner, the spec generation it was made from, its outcome."""

    namespace: str
    name: str
    owner: Key  # the `object_key` of its ScaledJob (or 2019 ScaledObject)
    uid: str
    resource_version: str
    generation: str | None  # the `scaledjob.keda.sh/generation` annotation
    finished: str | None  # "Complete" | "Failed" | None while it runs
    finished_at: str  # completionTime, else creationTimestamp: the history order
    deleting: bool
    label: str = SCALED_JOB_LABEL  # the owner label it was watched by


@dataclass(frozen=True, slots=True)
class CachedPod:
    """What a poll reads of a pod of a Job: its Job, its phase, its conditions that are True."""

    namespace: str
    name: str
    owner: Key
    uid: str
    resource_version: str
    job_name: str
    phase: str
    true_conditions: frozenset[str]


Cached = CachedJob | CachedPod


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _owner(meta: Mapping[str, Any], label: str) -> Key:
    name = str(_mapping(meta.get("labels")).get(label) or "")
    return object_key(OWNER_LABELS[label], str(meta.get("namespace") or ""), name)


def job_outcome(status: Mapping[str, Any]) -> str | None:
    """"Complete" or "Failed" when a Job has finished, else None."""
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") in ("Complete", "Failed") and \
                condition.get("status") == "True":
            return str(condition["type"])
    return None


def parse_job(raw: Object, label: str) -> CachedJob:
    meta, status = _mapping(raw.get("metadata")), _mapping(raw.get("status"))
    return CachedJob(
        namespace=str(meta.get("namespace") or ""), name=str(meta.get("name") or ""), owner=_owner(meta, label),
        uid=str(meta.get("uid") or ""), resource_version=str(meta.get("resourceVersion") or ""),
        generation=_mapping(meta.get("annotations")).get(JOB_GENERATION), finished=job_outcome(status),
        finished_at=str(status.get("completionTime") or meta.get("creationTimestamp") or ""),
        deleting=bool(meta.get("deletionTimestamp")), label=label)


def parse_pod(raw: Object, label: str) -> CachedPod:
    meta, status = _mapping(raw.get("metadata")), _mapping(raw.get("status"))
    conditions = frozenset(str(c.get("type")) for c in status.get("conditions") or []
                           if isinstance(c, Mapping) and c.get("status") == "True")
    return CachedPod(
        namespace=str(meta.get("namespace") or ""), name=str(meta.get("name") or ""), owner=_owner(meta, label),
        uid=str(meta.get("uid") or ""), resource_version=str(meta.get("resourceVersion") or ""),
        job_name=str(_mapping(meta.get("labels")).get("job-name") or ""), phase=str(status.get("phase") or ""),
        true_conditions=conditions)


def transform_for(resource: Resource) -> Callable[[Object], Cached]:
    """The Reflector transform of one of `JOB_RESOURCES` or `POD_RESOURCES`."""
    label = resource.label_selector
    if resource.kind == "Job":
        return lambda raw: parse_job(raw, label)
    return lambda raw: parse_pod(raw, label)


def _jobs_labelled(label: str) -> Resource:
    return next(r for r in JOB_RESOURCES if r.label_selector == label)


def _version(item: Cached | None) -> int | None:
    text = item.resource_version if item is not None else ""
    return int(text) if text.isdigit() else None


class JobCache:
    """Implements the Reflector's `Sink` for `JOB_RESOURCES` and `POD_RESOURCES`."""

    def __init__(self) -> None:
        self.synced: set[Resource] = set()
        self._items: dict[Resource, dict[Name, Cached]] = {}
        self._by_owner: dict[Resource, dict[Key, set[Name]]] = {}
        self._gone: dict[Resource, dict[Name, str]] = {}  # Jobs we deleted, by uid, until the watch says so too

    # -- lookups -----------------------------------------------------------------------------

    def ready(self, pods: bool) -> bool:
        """Whether the Jobs (and, when asked, the pods) have been listed once."""
        wanted = JOB_RESOURCES + (POD_RESOURCES if pods else ())
        return all(r in self.synced for r in wanted)

    def jobs_of(self, owner: Key) -> list[CachedJob]:
        """The Jobs of one ScaledJob, but those being deleted."""
        found = [j for j in self._of(JOB_RESOURCES, owner) if isinstance(j, CachedJob)]
        return sorted((j for j in found if not j.deleting), key=lambda j: j.name)

    def pods_of(self, owner: Key) -> list[CachedPod]:
        return sorted((p for p in self._of(POD_RESOURCES, owner) if isinstance(p, CachedPod)), key=lambda p: p.name)

    def count(self, kind: str) -> int:
        return sum(len(items) for r, items in self._items.items() if r.kind == kind)

    def _of(self, resources: tuple[Resource, ...], owner: Key) -> list[Cached]:
        found: list[Cached] = []
        for resource in resources:
            items = self._items.get(resource, {})
            found += [items[n] for n in self._by_owner.get(resource, {}).get(owner, ())]
        return found

    # -- Sink --------------------------------------------------------------------------------

    def listed(self, resource: Resource, items: list[Cached]) -> None:
        for name in list(self._items.get(resource, {})):
            self._drop(resource, name)
        gone = self._gone.get(resource, {})
        for item in items:
            if gone.get((item.namespace, item.name)) != item.uid:
                self._store(resource, item)
        present = {(i.namespace, i.name) for i in items}
        self._gone[resource] = {n: uid for n, uid in gone.items() if n in present}
        self.synced.add(resource)

    def changed(self, resource: Resource, item: Cached, deleted: bool) -> None:
        name = (item.namespace, item.name)
        if deleted:
            self._drop(resource, name)
            self._gone.get(resource, {}).pop(name, None)
            return
        if self._gone.get(resource, {}).get(name) == item.uid:
            return  # an event sent before our delete took effect
        known, seen = _version(self._items.get(resource, {}).get(name)), _version(item)
        if known is not None and seen is not None and seen < known:
            return  # we already hold a newer version (our own write)
        self._store(resource, item)

    # -- our own writes ------------------------------------------------------------------------

    def created(self, raw: Object, label: str) -> CachedJob:
        """A Job the server answered our create with."""
        job = parse_job(raw, label)
        self.changed(_jobs_labelled(label), job, deleted=False)
        return job

    def deleted(self, job: CachedJob) -> None:
        """A Job we deleted: not counted from now on."""
        resource = _jobs_labelled(job.label)
        self._drop(resource, (job.namespace, job.name))
        self._gone.setdefault(resource, {})[(job.namespace, job.name)] = job.uid

    # -- storage -------------------------------------------------------------------------------

    def _store(self, resource: Resource, item: Cached) -> None:
        name = (item.namespace, item.name)
        self._drop(resource, name)
        self._items.setdefault(resource, {})[name] = item
        self._by_owner.setdefault(resource, {}).setdefault(item.owner, set()).add(name)

    def _drop(self, resource: Resource, name: Name) -> None:
        old = self._items.get(resource, {}).pop(name, None)
        if old is None:
            return
        owners = self._by_owner.get(resource, {})
        names = owners.get(old.owner)
        if names is not None:
            names.discard(name)
            if not names:
                del owners[old.owner]
