"""Many ScaledObjects, few connections: the catalog and metric store against real brokers.

1,000 ScaledObjects on one Redis and one RabbitMQ (over AMQP and the management API) go through
the same path as in the adapter: catalog (TriggerAuthentication and Secret resolution) ->
metric store -> batched scaler reads. What the servers themselves report is asserted: Redis
`CLIENT LIST` and command counters, the RabbitMQ management API's connections, and every
management API request the scaler sent.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from adapter.catalog.catalog import Catalog
from adapter.store.store import MetricStore
from scalers.rabbitmq.queue_config import CONNECTION_NAME
from scalers.rabbitmq.queues import RabbitMQScaler
from scalers.registry import ScalerRegistry
from tests.harness.rabbitmq_server import OTHER_VHOST, PASSWORD, USER, RabbitMQServer, RequestLog
from tests.harness.redis_servers import ACL_PASSWORD, ACL_USER, RedisServer, Traffic, clients

REDIS_OBJECTS, AMQP_OBJECTS, HTTP_OBJECTS = 400, 300, 300
QUEUES = 20


def secret(name: str, **values: str) -> dict[str, Any]:
    data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    return {"kind": "Secret", "metadata": {"name": name, "namespace": "default"}, "data": data}


def trigger_auth(name: str, secret_name: str, *parameters: str) -> dict[str, Any]:
    refs = [{"parameter": p, "name": secret_name, "key": p} for p in parameters]
    return {"kind": "TriggerAuthentication", "metadata": {"name": name, "namespace": "default"},
            "spec": {"secretTargetRef": refs}}


def scaled_object(name: str, trigger: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"scaleTargetRef": {"name": name}, "triggers": [trigger]}}


def objects(redis: RedisServer, rabbitmq: RabbitMQServer, prefix: str) -> list[dict[str, Any]]:
    found = [
        secret("redis", address=redis.address, username=ACL_USER, password=ACL_PASSWORD),
        trigger_auth("redis", "redis", "address", "username", "password"),
        secret("amqp", host=rabbitmq.amqp_url("/")),
        trigger_auth("amqp", "amqp", "host"),
        secret("http", host=rabbitmq.http_url(), username=USER, password=PASSWORD),
        trigger_auth("http", "http", "host", "username", "password"),
    ]
    for i in range(REDIS_OBJECTS):
        found.append(scaled_object(f"r{i}", {"type": "redis", "authenticationRef": {"name": "redis"},
                                             "metadata": {"listName": f"{prefix}list-{i % QUEUES}"}}))
    for i in range(AMQP_OBJECTS):
        found.append(scaled_object(f"a{i}", {"type": "rabbitmq", "authenticationRef": {"name": "amqp"},
                                             "metadata": {"queueName": f"{prefix}q-{i % QUEUES}"}}))
    for i in range(HTTP_OBJECTS):
        vhost = OTHER_VHOST if i % 2 else "/"
        found.append(scaled_object(f"h{i}", {"type": "rabbitmq", "authenticationRef": {"name": "http"},
                                             "metadata": {"queueName": f"{prefix}q-{i % QUEUES}",
                                                          "vhostName": vhost, "protocol": "http"}}))
    return found


@pytest.fixture
def requests() -> RequestLog:
    return RequestLog()


@pytest.fixture
async def adapter_parts(requests: RequestLog) -> Any:
    catalog = Catalog(ScalerRegistry(scalers=[RabbitMQScaler(http_request_hooks=[requests])]))
    store = MetricStore(timeout=10)
    store.follow(catalog)
    yield catalog, store
    await store.aclose()


def fill(redis: RedisServer, rabbitmq: RabbitMQServer, prefix: str) -> dict[str, int]:
    lengths = {f"{prefix}{i}": 3 * i + 1 for i in range(QUEUES)}
    admin = redis.admin()
    for i in range(QUEUES):
        admin.rpush(f"{prefix}list-{i}", *range(lengths[f"{prefix}{i}"]))
    for vhost in ("/", OTHER_VHOST):
        rabbitmq.fill(vhost, {f"{prefix}q-{i}": lengths[f"{prefix}{i}"] for i in range(QUEUES)})
    for i in range(QUEUES):
        rabbitmq.wait_queue("/", f"{prefix}q-{i}", "messages", lengths[f"{prefix}{i}"])
        rabbitmq.wait_queue(OTHER_VHOST, f"{prefix}q-{i}", "messages", lengths[f"{prefix}{i}"])
    return lengths


async def test_a_thousand_scaled_objects_share_a_few_connections(
    redis_server: RedisServer, rabbitmq: RabbitMQServer, adapter_parts: Any, requests: RequestLog
) -> None:
    catalog, store = adapter_parts
    prefix = "shared-"
    lengths = fill(redis_server, rabbitmq, prefix)
    catalog.replace_all([(o, "test") for o in objects(redis_server, rabbitmq, prefix)])
    assert not catalog.problems
    redis_before = len(clients(redis_server, "eventscale"))
    traffic = Traffic(redis_server)

    for poll in range(3):
        entries = list(store.entries())
        traffic.since()  # forget what the observer itself sent since the last poll
        calls_before = len(requests.paths)
        await store.refresh(entries)
        redis_traffic = traffic.since()
        assert len(entries) == REDIS_OBJECTS + AMQP_OBJECTS + HTTP_OBJECTS
        for entry in entries:
            assert entry.status == 200, entry.error
            index = int(entry.trigger.scaled_object[1:]) % QUEUES
            assert entry.value == lengths[f"{prefix}{index}"]
        assert redis_traffic.commands.get("evalsha", 0) <= 2, redis_traffic  # 400 objects, one script call
        if poll:  # the first poll also connects: AUTH, CLIENT SETNAME, SCRIPT LOAD
            assert redis_traffic.reads <= 2, redis_traffic  # one pipelined round trip
        # one connection for the reads, one for the keyspace subscription that wakes the objects
        # not known to be scaled up (here no controller reports any): still not one per object
        assert len(clients(redis_server, "eventscale")) - redis_before <= 2
        assert rabbitmq.wait_connections(CONNECTION_NAME, 1) == 1  # one AMQP connection for 300 objects
        calls_this_poll = len(requests.paths) - calls_before
        assert 2 <= calls_this_poll <= 4, requests.paths  # one listing per vhost (a 5xx is retried once)
    assert store.stats()["clients"] == 3  # redis, rabbitmq amqp, rabbitmq http


async def connections_back_to(redis: RedisServer, count: int, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (now := len(clients(redis, "eventscale"))) != count:
        assert asyncio.get_running_loop().time() < deadline, f"{now} eventscale connections, not {count}"
        await asyncio.sleep(0.05)


async def test_create_and_delete_cycles_leave_nothing_behind(
    redis_server: RedisServer, rabbitmq: RabbitMQServer, adapter_parts: Any
) -> None:
    catalog, store = adapter_parts
    prefix = "cycle-"
    fill(redis_server, rabbitmq, prefix)
    base = [secret("redis", address=redis_server.address, username=ACL_USER, password=ACL_PASSWORD),
            trigger_auth("redis", "redis", "address", "username", "password"),
            secret("amqp", host=rabbitmq.amqp_url("/")), trigger_auth("amqp", "amqp", "host")]
    for item in base:
        catalog.apply(item)
    redis_before = len(clients(redis_server, "eventscale"))
    for cycle in range(100):
        redis_so = scaled_object("r", {"type": "redis", "authenticationRef": {"name": "redis"},
                                       "metadata": {"listName": f"{prefix}list-{cycle % QUEUES}"}})
        amqp_so = scaled_object("a", {"type": "rabbitmq", "authenticationRef": {"name": "amqp"},
                                      "metadata": {"queueName": f"{prefix}q-{cycle % QUEUES}"}})
        catalog.apply(redis_so)
        catalog.apply(amqp_so)
        entries = list(store.entries())
        await store.refresh(entries)
        assert [e.status for e in entries] == [200, 200]
        catalog.apply(redis_so, deleted=True)
        catalog.apply(amqp_so, deleted=True)
        assert store.stats()["servers"] == 0
    await connections_back_to(redis_server, redis_before)  # closes run as tasks
    assert rabbitmq.wait_connections(CONNECTION_NAME, 0) == 0
