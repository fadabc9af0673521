"""The controller's informer caches: ScaledObjects (both API groups), HPAs, and the replica
counts of Deployments and StatefulSets, kept by watches.

A `Reflector` (adapter.kube.watch) lists and watches each resource into an `ObjectCache`,
which keeps the objects (trimmed of managedFields and the last-applied annotation; workloads
cut down to what their Scale holds) and calls `on_change(resource, old, new)` for every
difference. Objects the controller itself wrote are put in straight from the server's answer,
so the next reconcile sees its own write even before the watch delivers it; an event older
than what is cached (by resourceVersion) is ignored.

Why watch workloads: the activation decision needs the target's replica count every
pollingInterval. Read from the cache it costs nothing; `GET /scale` for each of 1,000 objects
every 30 s would spend 33 calls a second of the rate limit before any real work. Other
scalable kinds (custom resources) are still read through `/scale`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from adapter.kube.client import Object
from adapter.kube.resources import WORKLOADS, Resource

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


Key = tuple[str, str]  # namespace, name
OnChange = Callable[[Resource, Object | None, Object | None], None]


def trim(obj: Object) -> Object:
    meta = dict(obj.get("metadata") or {})
    meta.pop("managedFields", None)
    annotations = meta.get("annotations")
    if annotations and LAST_APPLIED in annotations:
        meta["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    return {**obj, "metadata": meta}


def key_of(obj: Object) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _version(obj: Object | None) -> int | None:
    text = ((obj or {}).get("metadata") or {}).get("resourceVersion")
    return int(text) if isinstance(text, str) and text.isdigit() else None


class ObjectCache:
    """Implements the Reflector's `Sink` for several resources."""

    def __init__(self, on_change: OnChange) -> None:
        self.on_change = on_change
        self.objects: dict[Resource, dict[Key, Object]] = {}
        self.synced: set[Resource] = set()

    def get(self, resource: Resource, namespace: str, name: str) -> Object | None:
        return self.objects.get(resource, {}).get((namespace, name))

    def items(self, resource: Resource) -> Iterator[Object]:
        return iter(list(self.objects.get(resource, {}).values()))

    def listed(self, resource: Resource, objects: list[Object]) -> None:
        old = self.objects.get(resource, {})
        new = {key_of(o): o for o in objects}
        self.objects[resource] = new
        self.synced.add(resource)
        for key in old.keys() | new.keys():
            if old.get(key) != new.get(key):
                self.on_change(resource, old.get(key), new.get(key))

    def changed(self, resource: Resource, obj: Object, deleted: bool) -> None:
        objects = self.objects.setdefault(resource, {})
        key = key_of(obj)
        old = objects.get(key)
        if deleted:
            if objects.pop(key, None) is not None:
                self.on_change(resource, old, None)
            return
        known, seen = _version(old), _version(obj)
        if known is not None and seen is not None and seen < known:
            return  # we already hold a newer version (our own write)
        objects[key] = obj
        if old != obj:
            self.on_change(resource, old, obj)

    def put(self, resource: Resource, obj: Object) -> None:
        """An object the server answered a write with: cached without telling anyone, since the
        writer knows; the watch event for the same version then compares equal and is quiet."""
        objects = self.objects.setdefault(resource, {})
        key = key_of(obj)
        known, seen = _version(objects.get(key)), _version(obj)
        if known is None or seen is None or seen >= known:
            objects[key] = obj if resource in WORKLOADS.values() else trim(obj)


def transform(obj: Object) -> Object:
    """Reflector transform for ScaledObjects and HPAs: the whole object but managedFields."""
    return trim(obj)


def workload(obj: Object) -> Object:
    """Reflector transform for Deployments and StatefulSets: what a Scale holds, nothing more."""
    meta = obj.get("metadata") or {}
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
            "metadata": {k: meta[k] for k in ("name", "namespace", "resourceVersion", "uid") if k in meta},
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)}}


def as_scale(obj: Object) -> Object:
    """The autoscaling/v1 Scale of a cached workload (same resourceVersion as the object)."""
    meta = obj.get("metadata") or {}
    return {"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {k: meta[k] for k in ("name", "namespace", "resourceVersion") if k in meta},
            "spec": {"replicas": int((obj.get("spec") or {}).get("replicas") or 0)}}


def interesting(old: Any, new: Any) -> bool:
    """A change worth a reconcile: anything but status (our own writes) and resourceVersion."""
    if old is None or new is None:
        return True

    def essence(obj: Object) -> tuple[Any, ...]:
        meta = obj.get("metadata") or {}
        return (meta.get("generation"), meta.get("labels"), meta.get("annotations"), meta.get("finalizers"),
                meta.get("deletionTimestamp"), meta.get("ownerReferences"), obj.get("spec"))

    return bool(essence(old) != essence(new))
