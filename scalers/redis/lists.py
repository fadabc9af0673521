"""redis, redis-cluster, redis-sentinel: the length of a Redis list (or set, sorted set, hash).

KEDA's Redis list scaler: the value is the length of `listName` by its type (LLEN, SCARD, ZCARD,
HLEN; a missing key is 0) against the target `listLength`, active above `activationListLength`.
Connection keys and TLS live in `connection`, the shared one-pipeline-per-server read and what
the two Redis scalers share in `pipeline`, which the streams scaler uses as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from scalers.base import Served
from scalers.params import param
from scalers.redis.connection import RedisConnection
from scalers.redis.pipeline import Probe, RedisScalerBase
from scalers.sources import METADATA_ONLY


@dataclass(frozen=True, kw_only=True)
class RedisListConfig:
    list_name: str = param("listName", required=True, sources=METADATA_ONLY)
    list_length: int = param("listLength", default=5, sources=METADATA_ONLY)
    activation_list_length: int = param("activationListLength", default=0, sources=METADATA_ONLY)
    keyspace_notifications: Literal["use", "enable", "off"] = param(
        "keyspaceNotifications", default="use", sources=METADATA_ONLY)
    connection: RedisConnection

    def probe(self) -> Probe:
        return Probe(self.list_name)

    def notified_key(self) -> tuple[str, str]:
        return self.list_name, "l"


class RedisScaler(RedisScalerBase[RedisListConfig], config=RedisListConfig):
    types = ("redis", "redis-cluster", "redis-sentinel")

    def served(self, config: RedisListConfig) -> Served[RedisConnection]:
        return Served(config.connection, f"redis-{config.list_name}", config.list_length, config.activation_list_length)
