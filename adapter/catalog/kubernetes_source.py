"""Cluster mode's object source: the catalog fed from Kubernetes watches, never per request.

One `Reflector` (list, then watch) per resource: ScaledObjects of both API groups
(`keda.sh/v1alpha1` and the 2019 `keda.k8s.io/v1alpha1`), ScaledJobs, TriggerAuthentications,
ClusterTriggerAuthentications, Secrets, ConfigMaps, Deployments and StatefulSets, Pods and
EndpointSlices (for the kubernetes-workload and metrics-api scalers), all namespaces. When
every resource has been listed once, the union goes to `catalog.replace_all` and the source
reports "informers-synced"; from then on each event is one `catalog.apply`,
and a relist (410 Gone, resync) is turned into the applies of what differs.

Memory at 10,000 objects is kept down by keeping only what the catalog reads: metadata is cut
to name and namespace (plus, for ScaledObjects, uid, generation, creation time, labels and
annotations without `last-applied-configuration`), managedFields and status are dropped,
workloads, and the Job templates of ScaledJobs, keep only their containers' names and env,
Secrets and ConfigMaps only `data`, and Helm release Secrets (large, never a trigger's
credentials) are not listed at all, pods keep their labels, phase and node only. Stripping
also makes most updates no-ops: a Deployment's status changing on every scale, or the
controller writing a ScaledObject's status, compares equal after stripping and is not applied.

The catalog keys objects by kind, namespace and name: should a `keda.sh` and a `keda.k8s.io`
ScaledObject share a name, the latest event wins and deleting one brings the other back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

from adapter.catalog.catalog import READERS, Catalog
from adapter.keda.names import (
    CLUSTER_TRIGGER_AUTHENTICATIONS,
    LEGACY_SCALED_OBJECTS,
    SCALED_JOBS,
    SCALED_OBJECTS,
    TRIGGER_AUTHENTICATIONS,
)
from adapter.kube.client import KubeApi, Object
from adapter.kube.resources import (
    CONFIG_MAPS,
    DEPLOYMENTS,
    ENDPOINT_SLICES,
    PODS,
    SECRETS,
    STATEFUL_SETS,
    Resource,
)
from adapter.kube.watch import Reflector, Transform

log = logging.getLogger("eventscale.source")

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"



def _text(value: Any) -> Any:
    """A name, namespace, kind or apiVersion: one copy however many objects and caches hold it."""
    return sys.intern(value) if type(value) is str else value


def _metadata(obj: Object, full: bool = False) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    kept = {k: _text(meta[k]) for k in ("name", "namespace") if meta.get(k)}
    if full:
        kept.update({k: meta[k] for k in ("uid", "generation", "creationTimestamp", "labels") if meta.get(k)})
        annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
        if annotations:
            kept["annotations"] = annotations
    return kept


def _head(obj: Object, full: bool = False) -> Object:
    return {"apiVersion": _text(obj.get("apiVersion")), "kind": _text(obj.get("kind")),
            "metadata": _metadata(obj, full)}


_SHARED: dict[str, Any] = {}  # canonical JSON -> the one value kept for it
_SHARED_MAX = 4096


def _shared(value: Any) -> Any:
    """One copy of equal parts of many objects (the stripped pod template of workloads made from
    one chart), read-only: the catalog and the resolver only read what a source hands over."""
    key = json.dumps(value, sort_keys=True, separators=(",", ":"))
    found = _SHARED.get(key)
    if found is None:
        found = value
        if len(_SHARED) < _SHARED_MAX:
            _SHARED[key] = value
    return found


def strip_scaled_object(obj: Object) -> Object:
    """A ScaledObject or ScaledJob: the spec, but of a Job template (`jobTargetRef`: a
    ScaledJob's, or a 2019 `scaleType: job` ScaledObject's) only its containers' env."""
    spec = obj.get("spec") or {}
    job = spec.get("jobTargetRef") if isinstance(spec, dict) else None
    if isinstance(job, dict) and isinstance(job.get("template"), dict):
        pod = job["template"].get("spec")
        containers = pod.get("containers") if isinstance(pod, dict) else None
        spec = {**spec, "jobTargetRef": {"template": {"spec": {"containers": _env_of(containers)}}}}
    return {**_head(obj, full=True), "spec": spec}


def _env_of(containers: object) -> object:
    """Containers' names, env and envFrom: what `*FromEnv` resolves from (other shapes kept as
    they are, for the catalog to report)."""
    if not isinstance(containers, list):
        return containers
    return [{k: c[k] for k in ("name", "env", "envFrom") if k in c} if isinstance(c, dict) else c
            for c in containers]


def strip_spec(obj: Object) -> Object:
    return {**_head(obj), "spec": obj.get("spec") or {}}


def strip_data(obj: Object) -> Object:
    return {**_head(obj), "data": obj.get("data") or {}}


def strip_workload(obj: Object) -> Object:
    template = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return {**_head(obj), "spec": _shared({"template": {"spec": {"containers": _env_of(template.get("containers")
                                                                                       or [])}}})}


def strip_pod(obj: Object) -> Object:
    """What the kubernetes-workload scaler counts by: labels, phase, node."""
    meta = obj.get("metadata") or {}
    head = {**_head(obj), "metadata": {**_metadata(obj), "labels": meta.get("labels") or {}}}
    return {**head, "spec": {"nodeName": (obj.get("spec") or {}).get("nodeName") or ""},
            "status": {"phase": (obj.get("status") or {}).get("phase") or ""}}


