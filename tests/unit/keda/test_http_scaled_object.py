"""HTTPScaledObjects (KEDA http-add-on) turned into the ScaledObjects that stand for them."""

from __future__ import annotations

from typing import Any

import pytest

from adapter.keda.http_scaled_object import scaled_object_for
from adapter.keda.objects import InvalidObject, parse_scaled_object


def hso(**spec: Any) -> dict[str, Any]:
    body = {"scaleTargetRef": {"name": "web", "service": "web-svc", "port": 8080}, **spec}
    return {"apiVersion": "http.keda.sh/v1alpha1", "kind": "HTTPScaledObject",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1"}, "spec": body}


def trigger(obj: dict[str, Any]) -> dict[str, str]:
    return dict(obj["spec"]["triggers"][0]["metadata"])


@pytest.mark.parametrize("spec, expected", [
    ({}, {"hosts": "", "pathPrefixes": "/", "service": "web-svc", "port": "8080", "targetPendingRequests": "100"}),
    ({"hosts": ["a.example.com", "b.example.com"], "pathPrefixes": ["/api"]},
     {"hosts": "a.example.com,b.example.com", "pathPrefixes": "/api"}),
    ({"scalingMetric": {"concurrency": {"targetValue": 20}}}, {"targetPendingRequests": "20"}),
    ({"targetPendingRequests": 7}, {"targetPendingRequests": "7"}),
    ({"scalingMetric": {"requestRate": {"targetValue": 50, "window": "30s", "granularity": "2s"}}},
     {"targetRequestRate": "50", "window": "30s", "granularity": "2s"}),
    ({"scalingMetric": {"requestRate": {}}}, {"targetRequestRate": "100", "window": "1m", "granularity": "1s"}),
    ({"timeouts": {"conditionWait": "45s"}}, {"holdTimeout": "45s"}),
    ({"scaleTargetRef": {"name": "web", "service": "web-svc", "portName": "http"}}, {"port": "http"}),
])
def test_trigger_metadata(spec: dict[str, Any], expected: dict[str, str]) -> None:
    found = trigger(scaled_object_for(hso(**spec)))
    assert {k: found.get(k) for k in expected} == expected


def test_the_scaled_object_parses_and_is_owned_by_the_http_scaled_object() -> None:
    obj = scaled_object_for(hso(replicas={"min": 1, "max": 7}, scaledownPeriod=60, initialCooldownPeriod=5))
    assert obj["metadata"]["ownerReferences"] == [{"apiVersion": "http.keda.sh/v1alpha1", "kind": "HTTPScaledObject",
                                                   "name": "web", "uid": "u-1", "controller": True,
                                                   "blockOwnerDeletion": True}]
    assert obj["metadata"]["labels"] == {"http.keda.sh/httpscaledobject": "web"}
    so = parse_scaled_object(obj)
    assert (so.namespace, so.name, so.target.name, so.target.kind) == ("shop", "web", "web", "Deployment")
    assert (so.min_replica_count, so.max_replica_count, so.cooldown_period, so.initial_cooldown_period) == (1, 7, 60, 5)
    assert [t.type for t in so.triggers] == ["http"]


def test_old_objects_name_the_target_with_deployment() -> None:
    old = hso(scaleTargetRef={"deployment": "legacy", "service": "legacy", "port": 80})
    assert scaled_object_for(old)["spec"]["scaleTargetRef"] == {"name": "legacy", "kind": "Deployment",
                                                                "apiVersion": "apps/v1"}


@pytest.mark.parametrize("spec, error", [
    ({"scaleTargetRef": {"name": "web", "port": 80}}, "spec.scaleTargetRef.service is required"),
    ({"scaleTargetRef": {"name": "web", "service": "s"}}, "either port or portName"),
    ({"scaleTargetRef": {"name": "web", "service": "s", "port": 80, "portName": "http"}}, "either port or portName"),
    ({"scaleTargetRef": {"service": "s", "port": 80}}, "spec.scaleTargetRef.name is required"),
    ({"hosts": "a.example.com"}, "spec.hosts must be a list of strings"),
    ({"headers": [{"name": "x-tenant", "value": "a"}]}, "spec.headers is not supported"),
    ({"scalingMetric": {"concurrency": {"targetValue": "many"}}}, "concurrency.targetValue must be a number"),
])
def test_errors(spec: dict[str, Any], error: str) -> None:
    with pytest.raises(InvalidObject, match=error):
        scaled_object_for(hso(**spec))
