"""The adapter in cluster mode against the real control plane, as the e2e tests run it.

The adapter runs as a local process with the credentials of the ServiceAccount the manifests
create (a TokenRequest token in a kubeconfig), so the shipped RBAC is what is exercised. The
aggregator reaches it through a test-only ExternalName Service (`externalName: localhost`)
and the APIService re-pointed at that Service and the adapter's port, with our CA as caBundle.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import httpx
import yaml
from controlplane import ControlPlane, wait_for

from adapter.keda.names import SCALED_OBJECT_LABEL
from scalers.base import metric_name
from scalers.cron import CronScaler
from scalers.params import TriggerParams
from tests.harness.adapter_process import AdapterProcess

NAMESPACE = "eventscale"
SERVICE_ACCOUNT = "eventscale-adapter"
E2E_SERVICE = "eventscale-adapter-e2e"
APISERVICE = "v1beta1.external.metrics.k8s.io"
CRDS = ("scaledobjects.keda.sh", "scaledjobs.keda.sh", "triggerauthentications.keda.sh",
        "clustertriggerauthentications.keda.sh", "httpscaledobjects.http.keda.sh")
LEGACY_CRD = "scaledobjects.keda.k8s.io"
#: manifests/ with the opt-in 2019 CRD (manifests/components/legacy-keda-k8s-io), as users include it
WITH_LEGACY_CRD = Path(__file__).resolve().parent / "legacy-overlay"
ADAPTER_USER = f"system:serviceaccount:{NAMESPACE}:eventscale-adapter"
GROUP_VERSION = "external.metrics.k8s.io/v1beta1"


def install(cp: ControlPlane) -> None:
    """`kubectl apply -k` of the manifests with the 2019 CRD, once every CRD is Established."""
    cp.kubectl("apply", "-k", str(WITH_LEGACY_CRD), timeout=120)
    cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{c}" for c in (*CRDS, LEGACY_CRD)))


def metric_path(namespace: str, metric: str, scaled_object: str) -> str:
    selector = quote(f"{SCALED_OBJECT_LABEL}={scaled_object}", safe="")
    return f"/apis/{GROUP_VERSION}/namespaces/{namespace}/{metric}?labelSelector={selector}"


def token_kubeconfig(cp: ControlPlane, path: Path, account: str = SERVICE_ACCOUNT,
                     namespace: str = NAMESPACE) -> Path:
    """A kubeconfig that authenticates as a ServiceAccount with a TokenRequest token."""
    token = cp.kubectl("create", "token", account, "-n", namespace, "--duration=2h").stdout.strip()
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {"server": cp.server, "certificate-authority": str(cp.ca_file)}}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": account}}],
        "current-context": "e2e",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def cluster_adapter(cp: ControlPlane, work: Path, *extra: str) -> AdapterProcess:
    kubeconfig = token_kubeconfig(cp, work / "adapter.kubeconfig")
    return AdapterProcess(
        None, work / "certs", work / "adapter.log",
        extra_args=("--kubeconfig", str(kubeconfig), "--cluster-object-namespace", NAMESPACE,
                    "--metric-max-age", "0.5", "--internal-port", "0", *extra),
        certs_args=("--service", E2E_SERVICE, "--namespace", NAMESPACE),
    )


class Delegate(Protocol):
    """The second metrics provider a delegation test starts (another adapter, the Go test adapter)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@contextlib.contextmanager
def delegating_adapter(cp: ControlPlane, work: Path, theirs: Delegate, *delegate_args: str) -> Iterator[AdapterProcess]:
    """Ours, registered as the APIService and started with `delegate_args` (`--delegate-to` ...),
    once `theirs` is up; on exit both stop and the APIService is removed."""
    ours: AdapterProcess | None = None
    try:
        theirs.start()
        install(cp)
        work.mkdir(parents=True, exist_ok=True)
        ours = cluster_adapter(cp, work, *delegate_args)
        ours.start(timeout=60)
        register(cp, ours.port, (ours.cert_dir / "ca.crt").read_bytes())
        wait_available(cp)
        yield ours
    finally:
        if ours is not None:
            ours.stop()
        theirs.stop()
        cp.kubectl("delete", "apiservice", APISERVICE, "--ignore-not-found", check=False)


