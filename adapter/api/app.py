"""The ASGI application: authentication, authorization, and the metric GET hot path.

Every request but a health probe is authenticated first (a 401 otherwise). A metric GET
(`/apis/external.metrics.k8s.io/v1beta1/namespaces/<ns>/<metric>?labelSelector=...`) is then
answered here without a framework: authorize, parse (cached) the selector, find the
ScaledObject by the requirement the HPA sends, find the trigger by case-insensitive metric name,
and send the bytes the metric store rendered when the value last changed. Everything else goes
to the FastAPI routes in `routes`.

This module reads the catalog and the store; it never talks to a
scaler.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs

from adapter.auth.authentication import Authenticator
from adapter.auth.authorization import Authorizer, NonResourceAttributes, ResourceAttributes
from adapter.catalog.catalog import Catalog
from adapter.keda.names import LEGACY_ROUTE_LABEL, SCALED_OBJECT_LABEL
from adapter.keda.objects import ObjectRef
from adapter.kube.selectors import SelectorError, parse_selector
from adapter.kube.wire import EXTERNAL_METRICS_GROUP_VERSION, ApiError, internal_error
from adapter.store.store import MetricStore

log = logging.getLogger("eventscale.api")

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]
Send = Callable[[Any], Awaitable[None]]

METRICS_PREFIX = f"/apis/{EXTERNAL_METRICS_GROUP_VERSION}/namespaces/"
HEALTH_PATHS = ("/healthz", "/livez", "/readyz")




MAX_CACHED_QUERY = 1024  # bytes: the HPA's query strings are short; longer ones are parsed every time


def route_of(query_string: bytes) -> tuple[str, str]:
    """(label, value) naming the ScaledObject, from the raw query string.

    Cached per string, for strings of at most `MAX_CACHED_QUERY` bytes: the cache then holds at
    most 4 MiB of keys, however many distinct long query strings clients send.
    """
    if len(query_string) > MAX_CACHED_QUERY:
        return _route_of(query_string)
    return _cached_route_of(query_string)


def _route_of(query_string: bytes) -> tuple[str, str]:
    values = parse_qs(query_string.decode("latin-1"), keep_blank_values=True).get("labelSelector", [""])
    try:
        selector = parse_selector(values[0])
    except SelectorError as exc:
        raise ApiError(400, f"invalid labelSelector {values[0]!r}: {exc}") from None
    for label in (SCALED_OBJECT_LABEL, LEGACY_ROUTE_LABEL):
        value = selector.exact_match(label)
        if value is not None:
            return label, value
    raise ApiError(
        400,
        f"labelSelector {values[0]!r} does not name a ScaledObject: "
        f"expected {SCALED_OBJECT_LABEL}=<name> (or {LEGACY_ROUTE_LABEL}=<deployment> for keda.k8s.io objects)",
    )


_cached_route_of = lru_cache(maxsize=4096)(_route_of)


class AdapterApp:
    def __init__(self, routes: ASGIApp, catalog: Catalog, store: MetricStore,
                 authenticator: Authenticator, authorizer: Authorizer) -> None:
        self.routes = routes
        self.catalog = catalog
        self.store = store
        self.authenticator = authenticator
        self.authorizer = authorizer

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Send) -> None:
        if scope["type"] != "http":  # no websocket or other protocol: nothing is served without HTTP auth
            return await refuse_other_protocols(scope, send)
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            scope["path"] = path = path.rstrip("/") or "/"
        if path.startswith(HEALTH_PATHS):
            return await self.routes(scope, receive, send)
        try:
            user = await self.authenticator.authenticate(scope)
            if path.startswith(METRICS_PREFIX) and path.count("/") == 6:
                _, _, _, _, _, namespace, metric = path.split("/")
                if scope["method"] != "GET":
                    raise ApiError(405, f"method {scope['method']} is not allowed on external metrics",
                                   headers={"Allow": "GET"})
                await self.authorizer.authorize(user, ResourceAttributes(namespace, metric))
                status, body = await self.metric(namespace, metric, scope["query_string"])
            else:
                await self.authorizer.authorize(user, NonResourceAttributes(path, scope["method"].lower()))
                return await self.routes(scope, receive, send)
        except ApiError as exc:
            if exc.code >= 500:
                log.warning("path=%s status=%d message=%r", path, exc.code, exc.message)
            return await send_json(send, exc.code, exc.body(), {k.lower().encode(): v.encode()
                                                                 for k, v in exc.headers.items()})
        await send_json(send, status, body)

    async def metric(self, namespace: str, metric: str, query_string: bytes) -> tuple[int, bytes]:
        label, value = route_of(query_string)
        resolved = self.catalog.route(namespace, label, value)
        if resolved is None:
            raise self._missing_scaled_object(namespace, label, value)
        trigger = resolved.by_metric.get(metric.lower())
        if trigger is None:
            errors = "; ".join(resolved.trigger_errors)
            raise ApiError(404, f'external metric "{metric}" not found for ScaledObject {namespace}/{resolved.so.name}'
                           + (f" (trigger errors: {errors})" if errors else ""))
        answer = await self.store.answer(trigger.key)
        if answer is None:  # the catalog changed while we waited
            raise ApiError(404, f'external metric "{metric}" not found for ScaledObject {namespace}/{resolved.so.name}')
        return answer

    def _missing_scaled_object(self, namespace: str, label: str, value: str) -> ApiError:
        if label == SCALED_OBJECT_LABEL:
            problem = self.catalog.problem(ObjectRef("ScaledObject", namespace, value))
            if problem is not None:
                return internal_error(f"ScaledObject {namespace}/{value} is not valid: {problem}")
            return ApiError(404, f'ScaledObject "{value}" not found in namespace "{namespace}"')
        return ApiError(404, f'no keda.k8s.io ScaledObject for deployment "{value}" in namespace "{namespace}"')


async def refuse_other_protocols(scope: dict[str, Any], send: Send) -> None:
    """Close a websocket before it is accepted (uvicorn answers the handshake 403); ignore other scopes."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})


_JSON_HEADERS = [(b"content-type", b"application/json")]


async def send_json(send: Send, status: int, body: bytes, headers: Mapping[bytes, bytes] | None = None) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode()), *(headers or {}).items()],
    })
    await send({"type": "http.response.body", "body": body})
