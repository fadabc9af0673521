"""Which workload a request is for: routes from `http` triggers, matched by host and path prefix.

Every ScaledObject trigger of type `http` is one route (HTTPScaledObjects become ScaledObjects
first, see `adapter.keda.http_scaled_object`). A request matches the route with the most
specific host (exact, then the longest `*.domain`, then any host) and, among those, the longest
path prefix; prefixes match whole segments (`/api` matches `/api` and `/api/x`, not `/apix`).
Two routes claiming the same host and prefix: the older ScaledObject keeps it, and the other is
reported as a conflict (logged) for that host and prefix.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from adapter.keda.objects import InvalidObject, parse_scaled_object
from adapter.kube.endpoints import ServiceKey
from scalers.http.http_trigger_config import HttpTriggerConfig, RouteKey, parse_config
from scalers.params import ParameterError, TriggerParams

log = logging.getLogger("eventscale.interceptor.routes")


@dataclass(frozen=True)
class HoldBounds:
    """How many requests of one route may wait for an endpoint, and for how long."""

    limit: int = 1000
    timeout: float = 30.0


@dataclass(frozen=True)
class Route:
    """What the interceptor knows of one HTTP ScaledObject: where its requests go, how many may
    wait and for how long, and the window its request rate is counted over."""

    key: RouteKey
    service: ServiceKey
    port: str  # Service port number or name
    bounds: HoldBounds
    window: float  # seconds of the request-rate window
    granularity: float
    created: str = ""  # the ScaledObject's creationTimestamp: the older wins a conflict

    def __str__(self) -> str:
        return f"{self.key.namespace}/{self.key.scaled_object}"


def route_of(config: HttpTriggerConfig, target: str, defaults: HoldBounds, created: str = "") -> Route:
    bounds = HoldBounds(defaults.limit if config.hold_limit is None else config.hold_limit,
                        defaults.timeout if config.hold_timeout is None else config.hold_timeout)
    return Route(config.route, (config.route.namespace, config.service or target), config.port, bounds,
                 config.window, config.granularity, created)


def routes_of(raw: Mapping[str, Any], defaults: HoldBounds) -> list[Route]:
    """The routes of one raw ScaledObject; `ValueError` (with the reason) if it cannot be read."""
    try:
        so = parse_scaled_object(raw)
        routes = []
        for trigger in so.triggers:
            if trigger.type == "http":
                params = TriggerParams(trigger.metadata, namespace=so.namespace, scaled_object=so.name)
                routes.append(route_of(parse_config(params), so.target.name, defaults, so.creation_timestamp))
        return routes
    except (InvalidObject, ParameterError) as exc:
        raise ValueError(str(exc)) from None


def _prefix_matches(prefix: str, path: str) -> bool:
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


class RouteTable:
    """Routes indexed by host; `match` is a dictionary lookup and a short scan of prefixes."""

    def __init__(self, routes: Iterable[Route] = ()) -> None:
        self.routes: tuple[Route, ...] = tuple(sorted(routes, key=lambda r: (r.created, str(r))))
        self.conflicts: list[str] = []
        claimed: dict[tuple[str, str], Route] = {}
        self._exact: dict[str, list[tuple[str, Route]]] = {}
        self._wildcard: list[tuple[str, list[tuple[str, Route]]]] = []
        self._any: list[tuple[str, Route]] = []
        wildcards: dict[str, list[tuple[str, Route]]] = {}
        for route in self.routes:
            for host in route.key.hosts or ("*",):
                for prefix in route.key.path_prefixes:
                    winner = claimed.setdefault((host, prefix), route)
                    if winner is not route:
                        self.conflicts.append(f"{route} loses host {host} path {prefix} to {winner}")
                        continue
                    if host == "*":
                        bucket = self._any
                    elif host.startswith("*."):
                        bucket = wildcards.setdefault(host[1:], [])
                    else:
                        bucket = self._exact.setdefault(host, [])
                    bucket.append((prefix, route))
        for bucket in [*self._exact.values(), *wildcards.values(), self._any]:
            bucket.sort(key=lambda item: len(item[0]), reverse=True)
        self._wildcard = sorted(wildcards.items(), key=lambda item: len(item[0]), reverse=True)
        for conflict in self.conflicts:
            log.warning("route conflict: %s", conflict)

    def match(self, host: str, path: str) -> Route | None:
        exact = self._exact.get(host)
        if exact is not None:
            found = _first(exact, path)
            if found is not None:
                return found
        for suffix, bucket in self._wildcard:
            if host.endswith(suffix):
                found = _first(bucket, path)
                if found is not None:
                    return found
        return _first(self._any, path)

    def services(self) -> set[ServiceKey]:
        return {route.service for route in self.routes}


def _first(bucket: list[tuple[str, Route]], path: str) -> Route | None:
    for prefix, route in bucket:
        if _prefix_matches(prefix, path):
            return route
    return None
