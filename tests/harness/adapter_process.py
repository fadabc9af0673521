"""Run `python -m adapter serve` as a user would, and talk to it over real HTTPS.

`AdapterProcess` generates certificates with the CLI, starts the server on a free loopback
port, waits for `/readyz`, and keeps its log in a file so tests can assert on what it said.
Without a `local_dir` it runs in cluster mode (pass `--kubeconfig` in `extra_args`). With `netns`
it runs inside that network namespace (`ip netns exec`), listening on `host` there, its
readiness checked over the namespace's link with the certificate checked for `tls_name`.
`Identity` builds httpx clients that present one of the generated client certificates.
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.harness.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """`python -m adapter ARGS` of the source tree at `cwd` (another checkout runs its own code)."""
    return subprocess.run([sys.executable, "-m", "adapter", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=source_env(cwd))


def source_env(root: Path) -> dict[str, str]:
    """The environment that makes `python -m adapter` import the tree at `root`, not the installed one."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(root)}


@dataclass
class AdapterProcess:
    local_dir: Path | None
    cert_dir: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()
    certs_args: tuple[str, ...] = ()  # e.g. ("--service", name, "--namespace", ns)
    root: Path = ROOT  # the source tree to run (benchmarks compare an older checkout)
    host: str = "127.0.0.1"  # where it listens
    netns: str | None = None  # a network namespace to run in (tests.harness.netns)
    tls_name: str | None = None  # the name the readiness check wants in the serving certificate (default: host)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Certificates, then the process, without waiting for it (`wait_ready`): so several start at once."""
        result = run_cli("certs", "--cert-dir", str(self.cert_dir), "--port", str(self.port), *self.certs_args,
                         cwd=self.root)
        if result.returncode != 0:
            raise RuntimeError(f"certs failed: {result.stderr}")
        self._log = self.log_path.open("ab")
        source = ["--local-dir", str(self.local_dir)] if self.local_dir is not None else []
        inside = ["ip", "netns", "exec", self.netns] if self.netns else []
        self.process = subprocess.Popen(
            [*inside, sys.executable, "-m", "adapter", "serve", *source, "--cert-dir", str(self.cert_dir),
             "--secure-port", str(self.port), "--bind-address", self.host, *self.extra_args],
            cwd=self.root, stdout=self._log, stderr=subprocess.STDOUT, env=source_env(self.root),
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + timeout
        sni = {"sni_hostname": self.tls_name} if self.tls_name else {}
        with httpx.Client(verify=self.tls(None), timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"adapter exited with {self.process.returncode}:\n{self.log()}")
                try:
                    if client.get(f"{self.base_url}/readyz", extensions=sni).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"adapter not ready within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def client(self, identity: str | None = "admin", **kwargs: object) -> httpx.Client:
        """An HTTPS client presenting `<identity>.crt` from the cert dir (None: no certificate)."""
        kwargs.setdefault("timeout", 10)
        return httpx.Client(base_url=self.base_url, verify=self.tls(identity), **kwargs)  # type: ignore[arg-type]

    def tls(self, identity: str | None = "admin") -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.cert_dir / "ca.crt"))
        if identity:
            context.load_cert_chain(self.cert_dir / f"{identity}.crt", self.cert_dir / f"{identity}.key")
        return context


@contextmanager
def running_adapter(local_dir: Path, cert_dir: Path, log_path: Path, *extra: str,
                    root: Path = ROOT) -> Iterator[AdapterProcess]:
    adapter = AdapterProcess(local_dir, cert_dir, log_path, extra_args=extra, root=root)
    try:
        adapter.start()
        yield adapter
    finally:
        adapter.stop()
