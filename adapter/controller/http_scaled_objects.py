"""HTTPScaledObjects (KEDA http-add-on) kept as ScaledObjects, as the http-add-on's operator does.

For each HTTPScaledObject the leader creates the ScaledObject of the same namespace and name
(`adapter.keda.http_scaled_object.scaled_object_for`: an `http` trigger, owned by the
HTTPScaledObject so that deleting it deletes the ScaledObject through the garbage collector)
and keeps its spec equal to what the HTTPScaledObject says. From there the ScaledObject takes
the one path every ScaledObject takes: the adapter serves its metric, the reconciler makes its
HPA and activates it, the interceptor routes by it.

A ScaledObject of that name that the HTTPScaledObject does not own is left alone and the
conflict is reported in the HTTPScaledObject's status (condition Ready=False), as is a spec that
cannot be turned into a ScaledObject. Events of the watch and a resync every `resync` seconds
(which also covers a newly won Lease) trigger the work; only the leader writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from adapter.controller.guarded_api import ControllerKube, NotLeading, so_path
from adapter.keda.http_scaled_object import HTTP_SCALED_OBJECTS, OWNER_LABEL, scaled_object_for
from adapter.keda.names import KEDA_GROUP, SCALED_OBJECTS
from adapter.keda.objects import InvalidObject
from adapter.kube.client import ApiStatusError, KubeApi, Object
from adapter.kube.resources import Resource
from adapter.kube.watch import Reflector
from adapter.kube.wire import timestamp

log = logging.getLogger("eventscale.http-scaled-objects")

Key = tuple[str, str]


def _key(obj: Object) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _identity(obj: Object) -> tuple[Any, Any]:
    """What a ScaledObject is made from: a status change alone needs no work."""
    return obj.get("spec"), obj["metadata"].get("uid")


def strip(obj: Object) -> Object:
    meta = obj.get("metadata") or {}
    kept = {k: meta[k] for k in ("name", "namespace", "uid", "generation", "creationTimestamp") if k in meta}
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": kept,
            "spec": obj.get("spec") or {}, "status": obj.get("status") or {}}


class HttpScaledObjectMirror:
    def __init__(self, api: KubeApi, kube: ControllerKube, leading: Callable[[], bool],
                 resync: float = 30.0) -> None:
        self.api, self.kube, self.leading, self.resync = api, kube, leading, resync
        self.objects: dict[Key, Object] = {}
        self.reflector = Reflector(api, HTTP_SCALED_OBJECTS, self, strip)
        self._dirty: set[Key] = set()
        self._wake = asyncio.Event()

    # -- the Reflector's sink ------------------------------------------------------------------

    def listed(self, resource: Resource, objects: list[Object]) -> None:
        self.objects = {_key(o): o for o in objects}
        self._mark(set(self.objects))

    def changed(self, resource: Resource, obj: Object, deleted: bool) -> None:
        key = _key(obj)
        if deleted:
            self.objects.pop(key, None)  # its ScaledObject goes with it (ownerReference)
            return
        old, self.objects[key] = self.objects.get(key), obj
        if old is None or _identity(old) != _identity(obj):
            self._mark({key})

    def _mark(self, keys: set[Key]) -> None:
        self._dirty |= keys
        self._wake.set()

    # -- the work --------------------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.reflector.run(), name="watch-httpscaledobjects")
            group.create_task(self._work(), name="http-scaled-objects")

    async def _work(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.resync):
                    await self._wake.wait()
            self._wake.clear()
            if not self.leading():
                continue
            keys = self._dirty or set(self.objects)
            self._dirty = set()
            for key in sorted(keys):
                await self._reconcile_safely(key)

    async def _reconcile_safely(self, key: Key) -> None:
        try:
            await self.reconcile(key)
        except NotLeading:
            self._dirty.add(key)
        except (ApiStatusError, httpx.HTTPError) as exc:
            log.warning("httpscaledobject=%s/%s error=%r; retried at the next resync", *key, str(exc))
            self._dirty.add(key)

    async def reconcile(self, key: Key) -> None:
        hso = self.objects.get(key)
        if hso is None:
            return
        try:
            desired = scaled_object_for(hso)
        except InvalidObject as exc:
            await self._status(hso, False, "InvalidHTTPScaledObject", str(exc))
            return
        path = so_path((KEDA_GROUP, *key))
        try:
            current = await self.api.get(path)
        except ApiStatusError as exc:
            if exc.code != 404:
                raise
            await self.kube.write("POST", f"/apis/{SCALED_OBJECTS.api_version}/namespaces/{key[0]}/scaledobjects",
                                  desired)
            log.info("httpscaledobject=%s/%s scaledobject created", *key)
            await self._status(hso, True, "ScaledObjectCreated", f"ScaledObject {key[0]}/{key[1]} created")
            return
        uid = hso["metadata"].get("uid")
        owners = (current.get("metadata") or {}).get("ownerReferences") or []
        if not any(o.get("uid") == uid for o in owners):
            await self._status(hso, False, "ScaledObjectConflict",
                               f"ScaledObject {key[0]}/{key[1]} exists and is not owned by this HTTPScaledObject")
            return
        labels = (current.get("metadata") or {}).get("labels") or {}
        spec = current.get("spec") or {}
        if spec != desired["spec"] or labels.get(OWNER_LABEL) != key[1]:
            # a merge patch that sets the spec exactly: keys it no longer has are removed (null)
            patch = {"metadata": {"labels": {OWNER_LABEL: key[1]}},
                     "spec": {**{k: None for k in spec if k not in desired["spec"]}, **desired["spec"]}}
            await self.kube.write("PATCH", path, patch, "application/merge-patch+json")
            log.info("httpscaledobject=%s/%s scaledobject updated", *key)
        await self._status(hso, True, "HTTPScaledObjectIsReady", f"ScaledObject {key[0]}/{key[1]} is up to date")

    async def _status(self, hso: Object, ready: bool, reason: str, message: str) -> None:
        spec = hso.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        status: dict[str, Any] = {
            "targetWorkload": f"{ref.get('apiVersion') or 'apps/v1'}/{ref.get('kind') or 'Deployment'}/"
                              f"{ref.get('name') or ref.get('deployment') or ''}",
            "targetService": f"{ref.get('service', '')}:{ref.get('port', ref.get('portName', ''))}",
        }
        old = hso.get("status") or {}
        condition: Object = next((c for c in old.get("conditions") or [] if c.get("type") == "Ready"), {})
        wanted = ("True" if ready else "False", reason, message)
        if (condition.get("status"), condition.get("reason"), condition.get("message")) == wanted and \
                all(old.get(k) == v for k, v in status.items()):
            return
        status["conditions"] = [{"type": "Ready", "status": wanted[0], "reason": reason, "message": message,
                                 "lastTransitionTime": timestamp(time.time()),
                                 "observedGeneration": hso["metadata"].get("generation", 0)}]
        namespace, name = _key(hso)
        path = f"/apis/{HTTP_SCALED_OBJECTS.api_version}/namespaces/{namespace}/httpscaledobjects/{name}/status"
        await self.kube.write("PATCH", path, {"status": status}, "application/merge-patch+json")
        hso["status"] = {**old, **status}
