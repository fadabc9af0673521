"""The command line as a user runs it: `certs`, `serve`, and `make run` answered by kubectl."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509

from adapter.certs import CertLayout
from tests.cluster.build import ensure_binaries
from tests.harness.adapter_process import ROOT, run_cli, running_adapter
from tests.harness.ports import free_port


def test_help_lists_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0 and "certs" in result.stdout and "serve" in result.stdout


def test_certs_writes_private_keys_0600_and_reuses_material(tmp_path: Path) -> None:
    result = run_cli("certs", "--cert-dir", str(tmp_path), "--service", "adapter", "--namespace", "ops",
                     "--host", "metrics.example.com")
    assert result.returncode == 0, result.stderr
    for key in tmp_path.glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert stat.S_IMODE((tmp_path / "kubeconfig").stat().st_mode) == 0o600
    layout = CertLayout(tmp_path)
    serving = layout.load("serving").cert
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = set(sans.get_values_for_type(x509.DNSName)) | {str(i) for i in sans.get_values_for_type(x509.IPAddress)}
    assert {"localhost", "127.0.0.1", "::1", "adapter", "adapter.ops", "adapter.ops.svc",
            "adapter.ops.svc.cluster.local", "metrics.example.com"} <= names
    admin = layout.load("admin").cert
    assert admin.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    proxy = layout.load("front_proxy_client").cert
    assert proxy.issuer == layout.load("front_proxy_ca").cert.subject
    before = (tmp_path / "ca.crt").read_bytes()
    again = run_cli("certs", "--cert-dir", str(tmp_path))
    assert "reused" in again.stdout and (tmp_path / "ca.crt").read_bytes() == before
    forced = run_cli("certs", "--cert-dir", str(tmp_path), "--force")
    assert forced.returncode == 0 and (tmp_path / "ca.crt").read_bytes() != before


def test_certs_rewrites_the_kubeconfig_for_another_port_and_keeps_the_keys(tmp_path: Path) -> None:
    assert run_cli("certs", "--cert-dir", str(tmp_path), "--port", "6443").returncode == 0
    ca = (tmp_path / "ca.crt").read_bytes()
    again = run_cli("certs", "--cert-dir", str(tmp_path), "--port", "6500")
    assert again.returncode == 0 and again.stdout.startswith("wrote kubeconfig in"), again.stdout
    assert "server: https://127.0.0.1:6500" in (tmp_path / "kubeconfig").read_text()
    assert (tmp_path / "ca.crt").read_bytes() == ca
    assert "reused" in run_cli("certs", "--cert-dir", str(tmp_path), "--port", "6500").stdout


def test_serve_without_certificates_explains(tmp_path: Path) -> None:
    result = run_cli("serve", "--local-dir", str(tmp_path), "--cert-dir", str(tmp_path / "none"))
    assert result.returncode == 2 and "python -m adapter certs" in result.stderr


@pytest.mark.parametrize("value, error", [
    ("http://prometheus-adapter:443/apis", "--delegate-to 'http://prometheus-adapter:443/apis': expected https://host:port"),
    ("https://prometheus-adapter:443,cert=/c.crt", "--delegate-to https://prometheus-adapter:443: a client certificate "
                                                   "needs its key"),
    ("service:monitoring/prometheus-adapter", "--delegate-to service:monitoring/prometheus-adapter:443: a delegate "
                                              "named as a Service needs cluster mode"),
    ("service:monitoring/Prometheus", "expected service:NAMESPACE/NAME[:PORT]"),
])
def test_serve_refuses_a_delegate_it_cannot_use(tmp_path: Path, value: str, error: str) -> None:
    result = run_cli("serve", "--local-dir", str(tmp_path), "--cert-dir", str(tmp_path), "--delegate-to", value)
    assert result.returncode == 2 and error in result.stderr


def test_make_run_prints_a_kubectl_command_that_works(tmp_path: Path) -> None:
    kubectl = ensure_binaries() / "kubectl"
    port = free_port()
    certs = tmp_path / "certs"
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"PORT={port}", f"CERTS={certs}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        command = _wait_for_line(process, r"^try: (kubectl .*)$")
        command = command.replace("kubectl ", f"{kubectl} ", 1)
        result = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        assert '"kind":"ExternalMetricValueList"' in result.stdout
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)


def _wait_for_line(process: subprocess.Popen[str], pattern: str, timeout: float = 120) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    seen = []
    for line in process.stdout:
        seen.append(line)
        match = re.match(pattern, line.strip())
        if match:
            return match.group(1)
        if time.monotonic() > deadline:
            break
    raise AssertionError("no kubectl command printed:\n" + "".join(seen))


LEGACY = """apiVersion: keda.k8s.io/v1alpha1
kind: ScaledObject
metadata: {name: old, namespace: default}
spec:
  scaleTargetRef: {deploymentName: old-worker}
  triggers:
    - type: cron
      metadata: {timezone: UTC, start: "0 0 1 1 *", end: "59 23 31 12 *", desiredReplicas: "4"}
"""


def test_every_served_metric_is_logged_with_a_kubectl_command_that_works(tmp_path: Path) -> None:
    kubectl = ensure_binaries() / "kubectl"
    objects = tmp_path / "objects"
    objects.mkdir()
    (objects / "legacy.yaml").write_text(LEGACY)  # selected by deploymentName, not scaledobject.keda.sh/name
    with running_adapter(objects, tmp_path / "certs", tmp_path / "adapter.log") as adapter:
        (objects / "new.yaml").write_text(LEGACY.replace("keda.k8s.io", "keda.sh").replace("name: old,", "name: new,")
                                          .replace("deploymentName: old-worker", "name: new-worker")
                                          .replace('"4"', '"6"'))
        deadline = time.monotonic() + 30
        while len(commands := list(dict.fromkeys(re.findall(r"try=(kubectl .*)$", adapter.log(), re.M)))) < 2:
            assert time.monotonic() < deadline, adapter.log()
            time.sleep(0.1)
        printed = re.findall(r"^try: (kubectl .*)$", adapter.log(), re.M)
        assert printed == [commands[0]] and "deploymentName%3Dold-worker" in commands[0]
        assert "scaledobject.keda.sh%2Fname%3Dnew" in commands[1]
        for command, value in zip(commands, ('"value":"4"', '"value":"6"'), strict=True):
            result = subprocess.run(command.replace("kubectl ", f"{kubectl} ", 1), shell=True, capture_output=True,
                                    text=True, timeout=30)
            assert result.returncode == 0 and value in result.stdout, result.stderr
