"""Session-wide real servers shared by every test folder that needs them.

Each starts on first use (pytest fixtures are lazy), on free loopback ports in a temporary
directory, installing what it needs when missing (Debian packages; Kafka's jars from Maven
Central, cached), and stops at the end of the session.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.kafka_server import KafkaServer
from tests.harness.prometheus_server import REQUIRE, MetricsExporter, PrometheusServer, WebSecurity
from tests.harness.rabbitmq_server import OTHER_VHOST, RabbitMQServer
from tests.harness.redis_servers import RedisServer
from tests.harness.tls_material import TLSMaterial

pytest_plugins = ["tests.harness.session_servers"]


@pytest.fixture(scope="session")
def tls_material() -> TLSMaterial:
    return TLSMaterial.generate()


@pytest.fixture(scope="session")
def redis_server(tls_material: TLSMaterial) -> Iterator[RedisServer]:
    """One redis-server with a plain and a TLS port and an ACL user."""
    with RedisServer(tls=tls_material) as server:
        server.add_user()
        yield server


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitMQServer]:
    """One rabbitmq-server with the management plugin; vhosts `/` and `other`."""
    with RabbitMQServer() as server:
        server.create_vhost(OTHER_VHOST)
        yield server


@pytest.fixture(scope="session")
def kafka_server(tls_material: TLSMaterial) -> Iterator[KafkaServer]:
    """One KRaft Kafka broker: PLAINTEXT, SASL_PLAINTEXT, SSL, SASL_SSL and client-certificate listeners."""
    with KafkaServer(tls_material) as server:
        yield server


@pytest.fixture(scope="session")
def metrics_exporter() -> Iterator[MetricsExporter]:
    """Gauges the tests set, served from this process on a loopback port for Prometheus to scrape."""
    with MetricsExporter() as exporter:
        yield exporter


@pytest.fixture(scope="session")
def prometheus_server(metrics_exporter: MetricsExporter) -> Iterator[PrometheusServer]:
    """Prometheus over plain HTTP, no auth, scraping `metrics_exporter` every second."""
    with PrometheusServer([metrics_exporter.address]) as server:
        yield server


@pytest.fixture(scope="session")
def prometheus_secure_server(metrics_exporter: MetricsExporter,
                             tls_material: TLSMaterial) -> Iterator[PrometheusServer]:
    """Prometheus over HTTPS (test CA) with basic auth; a client certificate is verified when given."""
    with PrometheusServer([metrics_exporter.address], WebSecurity(tls_material)) as server:
        yield server


@pytest.fixture(scope="session")
def prometheus_mtls_server(metrics_exporter: MetricsExporter,
                           tls_material: TLSMaterial) -> Iterator[PrometheusServer]:
    """Prometheus over HTTPS that requires a client certificate from the test CA and no password."""
    security = WebSecurity(tls_material, users={}, client_certificates=REQUIRE)
    with PrometheusServer([metrics_exporter.address], security) as server:
        yield server
