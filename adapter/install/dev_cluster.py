"""`eventscale dev-cluster`: a cluster's aggregator sends external.metrics.k8s.io to an adapter
running outside it (on a laptop, in a debugger), which is how people try the adapter first.

The bundle's Namespace, CRDs and RBAC are applied (cluster mode reads the CRDs; the HPA's right
to read external metrics is a ClusterRoleBinding), without the Deployments. The adapter's Service
then points at the address the adapter listens on:

* a loopback address or a DNS name: an ExternalName Service (`localhost` for loopback), which
  the aggregator resolves itself: for a kube-apiserver on this machine (the test control plane,
  k3s or kube-apiserver run by hand) or a name the apiserver's host can resolve;
* any other IP: a Service without selector and an EndpointSlice to that address, for clusters
  (kind, minikube) whose nodes reach this machine at that address.

The APIService points at that Service and port with the CA of `--cert-dir` as caBundle; the
serving certificate `eventscale certs` makes names the Service (`eventscale-adapter.<ns>.svc`),
which is what the aggregator checks.
"""

from __future__ import annotations

import base64
import ipaddress
from pathlib import Path
from typing import Any

from adapter.certs import CertLayout
from adapter.install.bundle import Manifest
from adapter.install.cluster_install import APISERVICE, LOCAL_ENDPOINTS
from adapter.kube.client import ApiStatusError, KubeApi
from adapter.kube.resources import SERVICES

SERVICE_NAME = "eventscale-adapter"
WORKLOAD_KINDS = frozenset({"Deployment", "PodDisruptionBudget", "Service", "APIService"})
Object = dict[str, Any]


def parse_address(address: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 in brackets) as (host, port); ValueError says what is wrong."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--advertise-address {address!r}: expected HOST:PORT, e.g. 127.0.0.1:6443")
    return host.strip("[]"), int(port)


def without_workloads(manifests: list[Manifest]) -> list[Manifest]:
    """The bundle less what runs the adapter in the cluster and the Service/APIService replaced here."""
    return [m for m in manifests if m.body["kind"] not in WORKLOAD_KINDS]


def is_local(host: str) -> bool:
    """A loopback address or `localhost`: the adapter needs no other --bind-address."""
    ip = _ip(host)
    return host == "localhost" or (ip is not None and ip.is_loopback)


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def local_service(host: str, port: int, namespace: str) -> list[Manifest]:
    """The Service (and EndpointSlice) through which the aggregator reaches `host:port`."""
    meta = {"name": SERVICE_NAME, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "eventscale"}}
    ip = _ip(host)
    if ip is None or ip.is_loopback:
        external = "localhost" if ip is not None else host
        return [Manifest({"apiVersion": "v1", "kind": "Service", "metadata": meta,
                          "spec": {"type": "ExternalName", "externalName": external}})]
    service = {"apiVersion": "v1", "kind": "Service", "metadata": meta,
               "spec": {"type": "ClusterIP", "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}}
    endpoints = {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": LOCAL_ENDPOINTS[1], "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": SERVICE_NAME, "app.kubernetes.io/part-of": "eventscale"}},
        "addressType": "IPv4" if ip.version == 4 else "IPv6",
        "endpoints": [{"addresses": [str(ip)], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }
    return [Manifest(service), Manifest(endpoints)]


def local_apiservice(port: int, namespace: str, cert_dir: Path) -> Manifest:
    ca = CertLayout(cert_dir).paths("ca")[0]
    if not ca.exists():
        raise FileNotFoundError(f"{ca}: no CA; run `eventscale certs --cert-dir {cert_dir}` first")
    return Manifest({
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": APISERVICE, "labels": {"app.kubernetes.io/part-of": "eventscale"}},
        "spec": {"group": "external.metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100,
                 "versionPriority": 100, "service": {"name": SERVICE_NAME, "namespace": namespace, "port": port},
                 "caBundle": base64.b64encode(ca.read_bytes()).decode(), "insecureSkipTLSVerify": False},
    })


async def replace_other_service(api: KubeApi, wanted: Manifest) -> str | None:
    """Delete the Service of the same name when it cannot become `wanted` in place (a Service with a
    selector or of another type: the in-cluster install's); what was done, or None."""
    path = SERVICES.object_path(wanted.name, wanted.namespace)
    try:
        current = await api.get(path)
    except ApiStatusError as exc:
        if exc.code == 404:
            return None
        raise
    spec = current.get("spec") or {}
    if spec.get("type") == wanted.body["spec"]["type"] and not spec.get("selector"):
        return None
    await api.delete(path)
    return f"{wanted} of type {spec.get('type')} deleted, to be replaced"
