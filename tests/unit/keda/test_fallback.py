"""Fallback arithmetic: which replica count each `fallback.behavior` makes the HPA compute, for
AverageValue and Value metrics, and which objects need the target's ready pods counted."""

from __future__ import annotations

import math
from typing import Any

import pytest

from adapter.keda.activity import TriggerActivity
from adapter.keda.fallback import (
    any_in_fallback,
    fallback_replicas,
    fallback_value,
    in_fallback,
    needs_ready_count,
    valid_fallback,
    value_for,
)
from adapter.keda.objects import Fallback, ScaledObject, parse_scaled_object
from adapter.kube.wire import to_milli


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


def hpa_replicas(value: float, target: float, ready: int) -> int:
    """What the HPA's replica calculator computes for an External metric of type Value: the ratio
    of the quantities' thousandths (as it reads them) times the ready pods, rounded up."""
    return math.ceil(to_milli(value) / to_milli(target) * ready)


@pytest.mark.parametrize("target, replicas, ready, value", [
    (5.0, 5, 3, 8.333),  # 8333m: ceil(8.333 / 5 x 3) = ceil(4.9998) = 5
    (5.0, 4, 2, 10.0),
    (5.0, 4, 4, 5.0),
    (5.0, 2, 5, 2.0),  # fewer replicas than ready pods: the HPA scales down to 2
    (1.0, 7, 25, 0.279),  # KEDA's truncation, 0.28, gives 0.28 x 25 = 7.000000000000001: 8 replicas
    (2.5, 0, 3, 0.0),
])
def test_a_value_metric_is_divided_by_the_ready_pods(target: float, replicas: int, ready: int,
                                                     value: float) -> None:
    fallback = Fallback(failure_threshold=1, replicas=replicas)
    found = fallback_value(fallback, target, current=None, metric_type="Value", ready=ready)
    assert found == value
    assert hpa_replicas(found, target, ready) == replicas or replicas == 0


def test_the_hpa_computes_exactly_the_fallback_replicas_for_every_ready_count() -> None:
    for target in (0.5, 1.0, 2.5, 5.0, 30.0, 1000.0):
        for replicas in range(1, 60):
            for ready in range(1, 60):
                found = value_for(replicas, target, "Value", ready)
                assert found is not None and hpa_replicas(found, target, ready) == replicas, (target, replicas, ready)


@pytest.mark.parametrize("ready", [None, 0])
def test_no_value_answer_without_ready_pods(ready: int | None) -> None:
    """KEDA: "readyReplicas is zero, cannot do fallback": the error stands."""
    assert fallback_value(Fallback(1, 4), 5.0, current=None, metric_type="Value", ready=ready) is None


def test_value_metrics_need_the_current_count_too_for_current_replicas_behaviors() -> None:
    fallback = Fallback(1, 2, "currentReplicasIfHigher")
    assert fallback_value(fallback, 5.0, current=None, metric_type="Value", ready=3) is None
    assert fallback_value(fallback, 5.0, current=6, metric_type="Value", ready=3) == 10.0  # 6 replicas over 3 pods


CRON = {"type": "cron", "metadata": {"timezone": "UTC", "start": "0 6 * * *", "end": "0 20 * * *",
                                     "desiredReplicas": "2"}}
CPU = {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "50"}}


def scaled_object(triggers: list[dict[str, Any]], fallback: dict[str, Any] | None = None,
                  modifiers: dict[str, str] | None = None) -> ScaledObject:
    spec: dict[str, Any] = {"scaleTargetRef": {"name": "web"}, "triggers": triggers, "minReplicaCount": 1}
    if fallback is not None:
        spec["fallback"] = fallback
    if modifiers is not None:
        spec["advanced"] = {"scalingModifiers": modifiers}
    return parse_scaled_object({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                                "metadata": {"name": "so"}, "spec": spec})


def plain(*metric_types: str, fallback: dict[str, Any] | None = None) -> ScaledObject:
    triggers = [{**CRON, "metricType": m} for m in metric_types]
    return scaled_object([*triggers, CPU], fallback or {"failureThreshold": 1, "replicas": 2})


def modified(metric_type: str, target: str = "5", behavior: str = "static") -> ScaledObject:
    return scaled_object([{**CRON, "name": "a"}], {"failureThreshold": 1, "replicas": 2, "behavior": behavior},
                         {"formula": "a", "target": target, "metricType": metric_type})


@pytest.mark.parametrize("so, needed", [
    (plain("AverageValue"), False),
    (plain("AverageValue", "Value"), True),  # that trigger's answer divides
    (scaled_object([{**CRON, "metricType": "Value"}]), False),  # no fallback
    (modified("Value"), True),  # the composite's type decides, not the triggers'
    (modified("AverageValue"), False),
    (modified("Value", target="2.5"), False),  # not a whole number: KEDA applies no fallback
    (modified("Value", behavior="scalingModifiers"), True),  # a nil formula answers for fallback.replicas
], ids=str)
def test_which_objects_need_the_ready_count(so: ScaledObject, needed: bool) -> None:
    assert needs_ready_count(so) is needed


@pytest.mark.parametrize("target, valid", [("5", True), ("+5", True), ("5.0", False), ("2.5", False), ("1e1", False)])
def test_a_composite_fallback_needs_a_positive_whole_target(target: str, valid: bool) -> None:
    so = modified("AverageValue", target=target)
    assert (valid_fallback(so) is not None) is valid
    assert valid_fallback(plain("AverageValue")) == Fallback(1, 2)  # without scalingModifiers: as written


def test_the_fallback_condition_counts_failing_triggers_past_the_threshold() -> None:
    def trigger(failures: int, error: str | None) -> TriggerActivity:
        return TriggerActivity(0, "redis", "s0-redis", "Value", 5.0, 0.0, True, None, False, error, failures, False)

    fallback = Fallback(failure_threshold=2, replicas=1)
    assert any_in_fallback(fallback, [trigger(3, "refused")])
    assert not any_in_fallback(fallback, [trigger(2, "refused"), trigger(3, None)])
    assert not any_in_fallback(None, [trigger(9, "refused")])
