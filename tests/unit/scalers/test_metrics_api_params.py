"""Parsing of metrics-api triggers, row by row from KEDA's metrics_api_scaler_test.go, and values from bodies.

`testMetricsAPIMetadata`, `testMetricsAPIAuthMetadata` and `TestGetValueFromResponse` give success
or failure as there; TLS material is real PEM (refused at parse time when it does not load).
"""

from __future__ import annotations

import operator
from typing import Any

import pytest

from adapter.catalog.cluster_objects import ClusterObjects
from scalers.metrics_api import (
    BodyValueError,
    Format,
    MetricsApiConfig,
    MetricsApiScaler,
    metric_selector,
    value_from_body,
)
from scalers.params import ParameterError, TriggerParams
from tests.harness.tls_material import TLSMaterial

SCALER = MetricsApiScaler()
PEM = TLSMaterial.generate()
CA, CERT, KEY = PEM.ca_pem.strip(), PEM.client_cert_pem.strip(), PEM.client_key_pem.strip()
BASE = {"url": "http://dummy:1230/api/v1/", "valueLocation": "metric", "targetValue": "42"}


def parse(metadata: dict[str, str], auth: dict[str, str] | None = None, cluster: Any = None) -> MetricsApiConfig:
    return SCALER.parse("metrics-api", TriggerParams(metadata=metadata, auth=auth or {}, namespace="ns",
                                                     cluster=cluster))


@pytest.mark.parametrize("metadata, auth, expected", [
    ({**BASE, "valueLocation": "metric.test"}, {}, {
        "url": "http://dummy:1230/api/v1/", "value_location": "metric.test", "target_value": 42.0,
        "activation_target_value": 0.0, "format": "json", "service": None, "aggregation": "average",
        "server.origin": "http://dummy:1230", "server.timeout": 3.0, "server.auth.modes": ()}),
    ({**BASE, "timeout": "1000"}, {}, {"server.timeout": 1.0}),
    ({**BASE, "activationTargetValue": "3.5", "format": "yaml"}, {},
     {"activation_target_value": 3.5, "format": "yaml"}),
    ({**BASE, "format": "prometheus", "valueLocation": 'q{a="b"}'}, {}, {"format": "prometheus"}),
    ({**BASE, "authMode": "tls"}, {"ca": CA, "cert": CERT, "key": KEY}, {"server.auth.tls.cert": CERT}),
    ({**BASE, "authMode": "tls"}, {"cert": CERT, "key": KEY}, {"server.auth.tls.ca": None}),
    ({**BASE, "authMode": "apiKey"}, {"apiKey": "apiikey"}, {"server.auth.api_key": "apiikey",
                                                             "server.auth.api_key_in_query": False}),
    ({**BASE, "authMode": "apiKey"}, {"apiKey": "apiikey", "method": "query"}, {"server.auth.api_key_in_query": True}),
    ({**BASE, "authMode": "apiKey"}, {"apiKey": "k", "method": "header", "keyParamName": "custom"},
     {"server.auth.key_param_name": "custom"}),
    ({**BASE, "authMode": "apiKey"}, {"apiKey": "k", "method": "query", "keyParamName": "custom"},
     {"server.auth.query": None}),
    ({**BASE, "authMode": "basic"}, {"username": "user", "password": "pass"}, {"server.auth.username": "user"}),
    ({**BASE, "authMode": "bearer"}, {"token": "bearerTokenValue"}, {"server.auth.bearer_token": "bearerTokenValue"}),
    ({**BASE, "unsafeSsl": "true"}, {}, {"server.auth.tls.unsafe_ssl": True}),
    ({**BASE, "unsafeSsl": "false"}, {}, {"server.auth.tls": None}),
    ({**BASE, "authMode": "apiKey,tls"}, {"apiKey": "apiikey", "ca": CA, "cert": CERT, "key": KEY},
     {"server.auth.modes": ("apiKey", "tls")}),
])
def test_parse(metadata: dict[str, str], auth: dict[str, str], expected: dict[str, Any]) -> None:
    config = parse(metadata, auth)
    for path, value in expected.items():
        if value is None and path.endswith(".query"):
            continue
        assert operator.attrgetter(path)(config) == value, path


def test_aggregation_names_the_service_of_the_url() -> None:
    config = parse({**BASE, "url": "https://orders.shop.svc.cluster.local/metrics?x=1",
                    "aggregateFromKubeServiceEndpoints": "true", "aggregationType": "max"}, cluster=ClusterObjects())
    assert config.service is not None
    assert (config.service.namespace, config.service.service, config.service.scheme, config.service.port,
            config.service.path) == ("shop", "orders", "https", 443, "/metrics?x=1")
    assert config.aggregation == "max"


