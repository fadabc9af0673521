"""The rabbitmq scaler over the management API against a real broker: every mode with real traffic,
unacked messages, vhosts, regex aggregation, failures, and the cost of a poll.

The broker's statistics lag its queues by a second or two, so tests wait for the management API
to show what they set up before reading through the scaler. Requests are counted by an httpx hook
the scaler is given; connections by the kernel's TCP table.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import pytest

from scalers.base import Reading, ScalerClient, ScalerError
from scalers.rabbitmq.management_client import HTTP_MAX_CONNECTIONS
from scalers.rabbitmq.queue_config import RabbitMQConfig
from scalers.rabbitmq.queues import RabbitMQScaler
from tests.harness.ports import free_port
from tests.harness.rabbitmq_server import (
    OTHER_VHOST,
    PASSWORD,
    RabbitMQServer,
    RequestLog,
    Traffic,
    no_secret,
    tcp_connections_to,
)

Parse = Callable[..., RabbitMQConfig]
Open = Callable[[RabbitMQConfig], ScalerClient[RabbitMQConfig]]
MODES = ("QueueLength", "MessageRate", "DeliverGetRate", "PublishedToDeliveredRatio",
         "ExpectedQueueConsumptionTime")


def floats(values: Sequence[float | Reading | ScalerError]) -> list[float]:
    numbers = [v for v in values if isinstance(v, float)]
    assert len(numbers) == len(values), values
    return numbers


def mode_configs(parse: Parse, host: str, queue: str, activation: str = "0") -> list[RabbitMQConfig]:
    return [parse({"queueName": queue, "host": host, "mode": mode, "value": "10", "activationValue": activation})
            for mode in MODES]


async def test_every_mode_with_real_traffic(rabbitmq: RabbitMQServer, traffic: Traffic, parse: Parse,
                                            open_client: Open) -> None:
    host = rabbitmq.http_url()
    configs = mode_configs(parse, host, traffic.busy) + mode_configs(parse, host, traffic.idle, "2")
    client = open_client(configs[0])
    deadline = time.monotonic() + 20
    while True:  # a just-declared queue answers "no message count yet" until the broker measured it
        busy = list(await client.read(configs[:5]))
        if all(isinstance(v, float) for v in busy) and min(floats(busy)[:3]) > 0:
            break
        assert time.monotonic() < deadline, f"no rates after 20 s: {busy}"
        await asyncio.sleep(0.5)
    values = floats(await client.read(configs))
    length, publish, deliver, ratio, eta = values[:5]
    rate = traffic.achieved_rate
    assert 0.5 * rate < publish < 1.5 * rate, (publish, rate)
    assert 0.25 * rate < deliver < 0.75 * rate, (deliver, rate)
    assert ratio == pytest.approx(publish / deliver)
    assert eta == pytest.approx((publish - deliver) / deliver + length / deliver)
    assert length > 0
    # the idle queue: published to, never delivered: the derived modes force activity (> 2)
    idle_length, idle_publish, idle_deliver, idle_ratio, idle_eta = values[5:]
    assert idle_length > 0 and idle_publish > 0 and idle_deliver == 0
    assert idle_ratio == pytest.approx(2.001) and idle_eta == pytest.approx(2.001)


async def test_empty_idle_queue_is_inactive_in_every_mode(rabbitmq: RabbitMQServer, prefix: str,
                                                          parse: Parse, open_client: Open) -> None:
    rabbitmq.fill("/", {f"{prefix}empty": 0})
    rabbitmq.wait_queue("/", f"{prefix}empty", "messages", 0)
    configs = mode_configs(parse, rabbitmq.http_url(), f"{prefix}empty")
    assert await open_client(configs[0]).read(configs) == [0.0] * 5


async def test_exclude_unacknowledged(rabbitmq: RabbitMQServer, prefix: str, parse: Parse,
                                      open_client: Open) -> None:
    queue = f"{prefix}unacked"
    rabbitmq.fill("/", {queue: 5})
    held = rabbitmq.hold_unacked("/", queue, 2)
    try:
        rabbitmq.wait_queue("/", queue, "messages_unacknowledged", 2)
        rabbitmq.wait_queue("/", queue, "messages", 5)
        host = rabbitmq.http_url()
        configs = [parse({"queueName": queue, "host": host}),
                   parse({"queueName": queue, "host": host, "excludeUnacknowledged": "true"})]
        assert await open_client(configs[0]).read(configs) == [5.0, 3.0]
    finally:
        held.close()


async def test_vhost_from_url_from_vhost_name_and_default(rabbitmq: RabbitMQServer, prefix: str,
                                                          parse: Parse, open_client: Open,
                                                          requests: RequestLog) -> None:
    queue = f"{prefix}q"
    rabbitmq.fill("/", {queue: 2})
    rabbitmq.fill(OTHER_VHOST, {queue: 5})
    rabbitmq.wait_queue("/", queue, "messages", 2)
    rabbitmq.wait_queue(OTHER_VHOST, queue, "messages", 5)
    base = rabbitmq.http_url()
    cases = [({"host": base}, 2.0), ({"host": base + "/"}, 2.0), ({"host": base + "/%2F"}, 2.0),
             ({"host": rabbitmq.http_url(OTHER_VHOST)}, 5.0), ({"host": base, "vhostName": OTHER_VHOST}, 5.0),
             ({"host": rabbitmq.http_url(OTHER_VHOST), "vhostName": "/"}, 2.0)]
    configs = [parse({"queueName": queue, **metadata}) for metadata, _ in cases]
    assert len({c.broker for c in configs}) == 1
    assert await open_client(configs[0]).read(configs) == [expected for _, expected in cases]
    assert sorted(requests.paths) == ["/api/queues/%2F", f"/api/queues/{OTHER_VHOST}"]


@pytest.mark.parametrize("operation, expected", [("sum", 12.0), ("avg", 4.0), ("max", 7.0)])
async def test_regex_aggregates_matching_queues(rabbitmq: RabbitMQServer, prefix: str, parse: Parse,
                                                open_client: Open, operation: str, expected: float) -> None:
    queues = {f"{prefix}job-a": 7, f"{prefix}JOB-b": 5, f"{prefix}job-c": 0, f"{prefix}other": 100}
    rabbitmq.fill("/", queues)
    for queue, count in queues.items():
        rabbitmq.wait_queue("/", queue, "messages", count)
    host = rabbitmq.http_url()
    regex = {"useRegex": "true", "operation": operation, "host": host}
    configs = [
        parse({"queueName": f"^{prefix}job-", **regex}),
        parse({"queueName": f"^{prefix}nothing-matches$", **regex}),
        parse({"queueName": f"^{prefix}job-", "pageSize": "2", **regex}),
    ]
    values = await open_client(configs[0]).read(configs)
    assert values[:2] == [expected, 0.0]
    assert isinstance(values[2], ScalerError)
    assert "matches 3 queues" in str(values[2]) and "pageSize 2" in no_secret(values[2])


async def test_missing_queue_and_vhost_fail_only_their_slots(rabbitmq: RabbitMQServer, prefix: str,
                                                             parse: Parse, open_client: Open) -> None:
    rabbitmq.fill("/", {f"{prefix}here": 3})
    rabbitmq.wait_queue("/", f"{prefix}here", "messages", 3)
    host = rabbitmq.http_url()
    configs = [parse({"queueName": f"{prefix}here", "host": host}),
               parse({"queueName": f"{prefix}gone", "host": host}),
               parse({"queueName": "q", "host": host, "vhostName": f"{prefix}no-such-vhost"})]
    values = await open_client(configs[0]).read(configs)
    assert values[0] == 3.0
    assert isinstance(values[1], ScalerError) and isinstance(values[2], ScalerError)
    text = no_secret(values[1])
    assert f'queue "{prefix}gone" not found in vhost "/"' in text
    assert f"http://{rabbitmq.user}:***@127.0.0.1:{rabbitmq.http_port}" in text
    assert f'vhost "{prefix}no-such-vhost" answered HTTP 404' in no_secret(values[2])


async def test_wrong_password_names_the_broker_not_the_secret(rabbitmq: RabbitMQServer, parse: Parse,
                                                              open_client: Open) -> None:
    wrong = "Wr0ng-" + PASSWORD
    for config in (parse({"queueName": "q", "host": rabbitmq.http_url(password=wrong)}),
                   parse({"queueName": "q", "host": f"http://127.0.0.1:{rabbitmq.http_port}"},
                         {"username": rabbitmq.user, "password": wrong})):
        with pytest.raises(ScalerError) as raised:
            await open_client(config).read([config])
        text = no_secret(raised.value)
        assert wrong not in text and "HTTP 401" in text and f"127.0.0.1:{rabbitmq.http_port}" in text


async def test_unreachable_broker(parse: Parse, open_client: Open) -> None:
    port = free_port()
    config = parse({"queueName": "q", "host": f"http://user:{PASSWORD}@127.0.0.1:{port}", "timeout": "500"})
    with pytest.raises(ScalerError) as raised:
        await open_client(config).read([config])
    assert f"http://user:***@127.0.0.1:{port}" in no_secret(raised.value)


async def test_thousand_configs_one_listing_per_vhost(rabbitmq: RabbitMQServer, prefix: str, parse: Parse,
                                                      open_client: Open, requests: RequestLog) -> None:
    queues = {f"{prefix}{i}": i % 7 for i in range(50)}
    for vhost in ("/", OTHER_VHOST):
        rabbitmq.fill(vhost, queues)
    for vhost in ("/", OTHER_VHOST):
        rabbitmq.wait_queue(vhost, f"{prefix}49", "messages", 0)
        rabbitmq.wait_queue(vhost, f"{prefix}48", "messages", 48 % 7)
    names = list(queues)
    configs = [parse({"queueName": names[i % 50], "host": rabbitmq.http_url(), "queueLength": str(i + 1),
                      "vhostName": OTHER_VHOST if i % 2 else "/"}) for i in range(1000)]
    assert len({c.broker for c in configs}) == 1
    sockets = tcp_connections_to(rabbitmq.http_port)
    client = open_client(configs[0])
    for poll in range(1, 4):
        values = await client.read(configs)
        assert values == [float(queues[names[i % 50]]) for i in range(1000)]
        assert len(requests.paths) == 2 * poll, "one listing per vhost per poll"
        assert tcp_connections_to(rabbitmq.http_port) - sockets <= min(2, HTTP_MAX_CONNECTIONS)
    await client.aclose()
    assert tcp_connections_to(rabbitmq.http_port) == sockets


async def test_open_read_close_cycles_and_failures_leave_nothing(rabbitmq: RabbitMQServer, prefix: str,
                                                                 parse: Parse) -> None:
    rabbitmq.fill("/", {f"{prefix}q": 1})
    rabbitmq.wait_queue("/", f"{prefix}q", "messages", 1)
    scaler = RabbitMQScaler()
    good = parse({"queueName": f"{prefix}q", "host": rabbitmq.http_url()})
    bad = parse({"queueName": f"{prefix}q", "host": rabbitmq.http_url(password="wrong")})
    sockets = tcp_connections_to(rabbitmq.http_port)
    for _ in range(100):
        client = scaler.open_client(good)
        assert await client.read([good]) == [1.0]
        await client.aclose()
    for _ in range(20):
        client = scaler.open_client(bad)
        with pytest.raises(ScalerError):
            await client.read([bad])
        await client.aclose()
    assert tcp_connections_to(rabbitmq.http_port) == sockets
