"""List, then watch, one kind of object, for as long as the process runs (a small informer).

A `Reflector` lists its resource in pages, hands the complete set to its sink, then watches
from the list's resourceVersion with bookmarks on, handing each event over. When the server
ends a watch (`timeoutSeconds`, 5 to 10 minutes) it watches again from the last version seen.
A list is read in pages; should a page's continue token expire (etcd compacted past the list's
version, as happens when a list of 100,000 objects outlasts the compaction window on a busy
server), the list is read again in one request, which cannot expire, rather than page by page
from the start without end, as client-go's pager falls back to a full list.
A 410 Gone (the version was compacted away) means list again; so does the periodic resync,
which makes events lost to any bug or network partition heal within `resync` seconds. Errors
back off exponentially (0.5 s to 30 s, with jitter). A resource the server does not know (404:
its CRD is not installed) counts as listed and empty, and is looked for again every 30 s.

Everything runs on the event loop: the sink is called synchronously between awaits, so it
never races with the catalog's readers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import httpx

from adapter.kube.client import ApiStatusError, KubeApi, Object
from adapter.kube.glibc import GLIBC
from adapter.kube.resources import Resource

log = logging.getLogger("eventscale.watch")

T = TypeVar("T")
WHOLE_LIST_TIMEOUT = 300.0  # seconds for a list in one request (a page's continuation expired)
Transform = Callable[[Object], T]  # what a sink keeps of each object, made as the object arrives


class Sink(Protocol[T]):
    def listed(self, resource: Resource, objects: list[T]) -> None:
        """The complete current set (first list, relist after 410 or resync)."""

    def changed(self, resource: Resource, obj: T, deleted: bool) -> None:
        """One watch event."""


class Gone(Exception):
    """The resourceVersion we watch from is too old: list again."""


class Absent(Exception):
    """The server does not serve this resource (404)."""


class Backoff:
    def __init__(self, first: float = 0.5, limit: float = 30.0) -> None:
        self.first, self.limit, self.delay = first, limit, first

    def next(self) -> float:
        delay, self.delay = self.delay, min(self.delay * 2, self.limit)
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self.delay = self.first


class Reflector(Generic[T]):
    def __init__(self, api: KubeApi, resource: Resource, sink: Sink[T], transform: Transform[T], *,
                 page_size: int = 500, watch_timeout: tuple[int, int] = (300, 600),
                 resync: float = 1800.0, absent_retry: float = 30.0, resume_from: str | None = None) -> None:
        self.api, self.resource, self.sink, self.transform = api, resource, sink, transform
        self.page_size, self.watch_timeout = page_size, watch_timeout
        self.resync, self.absent_retry = resync, absent_retry
        self.listed = asyncio.Event()  # set after the first complete list
        self.resource_version = resume_from  # watch from here first, without listing (410: list)
        self.lists = 0
        self._listed_at = time.monotonic() if resume_from else 0.0
        self._absent = False
        self._backoff = Backoff()

    async def run(self) -> None:
        while True:
            try:
                if self.resource_version is None or time.monotonic() - self._listed_at > self.resync:
                    await self._list()
                started = time.monotonic()
                if not await self._watch() and time.monotonic() - started < 1.0:
                    await self._back_off(EOFError("watch closed at once"))  # never spin on a closing proxy
            except Gone:
                log.info("resource=%s resourceVersion=%s expired; listing again", self.resource,
                         self.resource_version)
                self.resource_version = None
            except Absent:
                await self._absent_for_now()
            except (httpx.HTTPError, ApiStatusError) as exc:
                await self._back_off(exc)
            except Exception as exc:  # a malformed event or a bug must not end watching
                log.exception("resource=%s unexpected error", self.resource)
                await self._back_off(exc)

    async def _back_off(self, exc: BaseException) -> None:
        delay = self._backoff.next()
        log.warning("resource=%s error=%r retry_in=%.1fs", self.resource, _describe(exc), delay)
        await asyncio.sleep(delay)

    def _params(self) -> dict[str, str]:
        selectors = {"fieldSelector": self.resource.field_selector, "labelSelector": self.resource.label_selector}
        return {k: v for k, v in selectors.items() if v}

    async def _list(self) -> None:
        objects: list[T] = []

        def keep(raw: Object) -> None:  # each item as it is decoded: a page is never whole in memory
            objects.append(self._transform(raw))

        params = {**self._params(), "limit": str(self.page_size)}
        while True:
            whole = "limit" not in params  # 100,000 objects at once take minutes on a busy server
            try:
                page = await self._call(self.api.get_list(self.resource.path, params, keep,
                                                          read_timeout=WHOLE_LIST_TIMEOUT if whole else None))
            except Gone:
                if "continue" not in params:
                    raise
                log.info("resource=%s list continuation expired after %d objects; listing all at once",
                         self.resource, len(objects))
                objects.clear()
                params = self._params()  # one request: nothing left to expire
                continue
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                break
            params["continue"] = str(meta["continue"])
        self.resource_version = str(meta["resourceVersion"])
        self._listed_at = time.monotonic()
        self.lists += 1
        if self._absent:
            log.info("resource=%s is served now", self.resource)
            self._absent = False
        self.sink.listed(self.resource, objects)
        self.listed.set()
        GLIBC.trim_soon(asyncio.get_running_loop())  # the decoded pages are free now: give them back

    async def _watch(self) -> int:
        """Watch until the server ends the request; return the number of events seen."""
        timeout = random.randint(*self.watch_timeout)
        seen = 0
        params = {**self._params(), "resourceVersion": str(self.resource_version),
                  "allowWatchBookmarks": "true", "timeoutSeconds": str(timeout)}
        async for event in self._events(params, timeout):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                code = int(obj.get("code") or 500)
                raise Gone() if code == 410 else ApiStatusError(code, str(obj.get("message")), str(obj.get("reason")))
            self.resource_version = str(obj["metadata"]["resourceVersion"])
            self._backoff.reset()
            seen += 1
            if kind != "BOOKMARK":
                self.sink.changed(self.resource, self._transform(obj), kind == "DELETED")
        return seen

    async def _events(self, params: dict[str, str], timeout: int) -> AsyncIterator[Object]:
        try:
            async for event in self.api.watch(self.resource.path, params, timeout):
                yield event
        except ApiStatusError as exc:
            raise _classify(exc) from None

    async def _call(self, call: Awaitable[Object]) -> Object:
        try:
            return await call
        except ApiStatusError as exc:
            raise _classify(exc) from None

    def _transform(self, raw: Object) -> T:
        raw.setdefault("kind", self.resource.kind)  # list items of built-in kinds carry neither
        raw.setdefault("apiVersion", self.resource.api_version)
        return self.transform(raw)

    async def _absent_for_now(self) -> None:
        if not self._absent:
            log.info("resource=%s is not served (CRD not installed?); looking again every %.0fs",
                     self.resource, self.absent_retry)
            self._absent = True
        self.resource_version = None
        self.sink.listed(self.resource, [])
        self.listed.set()
        await asyncio.sleep(self.absent_retry)


def all_listed(reflectors: Sequence[Reflector[Any]]) -> bool:
    """Every reflector has listed once."""
    return all(reflector.listed.is_set() for reflector in reflectors)


async def run_reflectors(reflectors: Sequence[Reflector[Any]]) -> None:
    """Run them all, each a task named after its resource, until cancelled (or one fails)."""
    async with asyncio.TaskGroup() as group:
        for reflector in reflectors:
            group.create_task(reflector.run(), name=f"watch-{reflector.resource}")


def _classify(exc: ApiStatusError) -> Exception:
    if exc.code == 410:
        return Gone()
    if exc.code == 404:
        return Absent()
    return exc


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
