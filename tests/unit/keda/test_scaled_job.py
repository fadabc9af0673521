"""ScaledJob parsing: defaults, the 2019 `scaleType: job` object, and every validation error."""

from __future__ import annotations

from typing import Any

import pytest

from adapter.keda.objects import InvalidObject
from adapter.keda.scaled_job import ScalingStrategy, is_job_object, parse_scaled_job

REDIS = {"type": "redis", "metadata": {"address": "redis:6379", "listName": "work", "listLength": "1"}}
TEMPLATE = {"template": {"spec": {"containers": [{"name": "work", "image": "w:1"}]}}}


def sj(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob", "metadata": {"name": "encode", "namespace": "n"},
            "spec": {"jobTargetRef": TEMPLATE, "triggers": [REDIS], **spec}}


def legacy(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "keda.k8s.io/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "old"},
            "spec": {"scaleType": "job", "jobTargetRef": TEMPLATE, "triggers": [REDIS], **spec}}


def test_defaults() -> None:
    parsed = parse_scaled_job(sj())
    assert (parsed.namespace, parsed.name, parsed.kind, parsed.legacy) == ("n", "encode", "ScaledJob", False)
    assert (parsed.polling_interval, parsed.successful_jobs_history_limit, parsed.failed_jobs_history_limit) == (
        30, 100, 100)
    assert (parsed.min_jobs, parsed.max_jobs, parsed.rollout_strategy, parsed.propagation_policy) == (
        0, 100, "default", "background")
    assert parsed.scaling == ScalingStrategy() and not parsed.uses_pending
    assert parsed.job_spec == TEMPLATE and parsed.triggers[0].type == "redis"


@pytest.mark.parametrize(("spec", "expected"), [
    ({"pollingInterval": 5, "maxReplicaCount": 7}, {"polling_interval": 5, "max_jobs": 7}),
    ({"minReplicaCount": 2, "maxReplicaCount": 7}, {"min_jobs": 2, "max_jobs": 5}),  # KEDA: max less min
    ({"minReplicaCount": 9, "maxReplicaCount": 7}, {"min_jobs": 7, "max_jobs": 7}),
    ({"minReplicaCount": 3}, {"min_jobs": 3, "max_jobs": 100}),
    ({"successfulJobsHistoryLimit": 0, "failedJobsHistoryLimit": 3},
     {"successful_jobs_history_limit": 0, "failed_jobs_history_limit": 3}),
    ({"rollout": {"strategy": "gradual", "propagationPolicy": "foreground"}},
     {"rollout_strategy": "gradual", "propagation_policy": "foreground"}),
    ({"rolloutStrategy": "gradual"}, {"rollout_strategy": "gradual"}),
    ({"envSourceContainerName": "work"}, {"env_source_container": "work"}),
    ({"scalingStrategy": {"strategy": "accurate", "pendingPodConditions": ["Ready"]}},
     {"scaling": ScalingStrategy("accurate", pending_pod_conditions=("Ready",)), "uses_pending": True}),
    ({"scalingStrategy": {"strategy": "custom", "customScalingQueueLengthDeduction": -2,
                          "customScalingRunningJobPercentage": "0.5", "multipleScalersCalculation": "sum"}},
     {"scaling": ScalingStrategy("custom", -2, "0.5", (), "sum")}),
    ({"scalingStrategy": {"strategy": "eager"}}, {"uses_pending": True}),
])
def test_fields(spec: dict[str, Any], expected: dict[str, Any]) -> None:
    parsed = parse_scaled_job(sj(**spec))
    assert {k: getattr(parsed, k) for k in expected} == expected


@pytest.mark.parametrize(("raw", "message"), [
    (sj(jobTargetRef=None), "spec.jobTargetRef is required"),
    (sj(jobTargetRef={"template": {}}), "spec.jobTargetRef.template is required"),
    (sj(jobTargetRef={"template": "x"}), "spec.jobTargetRef.template must be"),
    (sj(jobTargetRef={"template": {"spec": {"containers": "work"}}}),
     "spec.jobTargetRef.template.spec.containers must be a list"),
    (sj(triggers=[]), "spec.triggers must list at least one trigger"),
    (sj(triggers=[{**REDIS, "metricType": "Value"}]), "spec.triggers[0].metricType cannot be set in ScaledJob"),
    (sj(pollingInterval=0), "spec.pollingInterval must be at least 1"),
    (sj(pollingInterval="5"), "spec.pollingInterval must be an integer"),
    (sj(maxReplicaCount=0), "spec.maxReplicaCount must be at least 1"),
    (sj(successfulJobsHistoryLimit=-1), "spec.successfulJobsHistoryLimit must be at least 0"),
    (sj(scalingStrategy={"strategy": "fastest"}), 'spec.scalingStrategy.strategy "fastest" must be one of'),
    (sj(scalingStrategy={"multipleScalersCalculation": "median"}),
     'spec.scalingStrategy.multipleScalersCalculation "median" must be one of'),
    (sj(scalingStrategy={"pendingPodConditions": "Ready"}), "pendingPodConditions must be a list"),
    (sj(scalingStrategy={"customScalingQueueLengthDeduction": "1"}),
     "spec.scalingStrategy.customScalingQueueLengthDeduction must be an integer"),
    (sj(rollout={"strategy": "sideways"}), 'spec.rollout.strategy "sideways" must be one of'),
    (sj(rollout={"propagationPolicy": "orphan"}), 'spec.rollout.propagationPolicy "orphan" must be one of'),
    (sj(scalingStrategy=[]), "spec.scalingStrategy must be"),
])
def test_invalid(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidObject) as caught:
        parse_scaled_job(raw)
    assert message in str(caught.value)


def test_the_2019_scale_type_job_object() -> None:
    raw = legacy(maxReplicaCount=4, cooldownPeriod=30)
    assert is_job_object(raw) and not is_job_object({**raw, "spec": {**raw["spec"], "scaleType": "deployment"}})
    assert not is_job_object({**raw, "apiVersion": "keda.sh/v1alpha1"})  # scaleType means nothing in 2.x
    parsed = parse_scaled_job(raw)
    assert (parsed.legacy, parsed.kind, parsed.namespace, parsed.max_jobs) == (True, "ScaledObject", "default", 4)
    assert parsed.rollout_strategy == "gradual"  # KEDA 1.x never deleted Jobs on a change
    assert parsed.triggers[0].metadata["addressFromEnv"] == "redis:6379"  # 1.x: host names an env variable


@pytest.mark.parametrize("raw", [sj(), legacy()])
def test_a_scaled_job_is_a_job_object(raw: dict[str, Any]) -> None:
    assert is_job_object(raw)
