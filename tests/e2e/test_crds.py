"""What kubectl makes of the shipped CRDs, with and without the opt-in 2019 CRD, and `convert`.

A KEDA user types `kubectl get scaledobject`, `scaledobjects`, `so`, `describe scaledobject X`
and `explain scaledobject.spec`: each must address keda.sh, whether or not the 2019 keda.k8s.io
CRD (which has a `scaledobjects` resource too) is installed beside it, and explain must print
descriptions. Every kubectl call here starts with an empty discovery cache, as a first command
on a new machine does. `convert` output is checked by kube-apiserver (server-side dry run) and
by the adapter: the converted object serves the metric the 2019 one served, with the same value.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from cluster_adapter import (
    CRDS,
    LEGACY_CRD,
    apply,
    cluster_adapter,
    install,
    metric_path,
    raw,
    register,
    wait_available,
)
from controlplane import ControlPlane, wait_for

from tests.harness.adapter_process import ROOT, AdapterProcess
from tests.harness.redis_servers import RedisServer

pytestmark = pytest.mark.e2e

LEGACY_COMPONENT = ROOT / "manifests/components/legacy-keda-k8s-io"
NAMES = ("scaledobject", "scaledobjects", "so")


def kubectl(cp: ControlPlane, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """kubectl with a discovery cache of its own, so what it resolves is what the server says now."""
    with tempfile.TemporaryDirectory() as cache:
        result: subprocess.CompletedProcess[str] = cp.kubectl("--cache-dir", cache, *args, check=check)
        return result


@pytest.fixture(scope="module")
def default_install(control_plane: ControlPlane) -> ControlPlane:
    """`kubectl apply -k manifests/` on a cluster without the 2019 CRD (removed if an earlier module left it)."""
    control_plane.kubectl("delete", "-k", str(LEGACY_COMPONENT), "--ignore-not-found", "--wait=true", timeout=120)
    control_plane.kubectl("apply", "-k", str(ROOT / "manifests"), timeout=120)
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{c}" for c in CRDS))
    return control_plane


@pytest.fixture
def objects(control_plane: ControlPlane, namespace: str) -> str:
    """A keda.sh ScaledObject `current` in a fresh namespace."""
    apply(control_plane, namespace, {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "current"},
        "spec": {"scaleTargetRef": {"name": "web"}, "triggers": [{"type": "cron", "metadata": {
            "timezone": "UTC", "start": "0 8 * * *", "end": "0 18 * * *", "desiredReplicas": "2"}}]}})
    return namespace


def assert_names_address_keda_sh(cp: ControlPlane, namespace: str) -> None:
    for name in NAMES:
        got = kubectl(cp, "get", name, "current", "-n", namespace, "-o", "jsonpath={.apiVersion}").stdout
        assert got == "keda.sh/v1alpha1", name
        listed = json.loads(kubectl(cp, "get", name, "-n", namespace, "-o", "json").stdout)["items"]
        assert [item["apiVersion"] for item in listed] == ["keda.sh/v1alpha1"], name
    described = kubectl(cp, "describe", "scaledobject", "current", "-n", namespace).stdout
    assert "API Version:  keda.sh/v1alpha1" in described
    explained = kubectl(cp, "explain", "scaledobject.spec").stdout
    assert "GROUP:      keda.sh" in explained and "What to scale, between which bounds" in explained
    assert "<no description>" not in explained


def test_names_address_keda_sh(default_install: ControlPlane, objects: str) -> None:
    assert_names_address_keda_sh(default_install, objects)


def test_explain_describes_every_field(default_install: ControlPlane) -> None:
    for path in ("scaledobject.spec.triggers.authenticationRef", "scaledobject.status.health",
                 "scaledobject.spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.policies",
                 "triggerauthentication.spec.secretTargetRef", "clustertriggerauthentication.spec.podIdentity"):
        out = kubectl(default_install, "explain", path).stdout
        assert "<no description>" not in out and "DESCRIPTION:" in out, path
    published = json.loads(raw(default_install, "/openapi/v3/apis/keda.sh/v1alpha1")[1])["components"]["schemas"]
    for kind in ("ScaledObject", "TriggerAuthentication", "ClusterTriggerAuthentication"):
        missing = list(_undescribed(published[f"sh.keda.v1alpha1.{kind}"], kind))
        assert not missing, f"kubectl explain would print <no description> at {missing}"


def _undescribed(schema: dict[str, Any], path: str) -> Iterator[str]:
    """Fields without a description in kube-apiserver's published OpenAPI v3 (what explain reads).

    The root's `metadata` is a reference to ObjectMeta, described where kube-apiserver defines it.
    """
    if not schema.get("description"):
        yield path
    for name, child in (schema.get("properties") or {}).items():
        if not (name == "metadata" and "." not in path):
            yield from _undescribed(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _undescribed(schema[key], f"{path}[{key}]")


@pytest.fixture(scope="module")
def with_legacy(default_install: ControlPlane) -> ControlPlane:
    install(default_install)
    return default_install


def test_legacy_component_installs_beside_without_shadowing(with_legacy: ControlPlane, objects: str) -> None:
    cp, namespace = with_legacy, objects
    apply(cp, namespace, {"apiVersion": "keda.k8s.io/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "old"},
                          "spec": {"scaleTargetRef": {"deploymentName": "worker"},
                                   "triggers": [{"type": "redis", "metadata": {"listName": "jobs"}}]}})
    for name in ("scaledobject", "so", "scaledobjects.keda.sh"):
        got = kubectl(cp, "get", name, "current", "-n", namespace, "-o", "jsonpath={.apiVersion}").stdout
        assert got == "keda.sh/v1alpha1", name
        missing = kubectl(cp, "get", name, "old", "-n", namespace, check=False)
        assert missing.returncode != 0 and 'scaledobjects.keda.sh "old" not found' in missing.stderr, name
    described = kubectl(cp, "describe", "scaledobject", "current", "-n", namespace).stdout
    assert "API Version:  keda.sh/v1alpha1" in described
    assert "GROUP:      keda.sh" in kubectl(cp, "explain", "scaledobject.spec").stdout
    for name in (LEGACY_CRD, "sco", "legacyscaledobject"):
        got = kubectl(cp, "get", name, "old", "-n", namespace, "-o", "jsonpath={.apiVersion}").stdout
        assert got == "keda.k8s.io/v1alpha1", name
    explained = kubectl(cp, "explain", "sco.spec.scaleTargetRef").stdout
    assert "GROUP:      keda.k8s.io" in explained and "<no description>" not in explained
    crd = cp.kubectl_json("get", "crd", LEGACY_CRD)
    assert {c["type"]: c["status"] for c in crd["status"]["conditions"]}["NamesAccepted"] == "True"


def test_the_plural_is_the_one_name_both_groups_have(with_legacy: ControlPlane, objects: str) -> None:
    """Documented in docs/legacy-format.md: kubectl takes `scaledobjects` for the alphabetically first group."""
    got = kubectl(with_legacy, "explain", "scaledobjects").stdout
    assert "GROUP:      keda.k8s.io" in got


@pytest.fixture(scope="module")
def adapter(with_legacy: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdapterProcess]:
    process = cluster_adapter(with_legacy, tmp_path_factory.mktemp("crds-adapter"))
    process.start(timeout=60)
    try:
        register(with_legacy, process.port, (process.cert_dir / "ca.crt").read_bytes())
        wait_available(with_legacy)
        yield process
    finally:
        process.stop()
        with_legacy.kubectl("delete", "apiservice", "v1beta1.external.metrics.k8s.io", "--ignore-not-found",
                            check=False)


def convert(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "adapter", "convert", "-"], input=text, capture_output=True,
                          text=True, cwd=ROOT, timeout=60, check=False)


def test_convert_output_is_accepted_and_serves_the_same_metric(
        with_legacy: ControlPlane, adapter: AdapterProcess, redis_server: RedisServer, namespace: str) -> None:
    cp, key = with_legacy, f"{namespace}-jobs"
    worker = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "jobs"},
              "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "jobs"}}, "template": {
                  "metadata": {"labels": {"app": "jobs"}}, "spec": {"containers": [
                      {"name": "sidecar", "image": "registry.invalid/sidecar:1"},
                      {"name": "worker", "image": "registry.invalid/worker:1",
                       "env": [{"name": "REDIS_ADDRESS", "value": redis_server.address}]}]}}}}
    old = {"apiVersion": "keda.k8s.io/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "jobs"},
           "spec": {"scaleTargetRef": {"deploymentName": "jobs", "containerName": "worker"}, "pollingInterval": 1,
                    "triggers": [{"type": "redis", "metadata": {"address": "REDIS_ADDRESS", "listName": key,
                                                                "listLength": "5"}}]}}
    apply(cp, namespace, worker, old)
    redis_server.admin().rpush(key, *range(7))
    metric = f"s0-redis-{key}"
    legacy_path = (f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}"
                   f"?labelSelector={quote('deploymentName=jobs', safe='')}")
    wait_for(lambda: _value(cp, legacy_path) == "7", timeout=30, what="the 2019 object's metric")

    stored = cp.kubectl("get", f"{LEGACY_CRD}/jobs", "-n", namespace, "-o", "yaml").stdout
    converted = convert(stored)
    assert converted.returncode == 0, converted.stderr
    assert converted.stderr == ""  # named like its Deployment: the HPA name does not change
    documents = list(yaml.safe_load_all(converted.stdout))
    assert [d["apiVersion"] for d in documents] == ["keda.sh/v1alpha1"]
    assert documents[0]["spec"]["triggers"][0]["metadata"]["addressFromEnv"] == "REDIS_ADDRESS"
    dry_run = cp.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=converted.stdout)
    assert "scaledobject.keda.sh/jobs created (server dry run)" in dry_run.stdout

    cp.kubectl("apply", "-n", namespace, "-f", "-", input=converted.stdout)
    cp.kubectl("delete", f"{LEGACY_CRD}/jobs", "-n", namespace)
    wait_for(lambda: _value(cp, metric_path(namespace, metric, "jobs")) == "7", timeout=30,
             what="the converted object's metric")
    redis_server.admin().rpush(key, 7, 8)
    wait_for(lambda: _value(cp, metric_path(namespace, metric, "jobs")) == "9", timeout=30,
             what="the converted object's metric following the list")
    redis_server.admin().delete(key)


def _value(cp: ControlPlane, path: str) -> str | None:
    ok, out = raw(cp, path)
    return json.loads(out)["items"][0]["value"] if ok else None
