"""The controller's informer caches: ScaledObjects (both API groups) and HPAs, kept by watches.

A `Reflector` (adapter.cluster.watch) lists and watches each resource into an `ObjectCache`,
which keeps the objects (trimmed of managedFields and the last-applied annotation) and calls
`on_change(resource, old, new)` for every difference. Objects the controller itself wrote are
put in straight from the server's answer, so the next reconcile sees its own write even before
the watch delivers it; an event older than what is cached (by resourceVersion) is ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ..cluster.client import Object
from ..cluster.watch import Resource

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

SCALED_OBJECTS = Resource("keda.sh", "v1alpha1", "scaledobjects", "ScaledObject")
LEGACY_SCALED_OBJECTS = Resource("keda.k8s.io", "v1alpha1", "scaledobjects", "ScaledObject")
HPAS = Resource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler")

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
        """An object the server answered a write with."""
        self.changed(resource, trim(obj), deleted=False)


def transform(obj: Object) -> Object:
    """Reflector transform: what every cached object keeps."""
    return trim(obj)


def interesting(old: Any, new: Any) -> bool:
    """A change worth a reconcile: anything but status (our own writes) and resourceVersion."""
    if old is None or new is None:
        return True

    def essence(obj: Object) -> tuple[Any, ...]:
        meta = obj.get("metadata") or {}
        return (meta.get("generation"), meta.get("labels"), meta.get("annotations"), meta.get("finalizers"),
                meta.get("deletionTimestamp"), meta.get("ownerReferences"), obj.get("spec"))

    return bool(essence(old) != essence(new))
