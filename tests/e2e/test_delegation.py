"""Two external metrics providers behind the one APIService, on the real control plane.

Ours is the adapter in cluster mode, registered as `v1beta1.external.metrics.k8s.io`, started
with `--delegate-to` a second adapter process: another eventscale in standalone mode with its
own objects, certificates and front-proxy CA, which trusts our requests because we present its
front-proxy client certificate and pass the caller in `X-Remote-*` headers. kube-apiserver
reaches only ours; `kubectl get --raw` and two real HPAs read a metric of each. With the second
provider stopped, its metrics are a quick 503 naming it and ours keep their answers.

A third provider is named as a Service, `--delegate-to service:default/far:80`: it listens in a
network namespace (kube-apiserver refuses loopback addresses in EndpointSlices) with a serving
certificate for `far.default.svc` and not for its address, published as a selector-less Service
and an EndpointSlice, as a kubelet would. Emptying the slice makes its metrics a quick 503
naming it; refilling it brings them back.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_adapter import apply, delegating_adapter, deployment, metric_path, metric_value, raw, scaled_object
from controlplane import ControlPlane, wait_for
from http_stack import UPSTREAM_PORT, publish_endpoints, service
from kubernetes import client

from tests.harness.adapter_process import AdapterProcess
from tests.harness.netns import NetworkNamespace

pytestmark = pytest.mark.e2e

ALWAYS = {"timezone": "UTC", "start": "0 0 1 1 *", "end": "59 23 31 12 *"}
CRON_METRIC = "s0-cron-UTC-0011x-59233112x"
FAR = "far"  # the Service in `default` of the provider named as a Service
FAR_DELEGATE = f"service:default/{FAR}:80"  # port 80 of `service()`, target port UPSTREAM_PORT


def cron(replicas: int) -> dict[str, Any]:
    return {"type": "cron", "metadata": {**ALWAYS, "desiredReplicas": str(replicas)}}


def provider_objects(directory: Path, name: str, replicas: int) -> Path:
    """A standalone provider's directory: ScaledObject default/`name`, a cron at `replicas`."""
    directory.mkdir()
    (directory / f"{name}.yaml").write_text(json.dumps({**scaled_object(name, cron(replicas)),
                                                        "metadata": {"name": name, "namespace": "default"}}))
    return directory


@pytest.fixture(scope="module")
def far(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdapterProcess]:
    """The provider behind Service default/far, in a network namespace; serves default/far at 7.
    Launched, not waited for: it gets ready while the other two start (`wait_ready` before use)."""
    work = tmp_path_factory.mktemp("service-delegate")
    with NetworkNamespace() as netns:
        adapter = AdapterProcess(provider_objects(work / "objects", FAR, 7), work / "certs", work / "far.log",
                                 port=UPSTREAM_PORT, certs_args=("--service", FAR, "--namespace", "default"),
                                 host=netns.address, netns=netns.name, tls_name=f"{FAR}.default.svc")
        api = control_plane.api_client()
        core = client.CoreV1Api(api)
        try:
            adapter.launch()
            core.create_namespaced_service("default", service(FAR))  # a dict is sent as is
            publish_endpoints(api, "default", FAR, [adapter.host])
            yield adapter
        finally:
            adapter.stop()
            with contextlib.suppress(client.ApiException):
                core.delete_namespaced_service(FAR, "default")
            with contextlib.suppress(client.ApiException):
                client.DiscoveryV1Api(api).delete_namespaced_endpoint_slice(f"{FAR}-played", "default")
            api.close()


@pytest.fixture(scope="module")
def providers(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory, far: AdapterProcess
              ) -> Iterator[tuple[AdapterProcess, AdapterProcess]]:
    """(ours, theirs): theirs serves ScaledObject default/theirs from its directory; ours asks
    theirs, then `far`, each with its own CA and front-proxy client certificate."""
    work = tmp_path_factory.mktemp("delegation")
    theirs = AdapterProcess(provider_objects(work / "their-objects", "theirs", 42), work / "their-certs",
                            work / "theirs.log")
    certs, far_certs = theirs.cert_dir, far.cert_dir
    with delegating_adapter(control_plane, work / "ours", theirs, "--delegate-to", theirs.base_url,
                            "--delegate-ca-file", str(certs / "ca.crt"),
                            "--delegate-client-cert", str(certs / "front-proxy-client.crt"),
                            "--delegate-client-key", str(certs / "front-proxy-client.key"),
                            "--delegate-to", f"{FAR_DELEGATE},ca={far_certs / 'ca.crt'},"
                                             f"cert={far_certs / 'front-proxy-client.crt'},"
                                             f"key={far_certs / 'front-proxy-client.key'}",
                            "--delegate-timeout", "1") as ours:
        yield ours, theirs


