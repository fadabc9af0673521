"""Real Redis servers for tests and benchmarks: standalone, TLS, a 3-master cluster, a sentinel.

Each server is a `redis-server` process on free loopback ports in its own temporary directory,
without persistence; the Debian packages are installed when the binaries are missing (a fresh CI
machine). Every server listens on a plain port and, when given `TLSMaterial` (tests/harness/tls),
on a TLS port too, so tests talk TLS to one port and observe the server over the other through
`admin()`.

Observations are server-side, so a test can fail: `clients()` reads CLIENT LIST (connections a
client really holds), `Traffic` diffs INFO stats and commandstats (read events = round trips,
and commands) around a block of code.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from tests.harness.packages import ensure_packages
from tests.harness.ports import free_port
from tests.harness.server_process import ServerContext, ServerProcess
from tests.harness.tls_material import TLSMaterial

START_TIMEOUT = 20.0
SENTINEL_MASTER = "mymaster"
ACL_USER, ACL_PASSWORD = "scaler", "Redis-Pa55word-s3cret"
SENTINEL_PASSWORD = "Sentinel-Pa55word-s3cret"


def _tls_args(tls: TLSMaterial, directory: Path, *, require_client_certs: bool = False) -> list[str]:
    """redis-server options for a TLS port with `tls`'s server files, written into `directory`."""
    files = tls.write_server_files(directory)
    return [
        "--tls-cert-file", str(files.cert),
        "--tls-key-file", str(files.key),
        "--tls-ca-cert-file", str(files.ca),
        "--tls-auth-clients", "yes" if require_client_certs else "optional",
    ]


class RedisServer(ServerContext):
    """One `redis-server` (or sentinel) process; use as a context manager."""

    def __init__(
        self,
        *,
        tls: TLSMaterial | None = None,
        require_client_certs: bool = False,
        extra_args: Sequence[str] = (),
        sentinel_config: str | None = None,
        admin_password: str | None = None,
    ) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="redis-"))
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.tls = tls
        self._require_client_certs = require_client_certs
        self._extra_args = list(extra_args)
        self._sentinel_config = sentinel_config
        self._admin_password = admin_password
        self._server = ServerProcess("redis-server", self.directory)
        self._admin: redis.Redis | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def tls_address(self) -> str:
        return f"127.0.0.1:{self.tls_port}"

    def start(self) -> None:
        ensure_packages("redis-server", ["redis-server"])
        ensure_packages("redis-cli", ["redis-tools"])
        self._server.start(self._command(), cwd=self.directory)
        self._server.wait_ready(self._answers, timeout=START_TIMEOUT, interval=0.05)

    def _command(self) -> list[str]:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        args += ["--save", "", "--appendonly", "no", "--protected-mode", "no"]
        if self.tls is not None:
            args += ["--tls-port", str(self.tls_port)]
            args += _tls_args(self.tls, self.directory, require_client_certs=self._require_client_certs)
        if self._sentinel_config is None:
            return ["redis-server", *args, *self._extra_args]
        config = self.directory / "sentinel.conf"
        config.write_text(self._sentinel_config)
        return ["redis-server", str(config), "--sentinel", *args, *self._extra_args]

    @property
    def process(self) -> ServerProcess:
        """The redis-server process, for fault tests (signal, kill; `start` again to restart)."""
        return self._server

    def _answers(self) -> bool:
        try:
            return bool(self.admin().ping())
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            return False

    def admin(self) -> redis.Redis:
        """A plain-port client for setting up data and observing the server."""
        if self._admin is None:
            self._admin = redis.Redis(
                host="127.0.0.1", port=self.port, password=self._admin_password, socket_timeout=10
            )
        return self._admin

    def add_user(self, name: str = ACL_USER, password: str = ACL_PASSWORD) -> None:
        self.admin().acl_setuser(name, enabled=True, passwords=[f"+{password}"], keys=["*"],
                                 channels=["*"], commands=["+@all"])

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        self._server.stop(grace=10)
        shutil.rmtree(self.directory, ignore_errors=True)


def clients(server: RedisServer, name: str | None = None) -> list[dict[str, Any]]:
    """The server's connections (CLIENT LIST) other than the observer's own, optionally by name."""
    admin = server.admin()
    own_id = admin.client_id()
    listed = [entry for entry in admin.client_list() if int(entry["id"]) != own_id]
    return [entry for entry in listed if name is None or entry.get("name") == name]


