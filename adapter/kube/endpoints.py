"""The ready endpoints of Services, kept from watches: what both the interceptor and delegation reach.

A client names a Service port by number or name, as kube-apiserver's aggregation layer does for an
APIService's Service: the Service maps the port to its name, and each EndpointSlice of the
Service (label `kubernetes.io/service-name`) gives that name's target port and its endpoints; an
endpoint counts when `conditions.ready` is not false. Nothing is resolved per request: the
address list of a (Service, port) is computed when a slice or the Service changes, and waiters
on a Service's change notification are woken rather than left polling.

`EndpointIndex` is the sink of two Reflectors, one for Services and one for EndpointSlices:
cluster-wide (the interceptor routes to any Service) or `service_watches` of one Service (a
delegate named by its Service).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from adapter.kube.client import Object
from adapter.kube.resources import ENDPOINT_SLICES, SERVICES, Resource

Address = tuple[str, int]
ServiceKey = tuple[str, str]  # namespace, Service name
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class Notifier:
    """One future per Service, resolved (and replaced) when its endpoints change."""

    def __init__(self) -> None:
        self._waiters: dict[ServiceKey, asyncio.Future[None]] = {}

    async def wait(self, service: ServiceKey, timeout: float) -> None:
        future = self._waiters.get(service)
        if future is None or future.done():
            future = self._waiters[service] = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(future), timeout)

    def notify(self, service: ServiceKey) -> None:
        future = self._waiters.pop(service, None)
        if future is not None and not future.done():
            future.set_result(None)

    def notify_all(self) -> None:
        for service in list(self._waiters):
            self.notify(service)


def strip_service(obj: Object) -> Object:
    meta = obj.get("metadata") or {}
    ports = [{k: p[k] for k in ("name", "port", "targetPort") if k in p}
             for p in (obj.get("spec") or {}).get("ports") or []]
    return {"metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")}, "ports": ports}


def strip_slice(obj: Object) -> Object:
    meta = obj.get("metadata") or {}
    ready = [address for endpoint in obj.get("endpoints") or []
             if (endpoint.get("conditions") or {}).get("ready") is not False
             for address in endpoint.get("addresses") or []]
    ports = [{"name": p.get("name") or "", "port": p.get("port")} for p in obj.get("ports") or [] if p.get("port")]
    return {"metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"),
                         "service": (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)},
            "ports": ports, "ready": ready}


def service_watches(service: ServiceKey) -> tuple[Resource, Resource]:
    """The two watches that keep one Service's endpoints: the Service by name, its slices by label."""
    namespace, name = service
    return (replace(SERVICES.within(namespace), field_selector=f"metadata.name={name}"),
            replace(ENDPOINT_SLICES.within(namespace), label_selector=f"{SERVICE_NAME_LABEL}={name}"))


def _is_service(resource: Resource) -> bool:
    return resource.kind == SERVICES.kind


class EndpointIndex:
    """Ready addresses per (Service, port), kept by the Reflectors of Services and EndpointSlices (its sink)."""

    def __init__(self) -> None:
        self._services: dict[ServiceKey, list[Mapping[str, Any]]] = {}
        self._slices: dict[tuple[str, str], Object] = {}  # (namespace, slice name) -> stripped slice
        self._slices_of: dict[ServiceKey, set[tuple[str, str]]] = {}
        self._ready: dict[tuple[ServiceKey, str], list[Address]] = {}  # cache, per (Service, port)
        self._notifier = Notifier()
        self.listeners: list[Callable[[ServiceKey], None]] = []

    # -- the Reflectors' sink ----------------------------------------------------------------

    def listed(self, resource: Resource, objects: list[Object]) -> None:
        touched = set(self._services) if _is_service(resource) else set(self._slices_of)
        if _is_service(resource):
            self._services = {}
        else:
            self._slices, self._slices_of = {}, {}
        for obj in objects:
            touched |= self._put(resource, obj)
        for service in touched:
            self._changed(service)

    def changed(self, resource: Resource, obj: Object, deleted: bool) -> None:
        meta = obj["metadata"]
        if deleted:
            touched = self._remove(resource, meta["namespace"], meta["name"])
        else:
            touched = self._remove(resource, meta["namespace"], meta["name"]) | self._put(resource, obj)
        for service in touched:
            self._changed(service)

    def _put(self, resource: Resource, obj: Object) -> set[ServiceKey]:
        meta = obj["metadata"]
        if _is_service(resource):
            key = (meta["namespace"], meta["name"])
            self._services[key] = obj["ports"]
            return {key}
        if not meta.get("service"):
            return set()
        service = (meta["namespace"], meta["service"])
        self._slices[(meta["namespace"], meta["name"])] = obj
        self._slices_of.setdefault(service, set()).add((meta["namespace"], meta["name"]))
        return {service}

    def _remove(self, resource: Resource, namespace: str, name: str) -> set[ServiceKey]:
        if _is_service(resource):
            return {(namespace, name)} if self._services.pop((namespace, name), None) is not None else set()
        old = self._slices.pop((namespace, name), None)
        if old is None:
            return set()
        service = (namespace, old["metadata"]["service"])
        self._slices_of.get(service, set()).discard((namespace, name))
        return {service}

    def _changed(self, service: ServiceKey) -> None:
        for cached in [k for k in self._ready if k[0] == service]:
            del self._ready[cached]
        self._notifier.notify(service)
        for listener in self.listeners:
            listener(service)

    # -- readers -------------------------------------------------------------------------------

    def addresses(self, service: ServiceKey, port: str) -> list[Address]:
        """Ready addresses of `service`'s port (number or name), cached until the Service changes."""
        found = self._ready.get((service, port))
        if found is None:
            found = self._ready[(service, port)] = self._resolve(service, port)
        return found

    def _resolve(self, service: ServiceKey, port: str) -> list[Address]:
        ports = self._services.get(service)
        if ports is None:
            return []
        if port.isdigit():
            named = [str(p.get("name") or "") for p in ports if p.get("port") == int(port)]
            if not named:
                return []
            name = named[0]
        else:
            name = port
        addresses: list[Address] = []
        for slice_key in sorted(self._slices_of.get(service, ())):
            found = self._slices[slice_key]
            target = next((p["port"] for p in found["ports"] if p["name"] == name), None)
            if target is not None:
                addresses.extend((address, int(target)) for address in found["ready"])
        return addresses

    async def wait_change(self, service: ServiceKey, timeout: float) -> None:
        await self._notifier.wait(service, timeout)
