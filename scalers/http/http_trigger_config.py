"""The `http` trigger's parameters, parsed once for the two processes that read them.

The adapter's scaler reads the trigger for its metric (pending requests or request rate) and
the interceptor reads the same trigger for its route (hosts, path prefixes, Service and port)
and its bounds on held requests. Both call `parse_config`, so a route and the metric it feeds
cannot disagree about which requests they mean: the interceptor reports counts under
`HttpTriggerConfig.route`, and the scaler looks them up under the same key.

    triggers:
      - type: http
        metadata:
          hosts: shop.example.com,www.shop.example.com   # optional: any host when empty or "*"
          pathPrefixes: /api,/cart                        # optional: "/" (everything)
          service: shop                                   # optional: the scale target's name
          port: "8080"                                    # the Service port, a number or a name
          targetPendingRequests: "100"                    # or targetRequestRate (+ window, granularity)
          activationValue: "0"
          holdTimeout: 30s                                # how long a request may wait for an endpoint
          holdLimit: "1000"                               # requests held at once before 503
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scalers.params import ParameterError, TriggerParams, param, parse_params
from scalers.sources import METADATA_ONLY

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_HOST = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
ANY_HOST = "*"


@dataclass(frozen=True)
class RouteKey:
    """Which requests a trigger counts: its ScaledObject, hosts and path prefixes (both sorted)."""

    namespace: str
    scaled_object: str
    hosts: tuple[str, ...]
    path_prefixes: tuple[str, ...]

    def __str__(self) -> str:
        hosts = ",".join(self.hosts) or ANY_HOST
        return f"{self.namespace}/{self.scaled_object} {hosts} {','.join(self.path_prefixes)}"


@dataclass(frozen=True, kw_only=True)
class _RawHttpConfig:
    hosts: str = param("hosts", default="", sources=METADATA_ONLY)
    path_prefixes: str = param("pathPrefixes", default="/", sources=METADATA_ONLY)
    service: str | None = param("service", sources=METADATA_ONLY)
    port: str = param("port", required=True, sources=METADATA_ONLY)
    target_pending_requests: float | None = param("targetPendingRequests", sources=METADATA_ONLY)
    target_request_rate: float | None = param("targetRequestRate", sources=METADATA_ONLY)
    window: str = param("window", default="1m", sources=METADATA_ONLY)
    granularity: str = param("granularity", default="1s", sources=METADATA_ONLY)
    activation_value: float = param("activationValue", default=0.0, sources=METADATA_ONLY)
    hold_timeout: str | None = param("holdTimeout", sources=METADATA_ONLY)
    hold_limit: int | None = param("holdLimit", sources=METADATA_ONLY)


@dataclass(frozen=True, kw_only=True)
class HttpTriggerConfig:
    route: RouteKey
    service: str | None  # None: the scale target's name (the interceptor knows it)
    port: str  # a Service port number or name
    metric: str  # "concurrency" (pending requests) or "requestRate"
    target: float
    window: float  # seconds, for requestRate
    granularity: float  # seconds, the width of one counting bucket
    activation_value: float = 0.0
    hold_timeout: float | None = None  # None: the interceptor's default
    hold_limit: int | None = None

    @property
    def hosts(self) -> tuple[str, ...]:
        return self.route.hosts

    @property
    def path_prefixes(self) -> tuple[str, ...]:
        return self.route.path_prefixes


def parse_duration(key: str, raw: str) -> float:
    """Seconds from a Go-style duration ("1m", "1m30s", "500ms") or a plain number of seconds."""
    text = raw.strip()
    try:
        seconds = float(text)
    except ValueError:
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ParameterError(f'parameter "{key}" value "{raw}" is not a duration (e.g. 30s, 1m, 500ms)') from None
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0 or seconds != seconds or seconds == float("inf"):
        raise ParameterError(f'parameter "{key}" value "{raw}" must be a positive duration')
    return seconds


def parse_hosts(raw: str) -> tuple[str, ...]:
    """Lower-cased, sorted, without duplicates; () means any host (none given, or "*")."""
    hosts = {item.strip().lower().rstrip(".") for item in raw.split(",")} - {""}
    if ANY_HOST in hosts:
        return ()
    for host in sorted(hosts):
        if not _HOST.match(host):
            raise ParameterError(f'parameter "hosts" value "{host}" is not a host name (or *.domain)')
    return tuple(sorted(hosts))


def parse_path_prefixes(raw: str) -> tuple[str, ...]:
    """Sorted prefixes, each starting with "/" and without a trailing "/" (except "/" itself)."""
    prefixes = set()
    for item in raw.split(","):
        prefix = item.strip()
        if not prefix:
            continue
        if not prefix.startswith("/") or any(c.isspace() or c in "?#" for c in prefix):
            raise ParameterError(f'parameter "pathPrefixes" value "{prefix}" must be a path starting with "/"')
        prefixes.add(prefix.rstrip("/") or "/")
    return tuple(sorted(prefixes or {"/"}))


def parse_config(params: TriggerParams) -> HttpTriggerConfig:
    raw = parse_params(_RawHttpConfig, params)
    if raw.target_pending_requests is not None and raw.target_request_rate is not None:
        raise ParameterError('parameters "targetPendingRequests" and "targetRequestRate" exclude each other')
    metric, target = "concurrency", raw.target_pending_requests
    if raw.target_request_rate is not None:
        metric, target = "requestRate", raw.target_request_rate
    target = 100.0 if target is None else target
    if target <= 0:
        key = "targetRequestRate" if metric == "requestRate" else "targetPendingRequests"
        raise ParameterError(f'parameter "{key}" must be greater than 0')
    if raw.activation_value < 0:
        raise ParameterError('parameter "activationValue" must not be negative')
    if raw.hold_limit is not None and raw.hold_limit < 0:
        raise ParameterError('parameter "holdLimit" must not be negative')
    window, granularity = parse_duration("window", raw.window), parse_duration("granularity", raw.granularity)
    if granularity > window:
        raise ParameterError('parameter "granularity" must not be longer than "window"')
    if not raw.port.isdigit() and not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", raw.port):
        raise ParameterError(f'parameter "port" value "{raw.port}" must be a port number or a port name')
    if raw.port.isdigit() and not 0 < int(raw.port) < 65536:
        raise ParameterError(f'parameter "port" value "{raw.port}" must be between 1 and 65535')
    route = RouteKey(params.namespace, params.scaled_object, parse_hosts(raw.hosts),
                     parse_path_prefixes(raw.path_prefixes))
    return HttpTriggerConfig(
        route=route, service=raw.service, port=raw.port, metric=metric, target=target,
        window=window, granularity=granularity, activation_value=raw.activation_value,
        hold_timeout=parse_duration("holdTimeout", raw.hold_timeout) if raw.hold_timeout else None,
        hold_limit=raw.hold_limit,
    )
