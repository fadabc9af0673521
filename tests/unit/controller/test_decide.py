"""The activation decision, table by table: activation, cooldown, idle, errors, pause annotations."""

from __future__ import annotations

from dataclasses import replace

import pytest

from adapter.controller import conditions as c
from adapter.controller.decide import Inputs, Pause, annotation_errors, decide, parse_bool, pause_of
from adapter.keda.scaled_object_status import Condition

NOW = 1_000_000.0
BASE = Inputs(min_replicas=0, idle_replicas=None, cooldown=300, initial_cooldown=0, created_at=NOW - 3600,
              last_active=None, current=0, active=False, error=False, fallback=False)


def given(**changes: object) -> Inputs:
    return replace(BASE, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("inputs, scale_to, action", [
    (given(active=True), 1, "activate"),
    (given(active=True, min_replicas=3), 3, "activate"),
    (given(active=True, current=2), None, None),  # 1..N is the HPA's
    (given(active=True, min_replicas=3, idle_replicas=0, current=0), 3, "activate"),
    (given(active=True, min_replicas=3, idle_replicas=1, current=1), 3, "activate"),  # below min with idle
    (given(active=True, min_replicas=3, current=1), None, None),  # below min without idle: the HPA's
    (given(forced=True), 1, "activate"),
    (given(active=True, pause_scale_out=True), None, None),
    (given(active=True, error=True), 1, "activate"),  # one trigger active is enough
], ids=str)
def test_activation(inputs: Inputs, scale_to: int | None, action: str | None) -> None:
    decision = decide(inputs, NOW)
    assert (decision.scale_to, decision.action) == (scale_to, action)
    assert decision.active.status == "True" and decision.last_active == NOW


def test_forced_activation_says_so() -> None:
    assert decide(given(forced=True), NOW).active == c.FORCED_ACTIVE
    assert decide(given(active=True), NOW).active == c.ACTIVE


@pytest.mark.parametrize("inputs, scale_to, condition", [
    (given(current=1, last_active=NOW - 299), None, c.COOLDOWN),
    (given(current=1, last_active=NOW - 300), 0, c.NOT_ACTIVE),
    (given(current=5, last_active=NOW - 301), 0, c.NOT_ACTIVE),  # whatever the HPA left
    (given(current=1, last_active=None, initial_cooldown=60, created_at=NOW - 30), None, c.COOLDOWN),
    (given(current=1, last_active=None, initial_cooldown=60, created_at=NOW - 61), 0, c.NOT_ACTIVE),
    (given(current=1, last_active=None), 0, c.NOT_ACTIVE),  # never active, no initial cooldown
    (given(current=3, min_replicas=2, idle_replicas=0, last_active=NOW - 400), 0, c.NOT_ACTIVE),
    (given(current=3, min_replicas=3, idle_replicas=1, last_active=NOW - 400), 1, c.NOT_ACTIVE),
    (given(current=3, min_replicas=2, last_active=NOW - 400), None, c.NOT_ACTIVE),  # min > 0, no idle: HPA's
    (given(current=0, min_replicas=2, last_active=NOW - 400), 2, c.NOT_ACTIVE),  # up to min
    (given(current=0), None, c.NOT_ACTIVE),
    (given(current=1, last_active=NOW - 400, pause_scale_in=True), None, c.NOT_ACTIVE),
], ids=str)
def test_inactive(inputs: Inputs, scale_to: int | None, condition: Condition) -> None:
    decision = decide(inputs, NOW)
    assert decision.scale_to == scale_to and decision.active == condition


def test_cooldown_tells_when_to_look_again() -> None:
    decision = decide(given(current=1, last_active=NOW - 100, cooldown=300), NOW)
    assert decision.recheck_at == NOW + 200 and decision.last_active == NOW - 100


@pytest.mark.parametrize("fallback, ready", [(False, c.TRIGGER_ERROR), (True, None)])
def test_an_error_never_scales_down(fallback: bool, ready: Condition | None) -> None:
    decision = decide(given(current=4, error=True, fallback=fallback, last_active=NOW - 10_000), NOW)
    assert decision.scale_to is None and decision.ready == ready


def test_active_with_an_error_elsewhere_is_a_partial_error() -> None:
    assert decide(given(active=True, error=True, current=2), NOW).ready == c.PARTIAL_TRIGGER_ERROR


@pytest.mark.parametrize("annotations, pause", [
    ({}, Pause()),
    ({"autoscaling.keda.sh/paused": "true"}, Pause(stopped=True)),
    ({"autoscaling.keda.sh/paused": "false"}, Pause()),
    ({"autoscaling.keda.sh/paused": "yes"}, Pause(stopped=True)),  # not a boolean: KEDA pauses
    ({"autoscaling.keda.sh/paused-replicas": "2"}, Pause(stopped=True, replicas=2)),
    ({"autoscaling.keda.sh/paused-replicas": "0", "autoscaling.keda.sh/paused": "false"},
     Pause(stopped=True, replicas=0)),
    ({"autoscaling.keda.sh/paused-scale-in": "true"}, Pause(scale_in=True)),
    ({"autoscaling.keda.sh/paused-scale-out": "1", "autoscaling.keda.sh/paused-scale-in": "no"},
     Pause(scale_out=True)),
])
def test_pause_annotations(annotations: dict[str, str], pause: Pause) -> None:
    assert pause_of(annotations) == pause


@pytest.mark.parametrize("value, error", [("3", False), ("-1", True), ("two", True), ("", True)])
def test_paused_replicas_must_be_a_count(value: str, error: bool) -> None:
    assert (annotation_errors({"autoscaling.keda.sh/paused-replicas": value}) is not None) is error


@pytest.mark.parametrize("text, value", [("true", True), ("T", True), ("1", True), ("False", False),
                                         ("0", False), ("yes", None), ("", None)])
def test_parse_bool_like_go(text: str, value: bool | None) -> None:
    assert parse_bool(text) is value
