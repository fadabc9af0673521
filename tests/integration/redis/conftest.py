"""Fixtures for the Redis scalers: real servers, started once per session, and config helpers.

One standalone server (plain and TLS ports, an ACL user), one 3-master cluster (plain and TLS)
and two sentinel setups (plain, TLS) serve every test; each test uses its own key prefix, and every client a
test opens is closed after it, so tests do not see each other's data or connections.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from scalers.params import TriggerParams
from scalers.redis.lists import RedisListConfig, RedisScaler
from scalers.redis.pipeline import RedisClient
from scalers.redis.streams import RedisStreamsConfig, RedisStreamsScaler
from tests.harness.redis_servers import RedisClusterServers, RedisSentinelSetup
from tests.harness.tls_material import TLSMaterial

LISTS, STREAMS = RedisScaler(), RedisStreamsScaler()
SCALERS: dict[str, Any] = {kind: scaler for scaler in (LISTS, STREAMS) for kind in scaler.types}
SCALER_OF: dict[type, Any] = {RedisListConfig: LISTS, RedisStreamsConfig: STREAMS}

Parse = Callable[..., Any]
Open = Callable[[Any], RedisClient[Any]]


@pytest.fixture(scope="session")
def redis_cluster(tls_material: TLSMaterial) -> Iterator[RedisClusterServers]:
    with RedisClusterServers(tls=tls_material) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[RedisSentinelSetup]:
    with RedisSentinelSetup() as setup:
        yield setup


@pytest.fixture(scope="session")
def redis_sentinel_tls(tls_material: TLSMaterial) -> Iterator[RedisSentinelSetup]:
    with RedisSentinelSetup(tls=tls_material) as setup:
        yield setup


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own."""
    return f"t{uuid.uuid4().hex[:8]}:"


def parse_trigger(trigger_type: str, metadata: dict[str, str], auth: dict[str, str] | None = None) -> Any:
    return SCALERS[trigger_type].parse(trigger_type, TriggerParams(metadata=metadata, auth=auth or {}))


@pytest.fixture
def parse() -> Parse:
    return parse_trigger


@pytest.fixture
async def open_client() -> AsyncIterator[Open]:
    """Open a client the way the metric store does; every one is closed after the test."""
    opened: list[RedisClient[Any]] = []

    def open_for(config: Any) -> RedisClient[Any]:
        client: RedisClient[Any] = SCALER_OF[type(config)].open_client(config)
        opened.append(client)
        return client

    yield open_for
    for client in opened:
        await client.aclose()

