"""The ready pods of targets in fallback with a Value metric: the count the HPA multiplies by.

A `metricType: Value` fallback answer is `target x replicas / ready` (adapter/keda/fallback.py),
`ready` being the target's pods that are Running and Ready among those its Scale's
`status.selector` matches, the count the HPA's replica calculator uses. The adapter cannot
know it; the controller counts it and reports it beside the current replica count
(`TargetState.ready`), only where it is needed: objects with a trigger past `failureThreshold`
(the Fallback condition) whose fallback answer divides (`needs_ready_count`).

Nothing is watched: counting one object is a GET of its Scale and a LIST of its pods by that
selector, made when it enters fallback and again every `interval` seconds (5) while it stays
there, since the HPA scaling it changes the count. The calls have a token bucket of their own
(5 calls/s, burst 10 by default), so an outage that puts many objects in fallback at once
slows the counts and never the reconciles: n objects in fallback are each counted about every
max(interval, 2n / qps) seconds. A count that cannot be made (the Scale has no selector, a call
failed) is reported unknown: the trigger's error stands, as KEDA's does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from adapter.controller.guarded_api import ControllerKube, TargetError
from adapter.controller.work_queue import RateLimiter
from adapter.keda.activity import Key
from adapter.keda.objects import ScaleTarget
from adapter.kube.client import ApiStatusError
from adapter.kube.resources import PODS

log = logging.getLogger("eventscale.controller")

COUNT_INTERVAL = 5.0  # seconds between two counts of one object in fallback


def ready_count(pods: Mapping[str, Any]) -> int:
    """Pods of a list that are Running with condition Ready True (the HPA's getReadyPodsCount)."""
    return sum(1 for pod in pods.get("items") or () if _running_and_ready(pod))


def _running_and_ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    ready = next((c for c in status.get("conditions") or () if c.get("type") == "Ready"), None)
    return ready is not None and ready.get("status") == "True"


class ReadyPods:
    """Counts the ready pods of the targets it is told to (`want`), and reports each count with
    `note(key, count)` (None: unknown, or no longer counted)."""

    def __init__(self, kube: ControllerKube, note: Callable[[Key, int | None], None],
                 interval: float = COUNT_INTERVAL, limiter: RateLimiter | None = None) -> None:
        self.kube, self.note, self.interval = kube, note, interval
        self.limiter = limiter or RateLimiter(5.0, 10)
        self.counts = 0  # counts made since start, for the stats line
        self._wanted: dict[Key, ScaleTarget] = {}
        self._due: dict[Key, float] = {}  # monotonic
        self._failed: dict[Key, str] = {}  # why the last count failed, logged when it changes
        self._changed = asyncio.Event()

    def want(self, key: Key, target: ScaleTarget | None) -> None:
        """Count this object's target from now on (`target`), or stop (None: its count is then
        reported unknown)."""
        if target is None:
            if self._wanted.pop(key, None) is not None:
                self._due.pop(key, None)
                self._failed.pop(key, None)
                self.note(key, None)
        elif self._wanted.get(key) != target:
            self._wanted[key] = target
            self._due[key] = 0.0
            self._changed.set()

    @property
    def wanted(self) -> int:
        return len(self._wanted)

    async def run(self) -> None:
        while True:
            self._changed.clear()
            for key in [k for k, at in self._due.items() if at <= time.monotonic()]:
                target = self._wanted.get(key)
                if target is None:
                    continue
                count = await self._count(key, target)
                if self._wanted.get(key) == target:  # still wanted, for the same target
                    self._due[key] = time.monotonic() + self.interval
                    self.note(key, count)
            wait = min(self._due.values(), default=time.monotonic() + 3600.0) - time.monotonic()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, wait)):
                    await self._changed.wait()

    async def _count(self, key: Key, target: ScaleTarget) -> int | None:
        namespace = key[0]
        self.counts += 1
        try:
            resource = await self.kube.targets.resolve(target.api_version, target.kind)
            scale = await self.kube.get_scale(resource, namespace, target.name, limiter=self.limiter)
            selector = str((scale.get("status") or {}).get("selector") or "")
            if not selector:
                self._cannot(key, f"the Scale of {target.kind} {namespace}/{target.name} has no selector")
                return None
            pods = await self.kube.list(PODS.within(namespace).path, selector, limiter=self.limiter)
        except (TargetError, ApiStatusError, httpx.HTTPError) as exc:
            self._cannot(key, str(exc) or type(exc).__name__)
            return None
        self._failed.pop(key, None)
        return ready_count(pods)

    def _cannot(self, key: Key, why: str) -> None:
        if self._failed.get(key) != why:
            self._failed[key] = why
            log.warning("object=%s/%s ready pods not counted (no fallback answer for its Value metric): %s",
                        key[0], key[1], why)
