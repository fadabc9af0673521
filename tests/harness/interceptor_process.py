"""Run `python -m adapter interceptor` as a user would, and read what it reports.

`InterceptorProcess` starts the interceptor with the given flags on free loopback ports, waits
for its `/readyz`, keeps its log in a file, and reads its `/metrics` (pending, held and routed
requests per route) and its resident memory.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.harness.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def http_scaled_object(name: str, namespace: str = "default", **metadata: str) -> dict[str, Any]:
    """A ScaledObject with one `http` trigger (port 80 unless given)."""
    trigger = {"type": "http", "metadata": {"port": "80", **metadata}}
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"scaleTargetRef": {"name": name}, "triggers": [trigger]}}


def write_objects(directory: Path, *objects: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "objects.yaml").write_text(yaml.safe_dump_all(objects))
    return directory


@dataclass
class InterceptorProcess:
    args: tuple[str, ...]
    log_path: Path
    port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    tls_port: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}"

    def command(self) -> list[str]:
        tls = ["--tls-listen", f"127.0.0.1:{self.tls_port}"] if self.tls_port else []
        return [sys.executable, "-m", "adapter", "interceptor", "--listen", f"127.0.0.1:{self.port}",
                "--admin-listen", f"127.0.0.1:{self.admin_port}", *tls, *self.args]

    def start(self, timeout: float = 30.0) -> InterceptorProcess:
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(self.command(), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"interceptor exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.admin_port}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"interceptor not ready within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def metrics(self) -> dict[str, float]:
        """`name{namespace,scaledobject}` (or plain `name`) -> value, from /metrics."""
        text = httpx.get(f"http://127.0.0.1:{self.admin_port}/metrics", timeout=5).text
        found: dict[str, float] = {}
        for line in text.splitlines():
            match = re.match(r'^(\w+)(?:\{namespace="([^"]*)",scaledobject="([^"]*)"\})? (\S+)$', line)
            if match:
                name, namespace, so, value = match.groups()
                found[f"{name}{{{namespace}/{so}}}" if so else name] = float(value)
        return found

    def gauge(self, name: str, route: str) -> float:
        return self.metrics().get(f"eventscale_interceptor_{name}{{{route}}}", 0.0)

    def rss_bytes(self) -> int:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def __enter__(self) -> InterceptorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for(condition: Any, timeout: float = 10.0, what: str = "condition", interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout}s")