def strip_endpoint_slice(obj: Object) -> Object:
    """What metrics-api's aggregateFromKubeServiceEndpoints calls: the service, ready addresses, ports."""
    meta = obj.get("metadata") or {}
    endpoints = [{"addresses": e.get("addresses") or [], "conditions": {"ready": (e.get("conditions") or {})
                                                                        .get("ready")}}
                 for e in obj.get("endpoints") or []]
    return {**_head(obj), "metadata": {**_metadata(obj), "labels": meta.get("labels") or {}},
            "endpoints": endpoints, "ports": [{"port": p.get("port")} for p in obj.get("ports") or []]}


WATCHED: tuple[tuple[Resource, Transform[Object]], ...] = (
    (SCALED_OBJECTS, strip_scaled_object),
    (LEGACY_SCALED_OBJECTS, strip_scaled_object),
    (SCALED_JOBS, strip_scaled_object),
    (TRIGGER_AUTHENTICATIONS, strip_spec),
    (CLUSTER_TRIGGER_AUTHENTICATIONS, strip_spec),
    (SECRETS, strip_data),
    (CONFIG_MAPS, strip_data),
    (DEPLOYMENTS, strip_workload),
    (STATEFUL_SETS, strip_workload),
    (PODS, strip_pod),
    (ENDPOINT_SLICES, strip_endpoint_slice),
)

Key = tuple[str, str]
Kept = Object | bytes  # what the cache holds of an object: itself, or (READERS) its compressed JSON


def _kept(resource: Resource, obj: Object) -> Kept:
    """The catalog keeps ScaledObjects and ScaledJobs parsed and lets their dicts go; the cache
    needs them only to compare (relists, no-op updates) and to hand back a twin, so it keeps them
    as compressed canonical JSON, a fifth of the dicts' memory. Other kinds are the very dicts
    the catalog reads: kept as they are, never twice."""
    if resource.kind not in READERS:
        return obj
    return zlib.compress(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode(), 1)


def _restored(kept: Kept) -> Object:
    if isinstance(kept, bytes):
        found: Object = json.loads(zlib.decompress(kept))
        return found
    return kept


def _key(obj: Object) -> Key:
    meta = obj.get("metadata") or {}
    return _text(str(meta.get("namespace") or "")), _text(str(meta.get("name") or ""))


class KubernetesSource:
    """Feeds a catalog from watches and keeps it current; `synced` once every list is in."""

    def __init__(self, api: KubeApi, catalog: Catalog,
                 watched: Sequence[tuple[Resource, Transform[Object]]] = WATCHED, **reflector_options: Any) -> None:
        self.catalog = catalog
        self.reflectors = [Reflector(api, resource, self, transform, **reflector_options)
                           for resource, transform in watched]
        self._cache: dict[Resource, dict[Key, Kept]] = {r.resource: {} for r in self.reflectors}
        self.synced = False
        self.applied = 0  # events that reached the catalog (no-op updates do not)

    def objects(self) -> Iterator[tuple[Object, str]]:
        for resource, objects in self._cache.items():
            source = str(resource)  # one string for all its objects: the catalog keeps it per object
            for kept in objects.values():
                yield _restored(kept), source

    # -- Sink -----------------------------------------------------------------------------

    def listed(self, resource: Resource, objects: list[Object]) -> None:
        old, new = self._cache[resource], {_key(o): _kept(resource, o) for o in objects}
        self._cache[resource] = new
        if not self.synced:
            return
        for key, kept in old.items():
            if key not in new:
                self._apply(resource, _restored(kept), deleted=True)
        for key, kept in new.items():
            if old.get(key) != kept:
                self._apply(resource, _restored(kept), deleted=False)

    def changed(self, resource: Resource, obj: Object, deleted: bool) -> None:
        cache, key = self._cache[resource], _key(obj)
        if deleted:
            if cache.pop(key, None) is None:
                return
        else:
            kept = _kept(resource, obj)
            if cache.get(key) == kept:
                return
            cache[key] = kept
        if self.synced:
            self._apply(resource, obj, deleted)

    def _apply(self, resource: Resource, obj: Object, deleted: bool) -> None:
        self.applied += 1
        if deleted and resource.kind == "ScaledObject":
            twin = self._twin(resource, _key(obj))
            if twin is not None:  # the same name in the other API group takes the catalog key back
                self.catalog.apply(twin)
                return
        self.catalog.apply(obj, deleted=deleted)

    def _twin(self, resource: Resource, key: Key) -> Object | None:
        for other, objects in self._cache.items():
            if other != resource and other.kind == resource.kind and key in objects:
                return _restored(objects[key])
        return None

    # -- running ----------------------------------------------------------------------------

    async def run(self) -> None:
        started = time.monotonic()
        async with asyncio.TaskGroup() as group:
            for reflector in self.reflectors:
                group.create_task(reflector.run(), name=f"watch-{reflector.resource}")
            await asyncio.gather(*(r.listed.wait() for r in self.reflectors))
            self.sync()
            counts = " ".join(f"{r}={len(o)}" for r, o in self._cache.items())
            log.info("informers synced in %.2fs %s", time.monotonic() - started, counts)

    def sync(self) -> None:
        """Every resource is listed: hand the catalog everything at once, then apply events one by one."""
        self.catalog.replace_all(self.objects())
        self.synced = True
