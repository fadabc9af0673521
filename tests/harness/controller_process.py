"""Run `python -m adapter controller` as a sidecar would, and kill it as a node failure would.

`ControllerProcess` starts the controller against a kubeconfig and an adapter's internal
listener, keeps its log in a file, and can be stopped cleanly (SIGTERM: the Lease is released)
or killed (SIGKILL: the Lease is left to expire). It can be started again after either.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ControllerProcess:
    identity: str
    kubeconfig: Path
    adapter_url: str
    log_path: Path
    flags: tuple[str, ...] = ()
    lease_namespace: str = "eventscale"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> ControllerProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "adapter", "controller", "--kubeconfig", str(self.kubeconfig),
                 "--adapter-url", self.adapter_url, "--lease-namespace", self.lease_namespace,
                 "--identity", self.identity, *self.flags],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up, the Lease stays held until it expires."""
        if self.process is not None and self.running:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.running:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self, since: int = 0) -> str:
        """The log from byte `since` on (`log_size()` taken earlier): a wait on the next line
        need not reread what a long run wrote before."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(since)
            return log.read().decode(errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0
