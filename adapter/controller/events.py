"""Kubernetes Events on ScaledObjects and ScaledJobs, with KEDA's reasons, counted instead of repeated.

Like client-go's recorder, the same (object, type, reason, message) within ten minutes bumps
`count` and `lastTimestamp` of the Event already written rather than creating another. An Event
is best effort: `record` only queues it, one task sends the queue in order with its own rate
limit (`ControllerKube`'s event bucket), so Events never hold up a reconcile nor take the API
calls HPAs and statuses need (1,000 new ScaledObjects make 1,000 `ScaledObjectReady` Events);
a failure is logged, and past `BACKLOG` waiting Events the oldest are dropped and counted.
A replica that loses its Lease with Events still queued drops them (counted, one line per
Event at info level): it writes nothing while not leading, and the next leader reports what it finds.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from adapter.controller.guarded_api import ControllerKube, NotLeading, SoKey
from adapter.kube.client import ApiStatusError
from adapter.kube.wire import timestamp

log = logging.getLogger("eventscale.events")

COMPONENT = "eventscale-controller"
REPEAT_WINDOW = 600.0
BACKLOG = 10_000

ACTIVATED = "KEDAScaleTargetActivated"
DEACTIVATED = "KEDAScaleTargetDeactivated"
ACTIVATION_FAILED = "KEDAScaleTargetActivationFailed"
DEACTIVATION_FAILED = "KEDAScaleTargetDeactivationFailed"
SCALER_FAILED = "KEDAScalerFailed"
READY = "ScaledObjectReady"
CHECK_FAILED = "ScaledObjectCheckFailed"
DELETED = "ScaledObjectDeleted"



class _ScaledObjectLike(Protocol):
    @property
    def key(self) -> SoKey: ...
    @property
    def api_version(self) -> str: ...
    @property
    def uid(self) -> str: ...
    @property
    def resource_version(self) -> str: ...


@dataclass(frozen=True)
class Involved:
    """The object an Event is about."""

    api_version: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    kind: str = "ScaledObject"  # or ScaledJob

    @staticmethod
    def of(obj: _ScaledObjectLike) -> Involved:
        return Involved(obj.api_version, obj.key[1], obj.key[2], obj.uid, obj.resource_version)


@dataclass
class _Written:
    name: str
    count: int
    at: float


class EventRecorder:
    def __init__(self, kube: ControllerKube, instance: str, wall: Callable[[], float] = time.time) -> None:
        self.kube, self.instance, self.wall = kube, instance, wall
        self._written: dict[tuple[str, str, str, str], _Written] = {}
        self._queue: deque[tuple[Involved, str, str, str, float]] = deque()
        self._waiting = asyncio.Event()
        self.dropped = 0

    def record(self, obj: Involved, kind: str, reason: str, message: str) -> None:
        """Queue an Event; `run` sends it."""
        if len(self._queue) >= BACKLOG:
            self._queue.popleft()
            self.dropped += 1
            log.warning("event backlog full: oldest dropped (%d so far)", self.dropped)
        self._queue.append((obj, kind, reason, message, self.wall()))
        self._waiting.set()

    async def run(self) -> None:
        while True:
            await self._waiting.wait()
            while self._queue:
                await self._send(*self._queue.popleft())
            self._waiting.clear()

    async def _send(self, obj: Involved, kind: str, reason: str, message: str, now: float) -> None:
        namespace = obj.namespace
        key = (obj.uid, kind, reason, message)
        try:
            seen = self._written.get(key)
            if seen is not None and now - seen.at < REPEAT_WINDOW:
                seen.count, seen.at = seen.count + 1, now
                patch = {"count": seen.count, "lastTimestamp": timestamp(now)}
                await self.kube.patch_event(namespace, seen.name, patch)
                return
            event = self._event(obj, kind, reason, message, now)
            await self.kube.create_event(namespace, event)
            self._written[key] = _Written(event["metadata"]["name"], 1, now)
            self._forget_old(now)
        except NotLeading:
            self.dropped += 1
            log.info("event reason=%s object=%s/%s not recorded: not leading", reason, namespace, obj.name)
        except (ApiStatusError, httpx.HTTPError, ValueError) as exc:
            log.warning("event reason=%s object=%s/%s not recorded: %s", reason, namespace, obj.name, exc)

    def _event(self, obj: Involved, kind: str, reason: str, message: str, now: float) -> dict[str, Any]:
        return {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{obj.name}.{secrets.token_hex(8)}", "namespace": obj.namespace},
            "involvedObject": {"apiVersion": obj.api_version, "kind": obj.kind, "name": obj.name,
                               "namespace": obj.namespace, "uid": obj.uid, "resourceVersion": obj.resource_version},
            "reason": reason, "message": message, "type": kind, "count": 1,
            "firstTimestamp": timestamp(now), "lastTimestamp": timestamp(now),
            "source": {"component": COMPONENT, "host": self.instance},
        }

    def _forget_old(self, now: float) -> None:
        if len(self._written) > 10_000:
            self._written = {k: v for k, v in self._written.items() if now - v.at < REPEAT_WINDOW}
