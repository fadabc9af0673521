"""The control plane itself works: API, official client, controllers, HPA, aggregation config."""

from __future__ import annotations

import json
from typing import Any

import pytest
from controlplane import ControlPlane, wait_for
from kubernetes import client

pytestmark = pytest.mark.e2e


def deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
            },
        },
    }


def test_kubectl_gets_namespaces(control_plane: ControlPlane) -> None:
    names = control_plane.kubectl("get", "ns", "-o", "name").stdout.split()
    assert {"namespace/default", "namespace/kube-system"} <= set(names)
    version = control_plane.kubectl_json("version")
    assert version["serverVersion"]["gitVersion"].startswith("v1.")


def test_readyz_and_version(control_plane: ControlPlane) -> None:
    status, body = control_plane.get("/readyz")
    assert (status, body) == (200, b"ok")
    status, body = control_plane.get("/version")
    assert status == 200 and json.loads(body)["major"] == "1"


def test_official_python_client_lists_namespaces(control_plane: ControlPlane) -> None:
    names = set()
    with control_plane.api_client() as api:
        for namespace in client.CoreV1Api(api).list_namespace().items:
            assert namespace.metadata is not None
            names.add(namespace.metadata.name)
    assert {"default", "kube-system", "kube-public"} <= names


def test_deployment_gets_replicaset_and_pods(control_plane: ControlPlane, namespace: str) -> None:
    control_plane.kubectl("apply", "-n", namespace, "-f", "-",
                          input=json.dumps(deployment("web", 2)))

    def replicaset() -> dict[str, Any] | None:
        items = control_plane.kubectl_json("get", "rs", "-n", namespace, "-l", "app=web")["items"]
        return items[0] if items and items[0]["spec"]["replicas"] == 2 else None

    rs = wait_for(replicaset, what="the Deployment's ReplicaSet")
    assert rs["metadata"]["ownerReferences"][0]["kind"] == "Deployment"

    def pods() -> list[Any] | None:
        items = control_plane.kubectl_json("get", "pods", "-n", namespace, "-l", "app=web")["items"]
        return items if len(items) == 2 else None

    # no scheduler or kubelet: the ReplicaSet controller creates the Pods, which stay Pending
    assert all(pod["status"]["phase"] == "Pending" for pod in wait_for(pods, what="2 Pods"))


def test_hpa_controller_acts_on_external_metric(control_plane: ControlPlane, namespace: str) -> None:
    control_plane.kubectl("apply", "-n", namespace, "-f", "-",
                          input=json.dumps(deployment("worker", 1)))
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "worker"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"},
            "minReplicas": 1,
            "maxReplicas": 5,
            "metrics": [{
                "type": "External",
                "external": {
                    "metric": {"name": "s0-redis-mylist",
                               "selector": {"matchLabels": {"scaledobject.keda.sh/name": "worker"}}},
                    "target": {"type": "AverageValue", "averageValue": "5"},
                },
            }],
        },
    }
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(hpa))

    def conditions() -> dict[str, Any] | None:
        got = control_plane.kubectl_json("get", "hpa", "worker", "-n", namespace)
        found = {c["type"]: c for c in got.get("status", {}).get("conditions", [])}
        return found if "ScalingActive" in found else None

    found = wait_for(conditions, what="HPA conditions")
    assert found["AbleToScale"]["status"] == "True"
    # no adapter serves external.metrics.k8s.io: the HPA controller tried and said so
    assert found["ScalingActive"]["status"] == "False"
    assert found["ScalingActive"]["reason"] == "FailedGetExternalMetric"
    # the HPA controller runs as its own service account (--use-service-account-credentials)
    control_plane.kubectl("get", "sa", "horizontal-pod-autoscaler", "-n", "kube-system")


def test_aggregation_layer_configuration_is_published(control_plane: ControlPlane) -> None:
    cm = control_plane.kubectl_json(
        "get", "configmap", "extension-apiserver-authentication", "-n", "kube-system")["data"]
    assert cm["requestheader-client-ca-file"].strip() == control_plane.front_proxy_ca_pem.decode().strip()
    assert cm["client-ca-file"].strip() == control_plane.ca_pem.decode().strip()
    assert json.loads(cm["requestheader-allowed-names"]) == ["front-proxy-client"]
    assert json.loads(cm["requestheader-username-headers"]) == ["X-Remote-User"]
    assert json.loads(cm["requestheader-group-headers"]) == ["X-Remote-Group"]
    assert json.loads(cm["requestheader-extra-headers-prefix"]) == ["X-Remote-Extra-"]
    assert json.loads(cm["requestheader-uid-headers"]) == ["X-Remote-Uid"]
