"""charts/eventscale with the real helm (built from the Go module proxy) and the real control plane.

`helm lint` passes; `helm template` renders what `kubectl kustomize` renders for the same
choices (the default install, and with the 2019 CRD), less Helm's own labels and the Namespace
that `helm install --create-namespace` makes; `helm install` and `helm upgrade` work against
kube-apiserver and change what the values say. The kustomize install other modules made is
removed first, since both installs own the same cluster-wide names.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_adapter import CRDS, LEGACY_CRD, NAMESPACE, WITH_LEGACY_CRD
from controlplane import ControlPlane, wait_for
from helm_build import ensure_helm

from tests.harness.adapter_process import ROOT

pytestmark = pytest.mark.e2e

CHART = ROOT / "charts/eventscale"
RELEASE = "eventscale"
#: what Helm adds to the kustomize install's objects
HELM_LABELS = frozenset({"app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "helm.sh/chart"})
HELM_ANNOTATIONS = frozenset({"helm.sh/resource-policy"})
Key = tuple[str, str, str]


@pytest.fixture(scope="module")
def helm(request: pytest.FixtureRequest) -> Path:
    started = time.monotonic()
    binary: Path = ensure_helm()
    _report(request, f"helm: binary ready in {time.monotonic() - started:.1f}s ({binary})")
    return binary


def _report(request: pytest.FixtureRequest, line: str) -> None:
    plugins = request.config.pluginmanager
    reporter, capture = plugins.getplugin("terminalreporter"), plugins.getplugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)


def run_helm(helm: Path, *args: str, cp: ControlPlane | None = None) -> str:
    env_args = ["--kubeconfig", str(cp.kubeconfig)] if cp is not None else []
    result = subprocess.run([str(helm), *args, *env_args], capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def objects(rendered: str) -> dict[Key, dict[str, Any]]:
    """Rendered objects by (kind, namespace, name), without what only Helm adds."""
    found: dict[Key, dict[str, Any]] = {}
    for document in yaml.safe_load_all(rendered):
        if not document:
            continue
        meta = document["metadata"]
        for field, helm_only in (("labels", HELM_LABELS), ("annotations", HELM_ANNOTATIONS)):
            kept = {k: v for k, v in (meta.get(field) or {}).items() if k not in helm_only}
            meta.pop(field, None)
            if kept:
                meta[field] = kept
        found[(document["kind"], meta.get("namespace", ""), meta["name"])] = document
    return found


def test_lint(helm: Path) -> None:
    everything = ("serviceMonitor.enabled=true,legacyKedaK8sIo.enabled=true,certificates.selfSigned=false,"
                  "certificates.caBundle=Q0E=,metrics.readerSubjects[0].kind=ServiceAccount,"
                  "metrics.readerSubjects[0].name=prometheus,metrics.readerSubjects[0].namespace=mon")
    for values in ([], ["--set", everything]):
        out = run_helm(helm, "lint", "--strict", str(CHART), *values)
        assert "1 chart(s) linted, 0 chart(s) failed" in out


@pytest.mark.parametrize("kustomization, values", [
    (ROOT / "manifests", []),
    (WITH_LEGACY_CRD, ["--set", "legacyKedaK8sIo.enabled=true"]),
])
def test_template_renders_what_kustomize_renders(control_plane: ControlPlane, helm: Path, kustomization: Path,
                                                 values: list[str]) -> None:
    kustomized = objects(control_plane.kubectl("kustomize", str(kustomization)).stdout)
    templated = objects(run_helm(helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *values))
    assert kustomized.pop(("Namespace", "", NAMESPACE))  # helm install --create-namespace makes it
    assert sorted(templated) == sorted(kustomized)
    different = [key for key in kustomized if kustomized[key] != templated[key]]
    assert not different, "\n".join(
        f"{key}:\nkustomize: {json.dumps(kustomized[key], sort_keys=True)}\nhelm:      "
        f"{json.dumps(templated[key], sort_keys=True)}" for key in different)


def test_template_with_provided_certificates_and_a_service_monitor(helm: Path) -> None:
    rendered = objects(run_helm(helm, "template", RELEASE, str(CHART), "--namespace", "ops", "--set",
                                "certificates.selfSigned=false,certificates.secretName=my-tls,certificates.caBundle=Q0E=,"
                                "serviceMonitor.enabled=true,extraArgs.adapter[0]=--metric-max-age=5"))
    pod = rendered[("Deployment", "ops", "eventscale-adapter")]["spec"]["template"]["spec"]
    adapter = pod["containers"][0]
    assert "--self-signed-certs" not in adapter["args"] and adapter["args"][-1] == "--metric-max-age=5"
    assert {"name": "certs", "secret": {"secretName": "my-tls", "items": [
        {"key": "tls.crt", "path": "serving.crt"}, {"key": "tls.key", "path": "serving.key"}]}} in pod["volumes"]
    assert rendered[("APIService", "", "v1beta1.external.metrics.k8s.io")]["spec"]["caBundle"] == "Q0E="
    assert ("Role", "ops", "eventscale-adapter-certs") not in rendered
    endpoint = rendered[("ServiceMonitor", "ops", "eventscale-adapter")]["spec"]["endpoints"][0]
    assert (endpoint["port"], endpoint["scheme"], endpoint["path"]) == ("https", "https", "/metrics")
    assert endpoint["tlsConfig"]["serverName"] == "eventscale-adapter.ops.svc"


def test_template_with_delegates(helm: Path) -> None:
    rendered = objects(run_helm(helm, "template", RELEASE, str(CHART), "--namespace", "ops", "--set",
                                "delegation.delegates[0].url=https://prometheus-adapter.monitoring.svc:443,"
                                "delegation.delegates[0].secretName=to-prometheus-adapter,"
                                "delegation.delegates[1].url=https://datadog.dd.svc:8443,"
                                "delegation.delegates[2].service.name=other,"
                                "delegation.delegates[3].service.name=far,delegation.delegates[3].service.namespace=mon,"
                                "delegation.delegates[3].service.port=6443,delegation.delegates[3].secretName=to-far,"
                                "delegation.timeout=1.5"))
    pod = rendered[("Deployment", "ops", "eventscale-adapter")]["spec"]["template"]["spec"]
    adapter = pod["containers"][0]
    assert [a for a in adapter["args"] if a.startswith("--delegate")] == [
        "--delegate-to=https://prometheus-adapter.monitoring.svc:443,"
        "ca=/delegates/0/ca.crt,cert=/delegates/0/tls.crt,key=/delegates/0/tls.key",
        "--delegate-to=https://datadog.dd.svc:8443", "--delegate-to=service:ops/other:443",
        "--delegate-to=service:mon/far:6443,ca=/delegates/3/ca.crt,cert=/delegates/3/tls.crt,key=/delegates/3/tls.key",
        "--delegate-timeout=1.5"]
    assert {"name": "delegate-0", "mountPath": "/delegates/0", "readOnly": True} in adapter["volumeMounts"]
    assert not any(m["name"] == "delegate-1" for m in adapter["volumeMounts"])
    assert {"name": "delegate-0", "secret": {"secretName": "to-prometheus-adapter", "items": [
        {"key": "ca.crt", "path": "ca.crt"}, {"key": "tls.crt", "path": "tls.crt"},
        {"key": "tls.key", "path": "tls.key"}]}} in pod["volumes"]
    run_helm(helm, "lint", "--strict", str(CHART), "--set", "delegation.delegates[0].url=https://a.b.svc:443,"
                                                            "delegation.delegates[1].service.name=b")


@pytest.fixture(scope="module")
def clean_cluster(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    """No kustomize install: its objects have the names the release must own."""
    control_plane.kubectl("delete", "-k", str(WITH_LEGACY_CRD), "--ignore-not-found", "--wait=true", timeout=180)
    yield control_plane
    # gone, not terminating, when the next module installs into it again
    control_plane.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", timeout=180,
                          check=False)


def test_install_and_upgrade(clean_cluster: ControlPlane, helm: Path, request: pytest.FixtureRequest) -> None:
    cp = clean_cluster
    started = time.monotonic()
    run_helm(helm, "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--create-namespace", cp=cp)
    installed = time.monotonic() - started
    cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{c}" for c in CRDS))
    assert cp.kubectl("get", "crd", LEGACY_CRD, "--ignore-not-found").stdout == ""
    deployment = cp.kubectl_json("get", "deployment", "eventscale-adapter", "-n", NAMESPACE)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert cp.kubectl("auth", "can-i", "watch", "scaledobjects.keda.sh", "-A",
                      f"--as=system:serviceaccount:{NAMESPACE}:eventscale-adapter").stdout.strip() == "yes"
    wait_for(lambda: cp.kubectl_json("get", "pods", "-n", NAMESPACE)["items"], timeout=30,
             what="the ReplicaSet controller creating the adapter's Pods (admission accepted them)")

    started = time.monotonic()
    run_helm(helm, "upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE, "--set", "replicas=3",
             "--set", "legacyKedaK8sIo.enabled=true", "--set", "resources.adapter.limits.memory=1Gi",
             "--set", "extraArgs.adapter[0]=--metric-max-age=5",
             "--set", "image.repository=registry.example/eventscale", "--set", "image.tag=0.2.0", cp=cp)
    upgraded = time.monotonic() - started
    deployment = cp.kubectl_json("get", "deployment", "eventscale-adapter", "-n", NAMESPACE)
    adapter = deployment["spec"]["template"]["spec"]["containers"][0]
    assert deployment["spec"]["replicas"] == 3
    assert adapter["image"] == "registry.example/eventscale:0.2.0"
    assert adapter["resources"]["limits"]["memory"] == "1Gi" and adapter["args"][-1] == "--metric-max-age=5"
    cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{LEGACY_CRD}")
    history = json.loads(run_helm(helm, "history", RELEASE, "--namespace", NAMESPACE, "-o", "json", cp=cp))
    assert [(r["revision"], r["status"]) for r in history] == [(1, "superseded"), (2, "deployed")]

    run_helm(helm, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", cp=cp)
    assert cp.kubectl("get", "deployment", "-n", NAMESPACE, "--ignore-not-found").stdout == ""
    for crd in (*CRDS, LEGACY_CRD):  # kept: deleting a CRD deletes every object of it
        assert cp.kubectl_json("get", "crd", crd)["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    _report(request, f"helm: install {installed:.1f}s, upgrade {upgraded:.1f}s against the control plane")


def readme_overlay(directory: Path, legacy: bool) -> Path:
    """The kustomization README.md tells users to write, in `directory` (paths made to reach manifests/)."""
    readme = (ROOT / "README.md").read_text()
    text = readme.split("cat > my-eventscale/kustomization.yaml <<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0]
    if legacy:
        text = text.replace("# components:", "components:")
    text = text.replace("../manifests", os.path.relpath(ROOT / "manifests", directory))
    (directory / "kustomization.yaml").write_text(text)
    return directory


@pytest.mark.parametrize("legacy", [False, True])
def test_readme_kustomization_and_helm_values_install_the_same(control_plane: ControlPlane, helm: Path,
                                                               tmp_path: Path, legacy: bool) -> None:
    kustomized = objects(control_plane.kubectl("kustomize", str(readme_overlay(tmp_path, legacy))).stdout)
    templated = objects(run_helm(helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
                                 "--set", "image.repository=REGISTRY/eventscale", "--set", "image.tag=0.1.0",
                                 "--set", f"legacyKedaK8sIo.enabled={str(legacy).lower()}"))
    kustomized.pop(("Namespace", "", NAMESPACE))
    pod = kustomized[("Deployment", NAMESPACE, "eventscale-adapter")]["spec"]["template"]["spec"]
    assert {c["image"] for c in pod["containers"]} == {"REGISTRY/eventscale:0.1.0"}
    assert (("CustomResourceDefinition", "", LEGACY_CRD) in kustomized) is legacy
    assert kustomized == templated
