"""Parsing of prometheus triggers and reading of answers, row by row from KEDA's prometheus_scaler_test.go.

`testPromMetadata`, `testPrometheusAuthMetadata` and `testPromQueryResult` give success or failure
as there (pod identity rows left out: no pod identity here). TLS material is real PEM: bad PEM is
refused at parse time (KEDA fails later, when it builds the client). `metricName`, long gone from
KEDA, is accepted and ignored.
"""

from __future__ import annotations

import operator
from typing import Any

import pytest

from scalers.params import ParameterError, TriggerParams
from scalers.prometheus import PrometheusConfig, PrometheusScaler, QueryAnswerError, value_of
from tests.harness.tls_material import TLSMaterial

SCALER = PrometheusScaler()
PEM = TLSMaterial.generate()
CA, CERT, KEY = PEM.ca_pem.strip(), PEM.client_cert_pem.strip(), PEM.client_key_pem.strip()
BASE = {"serverAddress": "http://localhost:9090", "metricName": "http_requests_total", "threshold": "100",
        "query": "up"}


def parse(metadata: dict[str, str], auth: dict[str, str] | None = None) -> PrometheusConfig:
    return SCALER.parse("prometheus", TriggerParams(metadata=metadata, auth=auth or {}))


@pytest.mark.parametrize("metadata, auth, expected", [
    (BASE, {}, {"threshold": 100.0, "activation_threshold": 0.0, "ignore_null_values": True,
                "request.url": "http://localhost:9090/api/v1/query", "request.query": "up",
                "request.parameters": (), "request.headers": (), "server.origin": "http://localhost:9090",
                "server.timeout": 3.0, "server.auth.modes": (), "server.auth.tls": None}),
    ({**BASE, "namespace": "foo"}, {}, {"request.parameters": (("namespace", "foo"),)}),
    ({**BASE, "ignoreNullValues": "false"}, {}, {"ignore_null_values": False}),
    ({**BASE, "activationThreshold": "50"}, {}, {"activation_threshold": 50.0}),
    ({**BASE, "serverAddress": "https://localhost:9090", "unsafeSsl": "true"}, {},
     {"server.auth.tls.unsafe_ssl": True, "server.origin": "https://localhost:9090"}),
    ({**BASE, "customHeaders": "key1=value1,key2=value2"}, {},
     {"request.headers": (("key1", "value1"), ("key2", "value2"))}),
    ({**BASE, "queryParameters": "key1=value1,key2=value2"}, {},
     {"request.parameters": (("key1", "value1"), ("key2", "value2"))}),
    ({**BASE, "namespace": "n", "queryParameters": "a=b"}, {},
     {"request.parameters": (("namespace", "n"), ("a", "b"))}),
    ({**BASE, "timeout": "1000"}, {}, {"server.timeout": 1.0}),
    ({**BASE, "timeout": "2.5s"}, {}, {"server.timeout": 2.5}),
    ({**BASE, "timeout": "1m30s"}, {}, {"server.timeout": 90.0}),
    ({**BASE, "serverAddress": "http://thanos:9090/prometheus/"}, {},
     {"request.url": "http://thanos:9090/prometheus/api/v1/query", "server.origin": "http://thanos:9090"}),
    # auth (testPrometheusAuthMetadata)
    ({**BASE, "authModes": "tls"}, {"ca": CA, "cert": CERT, "key": KEY},
     {"server.auth.modes": ("tls",), "server.auth.tls.ca": CA, "server.auth.tls.cert": CERT}),
    ({**BASE, "authModes": "tls"}, {"cert": CERT, "key": KEY}, {"server.auth.tls.ca": None}),
    ({**BASE, "authModes": "bearer"}, {"bearerToken": "tooooken"}, {"server.auth.bearer_token": "tooooken"}),
    ({**BASE, "authModes": "bearer"}, {"token": "tooooken"}, {"server.auth.bearer_token": "tooooken"}),
    ({**BASE, "authModes": "basic"}, {"username": "user", "password": "pass"},
     {"server.auth.username": "user", "server.auth.password": "pass"}),
    ({**BASE, "authModes": "basic"}, {"username": "user"}, {"server.auth.password": None}),
    ({**BASE, "authModes": "tls, basic"}, {"ca": CA, "cert": CERT, "key": KEY, "username": "user", "password": "p"},
     {"server.auth.modes": ("tls", "basic")}),
    ({**BASE, "authModes": "custom"}, {"customAuthHeader": "header", "customAuthValue": "value"},
     {"server.auth.custom_header": "header", "server.auth.custom_value": "value"}),
    ({**BASE, "authModes": "custom"}, {"customAuthHeader": "header\n", "customAuthValue": "value\n"},
     {"server.auth.custom_header": "header"}),
    (BASE, {"authModes": "basic", "username": "u", "password": "p"}, {"server.auth.modes": ("basic",)}),
    (BASE, {"ca": CA}, {"server.auth.tls.ca": CA}),  # a CA is trusted even without an auth mode
])
def test_parse(metadata: dict[str, str], auth: dict[str, str], expected: dict[str, Any]) -> None:
    config = parse(metadata, auth)
    for path, value in expected.items():
        assert operator.attrgetter(path)(config) == value, path


