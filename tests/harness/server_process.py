"""A real test server as a child process: started, waited for, and stopped for good.

The harness runs real servers (redis-server, rabbitmq-server) as children of the test process,
each in a temporary directory of its own that keeps the server's output in `server.out`. A start
polls the harness's own readiness check and fails early, with the end of that output, when the
process exits or the deadline passes. A stop sends SIGTERM and, after a grace period, SIGKILL to
the whole process group (a server started in its own session, so helpers it forked go too).
`ServerContext` is the context-manager shape the harness servers share: a failed start is
stopped (and cleaned up) before the error leaves `with`. Fault tests `signal` the whole group
(SIGSTOP/SIGCONT) or `kill` it (SIGKILL, as `kill -9` does) and start it again on the same ports.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Self


class ServerProcess:
    """One server process named `name` (for messages), logging into `directory/server.out`."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.log_path = directory / "server.out"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, command: Sequence[str], *, env: Mapping[str, str] | None = None,
              cwd: Path | None = None) -> None:
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, ready: Callable[[], bool], *, timeout: float, interval: float) -> None:
        """Poll `ready()` until it is true; raise if the process exits or `timeout` passes."""
        assert self._process is not None, "start() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_tail()}")
            if ready():
                return
            time.sleep(interval)
        raise RuntimeError(f"{self.name} not ready after {timeout}s: {self.log_tail()}")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        """Send `sig` to the server's whole process group (SIGSTOP freezes every process of it)."""
        assert self._process is not None, "start() first"
        os.killpg(self._process.pid, sig)

    def kill(self) -> None:
        """SIGKILL the process group and reap it: the server gets no chance to close anything."""
        if self.running:
            self.signal(signal.SIGKILL)
            assert self._process is not None
            self._process.wait(timeout=10)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def stop(self, *, grace: float) -> None:
        """SIGTERM, then SIGKILL to the process group if it is still running after `grace` seconds."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


class ServerContext(ABC):
    """Starts on `with`, stops after it; a start that fails is stopped before the error leaves."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
