"""redis, redis-cluster, redis-sentinel: the length of a Redis list (or set, sorted set, hash).

KEDA's Redis list scaler: the value is the length of `listName` by its type (LLEN, SCARD, ZCARD,
HLEN; a missing key is 0) against the target `listLength`, active above `activationListLength`.
Connection keys, TLS and the shared one-pipeline-per-server read live in `_redis_connection` and
`_redis_read`, which the streams scaler uses as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from scalers.base import MetricSpec, Scaler
from scalers.params import METADATA_ONLY, TriggerParams, param, parse_params
from scalers.redis.connection import RedisConnection, parse_connection
from scalers.redis.pipeline import Probe, RedisClient


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


class RedisScaler(Scaler[RedisListConfig]):
    types = ("redis", "redis-cluster", "redis-sentinel")

    def parse(self, trigger_type: str, params: TriggerParams) -> RedisListConfig:
        connection = parse_connection(trigger_type, params)
        return parse_params(RedisListConfig, params, connection=connection)

    def metric(self, config: RedisListConfig) -> MetricSpec:
        return MetricSpec(
            name=f"redis-{config.list_name}",
            target=float(config.list_length),
            activation=float(config.activation_list_length),
        )

    def server_key(self, config: RedisListConfig) -> RedisConnection:
        return config.connection

    def open_client(self, config: RedisListConfig) -> RedisClient[RedisListConfig]:
        return RedisClient(config.connection)
