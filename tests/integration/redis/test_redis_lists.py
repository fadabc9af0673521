"""The redis scaler against real servers: values by key type, databases, logins, TLS, failures.

Every failure is checked for what its message names (the server's host:port, the key) and for
what it must never contain (a password or key).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from scalers.base import ScalerError
from tests.harness.ports import free_port
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
from tests.harness.tls_material import KEY_PASSWORD, TLSMaterial

pytestmark = pytest.mark.brokers

Parse = Callable[..., Any]
Open = Callable[[Any], Any]


def fill(admin: redis.Redis | redis.RedisCluster, prefix: str) -> None:
    admin.rpush(f"{prefix}list", "a", "b", "c")
    admin.sadd(f"{prefix}set", "a", "b")
    admin.zadd(f"{prefix}zset", {"a": 1, "b": 2, "c": 3, "d": 4})
    admin.hset(f"{prefix}hash", mapping={"a": 1, "b": 2, "c": 3, "d": 4, "e": 5})
    admin.set(f"{prefix}string", "x")
    admin.xadd(f"{prefix}stream", {"a": "1"})


async def test_value_is_the_length_by_type(redis_server: RedisServer, prefix: str, parse: Parse,
                                           open_client: Open) -> None:
    fill(redis_server.admin(), prefix)
    names = ["list", "set", "zset", "hash", "missing", "string", "stream"]
    configs = [parse("redis", {"listName": prefix + name, "address": redis_server.address}) for name in names]
    values = await open_client(configs[0]).read(configs)
    assert values[:5] == [3.0, 2.0, 4.0, 5.0, 0.0]
    for value, kind in zip(values[5:], ("string", "stream"), strict=True):
        assert isinstance(value, ScalerError)
        assert f'key "{prefix}{kind}" is a {kind}' in str(value) and redis_server.address in str(value)


async def test_values_follow_the_data(redis_server: RedisServer, prefix: str, parse: Parse,
                                      open_client: Open) -> None:
    config = parse("redis", {"listName": prefix + "q", "address": redis_server.address})
    client = open_client(config)
    assert await client.read([config]) == [0.0]
    redis_server.admin().rpush(prefix + "q", *range(7))
    assert await client.read([config, config]) == [7.0, 7.0]
    redis_server.admin().lpop(prefix + "q", 5)
    assert await client.read([config]) == [2.0]


async def test_database_index_selects_the_database(redis_server: RedisServer, prefix: str, parse: Parse,
                                                   open_client: Open) -> None:
    db3 = redis.Redis(port=redis_server.port, db=3)
    db3.rpush(prefix + "q", 1, 2)
    db3.close()
    in_db3 = parse("redis", {"listName": prefix + "q", "address": redis_server.address, "databaseIndex": "3"})
    in_db0 = parse("redis", {"listName": prefix + "q", "address": redis_server.address})
    assert await open_client(in_db3).read([in_db3]) == [2.0]
    assert await open_client(in_db0).read([in_db0]) == [0.0]


async def test_acl_user_logs_in(redis_server: RedisServer, prefix: str, parse: Parse, open_client: Open) -> None:
    redis_server.admin().rpush(prefix + "q", 1)
    config = parse("redis", {"listName": prefix + "q", "address": redis_server.address, "username": ACL_USER},
                   {"password": ACL_PASSWORD})
    assert await open_client(config).read([config]) == [1.0]
    names = {entry["user"] for entry in redis_server.admin().client_list() if entry["name"] == "eventscale"}
    assert names == {ACL_USER}


async def test_wrong_password_names_the_server_and_hides_the_password(
        redis_server: RedisServer, prefix: str, parse: Parse, open_client: Open) -> None:
    config = parse("redis", {"listName": prefix + "q", "address": redis_server.address, "username": ACL_USER},
                   {"password": "Wrong-Pa55word-guess"})
    with pytest.raises(ScalerError) as raised:
        await open_client(config).read([config])
    message = str(raised.value)
    assert redis_server.address in message and "Wrong-Pa55word" not in message
    assert "AuthenticationError" in message or "WRONGPASS" in message


@pytest.mark.parametrize("trigger_type", ["redis", "redis-cluster", "redis-sentinel"])
async def test_unreachable_server_fails_fast_naming_host_and_port(trigger_type: str, parse: Parse,
                                                                  open_client: Open) -> None:
    address = f"127.0.0.1:{free_port()}"
    config = parse(trigger_type, {"listName": "q", "address": address, "password": "Unused-s3cret",
                                  "sentinelMaster": SENTINEL_MASTER, "sentinelPassword": "Unused-s3cret"})
    started = time.monotonic()
    with pytest.raises(ScalerError) as raised:
        await open_client(config).read([config])
    assert address in str(raised.value) and "Unused-s3cret" not in str(raised.value)
    assert time.monotonic() - started < 5


async def test_tls_with_ca(redis_server: RedisServer, tls_material: TLSMaterial, prefix: str, parse: Parse,
                           open_client: Open) -> None:
    redis_server.admin().rpush(prefix + "q", 1, 2)
    by_metadata = parse("redis", {"listName": prefix + "q", "address": redis_server.tls_address,
                                  "enableTLS": "true"}, {"ca": tls_material.ca_pem})
    by_auth = parse("redis", {"listName": prefix + "q", "address": redis_server.tls_address},
                    {"tls": "enable", "ca": tls_material.ca_pem})
    for config in (by_metadata, by_auth):
        assert await open_client(config).read([config]) == [2.0]


async def test_tls_unknown_ca_is_refused_unless_unsafe_ssl(redis_server: RedisServer, prefix: str,
                                                           parse: Parse, open_client: Open) -> None:
    metadata = {"listName": prefix + "q", "address": redis_server.tls_address, "enableTLS": "true"}
    strict = parse("redis", metadata, {"ca": TLSMaterial.generate("another-ca").ca_pem})
    with pytest.raises(ScalerError) as raised:
        await open_client(strict).read([strict])
    assert redis_server.tls_address in str(raised.value) and "CERTIFICATE_VERIFY_FAILED" in str(raised.value)
    unsafe = parse("redis", {**metadata, "unsafeSsl": "true"})
    assert await open_client(unsafe).read([unsafe]) == [0.0]


async def test_tls_mismatch_fails_both_ways(redis_server: RedisServer, prefix: str, parse: Parse,
                                            open_client: Open, tls_material: TLSMaterial) -> None:
    tls_to_plain = parse("redis", {"listName": "q", "address": redis_server.address, "enableTLS": "true"},
                         {"ca": tls_material.ca_pem})
    plain_to_tls = parse("redis", {"listName": "q", "address": redis_server.tls_address})
    for config, address in ((tls_to_plain, redis_server.address), (plain_to_tls, redis_server.tls_address)):
        started = time.monotonic()
        with pytest.raises(ScalerError, match=address):
            await open_client(config).read([config])
        assert time.monotonic() - started < 15


async def test_client_certificate_with_and_without_key_password(
        tls_material: TLSMaterial, prefix: str, parse: Parse, open_client: Open) -> None:
    with RedisServer(tls=tls_material, require_client_certs=True) as server:
        server.admin().rpush(prefix + "q", 1, 2, 3)
        metadata = {"listName": prefix + "q", "address": server.tls_address, "enableTLS": "true"}
        without = parse("redis", metadata, {"ca": tls_material.ca_pem})
        with pytest.raises(ScalerError, match=server.tls_address):
            await open_client(without).read([without])
        plain_key = parse("redis", metadata, {"ca": tls_material.ca_pem, "cert": tls_material.client_cert_pem,
                                              "key": tls_material.client_key_pem})
        encrypted_key = parse("redis", metadata, {
            "ca": tls_material.ca_pem, "cert": tls_material.client_cert_pem,
            "key": tls_material.client_key_encrypted_pem, "keyPassword": KEY_PASSWORD})
        for config in (plain_key, encrypted_key):
            assert await open_client(config).read([config]) == [3.0]
            await open_client(config).aclose()


async def test_wrong_key_password_is_an_error_without_the_password(
        redis_server: RedisServer, tls_material: TLSMaterial, parse: Parse, open_client: Open) -> None:
    config = parse("redis", {"listName": "q", "address": redis_server.tls_address, "enableTLS": "true"}, {
        "ca": tls_material.ca_pem, "cert": tls_material.client_cert_pem,
        "key": tls_material.client_key_encrypted_pem, "keyPassword": "Not-The-Key-Pa55"})
    with pytest.raises(ScalerError) as raised:
        await open_client(config).read([config])
    assert redis_server.tls_address in str(raised.value) and "Not-The-Key-Pa55" not in str(raised.value)


async def test_cluster_reads_keys_of_every_node_in_one_round_trip_each(
        redis_cluster: RedisClusterServers, prefix: str, parse: Parse, open_client: Open) -> None:
    admin = redis_cluster.client()
    fill(admin, prefix)
    for index in range(60):
        admin.rpush(f"{prefix}many{index}", *range(index + 1))
    names = [f"many{index}" for index in range(60)] + ["list", "set", "zset", "hash", "missing", "string"]
    configs = [parse("redis-cluster", {"listName": prefix + name, "addresses": redis_cluster.addresses})
               for name in names]
    client = open_client(configs[0])
    await client.read(configs)  # discovers the slots
    traffic = [Traffic(node) for node in redis_cluster.nodes]
    values = await client.read(configs)
    assert values[:65] == [float(index + 1) for index in range(60)] + [3.0, 2.0, 4.0, 5.0, 0.0]
    assert isinstance(values[65], ScalerError) and "is a string" in str(values[65])
    counts = [t.since() for t in traffic]
    for count in counts:  # one pipelined round trip per node; TYPE, LLEN... run inside the script
        assert 1 <= count.reads <= 2, count
        assert set(count.commands) <= {"evalsha", "type", "llen", "scard", "zcard", "hlen"}, count
    distinct_slots = len({key_slot(f"{prefix}{name}".encode()) for name in names})
    assert sum(count.commands["evalsha"] for count in counts) == distinct_slots


async def test_cluster_over_tls(redis_cluster: RedisClusterServers, tls_material: TLSMaterial, prefix: str,
                                parse: Parse, open_client: Open) -> None:
    admin = redis_cluster.client()
    for index in range(10):
        admin.rpush(f"{prefix}k{index}", *range(index + 1))
    configs = [parse("redis-cluster", {"listName": f"{prefix}k{index}", "addresses": redis_cluster.tls_addresses,
                                       "enableTLS": "true"}, {"ca": tls_material.ca_pem}) for index in range(10)]
    assert await open_client(configs[0]).read(configs) == [float(index + 1) for index in range(10)]


async def test_sentinel_finds_the_master(redis_sentinel: RedisSentinelSetup, prefix: str, parse: Parse,
                                         open_client: Open) -> None:
    redis_sentinel.master.admin().sadd(prefix + "s", 1, 2, 3, 4)
    config = parse("redis-sentinel", {
        "listName": prefix + "s", "addresses": redis_sentinel.sentinel_address, "sentinelMaster": SENTINEL_MASTER,
        "username": ACL_USER}, {"password": ACL_PASSWORD, "sentinelPassword": SENTINEL_PASSWORD})
    assert await open_client(config).read([config]) == [4.0]


async def test_sentinel_over_tls(redis_sentinel_tls: RedisSentinelSetup, tls_material: TLSMaterial, prefix: str,
                                 parse: Parse, open_client: Open) -> None:
    redis_sentinel_tls.master.admin().hset(prefix + "h", mapping={"a": 1, "b": 2})
    config = parse("redis-sentinel", {
        "listName": prefix + "h", "addresses": redis_sentinel_tls.sentinel_address, "sentinelMaster": SENTINEL_MASTER,
        "username": ACL_USER}, {"password": ACL_PASSWORD, "sentinelPassword": SENTINEL_PASSWORD,
                                "tls": "enable", "ca": tls_material.ca_pem})
    assert await open_client(config).read([config]) == [2.0]


async def test_sentinel_wrong_password_is_refused_without_the_password(
        redis_sentinel: RedisSentinelSetup, parse: Parse, open_client: Open) -> None:
    config = parse("redis-sentinel", {
        "listName": "q", "addresses": redis_sentinel.sentinel_address, "sentinelMaster": SENTINEL_MASTER,
        "username": ACL_USER}, {"password": ACL_PASSWORD, "sentinelPassword": "Bad-Sentinel-Pa55"})
    with pytest.raises(ScalerError) as raised:
        await open_client(config).read([config])
    assert SENTINEL_MASTER in str(raised.value) and "Bad-Sentinel-Pa55" not in str(raised.value)
