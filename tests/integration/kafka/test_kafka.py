"""The kafka scaler against a real KRaft broker: lag by KEDA's rules, every listener, failures, batching.

Each test makes topics and groups of its own (names carry a random suffix), commits offsets the
way a stopped consumer leaves them, and reads them through the scaler's own parse and client.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from scalers.base import Reading, ScalerError
from scalers.kafka import KafkaScaler
from scalers.kafka.kafka_config import KafkaConfig
from scalers.kafka.offsets import KafkaClient
from scalers.params import TriggerParams, mask, secret_values
from tests.harness.kafka_server import PLAIN, SCRAM_SHA_256, SCRAM_SHA_512, WAYS_IN, KafkaServer
from tests.harness.rabbitmq_server import tcp_connections_to
from tests.harness.tls_material import KEY_PASSWORD, TLSMaterial

pytestmark = pytest.mark.kafka

SCALER = KafkaScaler()
SASL_NAMES = {PLAIN: "plaintext", SCRAM_SHA_256: "scram_sha256", SCRAM_SHA_512: "scram_sha512"}


@pytest.fixture
def name() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def opened() -> AsyncIterator[list[KafkaClient]]:
    """Clients a test opens, closed after it."""
    clients: list[KafkaClient] = []
    yield clients
    for client in clients:
        await client.aclose()


def config(bootstrap: str, group: str, topic: str = "", auth: dict[str, str] | None = None,
           **metadata: str) -> KafkaConfig:
    found = SCALER.parse("kafka", TriggerParams(
        metadata={"bootstrapServers": bootstrap, "consumerGroup": group, "topic": topic, **metadata},
        auth=auth or {}))
    assert isinstance(found, KafkaConfig)
    return found


async def read(opened: list[KafkaClient], *configs: KafkaConfig) -> list[Reading | ScalerError]:
    client = SCALER.open_client(configs[0])
    opened.append(client)
    return list(await client.read(list(configs)))


async def lagging_topic(kafka: KafkaServer, name: str, ends: dict[int, int], committed: dict[int, int],
                        partitions: int = 3) -> tuple[str, str]:
    """A topic with `ends` messages per partition and a group that committed `committed`."""
    topic, group = f"t-{name}", f"g-{name}"
    await kafka.create_topic(topic, partitions)
    for partition, count in ends.items():
        await kafka.produce(topic, count, partition)
    if committed:
        await kafka.commit_offsets(group, topic, committed)
    return topic, group


# -- lag, KEDA's rules ------------------------------------------------------------------------------


@pytest.mark.parametrize("metadata, value, active", [
    ({}, 4, True),  # 3 + 0 + 1 (partition 2: nothing committed, latest counts 1)
    ({"lagThreshold": "1"}, 3, True),  # capped at one consumer per partition
    ({"lagThreshold": "1", "allowIdleConsumers": "true"}, 4, True),
    ({"lagThreshold": "1", "limitToPartitionsWithLag": "true"}, 2, True),
    ({"scaleToZeroOnInvalidOffset": "true"}, 3, True),
    ({"offsetResetPolicy": "earliest"}, 9, True),  # partition 2: all 6 messages
    ({"offsetResetPolicy": "earliest", "scaleToZeroOnInvalidOffset": "true"}, 3, True),
    ({"partitionLimitation": "1"}, 0, False),
    ({"partitionLimitation": "0-1"}, 3, True),
    ({"activationLagThreshold": "4"}, 4, False),
    ({"lagThreshold": "2", "ensureEvenDistributionOfPartitions": "true"}, 6, True),  # 4 lag -> 3 consumers (of 3)
])
async def test_lag_follows_keda(kafka_server: KafkaServer, opened: list[KafkaClient], name: str,
                                metadata: dict[str, str], value: float, active: bool) -> None:
    topic, group = await lagging_topic(kafka_server, name, {0: 5, 1: 7, 2: 6}, {0: 2, 1: 7})
    (found,) = await read(opened, config(kafka_server.bootstrap, group, topic, None, **metadata))
    assert found == Reading(value, active)


async def test_without_topic_every_topic_of_the_group_counts(kafka_server: KafkaServer, opened: list[KafkaClient],
                                                             name: str) -> None:
    _, group = await lagging_topic(kafka_server, name, {0: 4}, {0: 1}, partitions=1)
    second = f"t2-{name}"
    await kafka_server.create_topic(second, 2)
    await kafka_server.produce(second, 10, 1)
    await kafka_server.commit_offsets(group, second, {0: 0, 1: 4})
    (found,) = await read(opened, config(kafka_server.bootstrap, group, lagThreshold="100"))
    assert found == Reading(3 + 0 + 6, True)
    assert SCALER.metric(config(kafka_server.bootstrap, group)).name == f"kafka-{group}-topics"


async def test_persistent_lag_is_left_out_of_the_value_but_keeps_the_trigger_active(
        kafka_server: KafkaServer, opened: list[KafkaClient], name: str) -> None:
    topic, group = await lagging_topic(kafka_server, name, {0: 8}, {0: 3}, partitions=1)
    stuck = config(kafka_server.bootstrap, group, topic, excludePersistentLag="true")
    client = SCALER.open_client(stuck)
    opened.append(client)
    assert await client.read([stuck]) == [Reading(5, True)]  # first sight: counted
    assert await client.read([stuck]) == [Reading(0, True)]  # the consumer did not move: persistent
    await kafka_server.commit_offsets(group, topic, {0: 6})
    assert await client.read([stuck]) == [Reading(2, True)]  # it moved again


async def test_a_group_that_never_committed_counts_one_per_partition(
        kafka_server: KafkaServer, opened: list[KafkaClient], name: str) -> None:
    topic, _ = await lagging_topic(kafka_server, name, {0: 3}, {}, partitions=2)
    (found,) = await read(opened, config(kafka_server.bootstrap, f"nobody-{name}", topic))
    assert found == Reading(2, True)


# -- every listener --------------------------------------------------------------------------------


def listener_auth(kafka: KafkaServer, tls: TLSMaterial, listener: str, mechanism: str | None,
                  certificate: bool) -> tuple[str, dict[str, str]]:
    auth: dict[str, str] = {}
    if mechanism is not None:
        user = kafka.users[mechanism]
        auth |= {"sasl": SASL_NAMES[mechanism], "username": user.username, "password": user.password}
    if "ssl" in listener or listener == "mtls":
        auth |= {"tls": "enable", "ca": tls.ca_pem}
    if certificate:
        auth |= {"cert": tls.client_cert_pem, "key": tls.client_key_encrypted_pem, "keyPassword": KEY_PASSWORD}
    return getattr(kafka.listeners, listener), auth


# plaintext (`kafka_server.bootstrap`) is what every other test here reads through
@pytest.mark.parametrize("listener, mechanism, certificate", [way for way in WAYS_IN if way[0] != "plaintext"])
async def test_every_listener_reads_the_same_lag(kafka_server: KafkaServer, tls_material: TLSMaterial,
                                                 opened: list[KafkaClient], name: str, listener: str,
                                                 mechanism: str | None, certificate: bool) -> None:
    topic, group = await lagging_topic(kafka_server, name, {0: 6}, {0: 1}, partitions=1)
    address, auth = listener_auth(kafka_server, tls_material, listener, mechanism, certificate)
    (found,) = await read(opened, config(address, group, topic, auth=auth))
    assert found == Reading(5, True)


# -- failures name the cluster and never the secret ----------------------------------------------


async def test_a_wrong_password_fails_the_read_without_showing_it(kafka_server: KafkaServer,
                                                                  opened: list[KafkaClient], name: str) -> None:
    user = kafka_server.users[SCRAM_SHA_512]
    secret = "Wr0ng-Pa55word-s3cret"
    wrong = config(kafka_server.listeners.sasl_plaintext, f"g-{name}", "t",
                   auth={"sasl": "scram_sha512", "username": user.username, "password": secret})
    client = SCALER.open_client(wrong)
    opened.append(client)
    with pytest.raises(ScalerError) as failed:
        await client.read([wrong])
    message = mask(str(failed.value), secret_values(wrong))
    assert kafka_server.listeners.sasl_plaintext in message and "Authentication" in message
    assert secret not in str(failed.value) and secret not in repr(wrong)


async def test_a_broker_that_is_not_there_fails_the_read(opened: list[KafkaClient]) -> None:
    down = config("127.0.0.1:1", "g", "t")
    client = SCALER.open_client(down)
    opened.append(client)
    with pytest.raises(ScalerError, match=r"kafka 127\.0\.0\.1:1: cannot connect"):
        await client.read([down])


async def test_an_unknown_topic_or_group_fails_only_its_triggers(kafka_server: KafkaServer,
                                                                 opened: list[KafkaClient], name: str) -> None:
    topic, group = await lagging_topic(kafka_server, name, {0: 2}, {0: 0}, partitions=1)
    good, missing_topic, empty_group = (config(kafka_server.bootstrap, group, topic),
                                        config(kafka_server.bootstrap, group, f"nope-{name}"),
                                        config(kafka_server.bootstrap, f"nobody-{name}"))
    found = await read(opened, good, missing_topic, empty_group)
    assert found[0] == Reading(2, True)
    assert isinstance(found[1], ScalerError) and f'topic "nope-{name}" is unknown' in str(found[1])
    assert isinstance(found[2], ScalerError) and f'"nobody-{name}" has no committed offsets' in str(found[2])


# -- one client, few requests, one connection ---------------------------------------------------


async def test_a_poll_of_many_groups_is_a_handful_of_requests_on_one_connection(
        kafka_server: KafkaServer, opened: list[KafkaClient], name: str) -> None:
    sent: list[object] = []
    scaler = KafkaScaler(request_hooks=[sent.append])
    topics = [f"t{i}-{name}" for i in range(5)]
    for topic in topics:
        await kafka_server.create_topic(topic, 4)
        await kafka_server.produce(topic, 9, 3)
    configs = []
    for i in range(60):
        group = f"g{i}-{name}"
        await kafka_server.commit_offsets(group, topics[i % 5], {3: i % 9})
        configs.append(config(kafka_server.bootstrap, group, topics[i % 5], lagThreshold="100"))
    before = tcp_connections_to(int(kafka_server.bootstrap.rsplit(":", 1)[1]))
    client = scaler.open_client(configs[0])
    opened.append(client)
    first = await client.read(configs)
    assert first == [Reading(9 - i % 9 + 3, True) for i in range(60)]  # partitions 0-2 never committed: 1 each
    assert len(sent) <= 4  # coordinators, offsets of all 60 groups, metadata, end offsets
    sent.clear()
    assert await client.read(configs) == first
    assert len(sent) == 2  # offsets of all 60 groups, end offsets of all 20 partitions
    assert tcp_connections_to(int(kafka_server.bootstrap.rsplit(":", 1)[1])) - before == 1


def test_configs_on_one_cluster_share_a_client_key() -> None:
    one = config("b:9092,a:9092", "g1", "t1", auth={"sasl": "plaintext", "username": "u", "password": "p"})
    two = config("a:9092, b:9092", "g2", "t2", auth={"sasl": "plaintext", "username": "u", "password": "p"})
    other = config("a:9092,b:9092", "g2", "t2", auth={"sasl": "plaintext", "username": "u", "password": "q"})
    assert SCALER.server_key(one) == SCALER.server_key(two) != SCALER.server_key(other)
