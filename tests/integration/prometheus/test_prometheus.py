"""The prometheus scaler against a real Prometheus scraping an exporter the test controls.

Values are set on gauges of this test's own, and the test waits until Prometheus has scraped
them (`wait_for_value`) before the scaler reads. Answers KEDA treats specially (no series,
several, NaN, Inf, a scalar) come from real queries, not from canned bodies.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from scalers.base import ReadResult, ScalerClient, ScalerError
from scalers.params import TriggerParams, mask, secret_values
from scalers.prometheus import PrometheusConfig, PrometheusScaler
from tests.harness.prometheus_server import PASSWORD, USER, MetricsExporter, PrometheusServer
from tests.harness.rabbitmq_server import tcp_connections_to
from tests.harness.tls_material import TLSMaterial

Opened = list[ScalerClient[PrometheusConfig]]  # the clients a test opened, closed after it

pytestmark = pytest.mark.prometheus


class Requests:
    """Every request the scaler's clients send."""

    def __init__(self) -> None:
        self.seen: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> None:
        self.seen.append(request)


@pytest.fixture
def requests() -> Requests:
    return Requests()


@pytest.fixture
def scaler(requests: Requests) -> PrometheusScaler:
    return PrometheusScaler(request_hooks=[requests])


@pytest.fixture
def metric() -> str:
    return f"es_scaler_{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def opened() -> AsyncIterator[Opened]:
    clients: Opened = []
    yield clients
    for client in clients:
        await client.aclose()


def config(scaler: PrometheusScaler, server: str, query: str, auth: dict[str, str] | None = None,
           **metadata: str) -> PrometheusConfig:
    return scaler.parse("prometheus", TriggerParams(
        metadata={"serverAddress": server, "query": query, "threshold": "10", **metadata}, auth=auth or {}))


async def read(scaler: PrometheusScaler, opened: Opened,
               *configs: PrometheusConfig) -> list[ReadResult]:
    client = scaler.open_client(configs[0])
    opened.append(client)
    return list(await client.read(list(configs)))


async def test_an_instant_query_answers_its_value(scaler: PrometheusScaler, opened: Opened,
                                                  prometheus_server: PrometheusServer,
                                                  metrics_exporter: MetricsExporter, metric: str) -> None:
    metrics_exporter.set_gauge(metric, 7, {"queue": "a"})
    metrics_exporter.set_gauge(metric, 5, {"queue": "b"})
    prometheus_server.wait_for_value(f"sum({metric})", 12)
    found = await read(scaler, opened, config(scaler, prometheus_server.url, f"sum({metric})"),
                       config(scaler, prometheus_server.url, f'{metric}{{queue="b"}}'))
    assert found == [12.0, 5.0]


@pytest.mark.parametrize("query, ignore_null_values, expected", [
    ("{metric}_absent", "true", 0.0),
    ("{metric}_absent", "false", "the result is empty"),
    ("{metric}", "true", "returned multiple elements"),
    ("sum({metric}) / 0", "true", 0.0),  # +Inf
    ("sum({metric}) / 0", "false", "prometheus query returns inf"),
    ("(sum({metric}) - sum({metric})) / 0", "true", 0.0),  # NaN
    ("(sum({metric}) - sum({metric})) / 0", "false", "prometheus query returns nan"),
    ("scalar(sum({metric}))", "true", "returned a scalar result, not a vector"),
    ("sum({metric}", "true", "status: 400"),  # bad PromQL: Prometheus' reason is kept
])
async def test_answers_keda_treats_specially(scaler: PrometheusScaler, opened: Opened,
                                            prometheus_server: PrometheusServer, metrics_exporter: MetricsExporter,
                                            metric: str, query: str, ignore_null_values: str,
                                            expected: float | str) -> None:
    metrics_exporter.set_gauge(metric, 1, {"queue": "a"})
    metrics_exporter.set_gauge(metric, 2, {"queue": "b"})
    prometheus_server.wait_for_value(f"sum({metric})", 3)
    (found,) = await read(scaler, opened, config(scaler, prometheus_server.url, query.format(metric=metric),
                                                 ignoreNullValues=ignore_null_values))
    if isinstance(expected, float):
        assert found == expected
    else:
        assert isinstance(found, ScalerError) and expected in str(found).lower()
        assert prometheus_server.url.removeprefix("http://") in str(found)


async def test_query_parameters_headers_and_namespace_are_sent(
        scaler: PrometheusScaler, requests: Requests, opened: Opened,
        prometheus_server: PrometheusServer, metrics_exporter: MetricsExporter, metric: str) -> None:
    metrics_exporter.set_gauge(metric, 4)
    prometheus_server.wait_for_value(metric, 4)
    found = await read(scaler, opened, config(scaler, prometheus_server.url, metric, namespace="team-a",
                                              queryParameters="dedup=true, partial_response=false",
                                              customHeaders="X-Scope-OrgID=tenant-1"))
    assert found == [4.0]
    (request,) = requests.seen
    assert request.url.path == "/api/v1/query"
    assert dict(request.url.params) == {"namespace": "team-a", "dedup": "true", "partial_response": "false",
                                        "query": metric}
    assert request.headers["X-Scope-OrgID"] == "tenant-1"


