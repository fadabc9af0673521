"""The counts an interceptor pushes to the adapter, defined once for both ends.

    POST /interceptor/counts
    {"interceptor": "interceptor-7d9f-abc12", "sequence": 41, "ttl": 3.0,
     "routes": [{"namespace": "shop", "scaledObject": "web", "hosts": ["shop.example.com"],
                 "pathPrefixes": ["/"], "pending": 12, "held": 0, "rate": 35.5}]}

One report holds every route the interceptor serves, so the cost is one request per push
interval per interceptor replica, whatever the number of ScaledObjects. `pending` counts the
requests in the interceptor (held or forwarded, not yet answered), `held` those of them waiting
for a ready endpoint, `rate` the requests per second over the route's window. A report stands
for `ttl` seconds: an interceptor that stops pushing stops counting after that, so a dead
replica cannot hold a workload up. Reports from one interceptor carry a rising `sequence`; an
older one arriving late is ignored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scalers.http.http_trigger_config import RouteKey

MAX_REPORT_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class RouteCounts:
    """One route's figures in a report: requests in the interceptor, those held, the rate."""

    route: RouteKey
    pending: int = 0
    held: int = 0
    rate: float = 0.0


@dataclass(frozen=True)
class CountsReport:
    """One push of one interceptor: every route it serves, valid for `ttl` seconds; a higher
    `sequence` of the same interceptor replaces a lower one."""

    interceptor: str
    sequence: int
    ttl: float
    routes: tuple[RouteCounts, ...]


def encode_report(report: CountsReport) -> bytes:
    routes = [{"namespace": c.route.namespace, "scaledObject": c.route.scaled_object, "hosts": list(c.route.hosts),
               "pathPrefixes": list(c.route.path_prefixes), "pending": c.pending, "held": c.held,
               "rate": round(c.rate, 3)} for c in report.routes]
    body = {"interceptor": report.interceptor, "sequence": report.sequence, "ttl": report.ttl, "routes": routes}
    return json.dumps(body, separators=(",", ":")).encode()


def _field(raw: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"{key} must be a {getattr(kind, '__name__', 'number')}")
    return value


def _count(raw: Mapping[str, Any], key: str) -> int:
    value: int = _field(raw, key, int)
    if value < 0:
        raise ValueError(f"{key} must not be negative")
    return value


def _strings(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key} must be a list of strings")
    return tuple(value)


def _route(raw: Any) -> RouteCounts:
    if not isinstance(raw, Mapping):
        raise ValueError("each route must be an object")
    key = RouteKey(_field(raw, "namespace", str), _field(raw, "scaledObject", str), _strings(raw, "hosts"),
                   _strings(raw, "pathPrefixes"))
    rate = float(_field(raw, "rate", (int, float)))
    if not math.isfinite(rate) or rate < 0:
        raise ValueError("rate must be a finite number, not negative")
    return RouteCounts(key, _count(raw, "pending"), _count(raw, "held"), rate)


def decode_report(body: bytes) -> CountsReport:
    """The report in `body`; `ValueError` naming the field that is wrong."""
    if len(body) > MAX_REPORT_BYTES:
        raise ValueError(f"report larger than {MAX_REPORT_BYTES} bytes")
    raw = json.loads(body)
    if not isinstance(raw, Mapping):
        raise ValueError("the report must be an object")
    ttl = float(_field(raw, "ttl", (int, float)))
    if not math.isfinite(ttl) or not 0 < ttl <= 3600:
        raise ValueError("ttl must be between 0 and 3600 seconds")
    routes = raw.get("routes")
    if not isinstance(routes, list):
        raise ValueError("routes must be a list")
    interceptor = _field(raw, "interceptor", str)
    if not interceptor:
        raise ValueError("interceptor must not be empty")
    return CountsReport(interceptor, _count(raw, "sequence"), ttl, tuple(_route(r) for r in routes))
