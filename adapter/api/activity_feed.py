"""The loopback listener the controller sidecar asks for activity: plain HTTP on 127.0.0.1 only.

The adapter owns scaler connections and the metric cache; the controller must not poll brokers
a second time, so it reads what the store already knows:

    GET  /activity?wait=10        every ScaledObject: per trigger its metric, target, activation,
                                  value, activity, error, failures and read time
    GET  /activity?since=<g>&wait=10
                                  what changed since generation <g> (the `generation` of an
                                  earlier answer): the objects changed and the keys deleted;
                                  with nothing changed the answer waits up to `wait` seconds,
                                  then is 304 (a long poll). A <g> of another process, or older
                                  than the deletions kept, gets the full document.
    GET  /activity/<ns>/<name>    one ScaledObject (`?kind=ScaledJob`: one ScaledJob)
    POST /replicas                {"complete": bool, "items": [{"namespace", "name", "replicas",
                                  "atZero", "native", "zeroFrom", "readyReplicas"}]}: what the
                                  controller knows of the targets: current replica counts (the
                                  currentReplicas* fallback behaviours), ready pods (the fallback
                                  of a Value metric), which are at zero (probed for activity),
                                  which the HPA takes to zero itself and from when their metrics
                                  may be served as 0 (native scale-to-zero); `complete`: every
                                  object, those left out having nothing to report; otherwise
                                  the listed objects change. The answer's X-Eventscale-Adapter
                                  names this process; a report whose `base` names another is
                                  409 (the adapter restarted: send a complete one)
    GET  /healthz

The long poll is why activation is quick: a read that changes a value wakes the controller at
once, so a message is acted on within the trigger's pollingInterval plus a few milliseconds,
and an idle cluster costs one request per `wait`. The generation names this process and a
version; the catalog and the store say which ScaledObjects changed, only those are encoded
again (once per change, whatever the number of readers), and a delta is found by walking the
objects newest first until one is older than `since`: an answer costs what changed, not what
exists. The full document (a first request, a restart) is the encoded objects joined.

Encoding runs in the event loop that also times the scalers' reads, so it yields every
`ENCODE_SLICE` objects: at start-up every object is new, and encoding 100,000 at once held the
loop long enough for reads already sent to outlive their timeout and fail as if the broker had
not answered. One settle runs at a time; an answer waits for the one under way.

ScaledJobs (and 2019 `scaleType: job` ScaledObjects) are in the same document, a ScaledJob
with `"kind": "ScaledJob"`: the controller counts the Jobs to create from the same per-trigger
view.

No authentication: the listener binds loopback, which only the pod's own containers share.
Nothing secret is served (trigger errors are already masked by the scalers).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Generator
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from adapter.catalog.catalog import READERS, Catalog
from adapter.catalog.resolve import ResolvedScaledObject, ResolvedTrigger
from adapter.catalog.scaled_job_triggers import ResolvedScaledJob
from adapter.keda.activity import (
    ADAPTER_HEADER,
    SCALED_OBJECT_KIND,
    Key,
    ObjectActivity,
    ResourceMetric,
    TriggerActivity,
    decode_targets,
    encode_document,
    encode_object,
    object_fields,
    object_key,
    split_key,
)
from adapter.keda.objects import ObjectRef
from adapter.kube.wire import micro_timestamp
from adapter.store import composite
from adapter.store.store import MetricStore

log = logging.getLogger("eventscale.internal")

MAX_WAIT = 60.0
SETTLE = 0.02  # after a change, let the rest of a batch of reads land in the same answer
MIN_TOMBSTONES = 1000  # deletions remembered for deltas, at least; more when there are many objects
ENCODE_SLICE = 500  # objects encoded between yields to the event loop (about 5 ms of work)


@dataclass(slots=True)
class _Encoded:
    version: int  # when it last changed
    body: bytes | None  # None: deleted (a tombstone, kept so deltas can say so)


class ActivityFeed:
    """The activity document by object, its versions, and the long-poll wake-up."""

    def __init__(self, catalog: Catalog, store: MetricStore, *,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.catalog, self.store = catalog, store
        self.clock, self.wall = clock, wall
        self.boot = secrets.token_hex(4)
        self.version = 0
        self.encodings = 0  # objects encoded since start, for tests and benchmarks
        self._objects: OrderedDict[Key, _Encoded] = OrderedDict()  # oldest change first
        self._tombstones = 0
        self._floor = 0  # deltas since a version below this cannot list every deletion
        self._dirty: set[Key] = set(self._known())
        self._changed = asyncio.Event()
        self._settling = asyncio.Lock()
        catalog.subscribe(self._mark)
        store.subscribe(self._mark)

    @property
    def generation(self) -> str:
        """The generation of what is encoded so far (`settled()` first encodes what changed)."""
        return f"{self.boot}-{self.version}"

    def _mark(self, keys: set[Key]) -> None:
        self._dirty |= keys
        self._changed.set()
        self._changed = asyncio.Event()

    def _known(self) -> list[Key]:
        problems = [p.ref for p in self.catalog.problems if p.ref.kind in READERS]
        return [*self.catalog.readers(), *(object_key(r.kind, r.namespace, r.name) for r in problems)]

    async def settled(self) -> str:
        """Encode the objects marked changed, a slice at a time; those that really differ get a
        new version. Returns the generation that includes every change marked before the call."""
        async with self._settling:
            while self._dirty:
                dirty, self._dirty = sorted(self._dirty), set()
                for first in range(0, len(dirty), ENCODE_SLICE):
                    if first:
                        await asyncio.sleep(0)
                    self._encode(dirty[first:first + ENCODE_SLICE])
            self._forget_tombstones()
        return self.generation

    def _encode(self, keys: list[Key]) -> None:
        for key in keys:
            found = self._of_key(key)
            body = encode_object(found) if found is not None else None
            old = self._objects.get(key)
            if (old is not None and old.body == body) or (old is None and body is None):
                continue
            self.encodings += body is not None
            self.version += 1
            self._tombstones += (body is None) - (old is not None and old.body is None)
            self._objects[key] = _Encoded(self.version, body)
            self._objects.move_to_end(key)

    def _forget_tombstones(self) -> None:
        if self._tombstones <= max(MIN_TOMBSTONES, len(self._objects) // 10):
            return
        for key, encoded in list(self._objects.items()):
            if encoded.body is None:
                del self._objects[key]
                self._floor = max(self._floor, encoded.version)
        self._tombstones = 0

    def _since(self, generation: str | None) -> int | None:
        """The version a reader's generation names, if a delta from it can be answered."""
        boot, _, version = (generation or "").partition("-")
        if boot != self.boot or not version.isdigit() or not self._floor <= int(version) <= self.version:
            return None
        return int(version)

    async def wait(self, generation: str | None, timeout: float) -> None:
        """Return when something changed since `generation`, or after `timeout` seconds."""
        deadline = self.clock() + timeout
        while await self.settled() == generation:
            changed = self._changed
            remaining = deadline - self.clock()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await changed.wait()
                    await asyncio.sleep(SETTLE)

    async def document(self, since: str | None = None) -> bytes:
        """The full document, or the delta since `since` when it can be answered."""
        generation = await self.settled()
        version = self._since(since)
        if version is None:
            return encode_document(generation, True, (e.body for e in self._objects.values() if e.body is not None))
        changed: list[tuple[Key, _Encoded]] = []
        for key, encoded in reversed(self._objects.items()):
            if encoded.version <= version:
                break
            changed.append((key, encoded))
        changed.reverse()
        return encode_document(generation, False, (e.body for _, e in changed if e.body is not None),
                               [k for k, e in changed if e.body is None])

    def one(self, namespace: str, name: str, kind: str = SCALED_OBJECT_KIND) -> ObjectActivity | None:
        key = object_key(kind, namespace, name)
        resolved = self.catalog.scaled_object(*key) if kind == SCALED_OBJECT_KIND else None
        if resolved is not None:
            return self._resolved(resolved)
        job = self.catalog.scaled_job(key)
        if job is not None:
            return self._resolved_job(job)
        message = self.catalog.problem(ObjectRef(kind, namespace, name))
        return self._invalid(kind, namespace, name, message) if message is not None else None

    def _of_key(self, key: Key) -> ObjectActivity | None:
        kind, namespace, name = split_key(key)
        return self.one(namespace, name, kind)

    def _resolved(self, resolved: ResolvedScaledObject) -> ObjectActivity:
        so = resolved.so
        return ObjectActivity(namespace=so.namespace, name=so.name, api_version=so.api_version, uid=so.uid,
                              generation=so.generation, error=resolved.error,
                              triggers=tuple(self._trigger(t) for t in resolved.triggers),
                              composite=composite.activity(resolved, self.store))

    def _resolved_job(self, resolved: ResolvedScaledJob) -> ObjectActivity:
        job = resolved.job
        return ObjectActivity(namespace=job.namespace, name=job.name, api_version=job.api_version, uid=job.uid,
                              generation=job.generation, error=resolved.error, kind=job.kind,
                              triggers=tuple(self._trigger(t) for t in resolved.triggers))

    def _invalid(self, kind: str, namespace: str, name: str, message: str) -> ObjectActivity:
        api_version, uid, generation = self.catalog.identity(kind, namespace, name)
        return ObjectActivity(namespace=namespace, name=name, api_version=api_version, uid=uid, kind=kind,
                              generation=generation, error=message, triggers=())

    def _trigger(self, trigger: ResolvedTrigger) -> TriggerActivity:
        spec, metric = trigger.spec, trigger.metric
        resource = metric.resource if metric else None
        found = TriggerActivity(
            index=spec.index, type=spec.type, name=spec.name, metric_name=trigger.metric_name,
            metric_type=spec.metric_type, target=metric.target if metric else None,
            activation=metric.activation if metric else None, resolved=trigger.error is None,
            value=None, active=False, error=trigger.error, failures=0, fallback=False,
            resource=ResourceMetric(resource.resource, resource.target_type, resource.value, resource.container)
            if resource else None,
        )
        entry = self.store.entry(trigger.key) if trigger.error is None else None
        if entry is None or entry.read_at == float("-inf"):
            return found
        read_at = micro_timestamp(self.wall() - (self.clock() - entry.read_at))
        return dataclasses.replace(found, value=entry.value, active=entry.active, error=entry.error,
                                   failures=entry.consecutive_failures, fallback=entry.in_fallback, read_at=read_at)


