"""What the adapter knows of each ScaledObject's triggers, read over loopback with a long poll.

`ActivityClient.run` keeps one `GET /activity?since=<generation>&wait=...` open; the adapter
answers as soon as a value, an error or the catalog changes (or 304 after the wait) with the
objects changed since that generation, so the controller hears of a message within
milliseconds of the adapter's read, without a second set of broker polls, and an answer costs
what changed. The first answer, and the first after the adapter restarted, is the full
document. Changed objects (compared without their read times) are handed to `on_change`.
`fresh` says whether the adapter answered recently: on a stale view the controller neither
activates nor scales down, and `on_fresh` is called when answers come back after a gap.

Both controller replicas run this, leader or not, so a follower that takes over already knows
what is active and since when (`last_active`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import httpx

from adapter.keda.activity import (
    ADAPTER_HEADER,
    ActivityDocument,
    Key,
    ObjectActivity,
    TargetsReport,
    decode_document,
    encode_targets,
)

log = logging.getLogger("eventscale.activity")

class ActivityClient:
    def __init__(self, base_url: str, on_change: Callable[[set[Key]], None], *, wait: float = 10.0,
                 on_fresh: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.on_change, self.on_fresh = on_change, on_fresh
        self.wait = wait
        self.clock, self.wall = clock, wall
        self.objects: dict[Key, ObjectActivity] = {}
        self.last_active: dict[Key, float] = {}  # epoch seconds an object was last seen active
        self.generation: str | None = None  # of the last answer: the next request's `since`
        self.answered_at = float("-inf")
        self.answers = 0
        self.full_answers = 0
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
        params = {"wait": str(self.wait), **({"since": self.generation} if self.generation else {})}
        response = await self._client.get("/activity", params=params)
        if response.status_code == 304:
            self._answered()
            return
        response.raise_for_status()
        self.update(decode_document(response.content))

    def _answered(self) -> None:
        stale = not self.fresh
        self.answered_at = self.clock()
        self.answers += 1
        if stale:
            self.on_fresh()

    def update(self, document: ActivityDocument) -> None:
        """Take a document (full or delta); remember activity edges; tell which objects changed."""
        incoming = {o.key: o for o in document.objects}
        if document.full:
            self.full_answers += 1
            gone = [k for k in self.objects if k not in incoming]
        else:
            gone = [k for k in document.deleted if k in self.objects]
        now = self.wall()
        changed = {k for k, o in incoming.items() if self.objects.get(k) != o} | set(gone)
        for key in changed:
            before, after = self.objects.get(key), incoming.get(key)
            if (before is not None and before.active) or (after is not None and after.active):
                self.last_active[key] = now  # active until (at least) this answer
        for key in gone:
            self.objects.pop(key, None)
            self.last_active.pop(key, None)
        self.objects.update(incoming)
        self.generation = document.generation
        self._answered()
        if changed:
            self.on_change(changed)

    async def report_targets(self, report: TargetsReport) -> str | None:
        """Send `report`; the adapter process that took it, or None: a report based on another
        process was refused (409), or the adapter did not name itself (the next report is complete)."""
        response = await self._client.post("/replicas", json=encode_targets(report))
        if response.status_code == 409 and not report.complete:
            return None
        response.raise_for_status()
        told: str | None = response.headers.get(ADAPTER_HEADER)
        return told

    async def aclose(self) -> None:
        await self._client.aclose()
