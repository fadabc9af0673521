"""The container image as a cluster runs it: built from the Dockerfile, run by podman.

The image is built once per session on a local Debian base (tests/harness/container_image.py)
and run read-only (no tmpfs either), as its own non-root user, without capabilities: its
entrypoint prints the help, and `serve --local-dir` answers a metric over HTTPS from inside the
container to a client outside it (host network, loopback). The image has no shell, so nothing
in it can need one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import yaml

from adapter.keda.names import SCALED_OBJECT_LABEL
from scalers.base import metric_name
from scalers.cron import CronScaler
from scalers.params import TriggerParams
from tests.harness.adapter_process import run_cli
from tests.harness.container_image import Podman, build_image, ensure_base_image, podman, ulimits
from tests.harness.ports import free_port

# a cold run (debootstrap, then pip in the build) takes minutes: more than the default per-test timeout
pytestmark = [pytest.mark.container, pytest.mark.timeout(1500)]

REPOSITORY = "localhost/eventscale"
UID = 65532
LOCKED_DOWN = ("--read-only", "--read-only-tmpfs=false", "--cap-drop=all", "--security-opt=no-new-privileges")


@dataclass(frozen=True)
class Built:
    pod: Podman
    image: str
    base_seconds: float
    build_seconds: float


@pytest.fixture(scope="module")
def built(request: pytest.FixtureRequest) -> Built:
    pod = podman()
    started = time.monotonic()
    base = ensure_base_image(pod)
    base_done = time.monotonic()
    image, fresh = build_image(pod, REPOSITORY, base)
    built = Built(pod, image, base_done - started, time.monotonic() - base_done)
    _report(request, f"container image: base ready in {built.base_seconds:.1f}s, {image} "
                     f"{'built' if fresh else 'reused'} in {built.build_seconds:.1f}s")
    return built


def _report(request: pytest.FixtureRequest, line: str) -> None:
    plugins = request.config.pluginmanager
    reporter, capture = plugins.getplugin("terminalreporter"), plugins.getplugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)


def run(built: Built, *args: str, entrypoint: str | None = None) -> tuple[int, str]:
    options = [*ulimits(), *LOCKED_DOWN] + (["--entrypoint", entrypoint] if entrypoint else [])
    result = built.pod.run("run", "--rm", *options, built.image, *args, check=False)
    return result.returncode, result.stdout + result.stderr


def test_runs_as_a_non_root_user(built: Built) -> None:
    config = json.loads(built.pod.run("image", "inspect", built.image).stdout)[0]["Config"]
    assert config["User"] == f"{UID}:{UID}"
    code, out = run(built, "-c", "import os; print(os.getuid(), os.getgid())",
                    entrypoint="/opt/eventscale/bin/python")
    assert (code, out.split()) == (0, [str(UID), str(UID)])


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash", "/usr/bin/dash"])
def test_has_no_shell(built: Built, shell: str) -> None:
    code, out = run(built, "-c", "true", entrypoint=shell)
    assert code != 0 and "no such file or directory" in out.lower(), out


def test_entrypoint_prints_help(built: Built) -> None:
    code, out = run(built, "--help")
    assert code == 0, out
    assert "serve" in out and "controller" in out and "convert" in out


@pytest.fixture
def served(built: Built, tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    """`serve --local-dir` in the container on a free port: (base URL, cert dir, metric path)."""
    port = free_port()
    certs, objects = tmp_path / "certs", tmp_path / "objects"
    result = run_cli("certs", "--cert-dir", str(certs), "--port", str(port))
    assert result.returncode == 0, result.stderr
    metric = _write_cron_object(objects)
    for path in (certs, *certs.iterdir()):  # the image's user reads the keys (0600)
        os.chown(path, UID, UID)
    name = f"eventscale-test-{uuid.uuid4().hex[:8]}"
    built.pod.run("run", "--detach", "--name", name, "--network", "host", *ulimits(), *LOCKED_DOWN,
                  "-v", f"{certs}:/certs:ro", "-v", f"{objects}:/objects:ro", built.image,
                  "serve", "--local-dir", "/objects", "--cert-dir", "/certs", "--secure-port", str(port),
                  "--bind-address", "127.0.0.1", "--internal-port", "0")
    try:
        yield f"https://127.0.0.1:{port}", certs, metric
    finally:
        logs = built.pod.run("logs", name, check=False)
        print(logs.stdout + logs.stderr)
        built.pod.run("rm", "--force", "--time", "5", name, check=False)


def _write_cron_object(directory: Path) -> str:
    """A cron ScaledObject inside its window (value 3); returns its metric's path."""
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(minutes=10), now + dt.timedelta(hours=3)
    metadata = {"timezone": "UTC", "start": f"{start.minute} {start.hour} * * *",
                "end": f"{end.minute} {end.hour} * * *", "desiredReplicas": "3"}
    directory.mkdir()
    (directory / "office.yaml").write_text(yaml.safe_dump({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "office"},
        "spec": {"scaleTargetRef": {"name": "web"}, "triggers": [{"type": "cron", "metadata": metadata}]}}))
    scaler = CronScaler()
    name = metric_name(0, scaler.metric(scaler.parse("cron", TriggerParams(metadata))).name)
    selector = quote(f"{SCALED_OBJECT_LABEL}=office", safe="")
    return f"/apis/external.metrics.k8s.io/v1beta1/namespaces/default/{name}?labelSelector={selector}"


def test_serve_answers_a_metric_over_https_from_inside_the_container(served: tuple[str, Path, str]) -> None:
    base_url, certs, metric = served
    tls = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    tls.load_cert_chain(certs / "admin.crt", certs / "admin.key")
    with httpx.Client(base_url=base_url, verify=tls, timeout=5) as client:
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the containerized adapter did not become ready within 60s"
            time.sleep(0.2)
        response = client.get(metric)
    assert response.status_code == 200, response.text
    assert response.json()["items"][0]["value"] == "3"
