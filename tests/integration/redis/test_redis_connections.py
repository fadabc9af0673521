"""Sharing, batching and clean-up, measured on the server: CLIENT LIST and INFO deltas.

1,000 triggers on one server must hold a small constant number of connections and cost one
round trip per read; failing reads and open/read/close cycles must leave no connection behind.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import pytest

from scalers.base import ScalerError
from scalers.redis.connection import CLIENT_NAME, POOL_SIZE
from scalers.redis.lists import RedisScaler
from scalers.redis.pipeline import KEYS_PER_CALL
from tests.harness.redis_servers import (
    ACL_PASSWORD,
    ACL_USER,
    SENTINEL_MASTER,
    SENTINEL_PASSWORD,
    RedisClusterServers,
    RedisSentinelSetup,
    RedisServer,
    Traffic,
    clients,
)

pytestmark = pytest.mark.brokers

Parse = Callable[..., Any]
Open = Callable[[Any], Any]
CONFIGS = 1000
LISTS = RedisScaler()


async def wait_for_clients(server: RedisServer, count: int) -> list[dict[str, Any]]:
    """CLIENT LIST once the server has seen closed sockets go (it notices on its next event)."""
    for _ in range(50):
        listed = clients(server, CLIENT_NAME)
        if len(listed) == count:
            return listed
        await asyncio.sleep(0.02)
    return clients(server, CLIENT_NAME)


async def test_thousand_configs_share_a_few_connections_and_one_round_trip(
        redis_server: RedisServer, prefix: str, parse: Parse, open_client: Open) -> None:
    admin = redis_server.admin()
    with admin.pipeline(transaction=False) as pipe:
        for index in range(CONFIGS):
            if index % 17:
                pipe.rpush(f"{prefix}{index}", *range(index % 17))
        pipe.execute()
    configs = [parse("redis", {"listName": f"{prefix}{index}", "address": redis_server.address,
                               "listLength": "10"}) for index in range(CONFIGS)]
    assert len({LISTS.server_key(config) for config in configs}) == 1
    client = open_client(configs[0])
    await client.read(configs)
    traffic = Traffic(redis_server)
    for _ in range(3):
        assert await client.read(configs) == [float(index % 17) for index in range(CONFIGS)]
        count = traffic.since()
        assert count.commands["evalsha"] == math.ceil(CONFIGS / KEYS_PER_CALL), count
        assert count.reads <= 5, count  # one pipelined request, read in a few socket reads at most
    held = clients(redis_server, CLIENT_NAME)
    assert 1 <= len(held) <= POOL_SIZE, held


async def test_concurrent_reads_stay_within_the_pool(redis_server: RedisServer, prefix: str, parse: Parse,
                                                     open_client: Open) -> None:
    configs = [parse("redis", {"listName": f"{prefix}{index}", "address": redis_server.address})
               for index in range(50)]
    client = open_client(configs[0])
    results = await asyncio.gather(*(client.read(configs[index:]) for index in range(20)))
    assert all(values == [0.0] * len(values) for values in results)
    assert 1 <= len(clients(redis_server, CLIENT_NAME)) <= POOL_SIZE


async def test_repeated_failures_leave_no_connection(redis_server: RedisServer, parse: Parse,
                                                     open_client: Open) -> None:
    baseline = len(clients(redis_server))
    config = parse("redis", {"listName": "q", "address": redis_server.address, "username": ACL_USER},
                   {"password": "Wrong-Pa55word-1"})
    same_client = open_client(config)
    for _ in range(20):
        with pytest.raises(ScalerError):
            await same_client.read([config])
    for _ in range(20):  # the owner's way: close the failed client, open a fresh one
        fresh = LISTS.open_client(config)
        with pytest.raises(ScalerError):
            await fresh.read([config])
        await fresh.aclose()
    await asyncio.sleep(0.05)
    assert len(clients(redis_server)) == baseline


async def test_open_read_close_cycles_leave_no_connection(redis_server: RedisServer, prefix: str,
                                                          parse: Parse) -> None:
    config = parse("redis", {"listName": prefix + "q", "address": redis_server.address, "username": ACL_USER},
                   {"password": ACL_PASSWORD})
    baseline = len(clients(redis_server))
    for _ in range(100):
        client = LISTS.open_client(config)
        assert await client.read([config]) == [0.0]
        await client.aclose()
    assert await wait_for_clients(redis_server, 0) == []
    assert len(clients(redis_server)) == baseline


async def test_cluster_cycles_leave_no_connection(redis_cluster: RedisClusterServers, prefix: str,
                                                  parse: Parse) -> None:
    configs = [parse("redis-cluster", {"listName": f"{prefix}{index}", "addresses": redis_cluster.addresses})
               for index in range(30)]
    for _ in range(20):
        client = LISTS.open_client(configs[0])
        assert await client.read(configs) == [0.0] * 30
        held = [len(clients(node, CLIENT_NAME)) for node in redis_cluster.nodes]
        assert all(1 <= count <= POOL_SIZE for count in held), held
        await client.aclose()
    for node in redis_cluster.nodes:
        assert await wait_for_clients(node, 0) == []


async def test_sentinel_cycles_leave_no_connection(redis_sentinel: RedisSentinelSetup, prefix: str,
                                                   parse: Parse) -> None:
    config = parse("redis-sentinel", {
        "listName": prefix + "q", "addresses": redis_sentinel.sentinel_address, "sentinelMaster": SENTINEL_MASTER,
        "username": ACL_USER}, {"password": ACL_PASSWORD, "sentinelPassword": SENTINEL_PASSWORD})
    assert redis_sentinel.sentinel is not None
    for _ in range(20):
        client = LISTS.open_client(config)
        assert await client.read([config]) == [0.0]
        await client.aclose()
    assert await wait_for_clients(redis_sentinel.master, 0) == []
    assert await wait_for_clients(redis_sentinel.sentinel, 0) == []


async def test_reads_survive_a_killed_connection_and_a_flushed_script_cache(
        redis_server: RedisServer, prefix: str, parse: Parse, open_client: Open) -> None:
    redis_server.admin().rpush(prefix + "q", 1, 2)
    config = parse("redis", {"listName": prefix + "q", "address": redis_server.address})
    client = open_client(config)
    assert await client.read([config]) == [2.0]
    for entry in clients(redis_server, CLIENT_NAME):
        redis_server.admin().client_kill_filter(_id=entry["id"])
    await asyncio.sleep(0.05)  # polls are seconds apart: the closed socket is noticed before the next
    assert await client.read([config]) == [2.0]
    redis_server.admin().script_flush()
    traffic = Traffic(redis_server)
    assert await client.read([config]) == [2.0]
    assert traffic.since().commands["script|load"] == 1
    assert await client.read([config]) == [2.0]
    assert "script|load" not in traffic.since().commands


async def test_a_read_cancelled_by_the_owner_timeout_leaves_nothing_behind(
        redis_server: RedisServer, prefix: str, parse: Parse) -> None:
    config = parse("redis", {"listName": prefix + "q", "address": redis_server.address})
    client = LISTS.open_client(config)
    assert await client.read([config]) == [0.0]
    redis_server.admin().client_pause(300)  # the server holds every client's next command
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await client.read([config])
    await client.aclose()
    await asyncio.sleep(0.4)
    assert await wait_for_clients(redis_server, 0) == []
    fresh = LISTS.open_client(config)
    assert await fresh.read([config]) == [0.0]
    await fresh.aclose()
