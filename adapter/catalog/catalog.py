"""The catalog: every object the adapter knows, and the ScaledObjects resolved from them.

Sources (a directory, Kubernetes watches) put raw objects in; the catalog parses and resolves
ScaledObjects, indexes them by the selector requirement the HPA sends, and tells listeners
(the metric store, the controller) when the set of triggers changed. ScaledJobs (and 2019
`scaleType: job` ScaledObjects) are resolved the same way (`adapter.catalog.scaled_job_triggers`) but
get no route: no HPA reads them. Listeners are told `adapter.keda.activity.object_key`s.
Problems are kept per object with a reason, logged once, and never stop other objects from
being served. Pods and EndpointSlices go to `cluster` (what the kubernetes-workload and
metrics-api scalers read) and never cause a re-resolution.

The per-object path (parse, resolve, scaler parse) is a boundary: whatever it raises, even an
exception no parser expected, becomes one problem on that object. Its message names the
exception's type, never its text, which may quote a value (a secret).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapter.catalog import cluster_objects
from adapter.catalog.cluster_objects import ClusterObjects
from adapter.catalog.resolve import ResolvedScaledObject, ResolvedTrigger, ResolveError, Resolver
from adapter.catalog.scaled_job_triggers import ResolvedScaledJob, resolve_scaled_job
from adapter.keda.activity import object_key, split_key
from adapter.keda.objects import InvalidObject, ObjectRef, ScaledObject, parse_scaled_object
from adapter.keda.scaled_job import SCALED_JOB_KIND, ScaledJob, is_job_object, parse_scaled_job
from scalers import ScalerRegistry

log = logging.getLogger("eventscale.catalog")

SCALED_OBJECT = "ScaledObject"
READERS = (SCALED_OBJECT, SCALED_JOB_KIND)  # the kinds resolved into triggers

RawObject = Mapping[str, Any]
Parsed = ScaledObject | ScaledJob
Key = tuple[str, str, str]  # kind, namespace, name
Listener = Callable[[set[tuple[str, str]]], None]  # told the object_keys of ScaledObjects and ScaledJobs re-resolved


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
        sources = self._catalog.duplicates.get((kind, namespace, name))
        if sources:
            raise ResolveError(f"{kind} {namespace}/{name} is defined more than once: {', '.join(sources)}")
        return self._catalog.get(kind, namespace, name)


class _Readers:
    """Object -> the ScaledObjects whose resolution read it. Most objects (a ScaledObject's own scale
    target) are read by one: that one is kept as it is, a set only from the second on, which at
    10,000 ScaledObjects is 2 MB less."""

    def __init__(self) -> None:
        self._by_object: dict[Key, Key | set[Key]] = {}

    def of(self, read: Key) -> set[Key]:
        found = self._by_object.get(read)
        return set() if found is None else {found} if isinstance(found, tuple) else set(found)

    def add(self, read: Key, reader: Key) -> None:
        found = self._by_object.setdefault(read, reader)
        if isinstance(found, set):
            found.add(reader)
        elif found != reader:
            self._by_object[read] = {found, reader}

    def discard(self, read: Key, reader: Key) -> None:
        found = self._by_object.get(read)
        if found == reader:
            del self._by_object[read]
        elif isinstance(found, set):
            found.discard(reader)
            if not found:
                del self._by_object[read]


@dataclass(frozen=True)
class Problem:
    ref: ObjectRef
    message: str
    source: str = ""  # e.g. the file it came from


class Catalog:
    def __init__(self, registry: ScalerRegistry, cluster_namespace: str = "eventscale") -> None:
        self.registry = registry
        # Raw objects by key; a ScaledObject or ScaledJob, once parsed, is kept parsed instead: its
        # resolutions again start from there, and the raw dicts (about 1.2 KB an object) are let go.
        self._objects: dict[tuple[str, str, str], RawObject | Parsed] = {}
        self._reads = _RecordingLookup(self)
        self.cluster = ClusterObjects()
        self._resolver = Resolver(self._reads, registry, cluster_namespace, self.resolve_again, self.cluster)
        self._again: set[Key] = set()  # ScaledObjects to resolve again at the next loop turn
        self._depends_on: dict[Key, tuple[Key, ...]] = {}  # ScaledObject -> objects its resolution read
        self._dependents = _Readers()  # object -> ScaledObjects that read it
        self._resolved: dict[tuple[str, str], ResolvedScaledObject] = {}
        self._jobs: dict[tuple[str, str], ResolvedScaledJob] = {}  # by object_key
        self._routes: dict[tuple[str, str, str], ResolvedScaledObject] = {}
        self._problems: dict[ObjectRef, Problem] = {}
        self._listeners: list[Listener] = []
        self._sources: dict[tuple[str, str, str], str] = {}
        self.duplicates: dict[Key, list[str]] = {}  # objects given more than once: used by nobody, reported
        self._reported: dict[ObjectRef, str] = {}  # last logged message per object, to log changes once
        self._cluster_namespace = cluster_namespace
        self.generation = 0

    # -- read side -------------------------------------------------------------------------

    def get(self, kind: str, namespace: str, name: str) -> RawObject | None:
        """A raw object that resolutions read (a workload, TriggerAuthentication, Secret, ...)."""
        found = self._objects.get((kind, namespace, name))
        return None if isinstance(found, Parsed) else found

    def identity(self, kind: str, namespace: str, name: str) -> tuple[str, str, int]:
        """apiVersion, uid and generation of a ScaledObject or ScaledJob, resolved or not."""
        found = self._objects.get((kind, namespace, name))
        if isinstance(found, Parsed):
            return found.api_version, found.uid, found.generation
        meta = (found or {}).get("metadata") or {}
        generation = meta.get("generation", 0)
        return (str((found or {}).get("apiVersion") or ""), str(meta.get("uid") or ""),
                generation if isinstance(generation, int) else 0)

    def scaled_objects(self) -> Iterable[ResolvedScaledObject]:
        return self._resolved.values()

    def scaled_object(self, namespace: str, name: str) -> ResolvedScaledObject | None:
        return self._resolved.get((namespace, name))

    def triggers(self) -> Iterable[ResolvedTrigger]:
        for resolved in self._resolved.values():
            yield from resolved.by_metric.values()

    def scaled_jobs(self) -> Iterable[ResolvedScaledJob]:
        return self._jobs.values()

    def scaled_job(self, key: tuple[str, str]) -> ResolvedScaledJob | None:
        """A ScaledJob (or 2019 `scaleType: job` ScaledObject) by its object_key."""
        return self._jobs.get(key)

    def triggers_of(self, key: tuple[str, str]) -> tuple[ResolvedTrigger, ...]:
        """The servable triggers of the ScaledObject or ScaledJob of this object_key."""
        found = self._resolved.get(key) or self._jobs.get(key)
        return tuple(found.by_metric.values()) if found is not None else ()

    def readers(self) -> Iterable[tuple[str, str]]:
        """The object_keys of every resolved ScaledObject and ScaledJob."""
        yield from self._resolved
        yield from self._jobs

    def route(self, namespace: str, label: str, value: str) -> ResolvedScaledObject | None:
        return self._routes.get((namespace, label, value))

    @property
    def problems(self) -> list[Problem]:
        return list(self._problems.values())

    def problem(self, ref: ObjectRef) -> str | None:
        found = self._problems.get(ref)
        return found.message if found else None

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(keys)` with the (namespace, name) of the ScaledObjects each change
        re-resolved (added, changed, removed or failed), so listeners work per object."""
        self._listeners.append(listener)

    # -- write side ------------------------------------------------------------------------

    def replace_all(self, objects: Iterable[tuple[RawObject, str]], problems: Iterable[Problem] = ()) -> None:
        """Swap in a complete set of (object, source) pairs, e.g. a fresh read of a directory.

        An object given twice (the same kind, namespace and name in two files) is neither one:
        it is reported with both sources, and whatever reads it is told so.
        """
        before = [k for k in self._objects if k[0] in READERS]
        self._objects, self._sources = {}, {}
        seen: dict[Key, list[str]] = {}
        cluster: list[RawObject] = []
        for obj, source in objects:
            if _text(obj.get("kind")) in cluster_objects.KINDS:
                cluster.append(obj)
                continue
            key = _key(obj)
            seen.setdefault(key, []).append(source)
            self._objects[key] = obj
            self._sources[key] = source
        self.duplicates = {key: sources for key, sources in seen.items() if len(sources) > 1}
        found = list(problems)
        for key, sources in self.duplicates.items():
            del self._objects[key]
            found.append(Problem(ObjectRef(*key), f"defined more than once: {', '.join(sources)}", sources[-1]))
        self._resolved, self._routes, self._jobs = {}, {}, {}
        self._depends_on, self._dependents = {}, _Readers()
        self._problems = {}
        self._log_new_problems({p.ref: p for p in found})
        self._problems = {p.ref: p for p in found}
        self.cluster.replace_all(cluster)
        self._update([k for k in self._objects if k[0] in READERS], also=before)

    def apply(self, obj: RawObject, deleted: bool = False) -> None:
        """One watch event: add, update or delete an object, then re-resolve what depends on it."""
        if _text(obj.get("kind")) in cluster_objects.KINDS:
            self.cluster.apply(obj, deleted)
            return
        key = _key(obj)
        if deleted:
            self._objects.pop(key, None)
        else:
            self._objects[key] = obj
        kind, namespace, _ = key
        if kind in READERS:
            affected = [key]
            if deleted and kind == SCALED_OBJECT:  # an object that lost a route conflict may now own the route
                affected += [(r.kind, r.namespace, r.name) for r in self._problems
                             if r.kind == SCALED_OBJECT and r.namespace == namespace]
        else:
            affected = sorted(self._dependents.of(key))
        self._update(affected)

    def resolve_again(self, namespace: str, owner: str) -> None:
        """A scaler learnt what changes how this ScaledObject (or ScaledJob: `owner` is the second
        part of its object_key) resolves (an external scaler's metric spec): resolve it again at
        the next loop turn, with every other one asked for meanwhile."""
        if not self._again:
            asyncio.get_running_loop().call_soon(self._resolve_pending)
        self._again.add(split_key((namespace, owner)))

    def _resolve_pending(self) -> None:
        keys, self._again = sorted(self._again), set()
        self._update([key for key in keys if key in self._objects])

    def _update(self, keys: Sequence[tuple[str, str, str]], also: Sequence[tuple[str, str, str]] = ()) -> None:
        for key in keys:
            self._forget(key)
        for key in keys:
            self._add(key)
        self.generation += 1
        changed = {object_key(*k) for k in (*keys, *also)}
        for listener in self._listeners:
            listener(changed)

    def _forget(self, key: tuple[str, str, str]) -> None:
        old = self._resolved.pop((key[1], key[2]), None)
        if old is not None:
            self._routes.pop((old.so.namespace, *old.so.route), None)
        self._jobs.pop(object_key(*key), None)
        self._problems.pop(ObjectRef(*key), None)
        for read in self._depends_on.pop(key, ()):
            self._dependents.discard(read, key)

    def _resolve(self, key: Key, found: RawObject | Parsed) -> ResolvedScaledObject | ResolvedScaledJob:
        """Parse (once) and resolve the object at `key`, noting what it read as what it depends on."""
        self._reads.read = set()
        try:
            if not isinstance(found, Parsed):
                found = self._objects[key] = parse_scaled_job(found) if is_job_object(found) else \
                    parse_scaled_object(found)
            if isinstance(found, ScaledJob):
                return resolve_scaled_job(self._resolver, found)
            return self._resolver.resolve(found)
        finally:
            self._depends_on[key] = tuple(self._reads.read)  # a tuple: a tenth of a set's memory
            for read in self._reads.read:
                self._dependents.add(read, key)

    def _add(self, key: tuple[str, str, str]) -> None:
        found = self._objects.get(key)
        ref = ObjectRef(*key)
        if found is None:
            self._reported.pop(ref, None)
            return
        try:
            item = self._resolve(key, found)
        except InvalidObject as exc:
            self._report(Problem(ref, str(exc), self._sources.get(key, "")))
            return
        except Exception as exc:  # a shape no parser expected: this object's problem, never the caller's
            log.warning("object=%r unexpected=%s at=%s", str(ref), type(exc).__name__, raised_at(exc))
            self._report(Problem(ref, f"cannot be used: a field has an unexpected shape ({type(exc).__name__})",
                                 self._sources.get(key, "")))
            return
        if isinstance(item, ResolvedScaledJob):
            self._jobs[item.key] = item
        else:
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
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    kind = _text(obj.get("kind"))
    namespace = "" if kind == "ClusterTriggerAuthentication" else _text(meta.get("namespace")) or "default"
    return kind, namespace, _text(meta.get("name"))


def raised_at(exc: BaseException) -> str:
    """Where an exception was raised (file:line function), for the log; its message may hold a value."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{Path(frames[-1].filename).name}:{frames[-1].lineno} {frames[-1].name}" if frames else "?"


def _text(value: Any) -> str:
    """A key part: sources pass strings (interned: the keys of 100,000 objects share one copy of
    each kind and namespace); anything else is a key no lookup matches, never its text."""
    if isinstance(value, str):
        return sys.intern(value)
    return "" if value is None else f"<{type(value).__name__}>"
