"""Real Redis servers for tests and benchmarks: standalone, TLS, a 3-master cluster, a sentinel.

Each server is a `redis-server` process on free loopback ports in its own temporary directory,
without persistence; the Debian package is installed when the binary is missing (a fresh CI
machine). Every server listens on a plain port and, when given `TLSMaterial`, on a TLS port too,
so tests talk TLS to one port and observe the server over the other through `admin()`.

Observations are server-side, so a test can fail: `clients()` reads CLIENT LIST (connections a
client really holds), `Traffic` diffs INFO stats and commandstats (read events = round trips,
and commands) around a block of code.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from cryptography.hazmat.primitives import serialization

from adapter.certs import issue, new_ca
from tests.harness.ports import free_port

START_TIMEOUT = 20.0
SENTINEL_MASTER = "mymaster"
ACL_USER, ACL_PASSWORD = "scaler", "Redis-Pa55word-s3cret"
SENTINEL_PASSWORD = "Sentinel-Pa55word-s3cret"
KEY_PASSWORD = "Key-Pa55phrase-s3cret"


def ensure_installed() -> None:
    """Install redis-server (and redis-cli with it) when missing."""
    if shutil.which("redis-server") and shutil.which("redis-cli"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "-o", "DPkg::Lock::Timeout=300", "redis-server", "redis-tools"],
    ):
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stderr[-2000:]}")


@dataclass(frozen=True)
class TLSMaterial:
    """A CA, a server certificate for 127.0.0.1/localhost and client certificates, as PEM text."""

    ca_pem: str
    server_cert_pem: str
    server_key_pem: str
    client_cert_pem: str
    client_key_pem: str
    client_key_encrypted_pem: str  # the same key, encrypted with KEY_PASSWORD

    @classmethod
    def generate(cls, name: str = "redis-test-ca") -> TLSMaterial:
        ca = new_ca(name)
        server = issue(ca, "localhost", hosts=["127.0.0.1", "localhost"], server=True, client=True)
        client = issue(ca, "scaler-client", client=True)
        encrypted = client.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
        )
        return cls(
            ca_pem=ca.cert_pem.decode(),
            server_cert_pem=server.cert_pem.decode(),
            server_key_pem=server.key_pem.decode(),
            client_cert_pem=client.cert_pem.decode(),
            client_key_pem=client.key_pem.decode(),
            client_key_encrypted_pem=encrypted.decode(),
        )

    def server_args(self, directory: Path, *, require_client_certs: bool = False) -> list[str]:
        (directory / "ca.pem").write_text(self.ca_pem)
        (directory / "server.pem").write_text(self.server_cert_pem)
        key_path = directory / "server.key"
        key_path.write_text(self.server_key_pem)
        key_path.chmod(0o600)
        return [
            "--tls-cert-file", str(directory / "server.pem"),
            "--tls-key-file", str(key_path),
            "--tls-ca-cert-file", str(directory / "ca.pem"),
            "--tls-auth-clients", "yes" if require_client_certs else "optional",
        ]


class RedisServer:
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
        self._process: subprocess.Popen[bytes] | None = None
        self._admin: redis.Redis | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def tls_address(self) -> str:
        return f"127.0.0.1:{self.tls_port}"

    def __enter__(self) -> RedisServer:
        ensure_installed()
        log = (self.directory / "server.out").open("wb")
        self._process = subprocess.Popen(
            self._command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.directory, start_new_session=True
        )
        log.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _command(self) -> list[str]:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        args += ["--save", "", "--appendonly", "no", "--protected-mode", "no"]
        if self.tls is not None:
            args += ["--tls-port", str(self.tls_port)]
            args += self.tls.server_args(self.directory, require_client_certs=self._require_client_certs)
        if self._sentinel_config is None:
            return ["redis-server", *args, *self._extra_args]
        config = self.directory / "sentinel.conf"
        config.write_text(self._sentinel_config)
        return ["redis-server", str(config), "--sentinel", *args, *self._extra_args]

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log_tail()}")
            try:
                if self.admin().ping():
                    return
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                time.sleep(0.05)
        raise RuntimeError(f"redis-server not ready after {START_TIMEOUT}s: {self.log_tail()}")

    def log_tail(self) -> str:
        path = self.directory / "server.out"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

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
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
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
