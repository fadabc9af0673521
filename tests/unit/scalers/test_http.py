"""The `http` trigger: parameters, the pushed report, the table that sums replicas, and readings.

The table is fed the way the adapter feeds it (decoded reports) and read through the scaler's
client, as the metric store reads it.
"""

from __future__ import annotations

from typing import Any

import pytest

from scalers.base import Reading
from scalers.http.http_scaler import HttpScaler
from scalers.http.http_trigger_config import RouteKey, parse_duration
from scalers.http.report import CountsReport, RouteCounts, decode_report, encode_report
from scalers.http.table import CountsTable, RouteTotal
from scalers.params import ParameterError, TriggerParams

SCALER = HttpScaler()


def parse(**metadata: str) -> Any:
    return SCALER.parse("http", TriggerParams(metadata={"port": "8080", **metadata}, namespace="shop",
                                              scaled_object="web"))


@pytest.mark.parametrize("metadata, expected", [
    ({}, {"route": RouteKey("shop", "web", (), ("/",)), "service": None, "port": "8080", "metric": "concurrency",
          "target": 100.0, "window": 60.0, "granularity": 1.0, "activation_value": 0.0, "hold_timeout": None,
          "hold_limit": None}),
    ({"hosts": "B.example.com, a.example.com,b.example.com"},
     {"route": RouteKey("shop", "web", ("a.example.com", "b.example.com"), ("/",))}),
    ({"hosts": "*"}, {"route": RouteKey("shop", "web", (), ("/",))}),
    ({"hosts": "*.example.com"}, {"route": RouteKey("shop", "web", ("*.example.com",), ("/",))}),
    ({"pathPrefixes": "/api/, /cart,/"}, {"route": RouteKey("shop", "web", (), ("/", "/api", "/cart"))}),
    ({"targetPendingRequests": "10", "activationValue": "2"}, {"target": 10.0, "activation_value": 2.0}),
    ({"targetRequestRate": "50", "window": "30s", "granularity": "500ms"},
     {"metric": "requestRate", "target": 50.0, "window": 30.0, "granularity": 0.5}),
    ({"service": "web-svc", "port": "http"}, {"service": "web-svc", "port": "http"}),
    ({"holdTimeout": "1m30s", "holdLimit": "5"}, {"hold_timeout": 90.0, "hold_limit": 5}),
])
def test_parse(metadata: dict[str, str], expected: dict[str, Any]) -> None:
    config = parse(**metadata)
    assert {k: getattr(config, k) for k in expected} == expected


@pytest.mark.parametrize("metadata, error", [
    ({"port": ""}, 'missing required parameter "port"'),
    ({"port": "99999"}, 'parameter "port" value "99999" must be between 1 and 65535'),
    ({"port": "Web_Port"}, 'parameter "port" value "Web_Port" must be a port number or a port name'),
    ({"hosts": "shop example"}, 'parameter "hosts" value "shop example" is not a host name'),
    ({"pathPrefixes": "api"}, 'parameter "pathPrefixes" value "api" must be a path starting with "/"'),
    ({"targetPendingRequests": "1", "targetRequestRate": "1"}, "exclude each other"),
    ({"targetPendingRequests": "0"}, 'parameter "targetPendingRequests" must be greater than 0'),
    ({"targetRequestRate": "x"}, 'parameter "targetRequestRate" value "x" must be a number'),
    ({"window": "1y"}, 'parameter "window" value "1y" is not a duration'),
    ({"window": "1s", "granularity": "2s"}, 'parameter "granularity" must not be longer than "window"'),
    ({"holdTimeout": "0s"}, 'parameter "holdTimeout" value "0s" must be a positive duration'),
    ({"activationValue": "-1"}, 'parameter "activationValue" must not be negative'),
])
def test_parse_errors(metadata: dict[str, str], error: str) -> None:
    with pytest.raises(ParameterError, match=error.replace("(", r"\(").replace(")", r"\)")):
        parse(**metadata)


@pytest.mark.parametrize("raw, seconds", [("30", 30.0), ("1.5", 1.5), ("2m", 120.0), ("1h1m1s", 3661.0),
                                          ("250ms", 0.25)])
def test_durations(raw: str, seconds: float) -> None:
    assert parse_duration("window", raw) == seconds


