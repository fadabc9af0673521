"""Leader election with a coordination.k8s.io Lease, as client-go's leaderelection does it.

Two controller replicas run; the one holding the Lease acts, the other keeps its caches and
activity view warm and takes over when the Lease is not renewed for `lease_duration`.
Expiry is judged on this process's monotonic clock from when the Lease record last changed,
never by comparing clocks of two machines. The leader renews every `retry_period` and stops
acting when it could not renew for `renew_deadline` (< `lease_duration`), so two leaders never
act at once. Updates carry the Lease's resourceVersion: of two candidates only one wins.
On a clean shutdown the Lease is released (holder emptied), and the other replica takes over
at its next try instead of after a full lease duration.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import httpx

from adapter.kube.client import ApiStatusError, Object
from adapter.kube.wire import micro_timestamp

log = logging.getLogger("eventscale.leader")


class LeaseApi(Protocol):
    """The two calls leader election makes (`KubeApi` has them)."""

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Object: ...

    async def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                      body: Object | None = None, content_type: str = ...) -> Object: ...



class LeaderElector:
    def __init__(self, api: LeaseApi, namespace: str, name: str, identity: str, *,
                 lease_duration: float = 15.0, renew_deadline: float = 10.0, retry_period: float = 2.0,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("need retry_period < renew_deadline < lease_duration")
        self.api, self.identity = api, identity
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        self.namespace, self.name = namespace, name
        self.lease_duration, self.renew_deadline, self.retry_period = lease_duration, renew_deadline, retry_period
        self.clock, self.wall = clock, wall
        self.leading = False
        self.transitions = 0
        self._renewed_at = float("-inf")
        self._renewal = asyncio.Event()  # set (and replaced) at each renewal, for `until_valid`
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = float("-inf")

    def valid(self) -> bool:
        """True while this replica may act: leading, and renewed within the renew deadline."""
        return self.leading and self.clock() - self._renewed_at < self.renew_deadline

    async def until_valid(self) -> None:
        """Return once this replica may act: at once while valid, else after a renewal."""
        while not self.valid():
            await self._renewal.wait()

    def _renewed(self) -> None:
        self._renewed_at = self.clock()
        self._renewal.set()
        self._renewal = asyncio.Event()

    async def run(self, on_started: Callable[[], None], on_stopped: Callable[[], None]) -> None:
        while True:
            if await self._try():
                self._renewed()
                if not self.leading:
                    self.leading = True
                    log.info("lease=%s/%s identity=%s leading", self.namespace, self.name, self.identity)
                    on_started()
            elif self.leading and not self.valid():
                self.leading = False
                log.warning("lease=%s/%s identity=%s lost (not renewed for %.1fs)", self.namespace, self.name,
                            self.identity, self.renew_deadline)
                on_stopped()
            await asyncio.sleep(self.retry_period)

    async def _try(self) -> bool:
        try:
            return await self._acquire_or_renew()
        except (ApiStatusError, httpx.HTTPError) as exc:
            log.warning("lease=%s/%s error=%r", self.namespace, self.name, str(exc) or type(exc).__name__)
            return False

    async def _acquire_or_renew(self) -> bool:
        try:
            lease = await self.api.get(self.path)
        except ApiStatusError as exc:
            if exc.code != 404:
                raise
            return await self._write("POST", self._lease({}, {}))
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), spec.get("leaseDurationSeconds"))
        if record != self._observed:
            self._observed, self._observed_at = record, self.clock()
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        if holder and holder != self.identity and self.clock() - self._observed_at < duration:
            return False
        return await self._write("PUT", self._lease(lease, spec))

    def _lease(self, lease: Object, spec: Object) -> Object:
        now = micro_timestamp(self.wall())
        ours = spec.get("holderIdentity") == self.identity
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if ours or not spec else 1)
        metadata = {**(lease.get("metadata") or {}), "name": self.name, "namespace": self.namespace}
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": {
            "holderIdentity": self.identity, "leaseDurationSeconds": max(1, round(self.lease_duration)),
            "acquireTime": spec.get("acquireTime") if ours else now, "renewTime": now,
            "leaseTransitions": transitions}}

    async def _write(self, method: str, body: Object) -> bool:
        path = self.path.rsplit("/", 1)[0] if method == "POST" else self.path
        try:
            written = await self.api.request(method, path, body=body)
        except ApiStatusError as exc:
            if exc.code == 409:  # another candidate wrote first
                return False
            raise
        spec = written.get("spec") or {}
        self._observed = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseDurationSeconds"))
        self._observed_at = self.clock()
        self.transitions = int(spec.get("leaseTransitions") or 0)
        return True

    async def release(self) -> None:
        """Give the Lease up (holder emptied) so the other replica need not wait for expiry."""
        if not self.leading:
            return
        self.leading = False
        try:
            lease = await self.api.get(self.path)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            now = micro_timestamp(self.wall())
            released = {**lease, "spec": {**spec, "holderIdentity": "", "leaseDurationSeconds": 1,
                                          "renewTime": now, "acquireTime": now}}
            await self.api.request("PUT", self.path, body=released)
            log.info("lease=%s/%s identity=%s released", self.namespace, self.name, self.identity)
        except (ApiStatusError, httpx.HTTPError) as exc:
            log.warning("lease=%s/%s release failed: %s", self.namespace, self.name, exc)
