"""redis-streams, redis-cluster-streams, redis-sentinel-streams: work waiting in a Redis stream.

KEDA's three modes, chosen by the metadata: without `consumerGroup` the value is the stream's
length (XLEN) against `streamLength`; with a group and a non-zero `lagCount` it is the group's lag
(XINFO GROUPS, Redis 7 or later; the stream's length while the group does not exist yet, 0 while
the stream does not) against `lagCount`; with a group and no lag target it is the number of the
group's pending entries (XPENDING) against `pendingEntriesCount`. Every mode is active above
`activationLagCount`, as in KEDA. The connection and the batched read are shared with `redis`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from scalers.base import Served
from scalers.params import param
from scalers.redis.connection import RedisConnection
from scalers.redis.pipeline import Measure, Probe, RedisScalerBase
from scalers.sources import METADATA_ONLY


@dataclass(frozen=True, kw_only=True)
class RedisStreamsConfig:
    stream: str = param("stream", required=True, sources=METADATA_ONLY)
    consumer_group: str | None = param("consumerGroup", sources=METADATA_ONLY)
    pending_entries_count: int = param("pendingEntriesCount", default=5, sources=METADATA_ONLY)
    stream_length: int = param("streamLength", default=5, sources=METADATA_ONLY)
    lag_count: int = param("lagCount", default=0, sources=METADATA_ONLY)
    activation_lag_count: int = param("activationLagCount", default=0, sources=METADATA_ONLY)
    keyspace_notifications: Literal["use", "enable", "off"] = param(
        "keyspaceNotifications", default="use", sources=METADATA_ONLY)
    connection: RedisConnection

    @property
    def measure(self) -> Measure:
        if not self.consumer_group:
            return "stream-length"
        return "lag" if self.lag_count != 0 else "pending"

    @property
    def target(self) -> int:
        if self.measure == "stream-length":
            return self.stream_length
        return self.lag_count if self.measure == "lag" else self.pending_entries_count

    def probe(self) -> Probe:
        return Probe(self.stream, self.measure, self.consumer_group or "")

    def notified_key(self) -> tuple[str, str]:
        return self.stream, "t"


class RedisStreamsScaler(RedisScalerBase[RedisStreamsConfig], config=RedisStreamsConfig):
    types = ("redis-streams", "redis-cluster-streams", "redis-sentinel-streams")

    def served(self, config: RedisStreamsConfig) -> Served[RedisConnection]:
        return Served(config.connection, f"redis-streams-{config.stream}", config.target, config.activation_lag_count)
