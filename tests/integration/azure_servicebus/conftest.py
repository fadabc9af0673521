"""Fixtures for the azure-servicebus scaler: a Service Bus stand-in and configs that point at it.

There is no Azure here; `ServiceBusStandIn` (tests/harness) speaks the management REST API the
SDK calls, over HTTPS with its own CA, which the configs trust through the `ca` auth parameter.
One stand-in serves the session; every test starts from an empty namespace and request log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from scalers.azure_servicebus import AzureServiceBusClient, AzureServiceBusConfig, AzureServiceBusScaler
from tests.harness.servicebus_standin import ServiceBusStandIn

MakeConfig = Callable[..., AzureServiceBusConfig]


@pytest.fixture(scope="session")
def standin_server() -> Iterator[ServiceBusStandIn]:
    with ServiceBusStandIn() as server:
        yield server


@pytest.fixture
def standin(standin_server: ServiceBusStandIn) -> ServiceBusStandIn:
    standin_server.clear()
    return standin_server


@pytest.fixture
def scaler() -> AzureServiceBusScaler:
    return AzureServiceBusScaler(timeout=5.0)


@pytest.fixture
def make_config(scaler: AzureServiceBusScaler, standin: ServiceBusStandIn) -> MakeConfig:
    def make(**metadata: str) -> AzureServiceBusConfig:
        return scaler.parse("azure-servicebus", standin.trigger_params(metadata))

    return make


@pytest.fixture
async def client(scaler: AzureServiceBusScaler,
                 make_config: MakeConfig) -> AsyncIterator[AzureServiceBusClient]:
    opened = scaler.open_client(make_config(queueName="any"))
    yield opened
    await opened.aclose()
