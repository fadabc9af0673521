"""The rabbitmq scaler over AMQP against a real broker: ready counts, vhosts, TLS, failures, scale.

Connections and channels are counted by the broker itself (management API, by the scaler's
connection name), so "one connection, one channel" and "nothing left behind" are the broker's word.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from urllib.parse import quote

import pytest

from scalers.base import ScalerClient, ScalerError
from scalers.rabbitmq.queue_config import CONNECTION_NAME, RabbitMQConfig
from scalers.rabbitmq.queues import RabbitMQScaler
from tests.harness.ports import free_port
from tests.harness.rabbitmq_server import OTHER_VHOST, PASSWORD, RabbitMQServer, no_secret, tcp_connections_to

Parse = Callable[..., RabbitMQConfig]
Open = Callable[[RabbitMQConfig], ScalerClient[RabbitMQConfig]]


async def test_queue_length_is_the_ready_count(rabbitmq: RabbitMQServer, prefix: str, parse: Parse,
                                               open_client: Open) -> None:
    rabbitmq.fill("/", {f"{prefix}a": 3, f"{prefix}b": 0, f"{prefix}c": 11})
    held = rabbitmq.hold_unacked("/", f"{prefix}c", 4)
    try:
        configs = [parse({"queueName": f"{prefix}{q}", "host": rabbitmq.amqp_url()}) for q in "abc"]
        assert await open_client(configs[0]).read(configs) == [3.0, 0.0, 7.0]
    finally:
        held.close()


async def test_vhost_from_url_from_vhost_name_and_default(rabbitmq: RabbitMQServer, prefix: str,
                                                          parse: Parse, open_client: Open) -> None:
    rabbitmq.fill("/", {f"{prefix}q": 2})
    rabbitmq.fill(OTHER_VHOST, {f"{prefix}q": 5})
    host = f"amqp://{rabbitmq.user}:{quote(PASSWORD, safe='')}@127.0.0.1:{rabbitmq.amqp_port}"
    cases = [
        ({"host": host}, 2.0),
        ({"host": host + "/"}, 2.0),
        ({"host": host + "/%2F"}, 2.0),
        ({"host": rabbitmq.amqp_url(OTHER_VHOST)}, 5.0),
        ({"host": host, "vhostName": OTHER_VHOST}, 5.0),
        ({"host": rabbitmq.amqp_url(OTHER_VHOST), "vhostName": "/"}, 2.0),
    ]
    for metadata, expected in cases:
        config = parse({"queueName": f"{prefix}q", **metadata})
        assert await open_client(config).read([config]) == [expected], metadata


async def test_missing_queue_fails_only_its_slot(rabbitmq: RabbitMQServer, prefix: str, parse: Parse,
                                                 open_client: Open) -> None:
    rabbitmq.fill("/", {f"{prefix}a": 1, f"{prefix}b": 2})
    names = ["a", "missing-1", "b", "missing-2", "a"]
    configs = [parse({"queueName": f"{prefix}{n}", "host": rabbitmq.amqp_url()}) for n in names]
    client = open_client(configs[0])
    for _ in range(2):  # the second read reuses the connection and the reopened channel
        values = await client.read(configs)
        assert [values[0], values[2], values[4]] == [1.0, 2.0, 1.0]
        for slot, name in ((1, "missing-1"), (3, "missing-2")):
            assert isinstance(values[slot], ScalerError)
            text = no_secret(values[slot])
            assert f'queue "{prefix}{name}" not found in vhost "/"' in text
            assert f"amqp://{rabbitmq.user}:***@127.0.0.1:{rabbitmq.amqp_port}/%2F" in text
    assert rabbitmq.wait_connections(CONNECTION_NAME, 1) == 1
    assert rabbitmq.wait_channels(CONNECTION_NAME, 1) == 1


async def test_wrong_password_names_the_broker_not_the_secret(rabbitmq: RabbitMQServer, parse: Parse,
                                                              open_client: Open) -> None:
    wrong = "Wr0ng-" + PASSWORD
    config = parse({"queueName": "q", "host": rabbitmq.amqp_url(password=wrong)})
    with pytest.raises(ScalerError) as raised:
        await open_client(config).read([config])
    text = no_secret(raised.value)
    assert wrong not in text
    assert "login refused" in text and f"127.0.0.1:{rabbitmq.amqp_port}" in text
    auth_config = parse({"queueName": "q", "host": f"amqp://127.0.0.1:{rabbitmq.amqp_port}"},
                        {"username": rabbitmq.user, "password": wrong})
    with pytest.raises(ScalerError, match="login refused") as raised:
        await open_client(auth_config).read([auth_config])
    assert wrong not in str(raised.value)


async def test_unreachable_broker(parse: Parse, open_client: Open) -> None:
    port = free_port()
    config = parse({"queueName": "q", "host": f"amqp://user:{PASSWORD}@127.0.0.1:{port}/"})
    with pytest.raises(ScalerError) as raised:
        await open_client(config).read([config])
    text = no_secret(raised.value)
    assert f"amqp://user:***@127.0.0.1:{port}/%2F" in text and "cannot connect" in text


async def test_tls_with_ca_and_client_certificate(rabbitmq: RabbitMQServer, prefix: str, parse: Parse,
                                                  open_client: Open) -> None:
    rabbitmq.fill("/", {f"{prefix}tls": 6})
    host = rabbitmq.amqp_url(tls=True)
    material = {"tls": "enable", "ca": rabbitmq.tls.ca_pem, "cert": rabbitmq.tls.client_cert_pem,
                "key": rabbitmq.tls.client_key_pem}
    trusted = parse({"queueName": f"{prefix}tls", "host": host}, material)
    assert await open_client(trusted).read([trusted]) == [6.0]
    via_name = parse({"queueName": f"{prefix}tls", "host": host.replace("127.0.0.1", "localhost")},
                     {"tls": "enable", "ca": rabbitmq.tls.ca_pem})
    assert await open_client(via_name).read([via_name]) == [6.0]
    unsafe = parse({"queueName": f"{prefix}tls", "host": host, "unsafeSsl": "true"})
    assert await open_client(unsafe).read([unsafe]) == [6.0]
    untrusted = parse({"queueName": f"{prefix}tls", "host": host})
    with pytest.raises(ScalerError) as raised:
        await open_client(untrusted).read([untrusted])
    text = no_secret(raised.value)
    assert f"amqps://{rabbitmq.user}:***@127.0.0.1:{rabbitmq.amqps_port}" in text and "cannot connect" in text


async def test_stale_connection_is_replaced_within_the_read(rabbitmq: RabbitMQServer, prefix: str,
                                                            parse: Parse, open_client: Open) -> None:
    rabbitmq.fill("/", {f"{prefix}q": 4})
    config = parse({"queueName": f"{prefix}q", "host": rabbitmq.amqp_url()})
    client = open_client(config)
    assert await client.read([config]) == [4.0]
    assert rabbitmq.wait_connections(CONNECTION_NAME, 1) == 1
    (old,) = [c["name"] for c in rabbitmq.connections(CONNECTION_NAME)]
    rabbitmq.api("DELETE", f"/api/connections/{quote(old, safe='')}")
    assert await client.read([config]) == [4.0]
    deadline = time.monotonic() + 15
    while (names := [c["name"] for c in rabbitmq.connections(CONNECTION_NAME)]) != names[:1] or old in names:
        assert time.monotonic() < deadline, f"connections {names}: expected one new one in place of {old}"
        time.sleep(0.2)


async def test_thousand_configs_one_connection_one_channel(rabbitmq: RabbitMQServer, prefix: str,
                                                           parse: Parse, open_client: Open) -> None:
    queues = {f"{prefix}{i}": i % 7 for i in range(50)}
    rabbitmq.fill("/", queues)
    names = list(queues)
    configs = [parse({"queueName": names[i % 50], "host": rabbitmq.amqp_url(), "queueLength": str(i + 1)})
               for i in range(1000)]
    assert len({c.broker for c in configs}) == 1
    client = open_client(configs[0])
    for _ in range(3):
        values = await client.read(configs)
        assert values == [float(queues[names[i % 50]]) for i in range(1000)]
    assert rabbitmq.wait_connections(CONNECTION_NAME, 1) == 1
    assert rabbitmq.wait_channels(CONNECTION_NAME, 1) == 1


async def test_open_read_close_cycles_and_failures_leave_nothing(rabbitmq: RabbitMQServer, prefix: str,
                                                                 parse: Parse) -> None:
    rabbitmq.fill("/", {f"{prefix}q": 1})
    scaler = RabbitMQScaler()
    good = parse({"queueName": f"{prefix}q", "host": rabbitmq.amqp_url()})
    bad = parse({"queueName": f"{prefix}q", "host": rabbitmq.amqp_url(password="wrong")})
    threads, sockets = threading.active_count(), tcp_connections_to(rabbitmq.amqp_port)
    created = rabbitmq.churn("connection_created")
    for _ in range(100):
        client = scaler.open_client(good)
        assert await client.read([good]) == [1.0]
        await client.aclose()
    for _ in range(10):
        client = scaler.open_client(bad)
        with pytest.raises(ScalerError):
            await client.read([bad])
        await client.aclose()
    deadline = time.monotonic() + 15
    while rabbitmq.churn("connection_created") < created + 100:  # failed logins are not counted
        assert time.monotonic() < deadline, "the broker saw the 100 connections"
        time.sleep(0.2)
    assert rabbitmq.wait_connections(CONNECTION_NAME, 0) == 0
    assert tcp_connections_to(rabbitmq.amqp_port) == sockets
    deadline = time.monotonic() + 10
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.1)
    assert threading.active_count() <= threads, "every client's worker thread ended"