def test_metric_names_and_targets() -> None:
    assert SCALER.metric(parse(hosts="shop.example.com", targetPendingRequests="7")).name == "http-shop.example.com"
    rate = SCALER.metric(parse(targetRequestRate="20", activationValue="1"))
    assert (rate.name, rate.target, rate.activation) == ("http-any-rate", 20.0, 1.0)


ROUTE = RouteKey("shop", "web", ("shop.example.com",), ("/",))
OTHER = RouteKey("shop", "other", (), ("/",))


def report(name: str, sequence: int, *counts: RouteCounts, ttl: float = 3.0) -> CountsReport:
    return CountsReport(name, sequence, ttl, counts)


def test_report_round_trip_and_errors() -> None:
    sent = report("i-1", 4, RouteCounts(ROUTE, pending=3, held=1, rate=2.5))
    assert decode_report(encode_report(sent)) == sent
    for body, error in [(b"[]", "must be an object"), (b'{"interceptor":"i","sequence":1,"ttl":0,"routes":[]}', "ttl"),
                        (b'{"interceptor":"i","sequence":-1,"ttl":1,"routes":[]}', "sequence must not be negative"),
                        (b'{"interceptor":"","sequence":1,"ttl":1,"routes":[]}', "interceptor must not be empty"),
                        (b'{"interceptor":"i","sequence":1,"ttl":1,"routes":[{"namespace":"a"}]}', "scaledObject")]:
        with pytest.raises(ValueError, match=error):
            decode_report(body)


def test_replicas_add_up_expire_and_old_reports_are_ignored() -> None:
    now = [0.0]
    table = CountsTable(clock=lambda: now[0])
    assert table.update(report("a", 1, RouteCounts(ROUTE, 2, 1, 1.0))) == {ROUTE}
    assert table.update(report("b", 1, RouteCounts(ROUTE, 3, 0, 2.0), RouteCounts(OTHER, 1))) == {ROUTE, OTHER}
    assert table.total(ROUTE) == RouteTotal(5, 1, 3.0, reporters=2)
    assert table.update(report("a", 0, RouteCounts(ROUTE, 9))) == set()  # late and older: ignored
    assert table.update(report("a", 2, RouteCounts(ROUTE, 2, 1, 1.0))) == set()  # the same counts: no change
    assert table.update(report("a", 3)) == {ROUTE}  # route no longer reported by a
    assert table.total(ROUTE) == RouteTotal(3, 0, 2.0, reporters=1)
    now[0] = 3.5  # b's report is past its ttl
    assert table.total(ROUTE) == RouteTotal() and list(table.interceptors()) == []


async def test_readings_activity_follows_held_requests_and_activation() -> None:
    table = CountsTable()
    scaler = HttpScaler(table)
    concurrency = parse(hosts="shop.example.com", activationValue="4")
    rate = SCALER.parse("http", TriggerParams(metadata={"port": "80", "hosts": "shop.example.com",
                                                        "targetRequestRate": "10"},
                                              namespace="shop", scaled_object="web"))
    client = scaler.open_client(concurrency)
    assert await client.read([concurrency, rate]) == [Reading(0.0, False), Reading(0.0, False)]
    table.update(report("a", 1, RouteCounts(ROUTE, pending=1, held=1, rate=0.5)))
    assert await client.read([concurrency, rate]) == [Reading(1.0, True), Reading(0.5, True)]  # held: active
    table.update(report("a", 2, RouteCounts(ROUTE, pending=3, held=0, rate=12.0)))
    assert await client.read([concurrency, rate]) == [Reading(3.0, False), Reading(12.0, True)]


def test_a_lapsed_report_is_forgotten_unless_replaced() -> None:
    table = CountsTable()
    table.update(report("a", 1, RouteCounts(ROUTE, 2)))
    table.update(report("b", 1, RouteCounts(ROUTE, 1)))
    table.update(report("a", 2, RouteCounts(ROUTE, 2)))
    assert table.lapse("a", 1) == set()  # a newer report stands
    assert table.lapse("a", 2) == {ROUTE} and table.total(ROUTE).pending == 1
    table.update(report("c", 1, RouteCounts(ROUTE)))
    assert table.lapse("c", 1) == set()  # it counted nothing: nothing changes