@pytest.mark.parametrize("metadata, auth, error", [
    ({}, {}, 'missing required parameter "serverAddress"'),
    ({**BASE, "serverAddress": ""}, {}, 'missing required parameter "serverAddress"'),
    ({k: v for k, v in BASE.items() if k != "threshold"}, {}, 'missing required parameter "threshold"'),
    ({**BASE, "threshold": "one"}, {}, 'parameter "threshold" value "one" must be a number'),
    ({**BASE, "activationThreshold": "one"}, {}, 'parameter "activationThreshold" value "one" must be a number'),
    ({**BASE, "query": ""}, {}, 'missing required parameter "query"'),
    ({**BASE, "ignoreNullValues": "xxxx"}, {}, 'parameter "ignoreNullValues" value "xxxx" must be a boolean'),
    ({**BASE, "customHeaders": "key1=value1,key2"}, {}, 'expected format key=value, got "key2"'),
    ({**BASE, "queryParameters": "key1=value1,key2"}, {}, 'expected format key=value, got "key2"'),
    ({**BASE, "timeout": "-1"}, {}, 'parameter "timeout" value "-1" must not be negative'),
    ({**BASE, "timeout": "a"}, {}, "must be either a duration string"),
    ({**BASE, "serverAddress": "localhost:9090"}, {}, "must be an http:// or https:// URL"),
    ({**BASE, "authModes": "tls"}, {"ca": CA, "cert": CERT}, "cert=<present> and key=<empty> are required"),
    ({**BASE, "authModes": "tls"}, {"ca": CA, "key": KEY}, "cert=<empty> and key=<present> are required"),
    ({**BASE, "authModes": "bearer"}, {}, "bearer token=<empty> is required when bearer auth is enabled"),
    ({**BASE, "authModes": "basic"}, {}, "username=<empty> is required when basic auth is enabled"),
    ({**BASE, "authModes": "tls,basic"}, {"username": "user", "password": "pass"}, "cert=<empty> and key=<empty>"),
    ({**BASE, "authModes": "custom"}, {"customAuthHeader": ""}, "customAuthHeader=<empty> and customAuthValue=<empty>"),
    ({**BASE, "authModes": "custom"}, {"customAuthValue": ""}, "are required when custom auth is enabled"),
    ({**BASE, "authModes": "basic,bearer"}, {"username": "u", "token": "t"}, "must contain only one of"),
    ({**BASE, "authModes": "kerberos"}, {}, 'parameter "authModes" value "kerberos" must be one of'),
    ({**BASE, "authModes": "oauth"}, {}, 'authMode "oauth" is not supported'),
    ({**BASE, "authModes": "tls"}, {"cert": "ceert", "key": "keey"}, "cannot be loaded"),
])
def test_parse_errors(metadata: dict[str, str], auth: dict[str, str], error: str) -> None:
    with pytest.raises(ParameterError) as raised:
        parse(metadata, auth)
    assert error in str(raised.value)


@pytest.mark.parametrize("body, ignore, expected", [  # testPromQueryResult
    ({}, True, 0.0),
    ({"data": {"result": []}}, True, 0.0),
    ({"data": {"result": []}}, False, "the result is empty"),
    ({"data": {"result": [{"value": []}]}}, True, 0.0),
    ({"data": {"result": [{"value": []}]}}, False, "the value list is empty"),
    ({"data": {"result": [{"value": ["1", "2"]}]}}, True, 2.0),
    ({"data": {"result": [{"value": ["1"]}]}}, True, "didn't return enough values"),
    ({"data": {"result": [{}, {}]}}, True, "returned multiple elements"),
    ({"data": {"result": [{"value": ["1", "+Inf"]}]}}, True, 0.0),
    ({"data": {"result": [{"value": ["1", "+Inf"]}]}}, False, "prometheus query returns inf"),
    ({"data": {"result": [{"value": ["1", "-Inf"]}]}}, True, 0.0),
    ({"data": {"result": [{"value": ["1", "-Inf"]}]}}, False, "prometheus query returns -inf"),
    ({"data": {"result": [{"value": ["1", "NaN"]}]}}, True, 0.0),
    ({"data": {"result": [{"value": ["1", "NaN"]}]}}, False, "prometheus query returns nan"),
    ({"data": {"resultType": "vector", "result": [{"metric": {}, "value": [1686063687, "777"]}]}}, True, 777.0),
    ({"data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "3"]]}]}}, True, 0.0),
    ({"data": {"resultType": "scalar", "result": [1, "3"]}}, True, "returned a scalar result"),
    ({"data": {"result": [{"value": ["1", "x"]}]}}, True, "not a number"),
])
def test_answers(body: Any, ignore: bool, expected: float | str) -> None:
    if isinstance(expected, float):
        assert value_of(body, "up", ignore) == expected
    else:
        with pytest.raises(QueryAnswerError, match=expected):
            value_of(body, "up", ignore)


def test_metric_and_shared_server() -> None:
    spec = SCALER.metric(parse({**BASE, "activationThreshold": "5"}))
    assert (spec.name, spec.target, spec.activation) == ("prometheus", 100.0, 5.0)  # s<i>-prometheus
    one, two = parse(BASE), parse({**BASE, "query": "sum(up)", "serverAddress": "http://localhost:9090/x"})
    assert SCALER.server_key(one) == SCALER.server_key(two)
    assert SCALER.server_key(one) != SCALER.server_key(parse({**BASE, "timeout": "10s"}))


def test_repr_holds_no_secret() -> None:
    config = parse({**BASE, "authModes": "basic"}, {"username": "u", "password": "pw-secret-1"})
    assert "pw-secret" not in repr(config)
