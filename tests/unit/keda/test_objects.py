"""ScaledObject parsing: defaults, both API versions, and every validation error."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from adapter.keda.objects import InvalidObject, parse_scaled_object, parse_trigger_authentication

CRON = {"type": "cron", "metadata": {"timezone": "UTC", "start": "0 6 * * *", "end": "0 20 * * *",
                                     "desiredReplicas": "2"}}


def so(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                            "metadata": {"name": "orders"}, "spec": {"scaleTargetRef": {"name": "web"},
                                                                      "triggers": [CRON]}}
    base["spec"].update(spec)
    return base


def test_defaults() -> None:
    parsed = parse_scaled_object(so())
    assert (parsed.namespace, parsed.name) == ("default", "orders")
    assert (parsed.polling_interval, parsed.cooldown_period, parsed.initial_cooldown_period) == (30, 300, 0)
    assert (parsed.min_replica_count, parsed.max_replica_count, parsed.idle_replica_count) == (0, 100, None)
    assert parsed.target.kind == "Deployment" and parsed.target.api_version == "apps/v1"
    assert parsed.hpa_name == "keda-hpa-orders"
    assert parsed.route == ("scaledobject.keda.sh/name", "orders")
    trigger = parsed.triggers[0]
    assert (trigger.index, trigger.metric_type, trigger.use_cached_metrics) == (0, "AverageValue", False)


def test_legacy_format() -> None:
    raw = {"apiVersion": "keda.k8s.io/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "old", "namespace": "n"},
           "spec": {"scaleTargetRef": {"deploymentName": "worker", "containerName": "main"},
                    "triggers": [{"type": "redis", "metadata": {"address": "REDIS_ADDRESS", "listName": "jobs",
                                                                "password": "REDIS_PASSWORD"}}]}}
    parsed = parse_scaled_object(raw)
    assert parsed.legacy and parsed.route == ("deploymentName", "worker")
    assert parsed.hpa_name == "keda-hpa-worker" and parsed.target.env_source_container == "main"
    assert dict(parsed.triggers[0].metadata) == {"addressFromEnv": "REDIS_ADDRESS", "listName": "jobs",
                                                 "passwordFromEnv": "REDIS_PASSWORD"}


def test_advanced_and_fallback() -> None:
    parsed = parse_scaled_object(so(
        minReplicaCount=2, idleReplicaCount=0, fallback={"failureThreshold": 3, "replicas": 6},
        advanced={"restoreToOriginalReplicaCount": True,
                  "horizontalPodAutoscalerConfig": {"name": "custom", "behavior": {"scaleDown": {}}}},
    ))
    assert parsed.hpa_name == "custom" and parsed.hpa_behavior == {"scaleDown": {}}
    assert parsed.fallback is not None and parsed.fallback.replicas == 6 and parsed.fallback.behavior == "static"
    assert parsed.restore_to_original_replica_count and parsed.idle_replica_count == 0


CPU = {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "50"}}


@pytest.mark.parametrize("change, error", [
    ({"metadata": {}}, "metadata.name is required"),
    ({"spec": {"triggers": [CRON]}}, "spec.scaleTargetRef.name is required"),
    ({"spec": {"scaleTargetRef": {"name": "w"}}}, "spec.triggers must list at least one trigger"),
    ({"spec": {"scaleTargetRef": {"name": "w"}, "triggers": []}}, "at least one trigger"),
    ({"spec": {"scaleTargetRef": {"name": "w"}, "triggers": [{"metadata": {}}]}}, "spec.triggers[0].type is required"),
    ({"spec.minReplicaCount": 5, "spec.maxReplicaCount": 2}, "minReplicaCount (5) must be less than or equal"),
    ({"spec.idleReplicaCount": 1, "spec.minReplicaCount": 1}, "idleReplicaCount (1) must be less than"),
    ({"spec.idleReplicaCount": 0}, "idleReplicaCount (0) must be less than minReplicaCount (0)"),
    ({"spec.pollingInterval": 0}, "spec.pollingInterval must be at least 1"),
    ({"spec.cooldownPeriod": "5m"}, "spec.cooldownPeriod must be an integer"),
    ({"spec.maxReplicaCount": -1}, "spec.maxReplicaCount must be at least 0"),
    ({"spec.fallback": {"replicas": 2}}, "spec.fallback needs failureThreshold and replicas"),
    ({"spec.fallback": {"failureThreshold": 1, "replicas": 2, "behavior": "x"}}, 'behavior "x" must be one of'),
    ({"spec.triggers": [{**CRON, "metricType": "Percent"}]}, 'metricType "Percent" must be one of'),
    ({"spec.triggers": [{**CRON, "metricType": "Utilization"}]}, None),  # refused per trigger, by the resolver
    # cpu and memory (KEDA's admission webhook and CheckFallbackValid)
    ({"spec.triggers": [CPU]}, "scaledobject has only cpu/memory triggers AND minReplica is 0"),
    ({"spec.triggers": [CPU, {**CPU, "type": "memory"}]}, "only cpu/memory triggers AND minReplica is 0"),
    ({"spec.triggers": [CPU], "spec.minReplicaCount": 1}, None),
    ({"spec.triggers": [CPU, CRON]}, None),
    ({"spec.triggers": [CPU], "spec.minReplicaCount": 1, "spec.fallback": {"failureThreshold": 1, "replicas": 2}},
     "at least one trigger (that is not cpu or memory) has to have the `AverageValue` type"),
    ({"spec.triggers": [CPU, CRON], "spec.fallback": {"failureThreshold": 1, "replicas": 2}}, None),
    # fallback with metricType Value (KEDA 2.20 divides by the ready pods): accepted, with or without modifiers
    ({"spec.triggers": [{**CRON, "metricType": "Value"}], "spec.fallback": {"failureThreshold": 1, "replicas": 2}},
     None),
    ({"spec.triggers": [CRON, {**CRON, "metricType": "Value"}], "spec.fallback": {"failureThreshold": 1,
                                                                                   "replicas": 2}}, None),
    ({"spec.triggers": [CPU, {**CRON, "metricType": "Value"}], "spec.fallback": {"failureThreshold": 1,
                                                                                  "replicas": 2}}, None),
    ({"spec.triggers": [CPU], "spec.minReplicaCount": 1, "spec.fallback": {"failureThreshold": 1, "replicas": 2},
      "spec.advanced": {"scalingModifiers": {"formula": "5", "target": "1"}}}, None),  # KEDA checks no trigger here
    ({"spec.triggers": [{**CRON, "name": "a"}, {**CRON, "name": "a"}]}, "unique names, duplicated: a"),
    ({"spec.triggers": [{**CRON, "authenticationRef": {}}]}, None),
    ({"spec.triggers": [{**CRON, "authenticationRef": {"kind": "Secret", "name": "x"}}]},
     "not a trigger authentication"),
    ({"spec.triggers": [{**CRON, "metadata": {"a": {"nested": 1}}}]}, "spec.triggers[0].metadata.a must be a string"),
    ({"spec.advanced": {"scalingModifiers": {"target": "5"}}}, "spec.advanced.scalingModifiers.formula is required"),
    ({"spec.advanced": {"scalingModifiers": {"formula": "a"}}, "spec.triggers": [{**CRON, "name": "a"}]},
     "spec.advanced.scalingModifiers.target is required with a formula"),
    ({"spec.advanced": {"scalingModifiers": {"formula": "a", "target": "0"}}, "spec.triggers": [{**CRON, "name": "a"}]},
     "spec.advanced.scalingModifiers.target must be greater than 0"),
    ({"spec.advanced": {"scalingModifiers": {"formula": "a", "target": "many"}},
      "spec.triggers": [{**CRON, "name": "a"}]}, "spec.advanced.scalingModifiers.target must be a number"),
    ({"spec.advanced": {"scalingModifiers": {"formula": "a", "target": "1", "activationTarget": "nan"}},
      "spec.triggers": [{**CRON, "name": "a"}]}, "activationTarget must be a finite number"),
    ({"spec.advanced": {"scalingModifiers": {"formula": "a", "target": "1", "metricType": "Utilization"}},
      "spec.triggers": [{**CRON, "name": "a"}]}, 'metricType "Utilization" must be one of [AverageValue, Value]'),
    ({"spec.advanced": {"scalingModifiers": {"formula": "a * 2", "target": "1"}}},
     'formula uses "a" at column 1, which is not the name of a trigger (named triggers: none'),
    ({"spec.advanced": {"scalingModifiers": {"formula": "c + 1", "target": "1"}},
      "spec.triggers": [{"type": "cpu", "name": "c", "metadata": {"value": "50"}}]},
     'uses "c" at column 1, which is not the name of a trigger'),  # cpu and memory stay HPA resource metrics
    ({"spec.advanced": {"scalingModifiers": {"formula": "a +", "target": "1"}},
      "spec.triggers": [{**CRON, "name": "a"}]},
     "spec.advanced.scalingModifiers.formula ends too early"),
    ({"spec.fallback": {"failureThreshold": 1, "replicas": 2, "behavior": "scalingModifiers"}},
     "spec.fallback.behavior scalingModifiers needs spec.advanced.scalingModifiers.formula"),
    ({"spec.advanced": {"scalingModifiers": {"formula": "a", "target": "1", "metricType": "Value"}},
      "spec.triggers": [{**CRON, "name": "a"}], "spec.fallback": {"failureThreshold": 1, "replicas": 2}}, None),
    ({"spec.advanced": {"scalingModifiers": {"formula": "a ?? 1", "target": "1", "metricType": "Value"}},
      "spec.triggers": [{**CRON, "name": "a"}],
      "spec.fallback": {"failureThreshold": 1, "replicas": 2, "behavior": "scalingModifiers"}}, None),
    ({"spec.advanced": {"scalingModifiers": {"formula": "a", "target": "1"}},
      "spec.triggers": [{**CRON, "name": "a", "metricType": "Value"}], "spec.fallback": {"failureThreshold": 1,
                                                                                        "replicas": 2}}, None),
])
def test_errors(change: dict[str, Any], error: str | None) -> None:
    raw = so()
    for key, value in change.items():
        if key.startswith("spec."):
            raw["spec"][key[5:]] = copy.deepcopy(value)
        else:
            raw[key] = copy.deepcopy(value)
    if error is None:
        parse_scaled_object(raw)
        return
    with pytest.raises(InvalidObject) as exc:
        parse_scaled_object(raw)
    assert error in str(exc.value)


def test_trigger_authentication() -> None:
    parsed = parse_trigger_authentication({
        "kind": "TriggerAuthentication", "metadata": {"name": "a", "namespace": "n"},
        "spec": {"secretTargetRef": [{"parameter": "password", "name": "s", "key": "k"}],
                 "configMapTargetRef": [{"parameter": "host", "name": "c", "key": "h"}],
                 "env": [{"parameter": "user", "name": "USER"}]},
    })
    assert parsed.secret_refs[0].parameter == "password" and parsed.config_map_refs[0].key == "h"
    assert parsed.env_refs[0].name == "USER" and parsed.env_refs[0].key == ""
    with pytest.raises(InvalidObject, match="needs key"):
        parse_trigger_authentication({"kind": "TriggerAuthentication", "metadata": {"name": "a"},
                                      "spec": {"secretTargetRef": [{"parameter": "p", "name": "s"}]}})


def test_scaling_modifiers() -> None:
    parsed = parse_scaled_object(so(
        triggers=[{**CRON, "name": "queue"}, {**CRON, "name": "lag"}],
        advanced={"scalingModifiers": {"formula": "queue > 10 ? queue + lag : lag", "target": " 2.5 ",
                                       "activationTarget": "1", "metricType": "Value"}},
    ))
    modifiers = parsed.scaling_modifiers
    assert modifiers is not None
    assert (modifiers.target, modifiers.target_text, modifiers.activation_target, modifiers.metric_type) == (
        2.5, "2.5", 1.0, "Value")
    assert modifiers.formula.names == {"queue", "lag"}
    assert modifiers.formula.evaluate({"queue": 11, "lag": 2}) == 13
    assert parse_scaled_object(so(advanced={"scalingModifiers": {}})).scaling_modifiers is None
