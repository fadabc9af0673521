"""The ready pods of targets in fallback with a Value metric: the count the HPA multiplies by.

A `metricType: Value` fallback answer is `target x replicas / ready` (adapter/keda/fallback.py),
`ready` being the target's pods that are Running and Ready among those its Scale's
`status.selector` matches, the count the HPA's replica calculator uses. The adapter cannot
know it; the controller counts it and reports it beside the current replica count
(`TargetState.ready`), only where it is needed: objects with a trigger past `failureThreshold`
(the Fallback condition) whose fallback answer divides (`needs_ready_count`).

The count must follow the pods as closely as the HPA's own pod informer does: a count late by
one pod gets ready makes the HPA compute ceil(replicas x now / before), more than `replicas`,
and a pod that went unready, fewer. So the pods of each such target are watched, and only
while it is in fallback: on entering it, a GET of the Scale (its selector, on a token bucket of
its own, 5 calls/s) and a list and watch of the pods that selector matches (a `Reflector`);
every change of the count is reported at once; leaving fallback closes the watch and withdraws
the count. The selector is read once per stay in fallback (a Deployment's cannot change).
A count that cannot be made (no selector, the Scale unreadable) is reported unknown, and the
Scale is read again every `retry` seconds: meanwhile the trigger's error stands, as KEDA's does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import httpx

from adapter.controller.guarded_api import ControllerKube, TargetError
from adapter.controller.work_queue import RateLimiter
from adapter.keda.activity import Key
from adapter.keda.objects import ScaleTarget
from adapter.kube.client import ApiStatusError, Object
from adapter.kube.resources import PODS, Resource
from adapter.kube.watch import Reflector

log = logging.getLogger("eventscale.controller")

PodReadiness = tuple[str, bool]  # a pod's name, and whether it is Running and Ready


def running_and_ready(pod: Mapping[str, Any]) -> bool:
    """The HPA's getReadyPodsCount rule: phase Running and condition Ready True."""
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    ready = next((c for c in status.get("conditions") or () if c.get("type") == "Ready"), None)
    return ready is not None and ready.get("status") == "True"


def readiness(pod: Object) -> PodReadiness:
    return str((pod.get("metadata") or {}).get("name") or ""), running_and_ready(pod)


class ReadyCount:
    """The sink of one target's pod watch: its ready pods, told to `note` on every event."""

    def __init__(self, note: Callable[[int], None]) -> None:
        self.note = note
        self.ready: set[str] = set()

    def listed(self, resource: Resource, objects: list[PodReadiness]) -> None:
        self.ready = {name for name, ready in objects if ready}
        self.note(len(self.ready))

    def changed(self, resource: Resource, obj: PodReadiness, deleted: bool) -> None:
        name, ready = obj
        if ready and not deleted:
            self.ready.add(name)
        else:
            self.ready.discard(name)
        self.note(len(self.ready))


class ReadyPods:
    """Watches the ready pods of the targets it is told to (`want`) and reports each count with
    `note(key, count)` (None: unknown, or no longer counted)."""

    def __init__(self, kube: ControllerKube, note: Callable[[Key, int | None], None], retry: float = 10.0,
                 limiter: RateLimiter | None = None) -> None:
        self.kube, self.note, self.retry = kube, note, retry
        self.limiter = limiter or RateLimiter(5.0, 10)
        self.watches = 0  # pod watches opened since start, for the stats line
        self._wanted: dict[Key, tuple[ScaleTarget, asyncio.Task[None]]] = {}
        self._failed: dict[Key, str] = {}  # why the last count failed, logged when it changes

    @property
    def watched(self) -> int:
        return len(self._wanted)

    def want(self, key: Key, target: ScaleTarget | None) -> None:
        """Count this object's target from now on (`target`), or stop (None: its count is then
        reported unknown)."""
        found = self._wanted.get(key)
        if found is not None and found[0] == target:
            return
        if found is not None:
            found[1].cancel()
            del self._wanted[key]
            self._failed.pop(key, None)
            self.note(key, None)
        if target is not None:
            self._wanted[key] = target, asyncio.get_running_loop().create_task(self._follow(key, target),
                                                                               name=f"ready-{key[0]}/{key[1]}")

    async def aclose(self) -> None:
        tasks = [task for _, task in self._wanted.values()]
        self._wanted.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _follow(self, key: Key, target: ScaleTarget) -> None:
        namespace = key[0]
        while (selector := await self._selector(key, target)) is None:
            self.note(key, None)
            await asyncio.sleep(self.retry)
        self._failed.pop(key, None)
        self.watches += 1
        pods = replace(PODS.within(namespace), label_selector=selector)
        await Reflector(self.kube.api, pods, ReadyCount(lambda count: self.note(key, count)), readiness).run()

    async def _selector(self, key: Key, target: ScaleTarget) -> str | None:
        namespace = key[0]
        try:
            resource = await self.kube.targets.resolve(target.api_version, target.kind)
            scale = await self.kube.get_scale(resource, namespace, target.name, limiter=self.limiter)
        except (TargetError, ApiStatusError, httpx.HTTPError) as exc:
            self._cannot(key, str(exc) or type(exc).__name__)
            return None
        selector = str((scale.get("status") or {}).get("selector") or "")
        if not selector:
            self._cannot(key, f"the Scale of {target.kind} {namespace}/{target.name} has no selector")
            return None
        return selector

    def _cannot(self, key: Key, why: str) -> None:
        if self._failed.get(key) != why:
            self._failed[key] = why
            log.warning("object=%s/%s ready pods not counted (no fallback answer for its Value metric): %s",
                        key[0], key[1], why)
