"""The harness's Kafka broker: every listener carries a round trip, and it refuses what it should.

These pin down what the Kafka scaler's tests rely on: each listener with each SASL mechanism
and TLS really works with aiokafka (the scaler's client), bad credentials fail as an
authentication error, and the offsets the harness commits and produces are what the broker
reports through the admin API and a consumer.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed

from tests.harness.kafka_server import PLAIN, SCRAM_SHA_256, SCRAM_SHA_512, WAYS_IN, KafkaServer

pytestmark = pytest.mark.kafka

RECEIVE_TIMEOUT = 30.0


@pytest.fixture
def topic() -> str:
    """A topic name of this test's own."""
    return f"t{uuid.uuid4().hex[:10]}"


def client_options(kafka: KafkaServer, listener: str, mechanism: str | None = None,
                   client_certificate: bool = False) -> dict[str, Any]:
    """aiokafka keyword arguments for one of the broker's listeners."""
    protocol = {"plaintext": "PLAINTEXT", "sasl_plaintext": "SASL_PLAINTEXT", "ssl": "SSL",
                "sasl_ssl": "SASL_SSL", "mtls": "SSL"}[listener]
    options: dict[str, Any] = {"bootstrap_servers": getattr(kafka.listeners, listener),
                               "security_protocol": protocol, "request_timeout_ms": 10000}
    if mechanism is not None:
        user = kafka.users[mechanism]
        options |= {"sasl_mechanism": mechanism, "sasl_plain_username": user.username,
                    "sasl_plain_password": user.password}
    if "SSL" in protocol:
        options["ssl_context"] = kafka.ssl_context(client_certificate=client_certificate)
    return options


@pytest.mark.parametrize("listener, mechanism, client_certificate", WAYS_IN)
async def test_a_message_makes_a_round_trip(kafka_server: KafkaServer, topic: str, listener: str,
                                            mechanism: str | None, client_certificate: bool) -> None:
    await kafka_server.create_topic(topic)
    options = client_options(kafka_server, listener, mechanism, client_certificate)
    producer = AIOKafkaProducer(**options)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"over " + listener.encode(), partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(**options)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.seek_to_beginning()
        message = await asyncio.wait_for(consumer.getone(), RECEIVE_TIMEOUT)
    finally:
        await consumer.stop()
    assert message.value == b"over " + listener.encode()


@pytest.mark.parametrize("listener", ["sasl_plaintext", "sasl_ssl"])
@pytest.mark.parametrize("mechanism, username_of, password", [
    (PLAIN, PLAIN, "wrong-password"),
    (SCRAM_SHA_256, SCRAM_SHA_256, "wrong-password"),
    (SCRAM_SHA_512, SCRAM_SHA_512, "wrong-password"),
    (PLAIN, SCRAM_SHA_256, None),  # a SCRAM user's right password, over the wrong mechanism
    (SCRAM_SHA_512, SCRAM_SHA_256, None),
])
async def test_bad_sasl_credentials_fail_authentication(kafka_server: KafkaServer, listener: str, mechanism: str,
                                                        username_of: str, password: str | None) -> None:
    user = kafka_server.users[username_of]
    secret = user.password if password is None else password
    host, port = getattr(kafka_server.listeners, listener).rsplit(":", 1)
    tls = kafka_server.ssl_context() if listener == "sasl_ssl" else None
    with pytest.raises(SaslAuthenticationFailed) as refused:
        connection = await create_conn(host, int(port), security_protocol=listener.upper(), ssl_context=tls,
                                       sasl_mechanism=mechanism, sasl_plain_username=user.username,
                                       sasl_plain_password=secret)
        connection.close()
    assert secret not in str(refused.value)


async def test_the_mtls_listener_refuses_a_client_without_certificate(kafka_server: KafkaServer) -> None:
    client = AIOKafkaClient(**client_options(kafka_server, "mtls", client_certificate=False))
    try:
        with pytest.raises(KafkaConnectionError):
            await client.bootstrap()
    finally:
        await client.close()


async def test_committed_offsets_and_end_offsets_read_back(kafka_server: KafkaServer, topic: str) -> None:
    group = f"g-{topic}"
    await kafka_server.create_topic(topic, partitions=3)
    await kafka_server.produce(topic, 5, partition=0)
    await kafka_server.produce(topic, 7, partition=1)
    await kafka_server.commit_offsets(group, topic, {0: 2, 1: 7})
    partitions = [TopicPartition(topic, p) for p in range(3)]

    async with kafka_server.admin() as admin:
        committed = await admin.list_consumer_group_offsets(group)
        assert {tp: meta.offset for tp, meta in committed.items()} == {partitions[0]: 2, partitions[1]: 7}
        assert (group, "") in await admin.list_consumer_groups()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_server.bootstrap)
    await consumer.start()
    try:
        assert await consumer.end_offsets(partitions) == {partitions[0]: 5, partitions[1]: 7, partitions[2]: 0}
    finally:
        await consumer.stop()


async def test_a_deleted_group_has_no_offsets(kafka_server: KafkaServer, topic: str) -> None:
    group = f"g-{topic}"
    await kafka_server.create_topic(topic)
    await kafka_server.commit_offsets(group, topic, {0: 0})
    await kafka_server.delete_group(group)
    async with kafka_server.admin() as admin:
        assert group not in [name for name, _ in await admin.list_consumer_groups()]
        assert await admin.list_consumer_group_offsets(group) == {}
