"""Fallback arithmetic: which replica count each `fallback.behavior` makes the HPA compute."""

from __future__ import annotations

import pytest

from adapter.keda.fallback import fallback_replicas, fallback_value, in_fallback
from adapter.keda.objects import Fallback


@pytest.mark.parametrize("behavior, current, replicas", [
    ("static", 7, 3),
    ("static", None, 3),
    ("currentReplicas", 7, 7),
    ("currentReplicas", 0, 0),
    ("currentReplicasIfHigher", 7, 7),
    ("currentReplicasIfHigher", 1, 3),
    ("currentReplicasIfLower", 7, 3),
    ("currentReplicasIfLower", 1, 1),
    ("currentReplicas", None, None),  # current unknown: no fallback answer yet
    ("currentReplicasIfLower", None, None),
])
def test_fallback_replicas_by_behavior(behavior: str, current: int | None, replicas: int | None) -> None:
    assert fallback_replicas(Fallback(failure_threshold=3, replicas=3, behavior=behavior), current) == replicas


def test_value_is_target_times_replicas_so_the_hpa_computes_exactly_replicas() -> None:
    fallback = Fallback(failure_threshold=3, replicas=4)
    assert fallback_value(fallback, target=2.5, current=None) == 10.0  # ceil(10 / 2.5) = 4


@pytest.mark.parametrize("failures, active", [(0, False), (3, False), (4, True)])
def test_fallback_starts_after_more_failures_than_the_threshold(failures: int, active: bool) -> None:
    assert in_fallback(Fallback(failure_threshold=3, replicas=1), failures) is active
    assert in_fallback(None, failures) is False
