"""Leader election over a Lease: one leader, takeover after the lease duration, release, fencing.

Durations are short (a Lease holds whole seconds, so 1 s). The Lease lives in `LeaseServer`, an
in-memory stand-in for kube-apiserver's optimistic concurrency (resourceVersion: a stale update
is 409, a second create is 409).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from typing import Any

from adapter.controller.leader import LeaderElector
from adapter.kube.client import ApiStatusError

PATH = "/apis/coordination.k8s.io/v1/namespaces/ns/leases/ctl"


class LeaseServer:
    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.down: set[str] = set()  # identities whose requests fail (a partition)

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        if self.lease is None:
            raise ApiStatusError(404, "not found", "NotFound")
        return copy.deepcopy(self.lease)

    async def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                      body: dict[str, Any] | None = None, content_type: str = "") -> dict[str, Any]:
        assert body is not None
        if body["spec"]["holderIdentity"] in self.down:
            raise ApiStatusError(503, "unavailable")
        if method == "POST" and self.lease is not None:
            raise ApiStatusError(409, "exists", "AlreadyExists")
        if method == "PUT" and body["metadata"].get("resourceVersion") != str(self.version):
            raise ApiStatusError(409, "conflict", "Conflict")
        self.version += 1
        self.lease = {**copy.deepcopy(body), "metadata": {**body["metadata"], "resourceVersion": str(self.version)}}
        return copy.deepcopy(self.lease)


def elector(server: LeaseServer, identity: str) -> LeaderElector:
    return LeaderElector(server, "ns", "ctl", identity, lease_duration=1.0, renew_deadline=0.5, retry_period=0.05)


async def campaign(candidate: LeaderElector, log: list[str]) -> asyncio.Task[None]:
    return asyncio.create_task(candidate.run(lambda: log.append(f"+{candidate.identity}"),
                                             lambda: log.append(f"-{candidate.identity}")))


Candidate = tuple[LeaderElector, asyncio.Task[None]]


async def a_leads_then_b_campaigns() -> tuple[LeaseServer, list[str], Candidate, Candidate]:
    """One Lease, its log of +gained/-lost leadership, and two candidates: `a` leads before `b` runs."""
    server, log = LeaseServer(), list[str]()
    a, b = elector(server, "a"), elector(server, "b")
    task_a = await campaign(a, log)
    while not a.leading:
        await asyncio.sleep(0.01)
    return server, log, (a, task_a), (b, await campaign(b, log))


async def test_one_leader_then_takeover_within_the_lease_duration() -> None:
    server, log, (a, task_a), (b, task_b) = await a_leads_then_b_campaigns()
    await asyncio.sleep(0.3)
    assert log == ["+a"] and a.valid() and not b.leading
    task_a.cancel()  # killed: never releases
    killed = asyncio.get_running_loop().time()
    while not b.leading:
        await asyncio.sleep(0.01)
    took = asyncio.get_running_loop().time() - killed
    assert took < 1.0 + 0.05 + 0.15  # lease duration (whole seconds in a Lease) + retry period
    assert log == ["+a", "+b"] and server.lease is not None and server.lease["spec"]["leaseTransitions"] == 1
    task_b.cancel()


async def test_release_hands_over_at_the_next_try() -> None:
    _, _, (a, task_a), (b, task_b) = await a_leads_then_b_campaigns()
    await asyncio.sleep(0.1)
    task_a.cancel()
    await a.release()
    released = asyncio.get_running_loop().time()
    while not b.leading:
        await asyncio.sleep(0.01)
    assert asyncio.get_running_loop().time() - released < 0.2
    task_b.cancel()


async def test_a_leader_that_cannot_renew_stops_before_the_lease_expires() -> None:
    server, log, (a, task_a), (b, task_b) = await a_leads_then_b_campaigns()
    server.down.add("a")
    cut = asyncio.get_running_loop().time()
    while not b.leading:
        assert a.valid() or asyncio.get_running_loop().time() - cut >= 0.5 - 0.06  # renew deadline
        await asyncio.sleep(0.01)
    assert not a.valid() and log[:2] == ["+a", "-a"] and log[-1] == "+b"
    task_a.cancel()
    task_b.cancel()
