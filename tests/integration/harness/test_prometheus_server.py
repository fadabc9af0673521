"""The harness's Prometheus servers: a query answers what the exporter exposes; auth is enforced.

These pin down what the Prometheus scaler's tests rely on: a gauge set in the test reaches an
instant query over HTTP (and follows a change), the secure server answers only over HTTPS with
the right basic-auth credentials, and the mTLS server only to a client certificate from the test CA.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.harness.prometheus_server import PASSWORD, USER, MetricsExporter, PrometheusServer
from tests.harness.tls_material import TLSMaterial

pytestmark = pytest.mark.prometheus


@pytest.fixture
def metric() -> str:
    """A metric name of this test's own."""
    return f"es_harness_{uuid.uuid4().hex[:10]}"


def instant_query(client: httpx.Client, promql: str) -> httpx.Response:
    return client.get("/api/v1/query", params={"query": promql})


def values(response: httpx.Response) -> dict[str, float]:
    """`queue` label -> value, from an instant query's answer."""
    response.raise_for_status()
    return {sample["metric"].get("queue", ""): float(sample["value"][1])
            for sample in response.json()["data"]["result"]}


def test_an_instant_query_answers_what_the_exporter_exposes(prometheus_server: PrometheusServer,
                                                            metrics_exporter: MetricsExporter,
                                                            metric: str) -> None:
    metrics_exporter.set_gauge(metric, 7, {"queue": "a"})
    metrics_exporter.set_gauge(metric, 3.5, {"queue": "b"})
    prometheus_server.wait_for_value(f"sum({metric})", 10.5)
    with httpx.Client(base_url=prometheus_server.url, timeout=10) as client:
        assert values(instant_query(client, metric)) == {"a": 7.0, "b": 3.5}
        metrics_exporter.set_gauge(metric, 12, {"queue": "a"})
        prometheus_server.wait_for_value(f'{metric}{{queue="a"}}', 12)
        assert values(instant_query(client, metric)) == {"a": 12.0, "b": 3.5}


@pytest.mark.parametrize("auth, status", [
    (None, 401),
    ((USER, "wrong-password"), 401),
    (("someone-else", PASSWORD), 401),
    ((USER, PASSWORD), 200),
])
def test_the_secure_server_wants_basic_auth(prometheus_secure_server: PrometheusServer,
                                            metrics_exporter: MetricsExporter, tls_material: TLSMaterial,
                                            metric: str, auth: tuple[str, str] | None, status: int) -> None:
    metrics_exporter.set_gauge(metric, 4)
    prometheus_secure_server.wait_for_value(metric, 4)
    with httpx.Client(base_url=prometheus_secure_server.url, auth=auth, timeout=10,
                      verify=tls_material.client_context()) as client:
        response = instant_query(client, metric)
    assert response.status_code == status
    if status == 200:
        assert values(response) == {"": 4.0}


def test_the_secure_server_speaks_https_with_the_test_ca_only(prometheus_secure_server: PrometheusServer) -> None:
    with httpx.Client(auth=(USER, PASSWORD), timeout=10) as client:  # the system's CAs
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            client.get(f"{prometheus_secure_server.url}/-/ready")
        plain = client.get(prometheus_secure_server.url.replace("https://", "http://") + "/-/ready")
    assert plain.status_code == 400  # "Client sent an HTTP request to an HTTPS server."


def test_the_mtls_server_refuses_a_client_without_certificate(prometheus_mtls_server: PrometheusServer,
                                                              tls_material: TLSMaterial) -> None:
    context = tls_material.client_context()
    with httpx.Client(base_url=prometheus_mtls_server.url, timeout=10, verify=context) as client, \
            pytest.raises(httpx.TransportError):
        client.get("/-/ready")


def test_the_mtls_server_answers_a_client_certificate(prometheus_mtls_server: PrometheusServer,
                                                      metrics_exporter: MetricsExporter, tls_material: TLSMaterial,
                                                      metric: str) -> None:
    metrics_exporter.set_gauge(metric, 2)
    prometheus_mtls_server.wait_for_value(metric, 2)
    context = tls_material.client_context(certificate=True)
    with httpx.Client(base_url=prometheus_mtls_server.url, timeout=10, verify=context) as client:
        assert values(instant_query(client, metric)) == {"": 2.0}
