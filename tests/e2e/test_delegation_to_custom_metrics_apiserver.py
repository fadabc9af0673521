"""Our adapter in front of an external metrics adapter no one here wrote, on the real control plane.

The second adapter is sigs.k8s.io/custom-metrics-apiserver's own testing provider in that
library's API server (k8s.io/apiserver serving, delegated authentication and authorization),
built from the Go module proxy by tests/cluster/delegate_adapter_build.py with a loopback-only
main. Its provider serves fixed external metrics (`my-external-metric` 42 for `foo=bar`).
kube-apiserver knows only our APIService; ours reaches the Go adapter with `--delegate-to
URL,ca=,cert=,key=` (its own CA bundle and a client certificate the Go adapter trusts as a front
proxy, through the standard `--requestheader-*` flags), and the Go adapter authorizes the caller
we pass in `X-Remote-*` headers with a SubjectAccessReview against the real kube-apiserver. Two
real HPAs, one on each adapter's metric, scale their Deployments at the same time.

The Go adapter answers an empty list (200) for any metric name it does not know, so it must be
the last delegate: the first answer that is not a 404 wins.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from cluster_adapter import apply, delegating_adapter, deployment, raw, scaled_object
from controlplane import ControlPlane, wait_for

from adapter import certs
from tests.harness.adapter_process import AdapterProcess
from tests.harness.ports import free_port
from tests.harness.server_process import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.delegate_adapter]

DELEGATION_CLIENT = "eventscale-delegation"  # the CN the Go adapter accepts as a front proxy
THEIR_METRIC = "my-external-metric"  # the testing provider's: 42 for foo=bar, 43 for foo=baz
CRON_METRIC = "s0-cron-UTC-0011x-59233112x"
ALWAYS = {"timezone": "UTC", "start": "0 0 1 1 *", "end": "59 23 31 12 *"}


class GoAdapter:
    """The custom-metrics-apiserver test adapter as a loopback process with files in `work`."""

    def __init__(self, binary: Path, control_plane: ControlPlane, work: Path) -> None:
        self.work = work
        self.port = free_port()
        self.process = ServerProcess("custom-metrics-apiserver test adapter", work)
        serving_ca, front_proxy_ca = certs.new_ca("delegate-serving-ca"), certs.new_ca("delegate-front-proxy-ca")
        (work / "serving-ca.crt").write_bytes(serving_ca.cert_pem)
        (work / "front-proxy-ca.crt").write_bytes(front_proxy_ca.cert_pem)
        certs.issue(serving_ca, "delegate", hosts=["127.0.0.1"], server=True).write(work / "tls.crt", work / "tls.key")
        certs.issue(front_proxy_ca, DELEGATION_CLIENT, client=True).write(work / "client.crt", work / "client.key")
        kubeconfig = str(control_plane.kubeconfig)
        self.command = [
            str(binary), f"--secure-port={self.port}", "--bind-address=127.0.0.1", f"--cert-dir={work}",
            f"--tls-cert-file={work / 'tls.crt'}", f"--tls-private-key-file={work / 'tls.key'}",
            f"--lister-kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}", "--authentication-skip-lookup",
            f"--requestheader-client-ca-file={work / 'front-proxy-ca.crt'}",
            f"--requestheader-allowed-names={DELEGATION_CLIENT}",
            "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        ]

    @property
    def delegate_to(self) -> str:
        """Our --delegate-to value: its URL with its own CA bundle and client certificate."""
        w = self.work
        return (f"https://127.0.0.1:{self.port},ca={w / 'serving-ca.crt'},"
                f"cert={w / 'client.crt'},key={w / 'client.key'}")

    def start(self) -> None:
        self.process.start(self.command, cwd=self.work)
        self.process.wait_ready(self._ready, timeout=60, interval=0.2)

    def _ready(self) -> bool:
        import urllib.request

        context = ssl.create_default_context(cafile=str(self.work / "serving-ca.crt"))
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{self.port}/readyz", context=context, timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        self.process.stop(grace=5)


@pytest.fixture(scope="module")
def adapters(control_plane: ControlPlane, delegate_adapter: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[AdapterProcess, GoAdapter]]:
    work = tmp_path_factory.mktemp("custom-metrics-apiserver")
    theirs = GoAdapter(delegate_adapter, control_plane, work)
    with delegating_adapter(control_plane, work / "ours", theirs, "--delegate-to", theirs.delegate_to,
                            "--delegate-timeout", "2") as ours:
        yield ours, theirs


def external_hpa(name: str, metric: str, labels: dict[str, str], average: int) -> dict[str, Any]:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                     "minReplicas": 1, "maxReplicas": 10,
                     "metrics": [{"type": "External", "external": {
                         "metric": {"name": metric, "selector": {"matchLabels": labels}},
                         "target": {"type": "AverageValue", "averageValue": str(average)}}}]}}


def replicas(cp: ControlPlane, namespace: str, name: str) -> int:
    return int(cp.kubectl_json("get", "deployment", name, "-n", namespace)["spec"]["replicas"])


def their_metric(namespace: str, selector: str) -> str:
    return (f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{THEIR_METRIC}"
            f"?labelSelector={quote(selector)}")


def test_an_hpa_on_each_adapter_through_the_one_apiservice(control_plane: ControlPlane, namespace: str,
                                                           adapters: tuple[AdapterProcess, GoAdapter]) -> None:
    cp = control_plane
    ours, _ = adapters
    # their metric, read by kubectl through kube-apiserver and our adapter
    ok, out = raw(cp, their_metric(namespace, "foo=bar"))
    assert ok, out
    items = json.loads(out)["items"]
    assert [(i["metricName"], i["metricLabels"], i["value"]) for i in items] == [(THEIR_METRIC, {"foo": "bar"}, "42")]

    # ours: ceil(3 / 1) = 3 replicas; theirs: ceil(42 / 10) = 5 replicas, both at the same time
    apply(cp, namespace, scaled_object("ours", {"type": "cron", "metadata": {**ALWAYS, "desiredReplicas": "3"}}),
          deployment("ours"), external_hpa("ours", CRON_METRIC, {"scaledobject.keda.sh/name": "ours"}, 1),
          deployment("theirs"), external_hpa("theirs", THEIR_METRIC, {"foo": "bar"}, 10))
    wait_for(lambda: replicas(cp, namespace, "ours") == 3 and replicas(cp, namespace, "theirs") == 5,
             timeout=90, what="both HPAs scaled on their adapter's metric")
    for name in ("ours", "theirs"):
        status = cp.kubectl_json("get", "hpa", name, "-n", namespace)["status"]
        able = next(c for c in status["conditions"] if c["type"] == "ScalingActive")
        assert able["status"] == "True", (name, able)
    assert "delegate=" not in ours.log()  # no delegate failure on the way
