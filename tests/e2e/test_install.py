"""`eventscale install`, `dev-cluster` and `uninstall` against the real control plane, as a user runs them.

The control plane has no kubelet, so the installed Deployment's Pods never run: install must say
that the APIService is not Available, with the aggregator's reason and the Deployment's state.
`dev-cluster` then points the same APIService at an adapter run on this machine, which makes it
Available and serves a metric through `kubectl get --raw`, which `metrics --cluster` lists with
that very command. Uninstall takes the install away and
leaves users' ScaledObjects (and their CRDs) unless `--delete-crds`.

The tests run in file order on one install. The kustomize install other modules made is removed
first and the namespace is gone (not terminating) at the end, as the next module expects.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cluster_adapter import (
    APISERVICE,
    CRDS,
    NAMESPACE,
    WITH_LEGACY_CRD,
    apply,
    cron_in_window,
    metric_value,
    scaled_object,
)
from controlplane import ControlPlane, wait_for

from adapter.install.bundle import bundled
from adapter.keda.names import FINALIZER
from tests.harness.adapter_process import ROOT, AdapterProcess, run_cli

pytestmark = pytest.mark.e2e

WAIT = "8"  # seconds install waits for the APIService here, where it cannot become Available
IMAGE = "registry.example/eventscale:0.1.0"


def eventscale(cp: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    """The `eventscale` console script of this environment, with the admin kubeconfig."""
    script = Path(sys.executable).with_name("eventscale")
    return subprocess.run([str(script), *args, "--kubeconfig", str(cp.kubeconfig)], cwd=ROOT, capture_output=True,
                          text=True, timeout=240, check=False)


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    control_plane.kubectl("delete", "-k", str(WITH_LEGACY_CRD), "--ignore-not-found", "--wait=true", timeout=180)
    yield control_plane
    # an APIService that is not Available stops the namespace controller: it goes first
    control_plane.kubectl("delete", "apiservice", APISERVICE, "--ignore-not-found", check=False)
    control_plane.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", timeout=180,
                          check=False)


def test_the_bundle_is_what_kustomize_renders(control_plane: ControlPlane) -> None:
    rendered = [doc for doc in yaml.safe_load_all(control_plane.kubectl("kustomize", str(ROOT / "manifests")).stdout)
                if doc]
    assert [m.body for m in bundled()] == rendered, "adapter/install/bundle.yaml is stale: run `make bundle`"


def test_install_creates_every_object_and_says_why_the_apiservice_is_not_available(cluster: ControlPlane) -> None:
    started = time.monotonic()
    result = eventscale(cluster, "install", "--image", IMAGE, "--wait-timeout", WAIT)
    took = time.monotonic() - started
    manifests = bundled()
    assert result.returncode == 1, result.stdout + result.stderr
    for manifest in manifests:
        assert f"{manifest} created\n" in result.stdout
        kind = manifest.resource.plural + (f".{manifest.resource.group}" if manifest.resource.group else "")
        scope = ("-n", manifest.namespace) if manifest.namespace else ()
        assert cluster.kubectl_json("get", kind, manifest.name, *scope)["metadata"]["name"] == manifest.name
    assert f"{len(manifests)} created" in result.stdout
    pod = cluster.kubectl_json("get", "deployment", "eventscale-adapter", "-n", NAMESPACE)["spec"]["template"]["spec"]
    assert {c["image"] for c in pod["containers"]} == {IMAGE}
    condition = next(c for c in cluster.kubectl_json("get", "apiservice", APISERVICE)["status"]["conditions"]
                     if c["type"] == "Available")
    assert condition["status"] == "False"
    assert f"is not Available after {WAIT}s:" in result.stdout
    assert f"Available=False ({condition['reason']}: {condition['message']})" in result.stdout
    assert f"deployment.apps/eventscale-adapter -n {NAMESPACE}: 0 of 2 replicas ready" in result.stdout
    assert "not scheduled (no scheduler has placed it on a node)" in result.stdout
    assert took < float(WAIT) + 30


def test_a_second_install_changes_nothing(cluster: ControlPlane) -> None:
    result = eventscale(cluster, "install", "--image", IMAGE, "--wait-timeout", "0")
    assert result.returncode == 0, result.stderr
    for manifest in bundled():
        assert f"{manifest} unchanged\n" in result.stdout
    assert result.stdout.endswith(f"\n{len(bundled())} unchanged\n"), result.stdout


def test_dev_cluster_makes_the_apiservice_available_for_a_local_adapter(cluster: ControlPlane, tmp_path: Path,
                                                                        namespace: str) -> None:
    adapter = AdapterProcess(None, tmp_path / "certs", tmp_path / "adapter.log",
                             extra_args=("--kubeconfig", str(cluster.kubeconfig), "--internal-port", "0",
                                         "--metric-max-age", "0.5"))
    assert run_cli("certs", "--cert-dir", str(adapter.cert_dir)).returncode == 0
    result = eventscale(cluster, "dev-cluster", "--advertise-address", f"127.0.0.1:{adapter.port}",
                        "--cert-dir", str(adapter.cert_dir), "--wait-timeout", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"service/eventscale-adapter -n {NAMESPACE} of type ClusterIP deleted, to be replaced" in result.stdout
    assert f"--secure-port {adapter.port}" in result.stdout
    service = cluster.kubectl_json("get", "service", "eventscale-adapter", "-n", NAMESPACE)["spec"]
    assert (service["type"], service["externalName"]) == ("ExternalName", "localhost")
    adapter.start()
    try:
        waited = eventscale(cluster, "dev-cluster", "--advertise-address", f"127.0.0.1:{adapter.port}",
                            "--cert-dir", str(adapter.cert_dir), "--wait-timeout", "60")
        assert waited.returncode == 0, waited.stdout + waited.stderr
        assert f"apiservice/{APISERVICE} Available" in waited.stdout
        discovery = json.loads(cluster.kubectl("get", "--raw", "/apis/external.metrics.k8s.io/v1beta1").stdout)
        assert discovery["groupVersion"] == "external.metrics.k8s.io/v1beta1"
        metadata, name = cron_in_window(4)
        apply(cluster, namespace, scaled_object("office", {"type": "cron", "metadata": metadata}))
        wait_for(lambda: metric_value(cluster, namespace, name, "office") == "4", timeout=30,
                 what="the cron metric of the local adapter through kubectl get --raw")
        listed = eventscale(cluster, "metrics", "--cluster").stdout.splitlines()
        row = next(i for i, line in enumerate(listed) if line.startswith(f"{namespace}/office "))
        assert listed[row].split() == [f"{namespace}/office", "0", "cron", name, "4"]
        command = shlex.split(listed[row + 1])
        assert command[:4] == ["kubectl", "--kubeconfig", str(cluster.kubeconfig), "get"]
        assert json.loads(cluster.kubectl(*command[3:]).stdout)["items"][0]["value"] == "4"
    finally:
        adapter.stop()


def test_install_after_dev_cluster_puts_the_in_cluster_service_back(cluster: ControlPlane) -> None:
    result = eventscale(cluster, "install", "--image", IMAGE, "--wait-timeout", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"service/eventscale-adapter -n {NAMESPACE} configured" in result.stdout
    spec = cluster.kubectl_json("get", "service", "eventscale-adapter", "-n", NAMESPACE)["spec"]
    assert (spec["type"], spec["selector"]) == ("ClusterIP", {"app.kubernetes.io/name": "eventscale-adapter"})
    assert "externalName" not in spec
    apiservice = cluster.kubectl_json("get", "apiservice", APISERVICE)["spec"]
    assert apiservice["service"]["port"] == 443


def test_uninstall_keeps_users_objects_and_their_crds(cluster: ControlPlane, namespace: str) -> None:
    mine = scaled_object("mine", {"type": "cron", "metadata": {
        "timezone": "UTC", "start": "0 6 * * *", "end": "0 20 * * *", "desiredReplicas": "2"}})
    mine["metadata"]["finalizers"] = [FINALIZER]  # as the controller leaves it
    apply(cluster, namespace, mine)
    apply(cluster, NAMESPACE, scaled_object("beside-the-adapter", {"type": "cron", "metadata": {
        "timezone": "UTC", "start": "0 6 * * *", "end": "0 20 * * *", "desiredReplicas": "2"}}))

    result = eventscale(cluster, "uninstall")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"scaledobject.keda.sh/mine -n {namespace}: finalizer {FINALIZER} removed" in result.stdout
    assert f"namespace/{NAMESPACE} kept: it holds 1 scaledobjects" in result.stdout
    for crd in CRDS:
        assert f"customresourcedefinition.apiextensions.k8s.io/{crd} kept" in result.stdout
        assert cluster.kubectl_json("get", "crd", crd)["metadata"]["name"] == crd
    kept = cluster.kubectl_json("get", "scaledobject", "mine", "-n", namespace)
    assert FINALIZER not in (kept["metadata"].get("finalizers") or [])
    assert cluster.kubectl_json("get", "scaledobject", "beside-the-adapter", "-n", NAMESPACE)
    for gone in (("apiservice", APISERVICE), ("clusterrole", "eventscale-adapter"),
                 ("deployment", "eventscale-adapter", "-n", NAMESPACE),
                 ("serviceaccount", "eventscale-adapter", "-n", NAMESPACE)):
        assert cluster.kubectl("get", *gone, "--ignore-not-found", "-o", "name").stdout == "", gone

    again = eventscale(cluster, "uninstall", "--delete-crds")
    assert again.returncode == 0, again.stdout + again.stderr
    for crd in CRDS:
        assert f"customresourcedefinition.apiextensions.k8s.io/{crd} deleted" in again.stdout
    cluster.kubectl("wait", "--for=delete", "--timeout=120s", *(f"crd/{c}" for c in CRDS), check=False, timeout=150)
    wait_for(lambda: cluster.kubectl("get", "crd", *CRDS, "--ignore-not-found", "-o", "name").stdout == "",
             timeout=60, what="the CRDs deleted")
