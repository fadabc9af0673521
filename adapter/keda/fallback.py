"""Fallback: the metric answer that makes the HPA compute `fallback.replicas` when a trigger fails.

KEDA's rule, kept here because the metric answer is where it acts: after more consecutive
failures than `failureThreshold`, a failing trigger's metric GET answers 200 with
`target x replicas`, so the HPA (AverageValue: replicas = ceil(value / target)) computes exactly
`replicas`. Which replica count depends on `fallback.behavior`; the `currentReplicas*` behaviours
need the target's current replica count, which the controller sidecar tells the adapter (it reads
it from the HPA's status). While it is unknown there is no fallback answer and the error stands:
an error never makes the HPA scale down, a guessed `fallback.replicas` could.

The controller reads the same `in_fallback` to set the ScaledObject's Fallback condition, so
the rule lives in one place.
"""

from __future__ import annotations

from adapter.keda.objects import Fallback


def in_fallback(fallback: Fallback | None, consecutive_failures: int) -> bool:
    return fallback is not None and consecutive_failures > fallback.failure_threshold


def fallback_replicas(fallback: Fallback, current: int | None) -> int | None:
    """The replica count the HPA should compute while a metric is in fallback (None: not known yet,
    or `scalingModifiers`, where a failing trigger is nil in the formula instead)."""
    if fallback.behavior == "scalingModifiers":
        return None
    if fallback.behavior == "static":
        return fallback.replicas
    if current is None:
        return None
    if fallback.behavior == "currentReplicas":
        return current
    if fallback.behavior == "currentReplicasIfHigher":
        return max(current, fallback.replicas)
    return min(current, fallback.replicas)  # currentReplicasIfLower


def fallback_value(fallback: Fallback, target: float, current: int | None) -> float | None:
    """The metric value answered instead of an error (AverageValue: target x replicas)."""
    replicas = fallback_replicas(fallback, current)
    return None if replicas is None else target * replicas