def build_internal_app(feed: ActivityFeed) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/activity")
    async def activity(since: str | None = None, wait: float = 0.0) -> Response:
        if since is not None:
            await feed.wait(since, min(max(wait, 0.0), MAX_WAIT))
            if await feed.settled() == since:
                return Response(status_code=304)
        return Response(await feed.document(since), media_type="application/json")

    @app.get("/activity/{namespace}/{name}")
    async def one(namespace: str, name: str, kind: str = SCALED_OBJECT_KIND) -> Response:
        found = feed.one(namespace, name, kind) if kind in READERS else None
        if found is None:
            return Response(json.dumps({"error": f"{kind} {namespace}/{name} is not known"}), 404,
                            media_type="application/json")
        return Response(json.dumps(object_fields(found)), media_type="application/json")

    @app.post("/replicas")
    async def replicas(request: Request) -> Response:
        try:
            report = decode_targets(json.loads(await request.body()))
        except ValueError as exc:  # json.JSONDecodeError is one
            message = ('expected {"items": [{"namespace", "name", "replicas", "atZero", "native", "zeroFrom", '
                       f'"readyReplicas"}}]}}: {exc}')
            return Response(json.dumps({"error": message}), 400, media_type="application/json")
        headers = {ADAPTER_HEADER: feed.boot}
        if report.base is not None and report.base != feed.boot and not report.complete:
            message = "the report changes what another adapter process was told: send a complete one"
            return Response(json.dumps({"error": message}), 409, headers, media_type="application/json")
        feed.store.set_targets(report)
        return Response(status_code=204, headers=headers)

    return app


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the main (TLS) server's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class InternalListener:
    """The listener's life: started beside the TLS server, stopped before it returns.

    A port already taken is logged and the adapter serves on without it (metrics matter more
    than the sidecar's view), rather than uvicorn's exit on a failed bind.
    """

    def __init__(self, feed: ActivityFeed, port: int) -> None:
        self.port = port
        config = uvicorn.Config(build_internal_app(feed), lifespan="off", access_log=False, log_config=None,
                                timeout_keep_alive=int(MAX_WAIT) + 30, timeout_graceful_shutdown=1)
        self.server = _QuietServer(config)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self.port))
        except OSError as exc:
            sock.close()
            log.error("internal listener on 127.0.0.1:%d not started: %s", self.port, exc)
            return
        self.port = sock.getsockname()[1]
        self.task = asyncio.create_task(self.server.serve(sockets=[sock]), name="internal-listener")
        log.info("internal=http://127.0.0.1:%d", self.port)

    async def stop(self) -> None:
        if self.task is not None:
            self.server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
