"""Where a route's requests may go now: the ready endpoints of its Service, and news of changes.

Cluster mode (`EndpointIndex`): Services and EndpointSlices from watches. A route names a Service
port by number or name; the Service maps it to a port name, and each EndpointSlice of the
Service (label `kubernetes.io/service-name`) gives that name's target port and its endpoints;
an endpoint counts when `conditions.ready` is not false. Nothing is resolved per request: the
address list of a (Service, port) is computed when a slice or the Service changes, and held
requests wait on that Service's change notification rather than polling.

Standalone mode (`ProbedUpstreams`): each Service has a configured upstream address, ready as
long as connecting to it works. A refused connect marks it down and a prober tries again every
`probe_interval` while requests wait, so a workload started by hand wakes its held requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from adapter.interceptor.routing import Route, ServiceKey
from adapter.kube.client import Object
from adapter.kube.resources import Resource

log = logging.getLogger("eventscale.interceptor.endpoints")

Address = tuple[str, int]
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SERVICES = Resource("", "v1", "services", "Service")
ENDPOINT_SLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")


class Endpoints(Protocol):
    def ready(self, route: Route) -> list[Address]:
        """The addresses a request of `route` may be sent to now."""

    async def wait_change(self, service: ServiceKey, timeout: float) -> None:
        """Return when the endpoints of `service` change, or after `timeout` seconds."""

    def failed(self, route: Route, address: Address) -> None:
        """A connect to `address` failed."""


class _Notifier:
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


class EndpointIndex:
    """`Endpoints` of a cluster, kept by the Reflectors of `SERVICES` and `ENDPOINT_SLICES` (its sink)."""

    def __init__(self) -> None:
        self._services: dict[ServiceKey, list[Mapping[str, Any]]] = {}
        self._slices: dict[tuple[str, str], Object] = {}  # (namespace, slice name) -> stripped slice
        self._slices_of: dict[ServiceKey, set[tuple[str, str]]] = {}
        self._ready: dict[tuple[ServiceKey, str], list[Address]] = {}  # cache, per (Service, route port)
        self._notifier = _Notifier()
        self.listeners: list[Callable[[ServiceKey], None]] = []

    # -- the Reflectors' sink ----------------------------------------------------------------

    def listed(self, resource: Resource, objects: list[Object]) -> None:
        touched = set(self._services) if resource is SERVICES else set(self._slices_of)
        if resource is SERVICES:
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
        if resource is SERVICES:
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
        if resource is SERVICES:
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

    # -- Endpoints -----------------------------------------------------------------------------

    def ready(self, route: Route) -> list[Address]:
        return self.addresses(route.service, route.port)

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

    def failed(self, route: Route, address: Address) -> None:
        """Nothing to learn: the EndpointSlice, not one connect, says when a pod is ready."""


class ProbedUpstreams:
    """Standalone `Endpoints`: one configured address per Service (or one for all), probed when down.

    An address is down from a refused connect until a probe connects again; probes run every
    `probe_interval` while anyone asks for the address (they stop after `idle_stop` seconds
    without a request, and start again with the next one).
    """

    def __init__(self, upstreams: Mapping[ServiceKey | None, Address], probe_interval: float = 0.05,
                 connect_timeout: float = 1.0, idle_stop: float = 5.0) -> None:
        self.upstreams = dict(upstreams)
        self.probe_interval, self.connect_timeout, self.idle_stop = probe_interval, connect_timeout, idle_stop
        self._down: set[Address] = set()
        self._probes: dict[Address, asyncio.Task[None]] = {}
        self._asked: dict[Address, float] = {}
        self._notifier = _Notifier()

    def address(self, service: ServiceKey) -> Address | None:
        return self.upstreams.get(service) or self.upstreams.get(None)

    def ready(self, route: Route) -> list[Address]:
        address = self.address(route.service)
        if address is None:
            return []
        if address in self._down:
            self._asked[address] = asyncio.get_running_loop().time()
            self._probe_soon(address)
            return []
        return [address]

    async def wait_change(self, service: ServiceKey, timeout: float) -> None:
        await self._notifier.wait(service, timeout)

    def failed(self, route: Route, address: Address) -> None:
        self._down.add(address)
        self._asked[address] = asyncio.get_running_loop().time()
        self._probe_soon(address)

    def _probe_soon(self, address: Address) -> None:
        if address not in self._probes:
            self._probes[address] = asyncio.get_running_loop().create_task(self._probe(address))

    async def _probe(self, address: Address) -> None:
        loop = asyncio.get_running_loop()
        try:
            while loop.time() - self._asked.get(address, 0.0) < self.idle_stop:
                try:
                    async with asyncio.timeout(self.connect_timeout):
                        _, writer = await asyncio.open_connection(*address)
                    writer.close()
                except OSError:
                    await asyncio.sleep(self.probe_interval)
                    continue
                log.info("upstream=%s:%d accepts connections", *address)
                self._down.discard(address)
                self._notify(address)
                return
        finally:
            self._probes.pop(address, None)

    def _notify(self, address: Address) -> None:
        services = [s for s, a in self.upstreams.items() if a == address]
        if None in services:  # the upstream of every Service
            self._notifier.notify_all()
        for service in services:
            if service is not None:
                self._notifier.notify(service)

    async def aclose(self) -> None:
        for task in list(self._probes.values()):
            task.cancel()