@dataclass(frozen=True)
class TrafficCount:
    """What clients sent between two snapshots: read events (round trips) and commands by name."""

    reads: int
    commands: dict[str, int]

    @property
    def total_commands(self) -> int:
        return sum(self.commands.values())


class Traffic:
    """Diffs INFO stats and commandstats; the observer's own INFO calls are subtracted."""

    def __init__(self, server: RedisServer) -> None:
        self._server = server
        self._reads, self._calls = self._snapshot()

    def _snapshot(self) -> tuple[int, dict[str, int]]:
        info: dict[str, Any] = self._server.admin().info("everything")
        calls = {
            name.removeprefix("cmdstat_"): int(stats["calls"])
            for name, stats in info.items()
            if name.startswith("cmdstat_") and name != "cmdstat_info"
        }
        return int(info["total_reads_processed"]), calls

    def since(self) -> TrafficCount:
        """The traffic since the last snapshot, then a new snapshot."""
        reads, calls = self._snapshot()
        delta = {name: count - self._calls.get(name, 0) for name, count in calls.items()}
        count = TrafficCount(reads - self._reads - 1, {k: v for k, v in delta.items() if v})
        self._reads, self._calls = self._snapshot()
        return count


class RedisClusterServers:
    """Three masters (no replicas) forming one cluster, on plain and, with TLS, TLS ports."""

    def __init__(self, size: int = 3, tls: TLSMaterial | None = None) -> None:
        cluster_args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                        "--cluster-node-timeout", "5000"]
        if tls is not None:  # TLS clients are then told TLS ports, plain clients plain ones
            cluster_args += ["--tls-cluster", "yes", "--tls-replication", "yes"]
        self.nodes = [
            RedisServer(tls=tls, extra_args=[*cluster_args, "--cluster-port", str(free_port())])
            for _ in range(size)
        ]
        self.tls = tls
        self._stack = ExitStack()

    @property
    def addresses(self) -> str:
        return ",".join(node.address for node in self.nodes)

    @property
    def tls_addresses(self) -> str:
        return ",".join(node.tls_address for node in self.nodes)

    def __enter__(self) -> RedisClusterServers:
        with ExitStack() as stack:
            for node in self.nodes:
                stack.enter_context(node)
            self._create()
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _create(self) -> None:
        command = ["redis-cli", "--cluster", "create", *(node.address for node in self.nodes),
                   "--cluster-replicas", "0", "--cluster-yes"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {result.stdout[-2000:]}{result.stderr}")
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if all(node.admin().cluster("INFO")["cluster_state"] == "ok" for node in self.nodes):
                return
            time.sleep(0.1)
        raise RuntimeError("cluster did not reach cluster_state:ok")

    def client(self) -> redis.RedisCluster:
        """A cluster client for setting up data."""
        first = self.nodes[0]
        return redis.RedisCluster(host="127.0.0.1", port=first.port)


class RedisSentinelSetup:
    """A master with an ACL user, watched by one sentinel that requires SENTINEL_PASSWORD.

    With `tls`, the sentinel watches the master's TLS port over TLS and listens on a TLS port
    itself, so a client talks TLS to both.
    """

    def __init__(self, tls: TLSMaterial | None = None) -> None:
        self.master = RedisServer(tls=tls)
        self.sentinel: RedisServer | None = None
        self.tls = tls
        self._stack = ExitStack()

    @property
    def sentinel_address(self) -> str:
        assert self.sentinel is not None
        return self.sentinel.tls_address if self.tls else self.sentinel.address

    def __enter__(self) -> RedisSentinelSetup:
        with ExitStack() as stack:
            stack.enter_context(self.master)
            self.master.add_user()
            port = self.master.tls_port if self.tls else self.master.port
            config = (
                f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {port} 1\n"
                f"sentinel auth-user {SENTINEL_MASTER} {ACL_USER}\n"
                f"sentinel auth-pass {SENTINEL_MASTER} {ACL_PASSWORD}\n"
                f"sentinel down-after-milliseconds {SENTINEL_MASTER} 60000\n"
                f"requirepass {SENTINEL_PASSWORD}\n"
                + ("tls-replication yes\n" if self.tls else "")
            )
            self.sentinel = RedisServer(tls=self.tls, sentinel_config=config, admin_password=SENTINEL_PASSWORD)
            stack.enter_context(self.sentinel)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
