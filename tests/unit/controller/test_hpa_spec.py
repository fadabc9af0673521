"""The HPA generated from a ScaledObject, and when one in the cluster counts as up to date."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from adapter.controller.hpa import SPEC_HASH, HpaMetric, TargetKind, derivative, desired_hpa, hpa_patch, up_to_date
from adapter.keda.activity import ResourceMetric
from adapter.keda.objects import parse_scaled_object
from adapter.kube.autoscaling import Hpa, parse_hpa

DEPLOYMENT = TargetKind("apps/v1", "Deployment")
METRICS = [HpaMetric("s0-redis-jobs", "AverageValue", 5), HpaMetric("s1-rabbitmq-orders", "Value", 1.5)]


def scaled_object(api_version: str = "keda.sh/v1alpha1", **spec: Any) -> Any:
    target = {"deploymentName": "worker"} if api_version.startswith("keda.k8s.io") else {"name": "worker"}
    return parse_scaled_object({
        "apiVersion": api_version, "kind": "ScaledObject",
        "metadata": {"name": "jobs", "namespace": "ns", "uid": "u-1", "labels": {"team": "a"},
                     "annotations": {"note": "x"}},
        "spec": {"scaleTargetRef": target, "triggers": [{"type": "redis", "metadata": {}}], **spec}})


def test_keda_shape() -> None:
    hpa = desired_hpa(scaled_object(minReplicaCount=0, maxReplicaCount=7), DEPLOYMENT, METRICS)
    assert hpa["metadata"]["name"] == "keda-hpa-jobs"
    assert hpa["metadata"]["labels"]["scaledobject.keda.sh/name"] == "jobs" and hpa["metadata"]["labels"]["team"] == "a"
    assert hpa["metadata"]["annotations"]["note"] == "x"
    assert hpa["metadata"]["ownerReferences"] == [{"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                                                   "name": "jobs", "uid": "u-1", "controller": True,
                                                   "blockOwnerDeletion": True}]
    spec = hpa["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 7)
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"}
    assert spec["metrics"] == [
        {"type": "External", "external": {
            "metric": {"name": "s0-redis-jobs", "selector": {"matchLabels": {"scaledobject.keda.sh/name": "jobs"}}},
            "target": {"type": "AverageValue", "averageValue": "5"}}},
        {"type": "External", "external": {
            "metric": {"name": "s1-rabbitmq-orders",
                       "selector": {"matchLabels": {"scaledobject.keda.sh/name": "jobs"}}},
            "target": {"type": "Value", "value": "1500m"}}},
    ]
    assert "behavior" not in spec


def test_min_above_one_and_configured_name_and_behavior() -> None:
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 0}}
    so = scaled_object(minReplicaCount=3, advanced={"horizontalPodAutoscalerConfig": {"name": "mine",
                                                                                       "behavior": behavior}})
    hpa = desired_hpa(so, DEPLOYMENT, METRICS)
    assert hpa["metadata"]["name"] == "mine" and hpa["spec"]["minReplicas"] == 3
    assert hpa["spec"]["behavior"] == behavior


def test_2019_format_is_named_after_the_deployment_and_routed_by_it() -> None:
    hpa = desired_hpa(scaled_object("keda.k8s.io/v1alpha1"), DEPLOYMENT, METRICS[:1])
    assert hpa["metadata"]["name"] == "keda-hpa-worker"
    selector = hpa["spec"]["metrics"][0]["external"]["metric"]["selector"]
    assert selector == {"matchLabels": {"deploymentName": "worker"}}


@pytest.mark.parametrize("scale_in, scale_out, expected", [
    (True, False, {"scaleDown": {"selectPolicy": "Disabled", "stabilizationWindowSeconds": 0}}),
    (False, True, {"scaleDown": {"stabilizationWindowSeconds": 0}, "scaleUp": {"selectPolicy": "Disabled"}}),
])
def test_a_paused_direction_is_disabled(scale_in: bool, scale_out: bool, expected: dict[str, Any]) -> None:
    so = scaled_object(advanced={"horizontalPodAutoscalerConfig": {"behavior": {
        "scaleDown": {"stabilizationWindowSeconds": 0}}}})
    hpa = desired_hpa(so, DEPLOYMENT, METRICS, pause_scale_in=scale_in, pause_scale_out=scale_out)
    assert hpa["spec"]["behavior"] == expected
    assert so.hpa_behavior == {"scaleDown": {"stabilizationWindowSeconds": 0}}  # not changed in place


def server_object(hpa: dict[str, Any]) -> dict[str, Any]:
    """What kube-apiserver stores: defaults filled in, its own metadata added."""
    found = copy.deepcopy(hpa)
    found["metadata"].update(resourceVersion="7", uid="h-1", creationTimestamp="2026-01-01T00:00:00Z")
    found["spec"]["behavior"] = {"scaleUp": {"selectPolicy": "Max", "stabilizationWindowSeconds": 0},
                                 "scaleDown": {"selectPolicy": "Max", "stabilizationWindowSeconds": 300}}
    found["status"] = {"currentReplicas": 2}
    return found


def server_view(hpa: dict[str, Any]) -> Hpa:
    return parse_hpa(server_object(hpa))


def test_defaults_filled_by_the_server_still_count_as_up_to_date() -> None:
    wanted = desired_hpa(scaled_object(), DEPLOYMENT, METRICS)
    assert up_to_date(wanted, server_view(wanted))


@pytest.mark.parametrize("change", ["target", "max", "owner", "lifted-pause", "edited"])
def test_what_needs_an_update(change: str) -> None:
    wanted = desired_hpa(scaled_object(), DEPLOYMENT, METRICS)
    found = server_object(wanted)
    if change == "target":
        doubled = [HpaMetric("s0-redis-jobs", "AverageValue", 10), *METRICS[1:]]
        wanted = desired_hpa(scaled_object(), DEPLOYMENT, doubled)
    elif change == "max":
        wanted = desired_hpa(scaled_object(maxReplicaCount=3), DEPLOYMENT, METRICS)
    elif change == "owner":
        found["metadata"]["ownerReferences"] = []
    elif change == "lifted-pause":  # the pause's Disabled is not in what we ask any more: only the hash tells
        found = server_object(desired_hpa(scaled_object(), DEPLOYMENT, METRICS, pause_scale_in=True))
    else:
        found["spec"]["maxReplicas"] = 50  # someone edited the HPA
    assert not up_to_date(wanted, parse_hpa(found))


def test_update_patch_replaces_the_spec_and_touches_only_our_metadata() -> None:
    wanted = desired_hpa(scaled_object(), DEPLOYMENT, METRICS)
    found = server_object(wanted)
    found["metadata"]["labels"]["extra"] = "kept"
    found["metadata"]["annotations"][SPEC_HASH] = "old"
    found["metadata"]["ownerReferences"].append({"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "c-1"})
    found["spec"]["behavior"]["scaleDown"]["policies"] = [{"type": "Pods", "value": 1, "periodSeconds": 60}]
    patch = hpa_patch(wanted, parse_hpa(found))
    meta = patch["metadata"]
    assert "extra" not in meta["labels"] and meta["resourceVersion"] == "7"  # a merge patch keeps "extra"
    assert meta["annotations"][SPEC_HASH] == wanted["metadata"]["annotations"][SPEC_HASH]
    assert [o["uid"] for o in meta["ownerReferences"]] == ["u-1", "c-1"]
    assert patch["spec"]["behavior"] is None  # we ask for none: removed, and defaulted again by the server
    assert "maxReplicas" not in patch["spec"] and "status" not in patch  # unchanged fields are not sent


@pytest.mark.parametrize("wanted, found, same", [
    ({"a": 1}, {"a": 1, "b": 2}, True),
    ({"a": {"b": 1}}, {"a": {"b": 1, "c": 3}}, True),
    ({"a": [1, 2]}, {"a": [1, 2, 3]}, False),
    ({"a": [{"x": 1}]}, {"a": [{"x": 1, "y": 2}]}, True),
    ({"a": 1}, {}, False),
])
def test_derivative(wanted: Any, found: Any, same: bool) -> None:
    assert derivative(wanted, found) is same


# -- cpu and memory: the metrics KEDA's getScaledObjectMetricSpecs writes ----------------------------

CPU = ResourceMetric("cpu", "Utilization", "50")
MEMORY = ResourceMetric("memory", "AverageValue", "512Mi", container="app")


def test_cpu_and_memory_are_resource_metrics_sorted_by_type_as_keda_sorts_them() -> None:
    metrics = [HpaMetric("s0-cpu", "Utilization", 50, CPU), METRICS[0],
               HpaMetric("s2-memory", "AverageValue", 0, MEMORY)]
    spec = desired_hpa(scaled_object(minReplicaCount=1), DEPLOYMENT, metrics)["spec"]
    assert [m["type"] for m in spec["metrics"]] == ["ContainerResource", "External", "Resource"]
    assert spec["metrics"][0] == {"type": "ContainerResource", "containerResource": {
        "name": "memory", "container": "app", "target": {"type": "AverageValue", "averageValue": "512Mi"}}}
    assert spec["metrics"][2] == {"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}
