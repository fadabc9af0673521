"""What the adapter knows of each ScaledObject's triggers, read over loopback with a long poll.

`ActivityClient.run` keeps one `GET /activity?wait=...` open with the last ETag; the adapter
answers as soon as a value, an error or the catalog changes (or 304 after the wait), so the
controller hears of a message within milliseconds of the adapter's read, without a second set
of broker polls. Changed objects (compared without their read times) are handed to
`on_change`. `fresh` says whether the adapter answered recently: on a stale view the
controller neither activates nor scales down.

Both controller replicas run this, leader or not, so a follower that takes over already knows
what is active and since when (`last_active`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger("eventscale.activity")

Key = tuple[str, str]  # namespace, name


@dataclass(frozen=True)
class TriggerActivity:
    index: int
    type: str
    metric_name: str
    metric_type: str
    target: float | None
    resolved: bool  # False: the adapter could not build it (unknown type, bad parameter, missing secret)
    value: float | None
    active: bool
    error: str | None
    failures: int
    fallback: bool
    read_at: str | None = field(default=None, compare=False)

    @property
    def read(self) -> bool:
        return self.read_at is not None


@dataclass(frozen=True)
class ObjectActivity:
    namespace: str
    name: str
    uid: str
    generation: int
    error: str | None
    triggers: tuple[TriggerActivity, ...]

    @property
    def active(self) -> bool:
        return any(t.active for t in self.triggers)

    @property
    def failing(self) -> bool:
        return any(t.error is not None for t in self.triggers if t.resolved and t.read)

    @property
    def known(self) -> bool:
        """Every trigger has been read (or one is active): enough to decide on."""
        return self.active or (bool(self.triggers) and all(t.read for t in self.triggers if t.resolved))

    @property
    def resolve_errors(self) -> list[str]:
        return [f"trigger {t.index} ({t.type}): {t.error}" for t in self.triggers if not t.resolved]


def _trigger(raw: Mapping[str, Any]) -> TriggerActivity:
    target, value = raw.get("target"), raw.get("value")
    return TriggerActivity(
        index=int(raw["index"]), type=str(raw["type"]), metric_name=str(raw["metricName"]),
        metric_type=str(raw.get("metricType") or "AverageValue"),
        target=None if target is None else float(target), resolved=bool(raw.get("resolved", True)),
        value=None if value is None else float(value), active=bool(raw.get("active")),
        error=raw.get("error"), failures=int(raw.get("consecutiveFailures") or 0),
        fallback=bool(raw.get("fallback")), read_at=raw.get("readAt"),
    )


def parse_object(raw: Mapping[str, Any]) -> ObjectActivity:
    return ObjectActivity(
        namespace=str(raw["namespace"]), name=str(raw["name"]), uid=str(raw.get("uid") or ""),
        generation=int(raw.get("generation") or 0), error=raw.get("error"),
        triggers=tuple(_trigger(t) for t in raw.get("triggers") or []),
    )


def parse_document(raw: Mapping[str, Any]) -> dict[Key, ObjectActivity]:
    objects = (parse_object(o) for o in raw.get("scaledObjects") or [])
    return {(o.namespace, o.name): o for o in objects}


class ActivityClient:
    def __init__(self, base_url: str, on_change: Callable[[set[Key]], None], *, wait: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.on_change = on_change
        self.wait = wait
        self.clock, self.wall = clock, wall
        self.objects: dict[Key, ObjectActivity] = {}
        self.last_active: dict[Key, float] = {}  # epoch seconds an object was last seen active
        self.etag: str | None = None
        self.answered_at = float("-inf")
        self.answers = 0
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=httpx.Timeout(wait + 10.0, connect=2.0),
                                         transport=transport)

    def get(self, namespace: str, name: str) -> ObjectActivity | None:
        return self.objects.get((namespace, name))

    @property
    def fresh(self) -> bool:
        return self.clock() - self.answered_at < self.wait + 5.0

    async def run(self) -> None:
        delay = 0.2
        while True:
            try:
                await self.poll_once()
                delay = 0.2
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                log.warning("adapter=%s error=%r retry_in=%.1fs", self.base_url, str(exc) or type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def poll_once(self) -> None:
        headers = {"If-None-Match": self.etag} if self.etag else {}
        response = await self._client.get("/activity", params={"wait": str(self.wait)}, headers=headers)
        if response.status_code == 304:
            self.answered_at = self.clock()
            return
        response.raise_for_status()
        self.update(parse_document(response.json()), response.headers.get("etag"))

    def update(self, objects: dict[Key, ObjectActivity], etag: str | None) -> None:
        """Take a new document; remember activity edges; tell which objects changed."""
        now = self.wall()
        changed = {k for k in objects.keys() | self.objects.keys() if objects.get(k) != self.objects.get(k)}
        for key in changed:
            before, after = self.objects.get(key), objects.get(key)
            if (before is not None and before.active) or (after is not None and after.active):
                self.last_active[key] = now  # active until (at least) this answer
        for key in [k for k in self.last_active if k not in objects]:
            del self.last_active[key]
        self.objects, self.etag = objects, etag
        self.answered_at = self.clock()
        self.answers += 1
        if changed:
            self.on_change(changed)

    async def report_replicas(self, counts: Sequence[tuple[str, str, int]]) -> None:
        items = [{"namespace": ns, "name": name, "replicas": n} for ns, name, n in counts]
        response = await self._client.post("/replicas", json={"items": items})
        response.raise_for_status()

    async def aclose(self) -> None:
        await self._client.aclose()