def hpa(name: str, metric: str, selector_of: str, average: int) -> dict[str, Any]:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                     "minReplicas": 1, "maxReplicas": 10,
                     "metrics": [{"type": "External", "external": {
                         "metric": {"name": metric,
                                    "selector": {"matchLabels": {"scaledobject.keda.sh/name": selector_of}}},
                         "target": {"type": "AverageValue", "averageValue": str(average)}}}]}}


def replicas(cp: ControlPlane, namespace: str, name: str) -> int:
    return int(cp.kubectl_json("get", "deployment", name, "-n", namespace)["spec"]["replicas"])


def test_both_providers_answer_through_the_one_apiservice(control_plane: ControlPlane, namespace: str,
                                                          providers: tuple[AdapterProcess, AdapterProcess]) -> None:
    cp = control_plane
    apply(cp, namespace, scaled_object("ours", cron(3)))
    wait_for(lambda: metric_value(cp, namespace, CRON_METRIC, "ours") == "3", timeout=30,
             what="our metric through kube-apiserver")
    assert metric_value(cp, "default", CRON_METRIC, "theirs") == "42"  # served by the second provider

    # an HPA on each provider's metric, at the same time: ceil(3 / 1) = 3 and ceil(42 / 10) = 5
    apply(cp, namespace, deployment("ours"), hpa("ours", CRON_METRIC, "ours", 1))
    apply(cp, "default", deployment("theirs"), hpa("theirs", CRON_METRIC, "theirs", 10))
    try:
        wait_for(lambda: replicas(cp, namespace, "ours") == 3 and replicas(cp, "default", "theirs") == 5,
                 timeout=60, what="both HPAs scaled on their provider's metric")
    finally:
        cp.kubectl("delete", "hpa,deployment", "theirs", "-n", "default", "--wait=false", check=False)

    # neither provider knows it: our 404, not theirs
    ok, out = raw(cp, metric_path(namespace, CRON_METRIC, "nobody"))
    assert not ok and 'ScaledObject "nobody" not found' in out


def test_a_stopped_provider_costs_only_its_metrics(control_plane: ControlPlane, namespace: str,
                                                   providers: tuple[AdapterProcess, AdapterProcess]) -> None:
    cp = control_plane
    ours, theirs = providers
    apply(cp, namespace, scaled_object("ours", cron(3)))
    wait_for(lambda: metric_value(cp, namespace, CRON_METRIC, "ours") == "3", timeout=30, what="our metric")
    theirs.stop()
    for _ in range(3):  # the first refused connection opens the breaker; the next are answered at once
        started = time.monotonic()
        ok, out = raw(cp, metric_path("default", CRON_METRIC, "theirs"))
        took = time.monotonic() - started
        assert not ok and "delegates are unavailable" in out and theirs.base_url in out, out
        assert took < 5, took  # kubectl's own start-up included; never the delegate timeout piled up
    started = time.monotonic()
    assert metric_value(cp, namespace, CRON_METRIC, "ours") == "3"
    assert time.monotonic() - started < 5
    assert "delegate=" + theirs.base_url in ours.log()


def test_a_delegate_named_as_a_service_follows_its_endpoint_slices(control_plane: ControlPlane,
                                                                    providers: tuple[AdapterProcess, AdapterProcess],
                                                                    far: AdapterProcess) -> None:
    cp = control_plane
    far.wait_ready()
    wait_for(lambda: metric_value(cp, "default", CRON_METRIC, FAR) == "7", timeout=30,
             what="the metric of the provider named as a Service, through kube-apiserver")
    api = cp.api_client()
    try:
        publish_endpoints(api, "default", FAR, [])  # no ready endpoint

        def refused() -> str | None:
            ok, out = raw(cp, metric_path("default", CRON_METRIC, FAR))
            return out if not ok and f"{FAR_DELEGATE} (no ready endpoint)" in out else None

        wait_for(refused, timeout=30, what="a 503 naming the Service delegate")
        started = time.monotonic()
        assert "delegates are unavailable" in (refused() or "")
        assert time.monotonic() - started < 5  # kubectl's own start-up included
        publish_endpoints(api, "default", FAR, [far.host])
        wait_for(lambda: metric_value(cp, "default", CRON_METRIC, FAR) == "7", timeout=30,
                 what="the Service delegate's metric once its endpoint is back")
    finally:
        publish_endpoints(api, "default", FAR, [far.host])
        api.close()
