"""Cluster mode end to end: the shipped manifests, the real aggregator, the real HPA controller.

`kubectl apply -k manifests/` installs everything; the adapter runs locally as the shipped
ServiceAccount and is reached by kube-apiserver through an ExternalName Service. Requests go
through kube-apiserver as users and the HPA make them, and straight to the adapter to check
what it trusts.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster_adapter import (
    ADAPTER_USER,
    APISERVICE,
    CRDS,
    E2E_SERVICE,
    LEGACY_CRD,
    NAMESPACE,
    WITH_LEGACY_CRD,
    apply,
    available,
    cluster_adapter,
    cron_in_window,
    deployment,
    direct_client,
    install,
    metric_path,
    metric_value,
    raw,
    redis_auth,
    register,
    scaled_object,
    token_kubeconfig,
    wait_available,
)
from controlplane import ControlPlane, wait_for

from adapter.certs import KeyPair, issue, new_ca
from adapter.kube.client import KubeApi, Object
from tests.harness.adapter_process import ROOT, AdapterProcess
from tests.harness.ports import free_port
from tests.harness.redis_servers import ACL_PASSWORD, ACL_USER, RedisServer

pytestmark = pytest.mark.e2e

HPA_USER = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"


@dataclass
class Deployed:
    cp: ControlPlane
    adapter: AdapterProcess
    available_after: float  # seconds from starting the adapter process to APIService Available
    apiserver_log_offset: int  # kube-apiserver log size once our APIService was in place


@pytest.fixture(scope="module")
def installed(control_plane: ControlPlane) -> ControlPlane:
    install(control_plane)
    return control_plane


@pytest.fixture(scope="module")
def deployed(installed: ControlPlane, tmp_path_factory: pytest.TempPathFactory,
             request: pytest.FixtureRequest) -> Iterator[Deployed]:
    cp = installed
    adapter = cluster_adapter(cp, tmp_path_factory.mktemp("cluster-adapter"))
    started = time.monotonic()
    adapter.start()
    register(cp, adapter.port, (adapter.cert_dir / "ca.crt").read_bytes())
    wait_available(cp)
    deployed = Deployed(cp, adapter, time.monotonic() - started,
                        cp.logs["kube-apiserver"].stat().st_size)
    try:
        yield deployed
    finally:
        adapter.stop()
        report(request, f"cluster mode: adapter start to APIService Available {deployed.available_after:.2f}s")


def report(request: pytest.FixtureRequest, line: str) -> None:
    """A measured figure, shown in the terminal even when output is captured."""
    plugins = request.config.pluginmanager
    reporter, capture = plugins.getplugin("terminalreporter"), plugins.getplugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)


@pytest.fixture
def cron(deployed: Deployed, namespace: str) -> tuple[str, str]:
    """A cron ScaledObject inside its window (desiredReplicas 3): (ScaledObject, metric name)."""
    metadata, name = cron_in_window(3)
    apply(deployed.cp, namespace, scaled_object("office", {"type": "cron", "metadata": metadata}))
    wait_for(lambda: metric_value(deployed.cp, namespace, name, "office") == "3", timeout=30,
             what="the cron metric through kube-apiserver")
    return "office", name


# -- the manifests ---------------------------------------------------------------------------

def test_manifests_install_cleanly_and_are_idempotent(installed: ControlPlane) -> None:
    again = installed.kubectl("apply", "-k", str(WITH_LEGACY_CRD)).stdout.splitlines()
    changed = [line for line in again if not line.endswith(("unchanged", "configured"))]
    assert not changed, changed
    for name in (*CRDS, LEGACY_CRD):
        crd = installed.kubectl_json("get", "crd", name)
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions["Established"] == "True" and conditions["NamesAccepted"] == "True"
        assert conditions.get("NonStructuralSchema") is None, name


def test_examples_are_valid_keda_objects(installed: ControlPlane) -> None:
    installed.kubectl("apply", "--dry-run=server", "-f", str(ROOT / "manifests/examples/local"))
    example = str(ROOT / "manifests/examples/cluster")
    installed.kubectl("apply", "-k", example)
    try:
        columns = installed.kubectl("get", "so", "jobs-worker", "-n", "default").stdout.split("\n")[0].split()
        assert columns[:4] == ["NAME", "SCALETARGETKIND", "SCALETARGETNAME", "MIN"]
        assert {"READY", "ACTIVE", "TRIGGERS", "AUTHENTICATIONS"} <= set(columns)
        row = installed.kubectl("get", "ta", "redis-auth", "-n", "default", "--no-headers").stdout.split()
        assert row[:2] == ["redis-auth", "redis-auth"]  # NAME, SECRET (no pod identity)
    finally:
        installed.kubectl("delete", "-k", example, "--wait=false")


def test_adapter_pod_satisfies_the_restricted_pod_security_standard(installed: ControlPlane) -> None:
    """No kubelet here, but admission runs: the ReplicaSet controller could create the Pod."""
    def pod() -> dict[str, Any] | None:
        items = installed.kubectl_json("get", "pods", "-n", NAMESPACE)["items"]
        return items[0] if items else None

    spec = wait_for(pod, timeout=30, what="the adapter Pod")["spec"]
    assert [c["name"] for c in spec["containers"]] == ["adapter", "controller"]
    events = installed.kubectl("get", "events", "-n", NAMESPACE).stdout
    assert "violates PodSecurity" not in events


@pytest.mark.parametrize("verb, resource, allowed", [
    ("watch", "scaledobjects.keda.sh", True), ("list", "scaledobjects.keda.k8s.io", True),
    ("watch", "secrets", True), ("list", "configmaps", True), ("watch", "deployments.apps", True),
    ("list", "statefulsets.apps", True), ("list", "clustertriggerauthentications.keda.sh", True),
    ("create", "tokenreviews.authentication.k8s.io", True),
    ("create", "subjectaccessreviews.authorization.k8s.io", True),
    ("create", "horizontalpodautoscalers.autoscaling", True), ("patch", "deployments.apps/scale", True),
    ("update", "scaledobjects.keda.sh/status", True),
    ("create", "secrets", False), ("delete", "configmaps", False), ("update", "deployments.apps", False),
    ("watch", "pods", True), ("list", "endpointslices.discovery.k8s.io", True),
    ("update", "scaledobjects.keda.sh", False), ("delete", "pods", False), ("list", "nodes", False),
])
def test_service_account_rights(installed: ControlPlane, verb: str, resource: str, allowed: bool) -> None:
    resource, _, subresource = resource.partition("/")
    extra = [f"--subresource={subresource}"] if subresource else []
    result = installed.kubectl("auth", "can-i", verb, resource, *extra, "-A", f"--as={ADAPTER_USER}", check=False)
    assert result.stdout.strip() == ("yes" if allowed else "no"), result.stderr


# -- through kube-apiserver -------------------------------------------------------------------

def test_apiservice_is_available(deployed: Deployed) -> None:
    condition = available(deployed.cp)
    assert condition is not None and condition["reason"] == "Passed"
    assert deployed.available_after < 30


def test_api_resources_lists_externalmetrics(deployed: Deployed) -> None:
    out = deployed.cp.kubectl("api-resources", "--api-group=external.metrics.k8s.io").stdout
    assert "externalmetrics" in out and "ExternalMetricValueList" in out


def test_discovery_through_apiserver(deployed: Deployed) -> None:
    ok, out = raw(deployed.cp, "/apis/external.metrics.k8s.io/v1beta1")
    assert ok, out
    document = json.loads(out)
    assert document["kind"] == "APIResourceList" and document["resources"][0]["name"] == "externalmetrics"
    groups = json.loads(raw(deployed.cp, "/apis")[1])["groups"]
    assert "external.metrics.k8s.io" in {g["name"] for g in groups}


def test_cron_metric_through_apiserver(deployed: Deployed, namespace: str, cron: tuple[str, str]) -> None:
    so, metric = cron
    ok, out = raw(deployed.cp, metric_path(namespace, metric.upper(), so))  # names match case-insensitively
    assert ok, out
    items = json.loads(out)["items"]
    assert [(i["metricName"], i["value"], i["metricLabels"]) for i in items] == [(metric, "3", {})]


def test_user_without_rights_is_forbidden_with_the_upstream_message(
        deployed: Deployed, namespace: str, cron: tuple[str, str]) -> None:
    so, metric = cron
    ok, out = raw(deployed.cp, metric_path(namespace, metric, so), "--as=someone")
    upstream = (f'{metric}.external.metrics.k8s.io is forbidden: User "someone" cannot list resource '
                f'"{metric}" in API group "external.metrics.k8s.io" in the namespace "{namespace}"')
    assert not ok and upstream in out
    # the same user, authenticated by the front proxy, straight to the adapter: its own SAR says no
    cp = deployed.cp
    with direct_client(deployed.adapter, (cp.front_proxy_client_cert, cp.front_proxy_client_key)) as client:
        response = client.get(metric_path(namespace, metric, so), headers={"X-Remote-User": "someone"})
    assert response.status_code == 403
    assert response.json()["message"] == upstream
    assert response.json()["reason"] == "Forbidden"


def test_hpa_scales_a_deployment_on_a_real_redis_list(deployed: Deployed, namespace: str) -> None:
    cp = deployed.cp
    with RedisServer() as redis_server:
        redis_server.add_user()
        host, port = redis_server.address.split(":")
        trigger = {"type": "redis", "metadata": {"host": host, "port": port, "listName": "jobs",
                                                  "listLength": "5"},
                   "authenticationRef": {"name": "redis-auth"}}
        apply(cp, namespace, *redis_auth("redis-auth", ACL_USER, ACL_PASSWORD), deployment("worker", 1),
              scaled_object("worker", trigger), hpa("worker", "s0-redis-jobs", target="5"))
        wait_for(lambda: metric_value(cp, namespace, "s0-redis-jobs", "worker") == "0", timeout=30,
                 what="the redis metric at 0")
        admin = redis_server.admin()
        for items, replicas in ((8, 2), (20, 4), (0, 1)):
            admin.delete("jobs")
            if items:
                admin.rpush("jobs", *range(items))
            wait_replicas(cp, namespace, "worker", replicas, f"{replicas} replicas for {items} jobs")
        status = cp.kubectl_json("get", "hpa", "worker", "-n", namespace)["status"]
        conditions = {c["type"]: c for c in status["conditions"]}
        assert conditions["ScalingActive"]["status"] == "True", conditions["ScalingActive"]
        assert status["currentMetrics"][0]["external"]["current"]["averageValue"] == "0"


def hpa(name: str, metric: str, target: str) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 1, "maxReplicas": 10,
            "metrics": [{"type": "External", "external": {
                "metric": {"name": metric, "selector": {"matchLabels": {"scaledobject.keda.sh/name": name}}},
                "target": {"type": "AverageValue", "averageValue": target}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0},
                         "scaleUp": {"stabilizationWindowSeconds": 0}},
        },
    }


def wait_replicas(cp: ControlPlane, namespace: str, name: str, replicas: int, what: str) -> None:
    def scaled() -> bool:
        return int(cp.kubectl_json("get", "deployment", name, "-n", namespace)["spec"]["replicas"]) == replicas

    wait_for(scaled, timeout=60, what=what, interval=0.5)


def error_of(cp: ControlPlane, path: str) -> str | None:
    ok, out = raw(cp, path)
    return None if ok else out


def test_secret_changes_reach_the_catalog_through_watches(deployed: Deployed, namespace: str) -> None:
    cp = deployed.cp
    with RedisServer() as redis_server:
        redis_server.add_user()
        redis_server.admin().rpush("queue", 1, 2, 3)
        host, port = redis_server.address.split(":")
        trigger = {"type": "redis", "metadata": {"host": host, "port": port, "listName": "queue"},
                   "authenticationRef": {"name": "creds"}}
        apply(cp, namespace, *redis_auth("creds", ACL_USER, "wrong-password"), scaled_object("q", trigger))
        path = metric_path(namespace, "s0-redis-queue", "q")
        failing = wait_for(lambda: error_of(cp, path), timeout=30, what="a failing read with the wrong password")
        assert "wrong-password" not in failing and ACL_PASSWORD not in failing
        apply(cp, namespace, redis_auth("creds", ACL_USER, ACL_PASSWORD)[0])
        wait_for(lambda: metric_value(cp, namespace, "s0-redis-queue", "q") == "3", timeout=30,
                 what="the value once the Secret is right")
        cp.kubectl("delete", "scaledobject.keda.sh", "q", "-n", namespace)
        wait_for(lambda: "not found" in raw(cp, path)[1], timeout=30, what="404 after deleting the ScaledObject")


# -- straight to the adapter: what it trusts ----------------------------------------------------

def test_forged_identity_headers_without_the_proxy_certificate_are_ignored(
        deployed: Deployed, namespace: str, cron: tuple[str, str]) -> None:
    so, metric = cron
    forged = {"X-Remote-User": "admin", "X-Remote-Group": "system:masters"}
    with direct_client(deployed.adapter) as client:
        response = client.get(metric_path(namespace, metric, so), headers=forged)
    assert response.status_code == 403  # anonymous, denied by kube-apiserver's SubjectAccessReview
    assert 'User "system:anonymous"' in response.json()["message"]


def test_certificate_of_an_unknown_ca_is_rejected(deployed: Deployed, tmp_path: Path, namespace: str,
                                                  cron: tuple[str, str]) -> None:
    stranger_ca = new_ca("stranger")
    fake_proxy = issue(stranger_ca, "front-proxy-client", client=True)
    fake_proxy.write(tmp_path / "p.crt", tmp_path / "p.key")
    so, metric = cron
    with direct_client(deployed.adapter, (tmp_path / "p.crt", tmp_path / "p.key")) as client:
        try:
            response = client.get(metric_path(namespace, metric, so), headers={"X-Remote-User": "admin"})
        except httpx.TransportError:
            return  # the handshake failed: the certificate chains to no trusted CA
    assert response.status_code == 401


def test_client_certificates_of_the_cluster_ca(deployed: Deployed, tmp_path: Path, namespace: str,
                                               cron: tuple[str, str]) -> None:
    cp, (so, metric) = deployed.cp, cron
    with direct_client(deployed.adapter, (cp.admin_cert, cp.admin_key)) as admin:
        assert admin.get(metric_path(namespace, metric, so)).status_code == 200  # system:masters
    cluster_ca = KeyPair.load(cp.ca_file, cp.ca_file.with_name("ca.key"))
    issue(cluster_ca, "alice", organizations=["devs"], client=True).write(tmp_path / "a.crt", tmp_path / "a.key")
    with direct_client(deployed.adapter, (tmp_path / "a.crt", tmp_path / "a.key")) as alice:
        response = alice.get(metric_path(namespace, metric, so))
    assert response.status_code == 403 and 'User "alice"' in response.json()["message"]


def test_token_reviewed_request(deployed: Deployed, namespace: str, cron: tuple[str, str],
                                tmp_path: Path) -> None:
    cp, (so, metric) = deployed.cp, cron
    cp.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    cp.kubectl("create", "rolebinding", "reader", "-n", namespace,
               "--clusterrole=eventscale-external-metrics-reader", f"--serviceaccount={namespace}:reader")
    token = cp.kubectl("create", "token", "reader", "-n", namespace).stdout.strip()
    with direct_client(deployed.adapter) as client:
        good = client.get(metric_path(namespace, metric, so), headers={"Authorization": f"Bearer {token}"})
        bad = client.get(metric_path(namespace, metric, so), headers={"Authorization": "Bearer not-a-token"})
        elsewhere = client.get(metric_path("default", metric, so), headers={"Authorization": f"Bearer {token}"})
    assert good.status_code == 200 and good.json()["items"][0]["value"] == "3"
    assert bad.status_code == 401
    assert elsewhere.status_code == 403  # the RoleBinding is for its own namespace only
    assert token not in deployed.adapter.log()


def test_hpa_service_account_is_allowed_through_the_front_proxy(
        deployed: Deployed, namespace: str, cron: tuple[str, str]) -> None:
    cp, (so, metric) = deployed.cp, cron
    headers = {"X-Remote-User": HPA_USER, "X-Remote-Group": "system:serviceaccounts"}
    with direct_client(deployed.adapter, (cp.front_proxy_client_cert, cp.front_proxy_client_key)) as client:
        response = client.get(metric_path(namespace, metric, so), headers=headers)
        openapi = client.get("/openapi/v2", headers={"X-Remote-User": "system:aggregator"})
    assert response.status_code == 200
    assert openapi.status_code == 200  # discovery rights of system:authenticated


def test_kube_apiserver_accepted_our_discovery_and_openapi(deployed: Deployed) -> None:
    cp = deployed.cp
    v3 = json.loads(raw(cp, "/openapi/v3")[1])["paths"]
    assert "apis/external.metrics.k8s.io/v1beta1" in v3
    time.sleep(2)  # let the OpenAPI controllers run once more
    with cp.logs["kube-apiserver"].open("rb") as log:
        log.seek(deployed.apiserver_log_offset)
        lines = log.read().decode(errors="replace").splitlines()
    ours = [line for line in lines if "external.metrics" in line or APISERVICE in line]
    errors = [line for line in ours if line.startswith(("E", "W")) or "rror" in line or "fail" in line.lower()]
    assert not errors, "\n".join(errors[:10])


# -- scale ---------------------------------------------------------------------------------------

SCALE_NAMESPACES, PER_NAMESPACE = 10, 1000  # 10,000 objects


def scale_objects(namespace: str) -> list[tuple[str, Object]]:
    """1,000 objects of one namespace: 100 ScaledObjects, TriggerAuthentications and Deployments,
    400 Secrets and 300 ConfigMaps; each ScaledObject uses its own TriggerAuthentication and Secret."""
    objects: list[tuple[str, Object]] = []
    for i in range(100):
        name = f"app-{i}"
        env = [{"name": f"VAR_{j}", "value": "x" * 40} for j in range(5)]
        target = deployment(name)
        target["spec"]["template"]["spec"]["containers"][0]["env"] = env
        metadata = {"timezone": "UTC", "start": "0 0 * * *", "end": "59 23 * * *", "desiredReplicas": "2"}
        so = scaled_object(name, {"type": "cron", "metadata": metadata, "authenticationRef": {"name": name}})
        secret, auth = redis_auth(name, "user", "p" * 32)
        objects += [(f"/apis/apps/v1/namespaces/{namespace}/deployments", target),
                    (f"/apis/keda.sh/v1alpha1/namespaces/{namespace}/scaledobjects", so),
                    (f"/apis/keda.sh/v1alpha1/namespaces/{namespace}/triggerauthentications", auth),
                    (f"/api/v1/namespaces/{namespace}/secrets", secret)]
    objects += [(f"/api/v1/namespaces/{namespace}/secrets", {"metadata": {"name": f"other-{i}"},
                 "data": {"k": base64.b64encode(b"v" * 64).decode()}}) for i in range(300)]
    objects += [(f"/api/v1/namespaces/{namespace}/configmaps", {"metadata": {"name": f"cm-{i}"},
                 "data": {"settings": "y" * 200}}) for i in range(300)]
    return objects


async def create_all(api: KubeApi, objects: list[tuple[str, Object]], concurrency: int = 16) -> None:
    queue = iter(objects)

    async def worker() -> None:
        for path, body in queue:
            await api.post(path, body)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


# Most of this test's time is kube-apiserver's own work, creating 10,000 objects and deleting
# their namespaces; on a loaded 2-core machine that alone has taken over 300 s.
@pytest.mark.timeout(900)
async def test_memory_and_catch_up_with_10000_objects(deployed: Deployed, request: pytest.FixtureRequest,
                                                      tmp_path: Path) -> None:
    cp, adapter = deployed.cp, deployed.adapter
    assert adapter.process is not None
    namespaces = [f"scale-{i}" for i in range(SCALE_NAMESPACES)]
    apply(cp, "default", *({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in namespaces))
    before = rss_mib(adapter.process.pid)
    api = KubeApi.connect(cp.kubeconfig)
    started = time.monotonic()
    try:
        await create_all(api, [o for ns in namespaces for o in scale_objects(ns)])
    finally:
        await api.aclose()
    created = time.monotonic() - started
    last = (namespaces[-1], "s0-cron-UTC-00xxx-5923xxx", "app-99")
    with direct_client(adapter, (cp.admin_cert, cp.admin_key)) as admin:
        wait_for(lambda: admin.get(metric_path(*last)).status_code == 200, timeout=120,
                 what="the last ScaledObject served", interval=0.2)
    caught_up = time.monotonic() - started
    after = rss_mib(adapter.process.pid)
    report(request, f"10,000 objects: created in {created:.1f}s, the last one served {caught_up:.1f}s after "
                    f"the first was created; adapter RSS {before:.0f} MiB -> {after:.0f} MiB")
    assert after - before < 200, f"RSS grew by {after - before:.0f} MiB for 10,000 objects"
    cold = cluster_adapter(cp, tmp_path)
    started = time.monotonic()
    cold.start(timeout=120)  # /readyz: every resource listed and in the catalog
    try:
        assert cold.process is not None
        report(request, f"10,000 objects: a fresh adapter is ready (informers synced) "
                        f"{time.monotonic() - started:.1f}s after start, RSS {rss_mib(cold.process.pid):.0f} MiB")
    finally:
        cold.stop()
    cp.kubectl("delete", "namespace", *namespaces, "--timeout=600s", timeout=660)


# -- self-managed certificates (last: it replaces the module's adapter) -------------------------

def test_self_signed_certs_register_their_ca_bundle(deployed: Deployed, tmp_path: Path, namespace: str,
                                                    cron: tuple[str, str], request: pytest.FixtureRequest) -> None:
    cp, (so, metric) = deployed.cp, cron
    deployed.adapter.stop()
    register(cp, port := free_port(), ca_pem=None)  # no caBundle: the adapter must provide it
    kubeconfig = token_kubeconfig(cp, tmp_path / "sa.kubeconfig")
    started = time.monotonic()
    with (tmp_path / "adapter.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "adapter", "serve", "--kubeconfig", str(kubeconfig), "--self-signed-certs",
             "--cert-dir", str(tmp_path / "certs"), "--secure-port", str(port), "--service-name", E2E_SERVICE,
             "--cluster-object-namespace", NAMESPACE, "--internal-port", "0"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        bundle = wait_for(lambda: cp.kubectl_json("get", "apiservice", APISERVICE)["spec"].get("caBundle"),
                          timeout=30, what="caBundle registered by the adapter")
        assert base64.b64decode(bundle) == (tmp_path / "certs" / "ca.crt").read_bytes()
        assert not (tmp_path / "certs" / "ca.key").exists()  # the CA key is never written
        wait_available(cp)
        wait_for(lambda: metric_value(cp, namespace, metric, so) == "3", timeout=30, what="the metric")
        report(request, f"cluster mode, --self-signed-certs: start to Available {time.monotonic() - started:.2f}s")
    finally:
        process.terminate()
        process.wait(10)
