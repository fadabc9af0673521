"""Fixtures for the rabbitmq scaler: one real broker per session, config and client helpers.

The broker (AMQP, AMQPS and the management API on free loopback ports) starts once, because
start-up costs seconds; vhosts `/` and `other` exist. Each test uses queue names of its own, and
every client a test opens is closed after it, so tests see neither each other's queues nor their
connections. `requests` records every management API request the scaler's clients send.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from scalers.base import ScalerClient
from scalers.params import TriggerParams
from scalers.rabbitmq.queue_config import RabbitMQConfig
from scalers.rabbitmq.queues import RabbitMQScaler
from tests.harness.rabbitmq_server import RabbitMQServer, RequestLog, Traffic

Parse = Callable[..., RabbitMQConfig]
Open = Callable[[RabbitMQConfig], ScalerClient[RabbitMQConfig]]


@pytest.fixture(scope="session")
def traffic(rabbitmq: RabbitMQServer) -> Iterator[Traffic]:
    """Steady publish and consume traffic, started on first use and running to the session's end."""
    with Traffic(rabbitmq, "/", busy="rates-busy", idle="rates-idle") as running:
        yield running


@pytest.fixture
def requests() -> RequestLog:
    return RequestLog()


@pytest.fixture
def scaler(requests: RequestLog) -> RabbitMQScaler:
    return RabbitMQScaler(http_request_hooks=[requests])


@pytest.fixture
def prefix() -> str:
    """A queue-name prefix of this test's own."""
    return f"t{uuid.uuid4().hex[:8]}-"


@pytest.fixture
def parse(scaler: RabbitMQScaler) -> Parse:
    def parse_trigger(metadata: dict[str, str], auth: dict[str, str] | None = None) -> RabbitMQConfig:
        return scaler.parse("rabbitmq", TriggerParams(metadata=metadata, auth=auth or {}))

    return parse_trigger


@pytest.fixture
async def open_client(scaler: RabbitMQScaler) -> AsyncIterator[Open]:
    """Open a client the way the metric store does; every one is closed after the test."""
    opened: list[ScalerClient[Any]] = []

    def open_for(config: RabbitMQConfig) -> ScalerClient[RabbitMQConfig]:
        client = scaler.open_client(config)
        opened.append(client)
        return client

    yield open_for
    for client in opened:
        await client.aclose()
