"""Where a route's requests may go now: the ready endpoints of its Service, and news of changes.

Cluster mode (`ClusterEndpoints`): the shared `EndpointIndex` (adapter.kube.endpoints), fed by
cluster-wide watches of Services and EndpointSlices; a route names a Service port by number or
name. Nothing is resolved per request, and held requests wait on that Service's change
notification rather than polling.

Standalone mode (`ProbedUpstreams`): each Service has a configured upstream address, ready as
long as connecting to it works. A refused connect marks it down and a prober tries again every
`probe_interval` while requests wait, so a workload started by hand wakes its held requests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Protocol

from adapter.interceptor.routing import Route
from adapter.kube.endpoints import Address, EndpointIndex, Notifier, ServiceKey

log = logging.getLogger("eventscale.interceptor.endpoints")


class Endpoints(Protocol):
    def ready(self, route: Route) -> list[Address]:
        """The addresses a request of `route` may be sent to now."""

    async def wait_change(self, service: ServiceKey, timeout: float) -> None:
        """Return when the endpoints of `service` change, or after `timeout` seconds."""

    def failed(self, route: Route, address: Address) -> None:
        """A connect to `address` failed."""


class ClusterEndpoints(EndpointIndex):
    """`Endpoints` of a cluster: a route's ready addresses are its Service port's."""

    def ready(self, route: Route) -> list[Address]:
        return self.addresses(route.service, route.port)

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
        self._notifier = Notifier()

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
