"""Fallback: the metric answer that makes the HPA compute `fallback.replicas` when a trigger fails.

KEDA's rule (2.20), kept here because the metric answer is where it acts: after more
consecutive failures than `failureThreshold`, a failing trigger's metric GET answers 200 with a
value from which the HPA computes exactly the replica count of `fallback.behavior`:

* `AverageValue`: `target x replicas` (the HPA computes ceil(value / target));
* `Value`: `target x replicas / ready`, `ready` being the target's pods that are Running and
  Ready among those its Scale's `status.selector` matches: the HPA computes
  ceil(value / target x ready) with the same count, so `replicas` again. While that count is
  unknown or 0 there is no fallback answer (KEDA: "readyReplicas is zero, cannot do fallback").

With `advanced.scalingModifiers` the composite's `metricType` and `target` decide, and fallback
applies only when that target is a positive whole number (KEDA's HasValidFallback).

Which replica count depends on `fallback.behavior`; the `currentReplicas*` behaviours need the
target's current replica count (from the HPA's status), a Value metric the ready count: the
controller sidecar tells the adapter both (`adapter.keda.activity.TargetState`). While one that
is needed is unknown there is no fallback answer and the error stands: an error never makes the
HPA scale down, a guessed `fallback.replicas` could.

A Value answer is a whole number of thousandths, as every quantity is: KEDA truncates, which
the HPA's floating point can turn into one replica more (target 1, 7 replicas, 25 ready: 0.28 x
25 = 7.000000000000001, so 8); here it is the largest thousandth from which the HPA's own
arithmetic gives `replicas`.

The controller reads the same `in_fallback` to set the ScaledObject's Fallback condition, and
`needs_ready_count` to know whose ready pods to count, so the rule lives in one place.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from adapter.keda.activity import TriggerActivity
from adapter.keda.objects import Fallback, ScaledObject
from adapter.kube.wire import to_milli

_WHOLE = re.compile(r"\+?[0-9]+")


def in_fallback(fallback: Fallback | None, consecutive_failures: int) -> bool:
    return fallback is not None and consecutive_failures > fallback.failure_threshold


def any_in_fallback(fallback: Fallback | None, triggers: Iterable[TriggerActivity]) -> bool:
    """A failing trigger is past the threshold: the Fallback condition is True."""
    return any(in_fallback(fallback, t.failures) for t in triggers if t.error)


def valid_fallback(so: ScaledObject) -> Fallback | None:
    """The fallback KEDA applies (HasValidFallback): with scalingModifiers, only when their
    target is a positive whole number."""
    modifiers = so.scaling_modifiers
    if so.fallback is None or modifiers is None:
        return so.fallback
    if not _WHOLE.fullmatch(modifiers.target_text) or int(modifiers.target_text) <= 0:
        return None
    return so.fallback


def needs_ready_count(so: ScaledObject) -> bool:
    """Its fallback answer divides by the target's ready pods: a Value metric (the composite's,
    with scalingModifiers)."""
    if valid_fallback(so) is None:
        return False
    if so.scaling_modifiers is not None:
        return so.scaling_modifiers.metric_type == "Value"
    return any(t.metric_type == "Value" for t in so.triggers if not t.resource)


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


def fallback_value(fallback: Fallback, target: float, current: int | None, metric_type: str = "AverageValue",
                   ready: int | None = None) -> float | None:
    """The metric value answered instead of an error (None: no answer can be given yet)."""
    replicas = fallback_replicas(fallback, current)
    return None if replicas is None else value_for(replicas, target, metric_type, ready)


def value_for(replicas: int, target: float, metric_type: str, ready: int | None) -> float | None:
    """The value from which the HPA computes `replicas` for a metric of this target and type."""
    if metric_type != "Value":
        return target * replicas
    target_milli = to_milli(target)  # the HPA's target, as the HPA object states it
    if not ready or not target_milli:
        return None
    milli = target_milli * replicas // ready
    while milli > 0 and math.ceil(milli / target_milli * ready) > replicas:  # the HPA's float64 arithmetic
        milli -= 1
    return milli / 1000
