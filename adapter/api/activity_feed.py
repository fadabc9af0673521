"""The loopback listener the controller sidecar asks for activity: plain HTTP on 127.0.0.1 only.

The adapter owns scaler connections and the metric cache; the controller must not poll brokers
a second time, so it reads what the store already knows:

    GET  /activity?wait=10        every ScaledObject: per trigger its metric, target, activation,
                                  value, activity, error, failures and read time; with
                                  `If-None-Match: <etag>` the answer waits up to `wait` seconds
                                  for a change, then is 304 (a long poll)
    GET  /activity/<ns>/<name>    one ScaledObject
    POST /replicas                {"items": [{"namespace", "name", "replicas"}]}: current replica
                                  counts for the currentReplicas* fallback behaviours
    GET  /healthz

The long poll is why activation is quick: a read that changes a value wakes the controller at
once, so a message is acted on within the trigger's pollingInterval plus a few milliseconds,
and an idle cluster costs one request per `wait`. The ETag names this process (a restarted
adapter never answers 304 to an old tag) and a version bumped on every catalog change and
every read that changed something; the document is rendered once per version.

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
from collections.abc import Callable, Generator, Iterable

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from adapter.catalog.catalog import Catalog
from adapter.catalog.resolve import ResolvedScaledObject, ResolvedTrigger
from adapter.keda.activity import (
    ObjectActivity,
    ResourceMetric,
    TriggerActivity,
    decode_replicas,
    encode_document,
    object_fields,
)
from adapter.keda.objects import ObjectRef
from adapter.kube.wire import micro_timestamp
from adapter.store.store import MetricEntry, MetricStore

log = logging.getLogger("eventscale.internal")

MAX_WAIT = 60.0
SETTLE = 0.02  # after a change, let the rest of a batch of reads land in the same answer





class ActivityFeed:
    """The activity document, its version, and the long-poll wake-up."""

    def __init__(self, catalog: Catalog, store: MetricStore, *,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.catalog, self.store = catalog, store
        self.clock, self.wall = clock, wall
        self.boot = secrets.token_hex(4)
        self.version = 0
        self._changed = asyncio.Event()
        self._rendered: tuple[int, bytes] = (-1, b"")
        catalog.subscribe(self.bump)
        store.subscribe(self.bump)

    @property
    def etag(self) -> str:
        return f'"{self.boot}-{self.version}"'

    def bump(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, etag: str | None, timeout: float) -> None:
        """Return when the document differs from `etag`, or after `timeout` seconds."""
        if etag != self.etag:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._changed.wait()
                await asyncio.sleep(SETTLE)

    def document(self) -> bytes:
        if self._rendered[0] != self.version:
            self._rendered = (self.version, encode_document(self.etag.strip('"'), self._objects()))
        return self._rendered[1]

    def one(self, namespace: str, name: str) -> ObjectActivity | None:
        resolved = self.catalog.scaled_object(namespace, name)
        if resolved is not None:
            return self._resolved(resolved)
        message = self.catalog.problem(ObjectRef("ScaledObject", namespace, name))
        return self._invalid(namespace, name, message) if message is not None else None

    def _objects(self) -> Iterable[ObjectActivity]:
        seen: set[tuple[str, str]] = set()
        for resolved in self.catalog.scaled_objects():
            seen.add((resolved.so.namespace, resolved.so.name))
            yield self._resolved(resolved)
        for problem in self.catalog.problems:
            ref = problem.ref
            if ref.kind == "ScaledObject" and (ref.namespace, ref.name) not in seen:
                yield self._invalid(ref.namespace, ref.name, problem.message)

    def _resolved(self, resolved: ResolvedScaledObject) -> ObjectActivity:
        so = resolved.so
        return ObjectActivity(namespace=so.namespace, name=so.name, api_version=so.api_version, uid=so.uid,
                              generation=so.generation, error=resolved.error,
                              triggers=tuple(self._trigger(t) for t in resolved.triggers))

    def _invalid(self, namespace: str, name: str, message: str) -> ObjectActivity:
        raw = self.catalog.get("ScaledObject", namespace, name) or {}
        meta = raw.get("metadata") or {}
        generation = meta.get("generation", 0)
        return ObjectActivity(namespace=namespace, name=name, api_version=str(raw.get("apiVersion") or ""),
                              uid=str(meta.get("uid") or ""),
                              generation=generation if isinstance(generation, int) else 0,
                              error=message, triggers=())

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
        entry: MetricEntry | None = self.store.entry(trigger.key) if trigger.error is None else None
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
    async def activity(request: Request, wait: float = 0.0) -> Response:
        await feed.wait(request.headers.get("if-none-match"), min(max(wait, 0.0), MAX_WAIT))
        headers = {"ETag": feed.etag}
        if request.headers.get("if-none-match") == feed.etag:
            return Response(status_code=304, headers=headers)
        return Response(feed.document(), media_type="application/json", headers=headers)

    @app.get("/activity/{namespace}/{name}")
    async def one(namespace: str, name: str) -> Response:
        found = feed.one(namespace, name)
        if found is None:
            return Response(json.dumps({"error": f"ScaledObject {namespace}/{name} is not known"}), 404,
                            media_type="application/json")
        return Response(json.dumps(object_fields(found)), media_type="application/json")

    @app.post("/replicas")
    async def replicas(request: Request) -> Response:
        try:
            counts = decode_replicas(json.loads(await request.body()))
        except ValueError as exc:  # json.JSONDecodeError is one
            message = f'expected {{"items": [{{"namespace", "name", "replicas"}}]}}: {exc}'
            return Response(json.dumps({"error": message}), 400, media_type="application/json")
        for count in counts:
            feed.store.set_current_replicas(count.namespace, count.name, count.replicas)
        return Response(status_code=204)

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
