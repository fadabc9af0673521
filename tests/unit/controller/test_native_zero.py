"""Native scale-to-zero, table by table: which objects go native, when 0 may be served, what the
controller still does itself, and the probe's HPA."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from adapter.controller.decide import Inputs, decide
from adapter.controller.native_zero import native_step, not_native, probe_hpa, zero_from
from adapter.keda.activity import TargetsReport, TargetState, decode_targets, encode_targets
from adapter.keda.objects import ScaledObject, parse_scaled_object
from adapter.kube.wire import timestamp

NOW = 1_000_000.0
CREATED = NOW - 3600


def so(annotations: dict[str, str] | None = None, triggers: list[dict[str, Any]] | None = None,
       **spec: Any) -> ScaledObject:
    body: dict[str, Any] = {"scaleTargetRef": {"name": "w"}, "cooldownPeriod": 300,
                            "triggers": triggers or [{"type": "redis", "metadata": {"listName": "l"}}], **spec}
    return parse_scaled_object({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                                "metadata": {"name": "w", "namespace": "default", "uid": "u",
                                             "creationTimestamp": timestamp(CREATED),
                                             "annotations": annotations or {}},
                                "spec": body})


def window(seconds: int) -> dict[str, Any]:
    return {"horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": seconds}}}}


@pytest.mark.parametrize("obj, why", [
    (so(), None),  # cooldown 300, the HPA's default window 300: native
    (so(cooldownPeriod=30, advanced=window(30)), None),
    (so(cooldownPeriod=30, advanced=window(0)), None),
    (so(minReplicaCount=1), "minReplicaCount is not 0"),
    (so(idleReplicaCount=0, minReplicaCount=2), "idleReplicaCount cannot be expressed by an HPA"),
    (so(triggers=[{"type": "redis", "metadata": {"listName": "l"}},
                  {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "50"}}]),
     "cpu and memory triggers have no value at 0 replicas"),
    (so(advanced={"scalingModifiers": {"formula": "a", "target": "2"}},
        triggers=[{"type": "redis", "name": "a", "metadata": {"listName": "l"}}]),
     "scalingModifiers are not served gated"),
    (so(advanced={"horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {"selectPolicy": "Disabled"}}}}),
     "the HPA's scale-down is disabled"),
    (so(cooldownPeriod=30), "the HPA's scale-down stabilization window (300s) is longer than cooldownPeriod (30s); "
                            "set behavior.scaleDown.stabilizationWindowSeconds <= cooldownPeriod"),
], ids=str)
def test_which_objects_go_native(obj: ScaledObject, why: str | None) -> None:
    assert not_native(obj) == why


@pytest.mark.parametrize("obj, last_active, expected", [
    (so(), NOW - 10, NOW - 10 + 300 - 300),  # cooldown = window: 0 as soon as inactive
    (so(cooldownPeriod=60, advanced=window(20)), NOW - 10, NOW - 10 + 60 - 20),
    (so(cooldownPeriod=6, advanced=window(0)), NOW - 10, NOW - 4),
    (so(advanced=window(0)), None, CREATED),  # never active, initialCooldownPeriod 0
    (so(initialCooldownPeriod=7200, advanced=window(60)), None, CREATED + 7200 - 60),
    (so({"autoscaling.keda.sh/force-activation": "true"}), NOW - 10, None),
    (so({"autoscaling.keda.sh/paused-scale-in": "true"}), NOW - 10, None),
    (so({"autoscaling.keda.sh/paused-scale-out": "true"}), NOW - 10, NOW - 10),  # up is the HPA's to block
], ids=str)
def test_from_when_zero_is_served(obj: ScaledObject, last_active: float | None, expected: float | None) -> None:
    assert zero_from(obj, last_active, NOW) == expected


BASE = Inputs(min_replicas=0, idle_replicas=None, cooldown=6, initial_cooldown=0, created_at=CREATED,
              last_active=NOW - 60, current=0, active=False, error=False, fallback=False)


@pytest.mark.parametrize("changes, hpa_scaled_to_zero, scale_to", [
    ({"active": True}, False, 1),  # created at 0 or scaled there by someone else: ScalingDisabled, one step
    ({"active": True}, True, None),  # the HPA put it at 0: it scales up itself
    ({"forced": True}, False, 1),
    ({"active": True, "pause_scale_out": True}, False, None),
    ({"active": True, "current": 3}, False, None),  # 1..N is the HPA's either way
    ({"current": 3}, False, None),  # past the cooldown: the HPA scales to 0 from the served 0
    ({"current": 3, "last_active": NOW - 1}, False, None),  # cooling down
    ({"error": True}, True, None),
], ids=str)
def test_what_the_controller_still_does(changes: dict[str, Any], hpa_scaled_to_zero: bool,
                                        scale_to: int | None) -> None:
    decision = native_step(decide(replace(BASE, **changes), NOW), changes.get("current", 0), hpa_scaled_to_zero)
    assert decision.scale_to == scale_to
    assert decision.action == ("activate" if scale_to else None)


def test_deactivation_keeps_its_conditions_but_not_its_write() -> None:
    keda = decide(replace(BASE, current=3), NOW)
    assert keda.action == "deactivate"
    native = native_step(keda, 3, hpa_scaled_to_zero=False)
    assert (native.scale_to, native.active, native.last_active) == (None, keda.active, keda.last_active)


def test_the_probe_is_an_hpa_only_the_gate_accepts() -> None:
    spec = probe_hpa("eventscale")["spec"]
    assert spec["minReplicas"] == 0 and [m["type"] for m in spec["metrics"]] == ["External"]


@pytest.mark.parametrize("state", [
    TargetState("ns", "a", native=True, zero_from=NOW),
    TargetState("ns", "a", native=True, zero_from=None),
    TargetState("ns", "a", replicas=3, at_zero=True),
    TargetState("ns", "a", replicas=3, ready=2),
], ids=str)
def test_native_states_travel_to_the_adapter(state: TargetState) -> None:
    assert decode_targets(encode_targets(TargetsReport((state,), True))) == TargetsReport((state,), True)


@pytest.mark.parametrize("raw", ["soon", True, float("inf"), [1]], ids=str)
def test_a_zero_from_that_is_not_epoch_seconds_is_refused(raw: Any) -> None:
    with pytest.raises(ValueError, match="zeroFrom must be epoch seconds"):
        decode_targets({"items": [{"namespace": "ns", "name": "a", "native": True, "zeroFrom": raw}]})