async def test_basic_auth_over_https_with_the_ca(scaler: PrometheusScaler, opened: Opened,
                                                 prometheus_secure_server: PrometheusServer,
                                                 metrics_exporter: MetricsExporter, tls_material: TLSMaterial,
                                                 metric: str) -> None:
    metrics_exporter.set_gauge(metric, 9)
    prometheus_secure_server.wait_for_value(metric, 9)
    auth = {"username": USER, "password": PASSWORD, "ca": tls_material.ca_pem}
    good = config(scaler, prometheus_secure_server.url, metric, auth=auth, authModes="basic")
    secret = "Wr0ng-Pa55word-s3cret"
    wrong = config(scaler, prometheus_secure_server.url, metric, auth={**auth, "password": secret},
                   authModes="basic")
    untrusted = config(scaler, prometheus_secure_server.url, metric, auth={"username": USER, "password": PASSWORD},
                       authModes="basic")
    assert await read(scaler, opened, good) == [9.0]
    (refused,) = await read(scaler, opened, wrong)
    assert isinstance(refused, ScalerError) and "status: 401" in str(refused)
    assert secret not in mask(str(refused), secret_values(wrong)) and secret not in repr(wrong)
    (unverified,) = await read(scaler, opened, untrusted)
    assert isinstance(unverified, ScalerError) and "CERTIFICATE_VERIFY_FAILED" in str(unverified)
    insecure = config(scaler, prometheus_secure_server.url, metric, auth={"username": USER, "password": PASSWORD},
                      authModes="basic", unsafeSsl="true")
    assert await read(scaler, opened, insecure) == [9.0]


async def test_a_client_certificate_with_authmodes_tls(scaler: PrometheusScaler, opened: Opened,
                                                       prometheus_mtls_server: PrometheusServer,
                                                       metrics_exporter: MetricsExporter, tls_material: TLSMaterial,
                                                       metric: str) -> None:
    metrics_exporter.set_gauge(metric, 3)
    prometheus_mtls_server.wait_for_value(metric, 3)
    with_cert = config(scaler, prometheus_mtls_server.url, metric, authModes="tls", auth={
        "ca": tls_material.ca_pem, "cert": tls_material.client_cert_pem, "key": tls_material.client_key_pem})
    without = config(scaler, prometheus_mtls_server.url, metric, auth={"ca": tls_material.ca_pem})
    assert await read(scaler, opened, with_cert) == [3.0]
    (refused,) = await read(scaler, opened, without)
    assert isinstance(refused, ScalerError)


async def test_an_unreachable_server_fails_its_triggers(scaler: PrometheusScaler,
                                                        opened: Opened) -> None:
    (found,) = await read(scaler, opened, config(scaler, "http://127.0.0.1:1", "up"))
    assert isinstance(found, ScalerError) and "prometheus http://127.0.0.1:1: ConnectError" in str(found)


async def test_a_poll_combines_the_distinct_queries_in_one_request_over_two_connections(
        scaler: PrometheusScaler, requests: Requests, opened: Opened,
        prometheus_server: PrometheusServer, metrics_exporter: MetricsExporter, metric: str) -> None:
    for queue in range(10):
        metrics_exporter.set_gauge(metric, queue, {"queue": str(queue)})
    prometheus_server.wait_for_value(f"sum({metric})", 45)
    configs = [config(scaler, prometheus_server.url, f'{metric}{{queue="{i % 10}"}}') for i in range(200)]
    assert len({scaler.server_key(c) for c in configs}) == 1
    port = int(prometheus_server.url.rsplit(":", 1)[1])
    before = tcp_connections_to(port)
    client = scaler.open_client(configs[0])
    opened.append(client)
    assert await client.read(configs) == [float(i % 10) for i in range(200)]
    assert [r.method for r in requests.seen] == ["POST"]  # 10 distinct queries, one request
    assert tcp_connections_to(port) - before <= 2
    many = [config(scaler, prometheus_server.url, f'sum({metric}) + {i}') for i in range(250)]
    assert await client.read(many) == [45.0 + i for i in range(250)]
    assert len(requests.seen) == 1 + 3  # at most 100 queries per request


async def test_a_query_that_cannot_be_combined_fails_alone_and_is_then_sent_alone(
        scaler: PrometheusScaler, requests: Requests, opened: Opened,
        prometheus_server: PrometheusServer, metrics_exporter: MetricsExporter, metric: str) -> None:
    metrics_exporter.set_gauge(metric, 6, {"queue": "a"})
    metrics_exporter.set_gauge(metric, 1, {"queue": "b"})
    prometheus_server.wait_for_value(f"sum({metric})", 7)
    queries = [f"sum({metric})", f"sum({metric}", f"scalar(sum({metric}))", f"{metric}",
               f'{metric}{{queue="a"}} or {metric}{{queue="b"}}  # a comment to the end of the line',
               f"{metric}_absent", f'max({metric}) or vector(0)']
    configs = [config(scaler, prometheus_server.url, q) for q in queries]
    client = scaler.open_client(configs[0])
    opened.append(client)
    first = await client.read(configs)
    assert first[0] == 7.0 and first[5] == 0.0 and first[6] == 6.0
    assert isinstance(first[1], ScalerError) and "status: 400" in str(first[1])
    assert isinstance(first[2], ScalerError) and "returned a scalar result" in str(first[2])
    assert isinstance(first[3], ScalerError) and "multiple elements" in str(first[3])
    assert isinstance(first[4], ScalerError) and "multiple elements" in str(first[4])
    assert len(requests.seen) == 1 + len(queries)  # refused combined, then one by one
    requests.seen.clear()
    second = await client.read(configs)
    assert [str(v) for v in second] == [str(v) for v in first]
    assert sorted(r.method for r in requests.seen) == ["GET", "GET", "POST"]  # bad and scalar alone, rest combined
