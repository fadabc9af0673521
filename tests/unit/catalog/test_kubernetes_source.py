"""What the Kubernetes source hands the catalog: stripped objects, real changes only, relist diffs."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from adapter.catalog.catalog import Catalog
from adapter.catalog.kubernetes_source import (
    KubernetesSource,
    strip_endpoint_slice,
    strip_pod,
    strip_scaled_object,
    strip_workload,
)
from adapter.keda.names import LEGACY_SCALED_OBJECTS, SCALED_OBJECTS, TRIGGER_AUTHENTICATIONS
from adapter.kube.client import KubeApi, Object
from adapter.kube.credentials import Credentials
from adapter.kube.resources import DEPLOYMENTS, SECRETS
from scalers.registry import REGISTRY


def scaled_object(api_version: str = "keda.sh/v1alpha1", **spec: Any) -> Object:
    target = {"deploymentName": "web"} if api_version.startswith("keda.k8s.io") else {"name": "web"}
    return {"apiVersion": api_version, "kind": "ScaledObject",
            "metadata": {"name": "web", "namespace": "default", "uid": "u1", "generation": 1,
                         "resourceVersion": "7", "managedFields": [{"manager": "kubectl"}],
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}",
                                         "autoscaling.keda.sh/paused": "false"}},
            "spec": {"scaleTargetRef": target, "triggers": [{
                "type": "redis", "metadata": {"address": "127.0.0.1:6379", "listName": "jobs"},
                "authenticationRef": {"name": "creds"}}], **spec},
            "status": {"lastActiveTime": "2026-01-01T00:00:00Z"}}


def secret(password: str) -> Object:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "default"},
            "data": {"password": base64.b64encode(password.encode()).decode()}}


AUTH: Object = {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
                "metadata": {"name": "creds", "namespace": "default"},
                "spec": {"secretTargetRef": [{"parameter": "password", "name": "creds", "key": "password"}]}}

WORKLOAD: Object = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
                    "spec": {"replicas": 2, "template": {"spec": {"containers": [
                        {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}],
                         "resources": {"requests": {"cpu": "1"}}}]}}},
                    "status": {"replicas": 2}}


@pytest.fixture
def source() -> KubernetesSource:
    api = KubeApi(Credentials("http://127.0.0.1:1"))  # never called: no run()
    source = KubernetesSource(api, Catalog(REGISTRY))
    for reflector in source.reflectors:
        source.listed(reflector.resource, [])
    return source


def errors(source: KubernetesSource) -> list[str]:
    resolved = source.catalog.scaled_object("default", "web")
    assert resolved is not None
    return resolved.trigger_errors


def test_only_what_the_catalog_reads_is_kept() -> None:
    so = strip_scaled_object(scaled_object())
    assert so["metadata"] == {"name": "web", "namespace": "default", "uid": "u1", "generation": 1,
                              "annotations": {"autoscaling.keda.sh/paused": "false"}}
    assert "status" not in so
    workload = strip_workload(WORKLOAD)
    assert workload["spec"] == {"template": {"spec": {"containers": [{"name": "app", "env": [{"name": "A",
                                                                                             "value": "1"}]}]}}}


def test_nothing_reaches_the_catalog_before_every_resource_is_listed(source: KubernetesSource) -> None:
    source.listed(SCALED_OBJECTS, [strip_scaled_object(scaled_object())])
    source.changed(SECRETS, secret("s3cret"), deleted=False)
    assert source.catalog.generation == 0 and source.applied == 0
    source.sync()
    assert source.catalog.scaled_object("default", "web") is not None


def test_events_and_relists_change_the_resolution(source: KubernetesSource) -> None:
    source.listed(SCALED_OBJECTS, [strip_scaled_object(scaled_object())])
    source.sync()
    assert any("TriggerAuthentication default/creds not found" in e for e in errors(source))
    source.changed(TRIGGER_AUTHENTICATIONS, AUTH, deleted=False)
    assert any("Secret default/creds not found" in e for e in errors(source))
    source.changed(SECRETS, secret("s3cret"), deleted=False)
    assert errors(source) == []
    source.listed(SECRETS, [])  # a relist without the Secret: it was deleted while we were away
    assert any("Secret default/creds not found" in e for e in errors(source))


def test_updates_that_change_nothing_we_keep_are_not_applied(source: KubernetesSource) -> None:
    source.sync()
    source.changed(DEPLOYMENTS, strip_workload(WORKLOAD), deleted=False)
    applied = source.applied
    scaled = copy.deepcopy(WORKLOAD)
    scaled["spec"]["replicas"], scaled["status"]["replicas"] = 5, 5
    source.changed(DEPLOYMENTS, strip_workload(scaled), deleted=False)
    source.listed(DEPLOYMENTS, [strip_workload(scaled)])  # a resync that finds nothing new
    assert source.applied == applied


def test_a_scaled_object_of_the_other_group_takes_the_name_back(source: KubernetesSource) -> None:
    source.sync()
    source.changed(SCALED_OBJECTS, strip_scaled_object(scaled_object()), deleted=False)
    legacy = strip_scaled_object(scaled_object("keda.k8s.io/v1alpha1"))
    source.changed(LEGACY_SCALED_OBJECTS, legacy, deleted=False)
    resolved = source.catalog.scaled_object("default", "web")
    assert resolved is not None and resolved.so.legacy
    source.changed(LEGACY_SCALED_OBJECTS, legacy, deleted=True)
    resolved = source.catalog.scaled_object("default", "web")
    assert resolved is not None and not resolved.so.legacy


def test_only_the_scaled_objects_that_read_an_object_are_resolved_again(source: KubernetesSource) -> None:
    source.listed(SCALED_OBJECTS, [strip_scaled_object(scaled_object())])
    source.listed(TRIGGER_AUTHENTICATIONS, [AUTH])
    source.sync()
    before = source.catalog.scaled_object("default", "web")
    unrelated = {**secret("x"), "metadata": {"name": "unrelated", "namespace": "default"}}
    source.changed(SECRETS, unrelated, deleted=False)
    assert source.catalog.scaled_object("default", "web") is before  # not resolved again
    source.changed(SECRETS, secret("s3cret"), deleted=False)  # the one it missed before
    assert source.catalog.scaled_object("default", "web") is not before and errors(source) == []


def test_pods_and_endpoint_slices_keep_only_what_the_scalers_read() -> None:
    pod: dict[str, Any]
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "namespace": "n", "labels": {"app": "a"}, "resourceVersion": "9",
                        "managedFields": [{}], "ownerReferences": [{}]},
           "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "i"}]},
           "status": {"phase": "Running", "conditions": [{"type": "Ready"}], "podIP": "10.0.0.1"}}
    assert strip_pod(pod) == {"apiVersion": "v1", "kind": "Pod",
                              "metadata": {"name": "p", "namespace": "n", "labels": {"app": "a"}},
                              "spec": {"nodeName": "node-1"}, "status": {"phase": "Running"}}
    restarted = copy.deepcopy(pod)
    restarted["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    assert strip_pod(restarted) == strip_pod(pod)  # a condition flapping is no event for the catalog
    endpoint_slice = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                      "metadata": {"name": "s", "namespace": "n", "labels": {"kubernetes.io/service-name": "svc"}},
                      "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": True, "serving": True},
                                     "targetRef": {"kind": "Pod"}}],
                      "ports": [{"port": 8080, "name": "http", "protocol": "TCP"}]}
    assert strip_endpoint_slice(endpoint_slice)["endpoints"] == [{"addresses": ["10.0.0.1"],
                                                                  "conditions": {"ready": True}}]
    assert strip_endpoint_slice(endpoint_slice)["ports"] == [{"port": 8080}]