def register(cp: ControlPlane, port: int, ca_pem: bytes | None) -> None:
    """Point the APIService at localhost:<port> through an ExternalName Service."""
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": E2E_SERVICE, "namespace": NAMESPACE},
               "spec": {"type": "ExternalName", "externalName": "localhost"}}
    spec: dict[str, Any] = {
        "group": "external.metrics.k8s.io", "version": "v1beta1",
        "groupPriorityMinimum": 100, "versionPriority": 100,
        "service": {"name": E2E_SERVICE, "namespace": NAMESPACE, "port": port},
    }
    if ca_pem is not None:
        spec["caBundle"] = base64.b64encode(ca_pem).decode()
    apiservice = {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": APISERVICE},
                  "spec": spec}
    cp.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                     "items": [service, apiservice]}))


def available(cp: ControlPlane) -> dict[str, Any] | None:
    status = cp.kubectl_json("get", "apiservice", APISERVICE).get("status") or {}
    condition = next((c for c in status.get("conditions") or [] if c["type"] == "Available"), None)
    return condition if condition and condition["status"] == "True" else None


def wait_available(cp: ControlPlane, timeout: float = 60) -> float:
    """Seconds until the APIService is Available."""
    started = time.monotonic()
    wait_for(lambda: available(cp), timeout=timeout, what=f"APIService {APISERVICE} Available", interval=0.1)
    return time.monotonic() - started


def raw(cp: ControlPlane, path: str, *kubectl_args: str) -> tuple[bool, str]:
    """`kubectl get --raw` through kube-apiserver: (succeeded, stdout or stderr)."""
    result = cp.kubectl(*kubectl_args, "get", "--raw", path, check=False)
    return result.returncode == 0, (result.stdout if result.returncode == 0 else result.stderr).strip()


def direct_client(adapter: AdapterProcess, cert: tuple[Path, Path] | None = None,
                  ca_file: Path | None = None) -> httpx.Client:
    """HTTPS straight to the adapter (not through kube-apiserver), optionally with a client cert."""
    context = ssl.create_default_context(cafile=str(ca_file or adapter.cert_dir / "ca.crt"))
    if cert is not None:
        context.load_cert_chain(*cert)
    return httpx.Client(base_url=adapter.base_url, verify=context, timeout=10)


def apply(cp: ControlPlane, namespace: str, *objects: dict[str, Any]) -> None:
    cp.kubectl("apply", "-n", namespace, "-f", "-",
               input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}))


def deployment(name: str, replicas: int = 1) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]}}},
    }


def scaled_object(name: str, trigger: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"name": name}, "minReplicaCount": 1, "maxReplicaCount": 10,
                     "triggers": [trigger]}}


def redis_auth(name: str, username: str, password: str) -> list[dict[str, Any]]:
    """A Secret with Redis credentials and the TriggerAuthentication that reads it."""
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
              "stringData": {"username": username, "password": password}}
    auth = {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication", "metadata": {"name": name},
            "spec": {"secretTargetRef": [{"parameter": "username", "name": name, "key": "username"},
                                         {"parameter": "password", "name": name, "key": "password"}]}}
    return [secret, auth]


def rabbitmq_auth(name: str, amqp_url: str) -> list[dict[str, Any]]:
    """A Secret with a RabbitMQ connection URL and the TriggerAuthentication that reads it as `host`."""
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"host": amqp_url}}
    auth = {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication", "metadata": {"name": name},
            "spec": {"secretTargetRef": [{"parameter": "host", "name": name, "key": "host"}]}}
    return [secret, auth]


def cron_in_window(desired_replicas: int) -> tuple[dict[str, str], str]:
    """Cron trigger metadata whose window holds now (from 10 minutes ago to 3 hours on), and the
    name of the metric it is served as."""
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(minutes=10), now + dt.timedelta(hours=3)
    metadata = {"timezone": "UTC", "start": f"{start.minute} {start.hour} * * *",
                "end": f"{end.minute} {end.hour} * * *", "desiredReplicas": str(desired_replicas)}
    scaler = CronScaler()
    return metadata, metric_name(0, scaler.metric(scaler.parse("cron", TriggerParams(metadata))).name)


def metric_value(cp: ControlPlane, namespace: str, metric: str, so: str) -> str | None:
    ok, out = raw(cp, metric_path(namespace, metric, so))
    return json.loads(out)["items"][0]["value"] if ok else None
