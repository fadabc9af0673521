"""Two replicas with --self-signed-certs share one CA through the Secret, against the real control plane.

Both adapters start at the same moment with no Secret, as two pods of the shipped Deployment
would, as the shipped ServiceAccount (so the Role in manifests/rbac is what allows the Secret).
The aggregator reaches one of them through the test's ExternalName Service (`localhost`); the
APIService's port picks which, as the Service would pick a ready pod.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cluster_adapter import (
    ADAPTER_USER,
    APISERVICE,
    E2E_SERVICE,
    NAMESPACE,
    apply,
    available,
    install,
    metric_value,
    register,
    scaled_object,
    token_kubeconfig,
    wait_available,
)
from controlplane import ControlPlane, wait_for

from adapter.auth.serving_certs import SECRET_NAME
from scalers.base import metric_name
from scalers.cron import CronScaler
from scalers.params import TriggerParams
from tests.harness.adapter_process import ROOT
from tests.harness.ports import free_port

pytestmark = pytest.mark.e2e

SERVER_NAME = f"{E2E_SERVICE}.{NAMESPACE}.svc"  # what the aggregator verifies


@dataclass
class Replica:
    """`python -m adapter serve --self-signed-certs` as one pod's adapter would run it."""

    name: str
    work: Path
    kubeconfig: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.work / f"{self.name}.log"

    def start(self) -> Replica:
        cert_dir = self.work / f"{self.name}-certs-{time.monotonic_ns()}"  # a fresh emptyDir per start
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "adapter", "serve", "--kubeconfig", str(self.kubeconfig),
                 "--self-signed-certs", "--cert-dir", str(cert_dir), "--secure-port", str(self.port),
                 "--service-name", E2E_SERVICE, "--cluster-object-namespace", NAMESPACE, "--internal-port", "0",
                 "--metric-max-age", "0.5"],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def served_certificate(self, ca_pem: bytes) -> bytes | None:
        """The DER certificate it serves, verified against `ca_pem` for the aggregator's name; None until up."""
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")
        context = ssl.create_default_context(cadata=ca_pem.decode())
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw, \
                    context.wrap_socket(raw, server_hostname=SERVER_NAME) as tls:
                return tls.getpeercert(binary_form=True)
        except ConnectionRefusedError:
            return None


@pytest.fixture(scope="module")
def installed(control_plane: ControlPlane) -> ControlPlane:
    install(control_plane)
    return control_plane


@pytest.fixture
def replicas(installed: ControlPlane, tmp_path: Path) -> Iterator[tuple[Replica, Replica]]:
    cp = installed
    cp.kubectl("delete", "secret", SECRET_NAME, "-n", NAMESPACE, "--ignore-not-found")
    kubeconfig = token_kubeconfig(cp, tmp_path / "sa.kubeconfig")
    pair = (Replica("a", tmp_path, kubeconfig, free_port()), Replica("b", tmp_path, kubeconfig, free_port()))
    try:
        yield pair
    finally:
        for replica in pair:
            replica.stop()
        cp.kubectl("delete", "apiservice", APISERVICE, "--ignore-not-found", check=False)


def report(request: pytest.FixtureRequest, line: str) -> None:
    """A measured figure, shown in the terminal even when output is captured."""
    plugins = request.config.pluginmanager
    reporter, capture = plugins.getplugin("terminalreporter"), plugins.getplugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)


def shared_secret(cp: ControlPlane) -> dict[str, bytes] | None:
    found = cp.kubectl("get", "secret", SECRET_NAME, "-n", NAMESPACE, "-o", "json", check=False)
    if found.returncode != 0:
        return None
    secret = json.loads(found.stdout)
    assert secret["type"] == "kubernetes.io/tls"
    return {"resourceVersion": secret["metadata"]["resourceVersion"].encode(),
            **{key: base64.b64decode(value) for key, value in secret["data"].items()}}


def point_at(cp: ControlPlane, replica: Replica) -> None:
    """The APIService's port: which replica the aggregator reaches (the caBundle is left alone)."""
    cp.kubectl("patch", "apiservice", APISERVICE, "--type=merge",
               "-p", json.dumps({"spec": {"service": {"port": replica.port}}}))


