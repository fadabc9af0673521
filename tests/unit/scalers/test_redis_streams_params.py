"""Parsing of redis-streams triggers (and their cluster and sentinel forms): keys, modes, targets.

The connection keys are the redis scaler's (tested in test_redis_params.py); here the stream keys,
KEDA's choice of mode, the metric target per mode and the shared activation threshold.
"""

from __future__ import annotations

import operator
from typing import Any

import pytest

from scalers.params import ParameterError, TriggerParams
from scalers.redis.lists import RedisScaler
from scalers.redis.pipeline import Probe
from scalers.redis.streams import RedisStreamsScaler

SCALER = RedisStreamsScaler()
S = {"stream": "orders", "address": "redis:6379"}


def parse(trigger_type: str, metadata: dict[str, str], auth: dict[str, str] | None = None) -> Any:
    return SCALER.parse(trigger_type, TriggerParams(metadata=metadata, auth=auth or {}))


@pytest.mark.parametrize("trigger_type, metadata, expected", [
    ("redis-streams", S, {
        "stream": "orders", "consumer_group": None, "pending_entries_count": 5, "stream_length": 5,
        "lag_count": 0, "activation_lag_count": 0, "measure": "stream-length", "target": 5,
        "connection.kind": "standalone", "connection.database_index": 0,
    }),
    ("redis-streams", {**S, "streamLength": "50", "activationLagCount": "3", "databaseIndex": "2"},
     {"measure": "stream-length", "target": 50, "activation_lag_count": 3, "connection.database_index": 2}),
    ("redis-streams", {**S, "consumerGroup": "workers"}, {"measure": "pending", "target": 5}),
    ("redis-streams", {**S, "consumerGroup": "workers", "pendingEntriesCount": "20"},
     {"measure": "pending", "target": 20}),
    ("redis-streams", {**S, "consumerGroup": "workers", "lagCount": "7", "pendingEntriesCount": "20"},
     {"measure": "lag", "target": 7, "lag_count": 7}),
    ("redis-streams", {**S, "lagCount": "7", "streamLength": "9"}, {"measure": "stream-length", "target": 9}),
    ("redis-cluster-streams", {"stream": "s", "addresses": "a:1,b:2", "consumerGroup": "g"},
     {"connection.kind": "cluster", "connection.addresses": (("a", 1), ("b", 2)), "measure": "pending"}),
    ("redis-sentinel-streams", {"stream": "s", "addresses": "a:1", "sentinelMaster": "m"},
     {"connection.kind": "sentinel", "connection.sentinel_master": "m"}),
    ("redis-streams", {**S, "enableTLS": "true"}, {"connection.tls.unsafe_ssl": False}),
])
def test_parse(trigger_type: str, metadata: dict[str, str], expected: dict[str, Any]) -> None:
    config = parse(trigger_type, metadata)
    for path, value in expected.items():
        assert operator.attrgetter(path)(config) == value, path


@pytest.mark.parametrize("trigger_type, metadata, error", [
    ("redis-streams", {"address": "r:1"}, 'missing required parameter "stream"'),
    ("redis-streams", {"address": "r:1", "streamFromEnv": "S"}, 'missing required parameter "stream"'),
    ("redis-streams", {"stream": "s"}, "no addresses or hosts given"),
    ("redis-streams", {**S, "pendingEntriesCount": "x"}, 'parameter "pendingEntriesCount" value "x"'),
    ("redis-streams", {**S, "streamLength": "x"}, 'parameter "streamLength" value "x"'),
    ("redis-streams", {**S, "lagCount": "x"}, 'parameter "lagCount" value "x"'),
    ("redis-streams", {**S, "activationLagCount": "x"}, 'parameter "activationLagCount" value "x"'),
    ("redis-streams", {**S, "databaseIndex": "x"}, 'parameter "databaseIndex" value "x"'),
    ("redis-sentinel-streams", {"stream": "s", "addresses": "a:1"}, 'parameter "sentinelMaster"'),
])
def test_parse_errors(trigger_type: str, metadata: dict[str, str], error: str) -> None:
    with pytest.raises(ParameterError) as raised:
        parse(trigger_type, metadata)
    assert error in str(raised.value)


@pytest.mark.parametrize("metadata, name, target, activation, probe", [
    (S, "redis-streams-orders", 5.0, 0.0, Probe("orders", "stream-length", "")),
    ({**S, "consumerGroup": "g", "pendingEntriesCount": "8", "activationLagCount": "2"},
     "redis-streams-orders", 8.0, 2.0, Probe("orders", "pending", "g")),
    ({**S, "stream": "a/b", "consumerGroup": "g", "lagCount": "4"}, "redis-streams-a/b", 4.0, 0.0,
     Probe("a/b", "lag", "g")),
])
def test_metric_and_probe(metadata: dict[str, str], name: str, target: float, activation: float,
                          probe: Probe) -> None:
    config = parse("redis-streams", metadata)
    spec = SCALER.metric(config)
    assert (spec.name, spec.target, spec.activation) == (name, target, activation)
    assert config.probe() == probe


def test_lists_and_streams_of_one_server_have_equal_server_keys() -> None:
    lists = RedisScaler()
    list_config = lists.parse("redis", TriggerParams(metadata={"listName": "l", "address": "redis:6379"}))
    assert SCALER.server_key(parse("redis-streams", S)) == lists.server_key(list_config)
