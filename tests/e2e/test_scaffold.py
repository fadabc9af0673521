"""`eventscale scaffold` output as a user applies it: `kubectl apply` (strict field validation,
the shipped CRDs) creates every object, the credential is only in the Secret, and a bad trigger
is refused before anything is written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cluster_adapter import CRDS
from controlplane import ControlPlane

from tests.harness.adapter_process import ROOT

pytestmark = pytest.mark.e2e

EVENTSCALE = Path(sys.executable).parent / "eventscale"
PASSWORD = "Scaffold-pa55word"


def scaffold(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EVENTSCALE), "scaffold", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture(scope="module")
def crds(control_plane: ControlPlane) -> ControlPlane:
    control_plane.kubectl("apply", "--server-side", "-k", str(ROOT / "manifests/crds"), timeout=120)
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{c}" for c in CRDS))
    return control_plane


def test_scaffold_output_is_applied_by_kubectl(crds: ControlPlane, namespace: str, tmp_path: Path) -> None:
    out = tmp_path / "worker.yaml"
    result = scaffold("--name", "worker", "--image", "registry.example/worker:1", "--trigger", "redis",
                      "--metadata", "address=redis.cache:6379", "--metadata", "listName=jobs",
                      "--auth", f"password={PASSWORD}", "--namespace", namespace, "--max-replicas", "5",
                      "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Deployment worker" in result.stderr and "TriggerAuthentication worker-trigger-auth" in result.stderr
    applied = crds.kubectl("apply", "--validate=strict", "-f", str(out)).stdout
    for created in ("deployment.apps/worker", "secret/worker-trigger-auth",
                    "triggerauthentication.keda.sh/worker-trigger-auth", "scaledobject.keda.sh/worker"):
        assert f"{created} created" in applied, applied
    so = crds.kubectl_json("get", "scaledobject", "worker", "-n", namespace)
    assert so["spec"]["maxReplicaCount"] == 5 and so["spec"]["scaleTargetRef"] == {"name": "worker"}
    (trigger,) = so["spec"]["triggers"]
    assert trigger["metadata"] == {"address": "redis.cache:6379", "listName": "jobs"}
    assert trigger["authenticationRef"] == {"name": "worker-trigger-auth"}
    assert PASSWORD not in str(so) and PASSWORD not in str(crds.kubectl_json("get", "ta", "-n", namespace))
    secret = crds.kubectl("get", "secret", "worker-trigger-auth", "-n", namespace,
                          "-o", "jsonpath={.data.password}").stdout
    assert secret.strip(), "the password is in the Secret"


@pytest.mark.parametrize("args, message", [
    (("--trigger", "redis", "--metadata", "address=r:6379", "--metadata", "listNam=jobs"),
     'missing required parameter "listName"'),
    (("--trigger", "rediss"), "unknown trigger type 'rediss'; known: "),
    (("--trigger", "cron", "--metadata", "timezone=Mars/Olympus", "--metadata", "start=0 8 * * *",
      "--metadata", "end=0 18 * * *", "--metadata", "desiredReplicas=2"), "is not an IANA time zone"),
    (("--trigger", "redis", "--metadata", "listName"), "--metadata 'listName': expected KEY=VALUE"),
])
def test_a_bad_trigger_is_refused_with_its_message(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    out = tmp_path / "worker.yaml"
    result = scaffold("--name", "worker", "--image", "worker:1", *args, "--out", str(out))
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not out.exists()
