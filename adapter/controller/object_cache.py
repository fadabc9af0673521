"""The controller's informer caches, typed and indexed: ScaledObjects (both API groups), HPAs,
and the Scales of Deployments and StatefulSets, kept by watches.

A `Reflector` (adapter.kube.watch) lists and watches each resource; its transform parses each
object into the typed view the controller reads (`CachedScaledObject`, `Hpa`, `Scale`) as it
arrives, so a list of 100,000 objects never sits in memory as raw JSON, and the cache calls
`on_change(resource, old, new)` for every difference. Objects the controller itself wrote are
put in straight from the server's answer (`put_*`), so the next reconcile sees its own write
even before the watch delivers it; an event older than what is cached (by resourceVersion) is
ignored.

Indexes answer the questions a reconcile and a watch event ask, in time proportional to the
answer rather than to the number of objects: the ScaledObjects of a scale target, of an HPA
name; the HPAs of a scale target, of an owner. `touched` counts every cached entry a lookup
hands out, so a test can pin what one reconcile costs.

Why watch workloads: the activation decision needs the target's replica count. Read from the
cache it costs nothing; `GET /scale` for each of 1,000 objects would spend the rate limit
before any real work. Other scalable kinds (custom resources) are read through `/scale`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from adapter.controller.guarded_api import SoKey
from adapter.keda.names import (
    KEDA_GROUP,
    KEDA_GROUPS,
    LEGACY_GROUP,
    LEGACY_SCALED_OBJECTS,
    SCALED_OBJECT_LABEL,
    SCALED_OBJECTS,
)
from adapter.keda.objects import InvalidObject, ScaledObject, parse_scaled_object
from adapter.keda.scaled_job import is_job_object
from adapter.keda.scaled_object_status import ScaledObjectStatus, parse_status
from adapter.kube.autoscaling import Hpa, Scale, parse_hpa, parse_scale, text
from adapter.kube.client import Object
from adapter.kube.resources import HPAS, WORKLOADS, Resource

Key = tuple[str, str]  # namespace, name
TargetKey = tuple[str, str, str]  # namespace, kind, name
Cached = Any  # CachedScaledObject | Hpa | Scale, by resource
OnChange = Callable[[Resource, Any, Any], None]
SCALED_OBJECT_RESOURCES = (SCALED_OBJECTS, LEGACY_SCALED_OBJECTS)


@dataclass(frozen=True, slots=True)
class CachedScaledObject:
    """A ScaledObject as the controller keeps it: metadata it acts on, the parsed spec (or why
    it does not parse), and the status it wrote."""

    key: SoKey
    api_version: str
    uid: str
    created: str  # creationTimestamp: of two ScaledObjects on one target, the older wins
    resource_version: str
    deleting: bool
    finalizers: tuple[str, ...]
    labelled: bool  # carries scaledobject.keda.sh/name=<name>
    target: tuple[str, str]  # (kind, name), read even when the spec is invalid
    spec: ScaledObject | None
    invalid: str | None
    status: ScaledObjectStatus
    creates_jobs: bool = False  # a 2019 `scaleType: job` object: adapter.controller.job_creation acts on it

    @property
    def namespace(self) -> str:
        return self.key[1]

    @property
    def name(self) -> str:
        return self.key[2]

    @property
    def target_key(self) -> TargetKey:
        return self.key[1], *self.target

    @property
    def hpa_name(self) -> str | None:
        return self.spec.hpa_name if self.spec is not None else None

    def same_but_status(self, other: CachedScaledObject) -> bool:
        """Nothing a user changed: what differs, if anything, is status or resourceVersion."""
        return (self.spec, self.invalid, self.finalizers, self.deleting, self.labelled, self.uid) == \
            (other.spec, other.invalid, other.finalizers, other.deleting, other.labelled, other.uid)


def _group(api_version: str) -> str:
    group = api_version.split("/")[0]
    return group if group in KEDA_GROUPS else KEDA_GROUP


def parse_cached_scaled_object(obj: Object) -> CachedScaledObject:
    meta = _mapping(obj.get("metadata"))
    api_version = text(obj.get("apiVersion"))
    key = (sys.intern(_group(api_version)), text(meta.get("namespace")), text(meta.get("name")))
    creates_jobs = is_job_object(obj)
    spec: ScaledObject | None = None
    invalid: str | None = None
    try:
        spec = None if creates_jobs else parse_scaled_object(obj)
    except InvalidObject as exc:
        spec, invalid = None, str(exc)
    except (TypeError, ValueError, AttributeError) as exc:  # a shape the parser did not expect
        spec, invalid = None, f"malformed ScaledObject: {exc}"
    labels = _mapping(meta.get("labels"))
    return CachedScaledObject(
        key=key, api_version=api_version, uid=text(meta.get("uid")),
        created=text(meta.get("creationTimestamp")), resource_version=str(meta.get("resourceVersion") or ""),
        deleting=bool(meta.get("deletionTimestamp")),
        finalizers=tuple(text(f) for f in meta.get("finalizers") or []),
        labelled=labels.get(SCALED_OBJECT_LABEL) == key[2], target=_target_of(obj, key[0]),
        spec=spec, invalid=invalid, status=parse_status(obj.get("status")), creates_jobs=creates_jobs,
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if type(value) is dict or isinstance(value, Mapping) else {}  # dict: the common case, fast


def _target_of(obj: Object, group: str) -> tuple[str, str]:
    ref = _mapping(_mapping(obj.get("spec")).get("scaleTargetRef"))
    if group == LEGACY_GROUP:
        return "Deployment", text(ref.get("deploymentName"))
    return text(ref.get("kind") or "Deployment"), text(ref.get("name"))


def transform_for(resource: Resource) -> Callable[[Object], Cached]:
    """The Reflector transform of `resource`: raw object to the typed view kept."""
    if resource in SCALED_OBJECT_RESOURCES:
        return parse_cached_scaled_object
    if resource == HPAS:
        return parse_hpa
    return parse_scale


def owner_key(hpa: Hpa) -> SoKey | None:
    """The ScaledObject that controls an HPA, if one does."""
    owner = hpa.controller_owner
    if owner is None or owner.kind != "ScaledObject":
        return None
    group = owner.api_version.split("/")[0]
    return (group, hpa.namespace, owner.name) if group in KEDA_GROUPS else None


def _version(found: Cached | None) -> int | None:
    text = getattr(found, "resource_version", None)
    return int(text) if isinstance(text, str) and text.isdigit() else None


def _key(item: Cached) -> Key:
    if isinstance(item, CachedScaledObject):
        return item.key[1], item.key[2]
    return item.namespace, item.name


class _Index:
    """A multimap kept beside a cache: index key -> keys of the entries that have it. Most index
    keys (a scale target, an HPA name, an owner) have one entry: that one is kept as it is, a set
    only from the second on, which at 10,000 ScaledObjects is about 9 MB less."""

    def __init__(self) -> None:
        self._keys: dict[Any, Any] = {}  # index key -> one key, or a set of two or more

    def add(self, index: Any, key: Any) -> None:
        found = self._keys.setdefault(index, key)
        if isinstance(found, _Several):
            found.add(key)
        elif found != key:
            self._keys[index] = _Several((found, key))

    def discard(self, index: Any, key: Any) -> None:
        found = self._keys.get(index)
        if isinstance(found, _Several):
            found.discard(key)
            if len(found) == 1:
                self._keys[index] = next(iter(found))
        elif found == key:
            del self._keys[index]

    def get(self, index: Any) -> tuple[Any, ...]:
        """The keys under `index`, sorted (reconciles and wake-ups go in one order)."""
        found = self._keys.get(index)
        if found is None:
            return ()
        return tuple(sorted(found)) if isinstance(found, _Several) else (found,)


class _Several(set[Any]):
    """Two or more keys under one index key (a set subclass, so a key that is itself a set-like
    value is never mistaken for one)."""


class ObjectCache:
    """Implements the Reflector's `Sink` for the controller's resources."""

    def __init__(self, on_change: OnChange) -> None:
        self.on_change = on_change
        self.objects: dict[Resource, dict[Key, Cached]] = {}
        self.synced: set[Resource] = set()
        self.touched = 0  # cached entries handed out by lookups, for tests of what a reconcile costs
        self._so_by_target, self._so_by_hpa_name = _Index(), _Index()  # -> SoKey
        self._hpa_by_target, self._hpa_by_owner = _Index(), _Index()  # -> HPA name

    # -- lookups ---------------------------------------------------------------------------

    def _touch(self, found: Cached | None) -> Any:
        if found is not None:
            self.touched += 1
        return found

    def scaled_object(self, key: SoKey) -> CachedScaledObject | None:
        resource = LEGACY_SCALED_OBJECTS if key[0] == LEGACY_GROUP else SCALED_OBJECTS
        found: CachedScaledObject | None = self._touch(self.objects.get(resource, {}).get((key[1], key[2])))
        return found

    def hpa(self, namespace: str, name: str) -> Hpa | None:
        found: Hpa | None = self._touch(self.objects.get(HPAS, {}).get((namespace, name)))
        return found

    def scale(self, resource: Resource, namespace: str, name: str) -> Scale | None:
        found: Scale | None = self._touch(self.objects.get(resource, {}).get((namespace, name)))
        return found

    def scaled_objects_of_target(self, namespace: str, kind: str, name: str) -> list[CachedScaledObject]:
        return self._scaled_objects(self._so_by_target.get((namespace, kind, name)))

    def scaled_objects_of_hpa_name(self, namespace: str, name: str) -> list[CachedScaledObject]:
        return self._scaled_objects(self._so_by_hpa_name.get((namespace, name)))

    def hpas_of_target(self, namespace: str, kind: str, name: str) -> list[Hpa]:
        return [h for n in self._hpa_by_target.get((namespace, kind, name)) if (h := self.hpa(namespace, n))]

    def hpas_of_owner(self, owner: SoKey) -> list[Hpa]:
        return [h for n in self._hpa_by_owner.get(owner) if (h := self.hpa(owner[1], n))]

    def _scaled_objects(self, keys: tuple[SoKey, ...]) -> list[CachedScaledObject]:
        return [o for k in keys if (o := self.scaled_object(k))]

    def all_scaled_objects(self) -> Iterator[CachedScaledObject]:
        """Every ScaledObject: only for taking over leadership, never per reconcile."""
        for resource in SCALED_OBJECT_RESOURCES:
            yield from list(self.objects.get(resource, {}).values())

    def count(self, resource: Resource) -> int:
        return len(self.objects.get(resource, {}))

    # -- Sink ------------------------------------------------------------------------------

    def listed(self, resource: Resource, items: list[Cached]) -> None:
        old = self.objects.get(resource, {})
        new = {_key(o): o for o in items}
        self.objects[resource] = new
        self.synced.add(resource)
        for key in old.keys() | new.keys():
            before, after = old.get(key), new.get(key)
            if before != after:
                self._reindex(before, after)
                self.on_change(resource, before, after)

    def changed(self, resource: Resource, item: Cached, deleted: bool) -> None:
        objects = self.objects.setdefault(resource, {})
        key = _key(item)
        old = objects.get(key)
        if deleted:
            if objects.pop(key, None) is not None:
                self._reindex(old, None)
                self.on_change(resource, old, None)
            return
        known, seen = _version(old), _version(item)
        if known is not None and seen is not None and seen < known:
            return  # we already hold a newer version (our own write)
        objects[key] = item
        if old != item:
            self._reindex(old, item)
            self.on_change(resource, old, item)

    # -- our own writes ----------------------------------------------------------------------

    def put(self, resource: Resource, item: Cached) -> None:
        """What the server answered a write with: cached without telling anyone, since the
        writer knows; the watch event for the same version then compares equal and is quiet."""
        objects = self.objects.setdefault(resource, {})
        key = _key(item)
        old = objects.get(key)
        known, seen = _version(old), _version(item)
        if known is None or seen is None or seen >= known:
            objects[key] = item
            self._reindex(old, item)

    def put_scaled_object(self, raw: Object) -> CachedScaledObject:
        item = parse_cached_scaled_object(raw)
        self.put(SCALED_OBJECTS if item.key[0] == KEDA_GROUP else LEGACY_SCALED_OBJECTS, item)
        return item

    def put_hpa(self, raw: Object) -> Hpa:
        item = parse_hpa(raw)
        self.put(HPAS, item)
        return item

    def drop_hpa(self, hpa: Hpa) -> None:
        """An HPA we deleted: gone from the cache now, and the reconcilers of its target told."""
        self.changed(HPAS, hpa, deleted=True)

    def put_scale(self, resource: Resource, scale: Scale) -> None:
        self.put(resource, scale)

    # -- indexes ------------------------------------------------------------------------------

    def _reindex(self, old: Cached | None, new: Cached | None) -> None:
        if old is not None:
            self._index(old, add=False)
        if new is not None:
            self._index(new, add=True)

    def _index(self, item: Cached, add: bool) -> None:
        if isinstance(item, CachedScaledObject):
            self._update(self._so_by_target, item.target_key, item.key, add)
            if item.hpa_name is not None:
                self._update(self._so_by_hpa_name, (item.namespace, item.hpa_name), item.key, add)
        elif isinstance(item, Hpa):
            self._update(self._hpa_by_target, (item.namespace, item.target.kind, item.target.name), item.name, add)
            owner = owner_key(item)
            if owner is not None:
                self._update(self._hpa_by_owner, owner, item.name, add)

    @staticmethod
    def _update(index: _Index, at: Any, key: Any, add: bool) -> None:
        if add:
            index.add(at, key)
        else:
            index.discard(at, key)


def workload_resource(api_version: str, kind: str) -> Resource | None:
    """The watched resource of a scale target's kind, if it is one we watch."""
    return WORKLOADS.get((api_version, kind))
