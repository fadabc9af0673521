"""The redis-streams scaler against real servers: KEDA's three modes, missing streams and groups.

Consumer-group lag needs Redis 7 (XINFO GROUPS reports `lag` from 7.0 on); the harness installs
Debian's redis-server, which is 7.x, and `test_server_is_redis_7` says so if that ever changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from scalers.base import ScalerError
from tests.harness.redis_servers import (
    ACL_PASSWORD,
    ACL_USER,
    SENTINEL_MASTER,
    SENTINEL_PASSWORD,
    RedisClusterServers,
    RedisSentinelSetup,
    RedisServer,
    Traffic,
)

pytestmark = pytest.mark.brokers

Parse = Callable[..., Any]
Open = Callable[[Any], Any]


def make_stream(admin: redis.Redis | redis.RedisCluster, stream: str, entries: int, group: str | None = None,
                delivered: int = 0) -> None:
    """`entries` entries; `group` (created at the start) has had `delivered` of them, none acked."""
    for index in range(entries):
        admin.xadd(stream, {"n": str(index)})
    if group is not None:
        admin.xgroup_create(stream, group, id="0")
        if delivered:
            admin.xreadgroup(group, "consumer-1", {stream: ">"}, count=delivered)


def test_server_is_redis_7(redis_server: RedisServer) -> None:
    assert int(redis_server.admin().info("server")["redis_version"].split(".")[0]) >= 7


async def test_stream_length_without_group(redis_server: RedisServer, prefix: str, parse: Parse,
                                           open_client: Open) -> None:
    make_stream(redis_server.admin(), prefix + "s", 7)
    configs = [parse("redis-streams", {"stream": prefix + name, "address": redis_server.address})
               for name in ("s", "missing")]
    assert await open_client(configs[0]).read(configs) == [7.0, 0.0]


async def test_pending_entries_of_a_group(redis_server: RedisServer, prefix: str, parse: Parse,
                                          open_client: Open) -> None:
    admin = redis_server.admin()
    make_stream(admin, prefix + "s", 9, group="workers", delivered=4)
    admin.xack(prefix + "s", "workers", admin.xpending_range(prefix + "s", "workers", "-", "+", 1)[0]["message_id"])
    metadata = {"stream": prefix + "s", "address": redis_server.address, "consumerGroup": "workers"}
    config = parse("redis-streams", metadata)
    assert config.measure == "pending"
    assert await open_client(config).read([config]) == [3.0]


async def test_pending_for_a_missing_group_or_stream_is_an_error(
        redis_server: RedisServer, prefix: str, parse: Parse, open_client: Open) -> None:
    make_stream(redis_server.admin(), prefix + "s", 2, group="workers")
    no_group = parse("redis-streams", {"stream": prefix + "s", "address": redis_server.address,
                                       "consumerGroup": "nobody"})
    no_stream = parse("redis-streams", {"stream": prefix + "none", "address": redis_server.address,
                                        "consumerGroup": "workers"})
    values = await open_client(no_group).read([no_group, no_stream])
    assert all(isinstance(value, ScalerError) for value in values)
    assert f'stream "{prefix}s" has no consumer group "nobody"' in str(values[0])
    assert redis_server.address in str(values[1])


async def test_lag_of_a_group(redis_server: RedisServer, prefix: str, parse: Parse, open_client: Open) -> None:
    make_stream(redis_server.admin(), prefix + "s", 10, group="workers", delivered=3)
    base = {"address": redis_server.address, "consumerGroup": "workers", "lagCount": "5"}
    lag = parse("redis-streams", {**base, "stream": prefix + "s"})
    group_missing = parse("redis-streams", {**base, "stream": prefix + "s", "consumerGroup": "late"})
    stream_missing = parse("redis-streams", {**base, "stream": prefix + "none"})
    assert lag.measure == "lag"
    # 7 entries not yet delivered; a group that does not exist yet would lag by the whole stream
    assert await open_client(lag).read([lag, group_missing, stream_missing]) == [7.0, 10.0, 0.0]


async def test_other_types_are_errors_for_streams(redis_server: RedisServer, prefix: str, parse: Parse,
                                                  open_client: Open) -> None:
    redis_server.admin().rpush(prefix + "list", 1)
    configs = [parse("redis-streams", {"stream": prefix + "list", "address": redis_server.address, **extra})
               for extra in ({}, {"consumerGroup": "g"}, {"consumerGroup": "g", "lagCount": "1"})]
    for value in await open_client(configs[0]).read(configs):
        assert isinstance(value, ScalerError) and f'key "{prefix}list" is a list, not a stream' in str(value)


async def test_all_modes_in_one_call(redis_server: RedisServer, prefix: str, parse: Parse,
                                     open_client: Open) -> None:
    make_stream(redis_server.admin(), prefix + "s", 6, group="workers", delivered=2)
    base = {"stream": prefix + "s", "address": redis_server.address}
    configs = [parse("redis-streams", meta) for meta in (
        base, {**base, "consumerGroup": "workers"}, {**base, "consumerGroup": "workers", "lagCount": "2"})]
    client = open_client(configs[0])
    await client.read(configs)
    traffic = Traffic(redis_server)
    assert await client.read(configs) == [6.0, 2.0, 4.0]
    count = traffic.since()
    assert count.reads == 1 and count.commands["evalsha"] == 1, count


async def test_cluster_streams(redis_cluster: RedisClusterServers, prefix: str, parse: Parse,
                               open_client: Open) -> None:
    admin = redis_cluster.client()
    for index in range(6):
        make_stream(admin, f"{prefix}s{index}", index + 2, group="workers", delivered=1)
    modes: list[dict[str, str]] = [{}, {"consumerGroup": "workers"}, {"consumerGroup": "workers", "lagCount": "1"}]
    configs = [parse("redis-cluster-streams", {"stream": f"{prefix}s{index}", "addresses": redis_cluster.addresses,
                                               **mode}) for index in range(6) for mode in modes]
    expected = [value for index in range(6) for value in (index + 2.0, 1.0, index + 1.0)]
    assert await open_client(configs[0]).read(configs) == expected


async def test_sentinel_streams(redis_sentinel: RedisSentinelSetup, prefix: str, parse: Parse,
                                open_client: Open) -> None:
    make_stream(redis_sentinel.master.admin(), prefix + "s", 5, group="workers", delivered=5)
    config = parse("redis-sentinel-streams", {
        "stream": prefix + "s", "consumerGroup": "workers", "addresses": redis_sentinel.sentinel_address,
        "sentinelMaster": SENTINEL_MASTER, "username": ACL_USER},
        {"password": ACL_PASSWORD, "sentinelPassword": SENTINEL_PASSWORD})
    assert await open_client(config).read([config]) == [5.0]
