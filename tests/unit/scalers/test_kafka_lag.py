"""Kafka lag arithmetic: KEDA's getLagForPartition, getTotalLag, FindFactors and getNextFactor tests, as tables."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from scalers.kafka.kafka_config import KafkaCluster, KafkaConfig
from scalers.kafka.lag import INVALID_OFFSET, Partition, factors, next_balancing_factor, partition_lag, total_lag

BASE = KafkaConfig(cluster=KafkaCluster(bootstrap_servers=("b:9092",)), consumer_group="g", topic="t")
P = ("t", 0)


def with_(**changes: Any) -> KafkaConfig:
    return dataclasses.replace(BASE, **changes)


@pytest.mark.parametrize("config, committed, end, expected", [
    # KEDA's TestGetLagForPartition_MissingPartition
    (with_(scale_to_zero_on_invalid_offset=True), INVALID_OFFSET, None, (0, 0)),
    (with_(scale_to_zero_on_invalid_offset=False), INVALID_OFFSET, None, (1, 1)),  # latest: 1 before the lookup
    (with_(offset_reset_policy="earliest"), INVALID_OFFSET, None, (0, 0)),
    (BASE, 100, None, (0, 0)),
    (BASE, 100, 150, (50, 50)),
    (with_(scale_to_zero_on_invalid_offset=True), INVALID_OFFSET, 150, (0, 0)),
    # invalid offsets by policy
    (BASE, INVALID_OFFSET, 150, (1, 1)),
    (with_(offset_reset_policy="earliest"), INVALID_OFFSET, 150, (150, 150)),
    (with_(offset_reset_policy="earliest", scale_to_zero_on_invalid_offset=True), INVALID_OFFSET, 150, (0, 0)),
    (BASE, 0, 0, (0, 0)),
    (BASE, 200, 150, (-50, -50)),  # a committed offset past the end, as KEDA leaves it
])
def test_partition_lag(config: KafkaConfig, committed: int, end: int | None, expected: tuple[int, int]) -> None:
    assert partition_lag(config, P, committed, end, {}) == expected


def test_persistent_lag_counts_for_activity_only_while_the_offset_stands_still() -> None:
    config = with_(exclude_persistent_lag=True)
    previous: dict[Partition, int] = {}
    assert partition_lag(config, P, 10, 30, previous) == (20, 20)
    assert partition_lag(config, P, 10, 35, previous) == (0, 25)
    assert partition_lag(config, P, 12, 35, previous) == (23, 23)
    assert partition_lag(config, P, INVALID_OFFSET, 35, previous) == (1, 1)  # not remembered
    assert previous == {P: 12}


PARTS = [("t", i) for i in range(4)]


@pytest.mark.parametrize("config, committed, ends, expected", [
    (BASE, {("t", 0): 0}, {p: 5 for p in PARTS}, (8, 8)),  # 5 + 1 + 1 + 1
    (with_(lag_threshold=1), {p: 0 for p in PARTS}, {p: 5 for p in PARTS}, (4, 20)),  # capped at 4 partitions
    (with_(lag_threshold=1, allow_idle_consumers=True), {p: 0 for p in PARTS}, {p: 5 for p in PARTS}, (20, 20)),
    (with_(lag_threshold=1, limit_to_partitions_with_lag=True), {p: 5 for p in PARTS[:3]} | {("t", 3): 0},
     {p: 5 for p in PARTS}, (1, 5)),
    (with_(lag_threshold=10, ensure_even_distribution=True), {p: 0 for p in PARTS}, {p: 3 for p in PARTS},
     (20, 12)),  # 12 of lag: 2 consumers (a factor of 4) at 10 each
    (with_(lag_threshold=10, ensure_even_distribution=True, allow_idle_consumers=True), {p: 0 for p in PARTS},
     {p: 100 for p in PARTS}, (40, 400)),
])
def test_total_lag(config: KafkaConfig, committed: dict[tuple[str, int], int], ends: dict[tuple[str, int], int],
                   expected: tuple[int, int]) -> None:
    by_topic: dict[str, dict[int, int]] = {}
    for (topic, partition), offset in committed.items():
        by_topic.setdefault(topic, {})[partition] = offset
    assert total_lag(config, PARTS, by_topic, ends, {}) == expected


@pytest.mark.parametrize("n, expected", [
    (10, [1, 2, 5, 10]), (13, [1, 13]), (17, [1, 17]), (25, [1, 5, 25]), (50, [1, 2, 5, 10, 25, 50]),
    (100, [1, 2, 4, 5, 10, 20, 25, 50, 100]), (0, []),
])
def test_factors(n: int, expected: list[int]) -> None:
    assert factors(n) == expected


@pytest.mark.parametrize("lag, expected", [(10, 1), (20, 2), (40, 4), (50, 5), (99, 10), (100, 10), (101, 20)])
def test_next_balancing_factor(lag: int, expected: int) -> None:
    """KEDA's TestGetNextFactor: 100 partitions, lagThreshold 10."""
    assert next_balancing_factor(lag, 100, 10) == expected