def cron_object(cp: ControlPlane, namespace: str) -> tuple[str, str]:
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(minutes=10), now + dt.timedelta(hours=3)
    metadata = {"timezone": "UTC", "start": f"{start.minute} {start.hour} * * *",
                "end": f"{end.minute} {end.hour} * * *", "desiredReplicas": "4"}
    scaler = CronScaler()
    apply(cp, namespace, scaled_object("shared", {"type": "cron", "metadata": metadata}))
    return "shared", metric_name(0, scaler.metric(scaler.parse("cron", TriggerParams(metadata))).name)


def test_two_replicas_share_one_ca_through_the_secret(installed: ControlPlane, replicas: tuple[Replica, Replica],
                                                      namespace: str, request: pytest.FixtureRequest) -> None:
    cp, (a, b) = installed, replicas
    register(cp, a.port, ca_pem=None)  # no caBundle: the adapters must provide it
    so, metric = cron_object(cp, namespace)
    started = time.monotonic()
    a.start()  # both at once, racing for the Secret
    b.start()

    secret = wait_for(lambda: shared_secret(cp), timeout=60, what=f"Secret {SECRET_NAME}")
    ca = secret["ca.crt"]
    for replica in (a, b):  # both serve the Secret's certificate, verified with its CA for the Service name
        served = wait_for(lambda r=replica: r.served_certificate(ca), timeout=60, what=f"{replica.name} serving")
        assert ssl.DER_cert_to_PEM_cert(served).encode() == secret["tls.crt"]
    tls_secrets = cp.kubectl_json("get", "secrets", "-n", NAMESPACE, "--field-selector=type=kubernetes.io/tls")
    assert [s["metadata"]["name"] for s in tls_secrets["items"]] == [SECRET_NAME]
    logs = a.log() + b.log()
    assert logs.count("created with a new CA") == 1 and "updated with a new CA" not in logs, logs
    bundle = cp.kubectl_json("get", "apiservice", APISERVICE)["spec"]["caBundle"]
    assert base64.b64decode(bundle) == ca
    wait_available(cp)
    wait_for(lambda: metric_value(cp, namespace, metric, so) == "4", timeout=30, what="the metric through a")
    report(request, f"--self-signed-certs, two replicas: start to Available {time.monotonic() - started:.2f}s")

    a.stop()  # one replica down: the aggregator reaches the other, with the same caBundle
    point_at(cp, b)
    wait_for(lambda: available(cp), timeout=60, what="Available through b")
    wait_for(lambda: metric_value(cp, namespace, metric, so) == "4", timeout=30, what="the metric through b")
    assert base64.b64decode(cp.kubectl_json("get", "apiservice", APISERVICE)["spec"]["caBundle"]) == ca

    a.start()  # a restart (fresh cert dir) reuses the Secret: the CA does not change
    served = wait_for(lambda: a.served_certificate(ca), timeout=60, what="a serving again")
    assert ssl.DER_cert_to_PEM_cert(served).encode() == secret["tls.crt"]
    assert shared_secret(cp) == secret  # not rewritten: same resourceVersion
    b.stop()
    point_at(cp, a)
    wait_for(lambda: metric_value(cp, namespace, metric, so) == "4", timeout=30, what="the metric through a again")
    assert base64.b64decode(cp.kubectl_json("get", "apiservice", APISERVICE)["spec"]["caBundle"]) == ca
    logs = a.log() + b.log()
    assert logs.count("created with a new CA") == 1 and "replacing" not in logs, logs


@pytest.mark.parametrize("verb, resource, namespace, allowed", [
    ("create", "secrets", NAMESPACE, True),
    ("get", f"secrets/{SECRET_NAME}", NAMESPACE, True),
    ("update", f"secrets/{SECRET_NAME}", NAMESPACE, True),
    ("update", "secrets/other", NAMESPACE, False),
    ("delete", f"secrets/{SECRET_NAME}", NAMESPACE, False),
    ("patch", f"secrets/{SECRET_NAME}", NAMESPACE, False),
    ("create", "secrets", "default", False),
    ("update", f"secrets/{SECRET_NAME}", "default", False),
])
def test_certificate_secret_rights_are_least_privilege(installed: ControlPlane, verb: str, resource: str,
                                                       namespace: str, allowed: bool) -> None:
    result = installed.kubectl("auth", "can-i", verb, resource, "-n", namespace, f"--as={ADAPTER_USER}",
                               check=False)
    assert result.stdout.strip() == ("yes" if allowed else "no"), result.stderr
