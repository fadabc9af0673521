"""The azure-servicebus scaler against the Service Bus stand-in, through the real SDK client."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import pytest

from scalers.azure_servicebus import (
    LISTING_THRESHOLD,
    AzureServiceBusClient,
    AzureServiceBusConfig,
    AzureServiceBusScaler,
)
from scalers.base import ScalerError
from tests.harness.servicebus_standin import ServiceBusStandIn

MakeConfig = Callable[..., AzureServiceBusConfig]


def config_for(scaler: AzureServiceBusScaler, server: ServiceBusStandIn, *, connection: str | None = None,
               trust: bool = True, **metadata: str) -> AzureServiceBusConfig:
    params = server.trigger_params(metadata, connection=connection, trust=trust)
    return scaler.parse("azure-servicebus", params)


async def test_queue_value_is_the_active_message_count(
        standin: ServiceBusStandIn, client: AzureServiceBusClient, make_config: MakeConfig) -> None:
    standin.set_queue("orders", 7, dead_letter=3, scheduled=2)
    config = make_config(queueName="orders")
    assert await client.read([config]) == [7.0]
    standin.set_queue("orders", 12)
    assert await client.read([config]) == [12.0]


async def test_queue_names_are_case_insensitive(
        standin: ServiceBusStandIn, client: AzureServiceBusClient, make_config: MakeConfig) -> None:
    standin.set_queue("Orders", 4)
    assert await client.read([make_config(queueName="oRDERS")]) == [4.0]


async def test_topic_subscription_value(
        standin: ServiceBusStandIn, client: AzureServiceBusClient, make_config: MakeConfig) -> None:
    standin.set_subscription("events", "billing", 9, dead_letter=5)
    standin.set_subscription("events", "audit", 2)
    configs = [make_config(topicName="events", subscriptionName="billing"),
               make_config(topicName="events", subscriptionName="audit")]
    assert await client.read(configs) == [9.0, 2.0]


@pytest.mark.parametrize("operation, expected", [("sum", 15.0), ("avg", 5.0), ("max", 8.0)])
async def test_queue_regex_aggregates_whole_name_matches(
        standin: ServiceBusStandIn, client: AzureServiceBusClient, make_config: MakeConfig,
        operation: str, expected: float) -> None:
    for name, count in (("orders-1", 3), ("orders-2", 4), ("orders-3", 8), ("xorders-4", 100)):
        standin.set_queue(name, count)
    config = make_config(queueName="orders-.*", useRegex="true", operation=operation)
    assert await client.read([config]) == [expected]


async def test_subscription_regex_and_no_match(
        standin: ServiceBusStandIn, client: AzureServiceBusClient, make_config: MakeConfig) -> None:
    standin.set_subscription("events", "shard-a", 2)
    standin.set_subscription("events", "shard-b", 5)
    standin.set_subscription("events", "other", 50)
    configs = [make_config(topicName="events", subscriptionName="shard-.", useRegex="true"),
               make_config(topicName="events", subscriptionName="shard", useRegex="true")]
    assert await client.read(configs) == [7.0, 0.0]


async def test_missing_entities_fail_alone_and_are_named(
        standin: ServiceBusStandIn, client: AzureServiceBusClient, make_config: MakeConfig) -> None:
    standin.set_queue("orders", 1)
    standin.set_subscription("events", "billing", 1)
    values = await client.read([
        make_config(queueName="ghost"),
        make_config(topicName="events", subscriptionName="nope"),
        make_config(topicName="no-topic", subscriptionName="billing"),
        make_config(queueName="orders"),
    ])
    assert values[3] == 1.0
    expected = ['queue "ghost" not found', 'subscription "nope" of topic "events" not found',
                'subscription "billing" of topic "no-topic" not found']
    for value, text in zip(values[:3], expected, strict=True):
        assert isinstance(value, ScalerError)
        assert text in str(value) and standin.host in str(value)


async def test_missing_entity_in_a_listing_is_named(
        standin: ServiceBusStandIn, client: AzureServiceBusClient, make_config: MakeConfig) -> None:
    names = [f"q{i}" for i in range(LISTING_THRESHOLD + 1)]
    for name in names[1:]:
        standin.set_queue(name, 1)
    values = await client.read([make_config(queueName=name) for name in names])
    assert isinstance(values[0], ScalerError) and 'queue "q0" not found' in str(values[0])
    assert values[1:] == [1.0] * LISTING_THRESHOLD


async def test_wrong_key_is_a_clear_namespace_error_without_the_key(
        scaler: AzureServiceBusScaler, standin: ServiceBusStandIn) -> None:
    standin.set_queue("orders", 1)
    wrong_key = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5"
    connection = standin.connection_string(key=wrong_key)
    config = config_for(scaler, standin, connection=connection, queueName="orders")
    client = scaler.open_client(config)
    try:
        with pytest.raises(ScalerError) as caught:
            await client.read([config])
    finally:
        await client.aclose()
    message = str(caught.value)
    assert "401" in message and standin.host in message
    for secret in (wrong_key, standin.key, connection):
        assert secret not in message and secret not in repr(config)
    assert [r.status for r in standin.requests] == [401]


@pytest.mark.parametrize("expires_in, expected", [(600, [6.0]), (-600, "ExpiredToken")])
async def test_sas_token_connection_string(scaler: AzureServiceBusScaler, standin: ServiceBusStandIn,
                                           expires_in: float, expected: list[float] | str) -> None:
    standin.set_queue("orders", 6)
    connection = standin.sas_connection_string(expires_in=expires_in)
    config = config_for(scaler, standin, connection=connection, queueName="orders")
    client = scaler.open_client(config)
    try:
        if isinstance(expected, str):
            with pytest.raises(ScalerError, match=f"HTTP 401 .*{expected}") as caught:
                await client.read([config])
            assert "sig=" not in str(caught.value)
        else:
            assert await client.read([config]) == expected
    finally:
        await client.aclose()


async def test_unreachable_namespace_fails_fast_naming_the_host(scaler: AzureServiceBusScaler,
                                                                standin: ServiceBusStandIn) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    connection = f"Endpoint=sb://127.0.0.1:{port}/;SharedAccessKeyName=Root;SharedAccessKey=c2VjcmV0"
    config = config_for(scaler, standin, connection=connection, queueName="orders")
    client = scaler.open_client(config)
    started = time.monotonic()
    try:
        with pytest.raises(ScalerError, match=f"127.0.0.1:{port}: unreachable"):
            await client.read([config])
    finally:
        await client.aclose()
    assert time.monotonic() - started < 3


async def test_certificates_are_verified_without_the_ca(scaler: AzureServiceBusScaler,
                                                       standin: ServiceBusStandIn) -> None:
    standin.set_queue("orders", 1)
    config = config_for(scaler, standin, trust=False, queueName="orders")
    client = scaler.open_client(config)
    try:
        with pytest.raises(ScalerError, match=r"(?i)certificate.verify.failed"):
            await client.read([config])
    finally:
        await client.aclose()
    assert standin.requests == []


async def test_few_entities_one_get_each_shared_by_equal_configs(
        standin: ServiceBusStandIn, client: AzureServiceBusClient, make_config: MakeConfig) -> None:
    for name in ("a", "b", "c"):
        standin.set_queue(name, 1)
    configs = [make_config(queueName=name) for name in ("a", "b", "c", "A")]
    configs.append(make_config(queueName="a", messageCount="50"))
    assert await client.read(configs) == [1.0] * 5
    assert sorted(r.path for r in standin.requests) == ["/a", "/b", "/c"]


@pytest.mark.parametrize("entities, pages", [(40, 1), (230, 3)])
async def test_many_queues_one_listing_per_namespace(scaler: AzureServiceBusScaler, entities: int,
                                                     pages: int) -> None:
    with ServiceBusStandIn() as first, ServiceBusStandIn() as second:
        clients = []
        for server in (first, second):
            for i in range(entities):
                server.set_queue(f"q{i:03}", i)
            configs = [config_for(scaler, server, queueName=f"q{i:03}") for i in range(0, entities, 2)]
            assert len({scaler.server_key(c) for c in configs}) == 1
            client = scaler.open_client(configs[0])
            clients.append(client)
            assert await client.read(configs) == [float(i) for i in range(0, entities, 2)]
        for client in clients:
            await client.aclose()
        for server in (first, second):
            assert [r.path for r in server.requests] == ["/$Resources/queues"] * pages
    assert scaler.server_key(configs[0]) != scaler.server_key(config_for(scaler, first, queueName="q"))


async def test_many_subscriptions_one_listing_per_topic(
        standin: ServiceBusStandIn, client: AzureServiceBusClient, make_config: MakeConfig) -> None:
    for i in range(10):
        standin.set_subscription("events", f"s{i}", i)
    standin.set_subscription("other", "x", 4)
    configs = [make_config(topicName="events", subscriptionName=f"s{i}") for i in range(10)]
    configs.append(make_config(topicName="other", subscriptionName="x"))
    assert await client.read(configs) == [float(i) for i in range(10)] + [4.0]
    assert sorted(r.path for r in standin.requests) == ["/events/subscriptions", "/other/subscriptions/x"]


async def test_open_read_close_cycles_leave_no_connection(scaler: AzureServiceBusScaler,
                                                          standin: ServiceBusStandIn,
                                                          make_config: MakeConfig) -> None:
    standin.set_queue("orders", 3)
    config = make_config(queueName="orders")
    for _ in range(100):
        client = scaler.open_client(config)
        assert await client.read([config]) == [3.0]
        await client.aclose()
    assert len(standin.requests) == 100
    assert await _settled_connections(standin) == 0


async def test_a_client_holds_at_most_its_pool(standin: ServiceBusStandIn, client: AzureServiceBusClient,
                                               make_config: MakeConfig) -> None:
    for name in ("a", "b", "c", "d", "e"):
        standin.set_queue(name, 1)
    configs = [make_config(queueName=name) for name in ("a", "b", "c", "d", "e")]
    for _ in range(5):
        assert await client.read(configs) == [1.0] * 5
    assert 1 <= standin.open_connections() <= len(configs)
    await client.aclose()
    assert await _settled_connections(standin) == 0


async def _settled_connections(server: ServiceBusStandIn, wait: float = 3.0) -> int:
    """The stand-in's open connections once closes have reached it (they arrive asynchronously)."""
    deadline = time.monotonic() + wait
    while (count := server.open_connections()) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return count

