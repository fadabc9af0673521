"""Routes from ScaledObjects, and which route a request matches (host specificity, then prefix)."""

from __future__ import annotations

from typing import Any

import pytest

from adapter.interceptor.routing import HoldBounds, RouteTable, routes_of
from tests.harness.interceptor_process import http_scaled_object

DEFAULTS = HoldBounds(limit=50, timeout=10.0)


def so(name: str, created: str = "2026-01-01T00:00:00Z", **metadata: str) -> dict[str, Any]:
    obj = http_scaled_object(name, "shop", **metadata)
    obj["metadata"]["creationTimestamp"] = created
    return obj


TABLE = RouteTable([
    route for obj in (
        so("exact", hosts="shop.example.com", pathPrefixes="/"),
        so("exact-api", hosts="shop.example.com", pathPrefixes="/api,/api/v2"),
        so("wild", hosts="*.example.com"),
        so("deeper-wild", hosts="*.eu.example.com", pathPrefixes="/"),
        so("any", pathPrefixes="/static"),
    ) for route in routes_of(obj, DEFAULTS)
])


@pytest.mark.parametrize("host, path, expected", [
    ("shop.example.com", "/", "exact"),
    ("shop.example.com", "/api", "exact-api"),
    ("shop.example.com", "/api/v2/orders", "exact-api"),
    ("shop.example.com", "/apiary", "exact"),  # prefixes match whole segments
    ("cart.example.com", "/x", "wild"),
    ("a.eu.example.com", "/x", "deeper-wild"),  # the longer wildcard first
    ("example.com", "/x", None),  # *.example.com is not example.com itself
    ("other.org", "/static/app.js", "any"),
    ("other.org", "/", None),
])
def test_match(host: str, path: str, expected: str | None) -> None:
    found = TABLE.match(host, path)
    assert (found.key.scaled_object if found else None) == expected


def test_route_fields_defaults_and_overrides() -> None:
    [plain] = routes_of(so("web"), DEFAULTS)
    assert (plain.service, plain.port, plain.bounds) == (("shop", "web"), "80", DEFAULTS)
    [tuned] = routes_of(so("web", service="web-svc", port="http", holdTimeout="2s", holdLimit="7",
                           targetRequestRate="5", window="10s", granularity="2s"), DEFAULTS)
    assert (tuned.service, tuned.port, tuned.bounds) == (("shop", "web-svc"), "http", HoldBounds(7, 2.0))
    assert (tuned.window, tuned.granularity) == (10.0, 2.0)


def test_the_older_scaled_object_keeps_a_contested_host_and_prefix() -> None:
    table = RouteTable(routes_of(so("newer", "2026-02-01T00:00:00Z", hosts="a.example.com"), DEFAULTS)
                       + routes_of(so("older", "2026-01-01T00:00:00Z", hosts="a.example.com,b.example.com"), DEFAULTS))
    matches = [table.match(h, "/") for h in ("a.example.com", "b.example.com")]
    assert [m.key.scaled_object if m else None for m in matches] == ["older", "older"]
    assert table.conflicts == ["shop/newer loses host a.example.com path / to shop/older"]


@pytest.mark.parametrize("obj, error", [
    (so("web", port="99999"), 'parameter "port" value "99999" must be between 1 and 65535'),
    ({**so("web"), "spec": {"triggers": [{"type": "http", "metadata": {"port": "80"}}]}},
     "spec.scaleTargetRef.name is required"),
])
def test_unusable_objects_say_why(obj: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        routes_of(obj, DEFAULTS)