@pytest.mark.parametrize("metadata, auth, error", [
    ({}, {}, 'missing required parameter "url"'),
    ({"url": "http://dummy:1230/api/v1/", "valueLocation": "metric", "targetValue": "aa"}, {},
     'parameter "targetValue" value "aa" must be a number'),
    ({**BASE, "targetValue": "1", "activationTargetValue": "aa"}, {}, 'parameter "activationTargetValue" value "aa"'),
    ({"url": "http://dummy:1230/api/v1/", "targetValue": "1"}, {}, 'missing required parameter "valueLocation"'),
    ({"valueLocation": "metric", "targetValue": "1"}, {}, 'missing required parameter "url"'),
    ({"url": "http://dummy:1230/api/v1/", "valueLocation": "metric"}, {}, "no targetValue given in metadata"),
    ({**BASE, "targetValue": "0"}, {}, "no targetValue given in metadata"),
    ({**BASE, "timeout": "-1"}, {}, 'parameter "timeout" value "-1" must not be negative'),
    ({**BASE, "timeout": "a"}, {}, "must be either a duration string"),
    ({**BASE, "format": "csv"}, {}, 'parameter "format" value "csv" must be one of'),
    ({**BASE, "aggregationType": "median"}, {}, 'parameter "aggregationType" value "median" must be one of'),
    ({**BASE, "authMode": "tls"}, {"ca": CA, "cert": CERT}, "cert=<present> and key=<empty> are required"),
    ({**BASE, "authMode": "tls"}, {"ca": CA, "key": KEY}, "cert=<empty> and key=<present> are required"),
    ({**BASE, "authMode": "apiKey"}, {}, "apiKey is required when apiKey auth is enabled"),
    ({**BASE, "authMode": "basic"}, {}, "username=<empty> is required when basic auth is enabled"),
    ({**BASE, "authMode": "bearer"}, {}, "bearer token=<empty> is required when bearer auth is enabled"),
    ({**BASE, "unsafeSsl": "yes!"}, {}, 'parameter "unsafeSsl" value "yes!" must be a boolean'),
    ({**BASE, "authMode": "apiKey"}, {"apiKey": "k", "method": "cookie"}, 'parameter "method" value "cookie"'),
    ({**BASE, "format": "prometheus", "valueLocation": "backend_queue_size{invalid=test}"}, {},
     "not a metric selector"),
    ({**BASE, "format": "prometheus", "valueLocation": 'q{a!="b"}'}, {}, 'only "=" label matchers are supported'),
    ({**BASE, "aggregateFromKubeServiceEndpoints": "true"}, {}, "needs the cluster's endpoints"),
])
def test_parse_errors(metadata: dict[str, str], auth: dict[str, str], error: str) -> None:
    with pytest.raises(ParameterError) as raised:
        parse(metadata, auth)
    assert error in str(raised.value)


def test_aggregation_needs_service_and_namespace_in_the_host() -> None:
    with pytest.raises(ParameterError, match="expected at least 2 elements"):
        parse({**BASE, "url": "http://orders/m", "aggregateFromKubeServiceEndpoints": "true"}, cluster=ClusterObjects())


JSON = b'{"components":[{"id": "82328e93e", "tasks": 32, "str": "64", "k":"1k","wrong":"NaN"}],"count":2.43}'
YAML = b"{components: [{id: 82328e93e, tasks: 32, str: '64', k: 1k, wrong: NaN}], count: 2.43}"
PROMETHEUS = b"""# HELP backend_queue_size Total number of items
	# TYPE backend_queue_size counter
	backend_queue_size{queueName="zero"} 0
	backend_queue_size{queueName="one"} 1
	backend_queue_size{queueName="two", instance="random"} 2
	backend_queue_size{queueName="two", instance="zero"} 20
	# HELP random_metric Random metric generate to include noise
	# TYPE random_metric counter
	random_metric 10""".replace(b"\t", b"")


@pytest.mark.parametrize("body, location, form, expected", [  # KEDA's TestGetValueFromResponse
    (JSON, "count", "json", 2.43), (JSON, "components.0.str", "json", 64.0),
    (JSON, "components.0.tasks", "json", 32.0), (JSON, "components.0.wrong", "json", None),
    (YAML, "count", "yaml", 2.43), (YAML, "components.0.str", "yaml", 64.0),
    (YAML, "components.0.tasks", "yaml", 32.0), (YAML, "components.0.wrong", "yaml", None),
    (PROMETHEUS, "random_metric", "prometheus", 10.0),
    (PROMETHEUS, 'backend_queue_size{queueName="one"}', "prometheus", 1.0),
    (PROMETHEUS, 'backend_queue_size{queueName="two"}', "prometheus", 2.0),
    (PROMETHEUS, 'backend_queue_size{queueName="two", instance="zero"}', "prometheus", 20.0),
    (PROMETHEUS, "backend_queue_size{invalid=test}", "prometheus", None),
    (b"<a><b><c>7</c><c>8</c></b></a>", "b.c", "xml", 7.0),
    (b"<a><b><c>7</c><c>8</c></b></a>", "b.c.1", "xml", 8.0),
    (b"<a><b>500m</b></a>", "a.b", "xml", 0.5),
    (b"<a><b>x</b></a>", "b", "xml", None),
    (JSON, "count.more", "json", None), (b"[1, 2]", "1", "json", 2.0), (b"{bad", "x", "json", None),
    (b"a: true", "a", "yaml", None),
])
def test_values(body: bytes, location: str, form: Format, expected: float | None) -> None:
    if expected is None:
        with pytest.raises((BodyValueError, ParameterError)):
            value_from_body(body, location, form)
    else:
        assert value_from_body(body, location, form) == expected


@pytest.mark.parametrize("text, expected", [
    ("m", ("m", ())), ('m{a="b"}', ("m", (("a", "b"),))), ("m{a='b', c=\"d\"}", ("m", (("a", "b"), ("c", "d")))),
    ('{__name__="m", a="b"}', ("m", (("a", "b"),))), ('m{a="x\\"y"}', ("m", (("a", 'x"y'),))),
])
def test_metric_selector(text: str, expected: tuple[str, tuple[tuple[str, str], ...]]) -> None:
    assert metric_selector(text) == expected


def test_metric_name() -> None:
    spec = SCALER.metric(parse({**BASE, "valueLocation": "metric.test", "activationTargetValue": "1"}))
    # served as s<index>-metric-api-metric-test once indexed and normalised
    assert (spec.name, spec.target, spec.activation) == ("metric-api-metric.test", 42.0, 1.0)
