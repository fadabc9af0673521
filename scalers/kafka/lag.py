"""Consumer lag from offsets, exactly as KEDA's kafka scaler computes it; no I/O.

Per partition (KEDA's getLagForPartition) the lag is end offset minus committed offset, with
KEDA's special cases: no committed offset (-1) counts 1 with `offsetResetPolicy: latest` and the
whole partition with `earliest`, 0 either way with `scaleToZeroOnInvalidOffset`; with
`excludePersistentLag` a partition whose committed offset has not moved since the previous poll
counts 0 for the value but still counts for activity.

The total (getTotalLag) is then capped so the HPA never asks for more consumers than partitions
(or than partitions with lag, with `limitToPartitionsWithLag`), unless `allowIdleConsumers`; with
`ensureEvenDistributionOfPartitions` it is raised to the next factor of the partition count.
Activity is decided on the uncapped lag including persistent lag, which is why a read answers
`Reading(value, active)`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, MutableMapping, Sequence

from scalers.kafka.kafka_config import KafkaConfig

INVALID_OFFSET = -1

Partition = tuple[str, int]  # topic, partition
_NONE_COMMITTED: Mapping[int, int] = {}


def partition_lag(config: KafkaConfig, partition: Partition, committed: int, end: int | None,
                  previous: MutableMapping[Partition, int]) -> tuple[int, int]:
    """(lag, lag with persistent lag) of one partition; updates `previous` like KEDA's previousOffsets.

    An end offset the broker did not answer (`None`) counts 0, as in KEDA (Event Hubs leaves
    partitions out now and then)."""
    if committed == INVALID_OFFSET:
        if config.offset_reset_policy == "latest":
            value = 0 if config.scale_to_zero_on_invalid_offset else 1
            return value, value
        if config.scale_to_zero_on_invalid_offset:
            return 0, 0
    if end is None:
        return 0, 0
    if committed == INVALID_OFFSET:
        return end, end
    lag = end - committed
    if config.exclude_persistent_lag:
        before = previous.get(partition)
        previous[partition] = committed
        if before == committed:
            return 0, lag
    return lag, lag


def total_lag(config: KafkaConfig, partitions: Sequence[Partition], committed: Mapping[str, Mapping[int, int]],
              ends: Mapping[Partition, int], previous: MutableMapping[Partition, int]) -> tuple[int, int]:
    """(the value served, the lag activity is decided on) over `partitions`; `committed` is by topic,
    then partition."""
    total = total_with_persistent = with_lag = 0
    plain = not config.exclude_persistent_lag
    for partition in partitions:
        offset = committed.get(partition[0], _NONE_COMMITTED).get(partition[1], INVALID_OFFSET)
        end = ends.get(partition)
        if plain and offset != INVALID_OFFSET and end is not None:  # the usual case, inline: a poll has thousands
            lag = lag_with_persistent = end - offset
        else:
            lag, lag_with_persistent = partition_lag(config, partition, offset, end, previous)
        total += lag
        total_with_persistent += lag_with_persistent
        with_lag += lag > 0
    if not config.allow_idle_consumers or config.limit_to_partitions_with_lag or config.ensure_even_distribution:
        threshold, upper = config.lag_threshold, len(partitions)
        if config.ensure_even_distribution:
            total = next_balancing_factor(total, len(partitions), threshold) * threshold
        if config.limit_to_partitions_with_lag:
            upper = with_lag
        if _go_div(total, threshold) > upper:
            total = upper * threshold
    return total, total_with_persistent


def next_balancing_factor(lag: int, partitions: int, threshold: int) -> int:
    """The smallest factor of the partition count whose consumers can take `lag`, else the count."""
    for factor in factors(partitions):
        if factor * threshold >= lag:
            return factor
    return partitions


def factors(n: int) -> list[int]:
    """Every factor of `n`, ascending (none for n < 1)."""
    if n < 1:
        return []
    found: set[int] = set()
    for i in range(1, math.isqrt(n) + 1):
        if n % i == 0:
            found.update((i, n // i))
    return sorted(found)


def _go_div(a: int, b: int) -> int:
    """Integer division truncating toward zero, as Go's."""
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b > 0) else -quotient
