"""The catalog: every object the adapter knows, and the ScaledObjects resolved from them.

Sources (a directory, Kubernetes watches) put raw objects in; the catalog parses and resolves
ScaledObjects, indexes them by the selector requirement the HPA sends, and tells listeners
(the metric store, the controller) when the set of triggers changed. Problems are kept per
object with a reason, logged once, and never stop other objects from being served. Pods and
EndpointSlices go to `cluster` (what the kubernetes-workload and metrics-api scalers read) and
never cause a re-resolution.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from adapter.catalog import cluster_objects
from adapter.catalog.cluster_objects import ClusterObjects
from adapter.catalog.resolve import ResolvedScaledObject, ResolvedTrigger, Resolver
from adapter.keda.objects import InvalidObject, ObjectRef, ScaledObject, parse_scaled_object
from scalers import ScalerRegistry

log = logging.getLogger("eventscale.catalog")

SCALED_OBJECT = "ScaledObject"

RawObject = Mapping[str, Any]
Listener = Callable[[], None]
Key = tuple[str, str, str]  # kind, namespace, name


class _RecordingLookup:
    """The catalog's objects as the resolver reads them, noting every key asked for, found or not.

    A ScaledObject's resolution is a function of what it read, so a watch event re-resolves
    exactly the ScaledObjects that read (or missed) the changed object, not every one in its
    namespace: at 10,000 objects that is the difference between O(1) and O(n) per event.
    """

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self.read: set[Key] = set()

    def get(self, kind: str, namespace: str, name: str) -> RawObject | None:
        self.read.add((kind, namespace, name))
        return self._catalog.get(kind, namespace, name)


@dataclass(frozen=True)
class Problem:
    ref: ObjectRef
    message: str
    source: str = ""  # e.g. the file it came from


class Catalog:
    def __init__(self, registry: ScalerRegistry, cluster_namespace: str = "eventscale") -> None:
        self._objects: dict[tuple[str, str, str], RawObject] = {}
        self._reads = _RecordingLookup(self)
        self.cluster = ClusterObjects()
        self._resolver = Resolver(self._reads, registry, cluster_namespace, self.cluster)
        self._depends_on: dict[Key, set[Key]] = {}  # ScaledObject -> objects its resolution read
        self._dependents: dict[Key, set[Key]] = {}  # object -> ScaledObjects that read it
        self._resolved: dict[tuple[str, str], ResolvedScaledObject] = {}
        self._routes: dict[tuple[str, str, str], ResolvedScaledObject] = {}
        self._problems: dict[ObjectRef, Problem] = {}
        self._listeners: list[Listener] = []
        self._sources: dict[tuple[str, str, str], str] = {}
        self._reported: dict[ObjectRef, str] = {}  # last logged message per object, to log changes once
        self._cluster_namespace = cluster_namespace
        self.generation = 0

    # -- read side -------------------------------------------------------------------------

    def get(self, kind: str, namespace: str, name: str) -> RawObject | None:
        return self._objects.get((kind, namespace, name))

    def scaled_objects(self) -> Iterable[ResolvedScaledObject]:
        return self._resolved.values()

    def scaled_object(self, namespace: str, name: str) -> ResolvedScaledObject | None:
        return self._resolved.get((namespace, name))

    def triggers(self) -> Iterable[ResolvedTrigger]:
        for resolved in self._resolved.values():
            yield from resolved.by_metric.values()

    def route(self, namespace: str, label: str, value: str) -> ResolvedScaledObject | None:
        return self._routes.get((namespace, label, value))

    @property
    def problems(self) -> list[Problem]:
        return list(self._problems.values())

    def problem(self, ref: ObjectRef) -> str | None:
        found = self._problems.get(ref)
        return found.message if found else None

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    # -- write side ------------------------------------------------------------------------

    def replace_all(self, objects: Iterable[tuple[RawObject, str]], problems: Iterable[Problem] = ()) -> None:
        """Swap in a complete set of (object, source) pairs, e.g. a fresh read of a directory."""
        self._objects, self._sources = {}, {}
        cluster: list[RawObject] = []
        for obj, source in objects:
            if obj.get("kind") in cluster_objects.KINDS:
                cluster.append(obj)
                continue
            key = _key(obj)
            self._objects[key] = obj
            self._sources[key] = source
        self._resolved, self._routes = {}, {}
        self._depends_on, self._dependents = {}, {}
        self._problems = {}
        self._log_new_problems({p.ref: p for p in problems})
        self._problems = {p.ref: p for p in problems}
        self.cluster.replace_all(cluster)
        self._update([k for k in self._objects if k[0] == SCALED_OBJECT])

    def apply(self, obj: RawObject, deleted: bool = False) -> None:
        """One watch event: add, update or delete an object, then re-resolve what depends on it."""
        if obj.get("kind") in cluster_objects.KINDS:
            self.cluster.apply(obj, deleted)
            return
        key = _key(obj)
        if deleted:
            self._objects.pop(key, None)
        else:
            self._objects[key] = obj
        kind, namespace, _ = key
        if kind == SCALED_OBJECT:
            affected = [key]
            if deleted:  # an object that lost a route conflict may now own the route
                affected += [k for k in self._so_keys(namespace) if ObjectRef(*k) in self._problems]
        else:
            affected = sorted(self._dependents.get(key, ()))
        self._update(affected)

    def _so_keys(self, namespace: str) -> list[tuple[str, str, str]]:
        return [k for k in self._objects if k[0] == SCALED_OBJECT and k[1] == namespace]

    def _update(self, keys: Iterable[tuple[str, str, str]]) -> None:
        for key in keys:
            self._forget(key)
        for key in keys:
            self._add(key)
        self.generation += 1
        for listener in self._listeners:
            listener()

    def _forget(self, key: tuple[str, str, str]) -> None:
        old = self._resolved.pop((key[1], key[2]), None)
        if old is not None:
            self._routes.pop((old.so.namespace, *old.so.route), None)
        self._problems.pop(ObjectRef(*key), None)
        for read in self._depends_on.pop(key, ()):
            dependents = self._dependents.get(read)
            if dependents is not None:
                dependents.discard(key)
                if not dependents:
                    del self._dependents[read]

    def _resolve(self, key: Key, so: ScaledObject) -> ResolvedScaledObject:
        self._reads.read = set()
        try:
            return self._resolver.resolve(so)
        finally:
            self._depends_on[key] = self._reads.read
            for read in self._reads.read:
                self._dependents.setdefault(read, set()).add(key)

    def _add(self, key: tuple[str, str, str]) -> None:
        raw = self._objects.get(key)
        ref = ObjectRef(*key)
        if raw is None:
            self._reported.pop(ref, None)
            return
        try:
            item = self._resolve(key, parse_scaled_object(raw))
        except InvalidObject as exc:
            self._report(Problem(ref, str(exc), self._sources.get(key, "")))
            return
        route = (item.so.namespace, *item.so.route)
        owner = self._routes.get(route)
        if owner is not None:
            label, value = item.so.route
            self._report(Problem(ref, f"selector {label}={value} is already used by {owner.so.name}"))
            return
        self._routes[route] = item
        self._resolved[(item.so.namespace, item.so.name)] = item
        message = item.error or "; ".join(item.trigger_errors)
        if message:
            self._report(Problem(ref, message, self._sources.get(key, "")))
        elif self._reported.pop(ref, None) is not None:
            log.info("object=%r problem resolved", str(ref))

    def _report(self, problem: Problem) -> None:
        self._log_new_problems({problem.ref: problem})
        self._problems[problem.ref] = problem

    def _log_new_problems(self, found: Mapping[ObjectRef, Problem]) -> None:
        for ref, problem in found.items():
            if self._reported.get(ref) != problem.message:
                where = f" source={problem.source}" if problem.source else ""
                log.warning("object=%r problem=%r%s", str(ref), problem.message, where)
                self._reported[ref] = problem.message


def _key(obj: RawObject) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    kind = str(obj.get("kind") or "")
    namespace = "" if kind == "ClusterTriggerAuthentication" else str(meta.get("namespace") or "default")
    return kind, namespace, str(meta.get("name") or "")
