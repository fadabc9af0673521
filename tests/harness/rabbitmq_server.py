"""A real RabbitMQ broker for tests and benchmarks, private to one process.

`RabbitMQServer` starts `rabbitmq-server` (installing the Debian package when the binary is
missing) as its own node on free loopback ports in a temporary directory: its own epmd port,
AMQP, AMQPS (with a generated CA) and management listeners, statistics collected every second
so message rates show up within seconds. Nothing is shared with a system broker, and stopping
it removes the node, its epmd daemon and the directory.

Start-up takes several seconds, so a test session starts one broker and shares it; helpers
here create vhosts and queues, publish, and read the management API (connections, channels).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pika
import pika.exceptions

from tests.harness.packages import ensure_packages
from tests.harness.ports import free_port
from tests.harness.server_process import ServerContext, ServerProcess
from tests.harness.tls_material import TLSMaterial

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
START_TIMEOUT = 90.0
USER = "scaler"
PASSWORD = "s3cret-Pa55word"
OTHER_VHOST = "other"  # a second vhost tests and benchmarks may create with `create_vhost`
# One-second samples (the default is five) so queue counts and rates reach the management API in
# about two seconds; collect_statistics_interval in rabbitmq.conf sets how often they are taken.
_SAMPLES = "[{global, [{605, 1}]}, {basic, [{605, 1}]}, {detailed, [{605, 1}]}]"
ADVANCED_CONFIG = (
    f"[{{rabbitmq_management_agent, [{{sample_retention_policies, {_SAMPLES}}}]}},\n"
    f" {{rabbitmq_management, [{{sample_retention_policies, {_SAMPLES}}}]}}].\n"
)


class RabbitMQServer(ServerContext):
    """One broker node; use as a context manager. Credentials are `USER` / `PASSWORD`."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="rabbitmq-"))
        self.node = f"es{uuid.uuid4().hex[:10]}@localhost"
        self.amqp_port, self.amqps_port, self.http_port = free_port(), free_port(), free_port()
        self.dist_port, self.epmd_port = free_port(), free_port()
        self.user, self.password = USER, PASSWORD
        self.tls = TLSMaterial.generate("rabbitmq-test-ca")
        self._tls_files = self.tls.write_server_files(self.directory)
        self._server = ServerProcess("rabbitmq-server", self.directory)
        self._api = httpx.Client(  # no keep-alive: tests count the connections clients hold
            base_url=f"http://127.0.0.1:{self.http_port}", auth=(USER, PASSWORD), timeout=10.0,
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        ensure_packages(RABBITMQ_BIN / "rabbitmq-server", ["rabbitmq-server"])
        self._write_config()
        self._server.start([str(RABBITMQ_BIN / "rabbitmq-server")], env=self.env)
        self._server.wait_ready(self._answers, timeout=START_TIMEOUT, interval=0.25)

    @property
    def process(self) -> ServerProcess:
        """The broker's process group, for fault tests (signal, kill; `start` again after a kill: same
        ports and data directory, so durable queues stay)."""
        return self._server

    def ctl(self, *args: str) -> None:
        """`rabbitmqctl -n <node> ARGS`, e.g. ("stop_app",) then ("start_app",) to restart the broker's app."""
        result = subprocess.run([str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args], env=self.env,
                                capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {result.stdout}{result.stderr}")

    @property
    def env(self) -> dict[str, str]:
        d = self.directory
        return {
            **os.environ,
            "HOME": str(d),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(d / "rabbitmq.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
        }

    def _write_config(self) -> None:
        d = self.directory
        (d / "rabbitmq-env.conf").write_text("")
        (d / "advanced.config").write_text(ADVANCED_CONFIG)
        (d / "enabled_plugins").write_text("[rabbitmq_management].\n")
        (d / "rabbitmq.conf").write_text(
            f"""\
listeners.tcp.1 = 127.0.0.1:{self.amqp_port}
listeners.ssl.1 = 127.0.0.1:{self.amqps_port}
ssl_options.cacertfile = {self._tls_files.ca}
ssl_options.certfile = {self._tls_files.cert}
ssl_options.keyfile = {self._tls_files.key}
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
management.tcp.port = {self.http_port}
management.tcp.ip = 127.0.0.1
collect_statistics_interval = 1000
default_user = {USER}
default_pass = {PASSWORD}
loopback_users = none
log.console = false
log.file.level = warning
"""
        )

    def _answers(self) -> bool:
        """The management API answers and the AMQP listener (started last) takes a login."""
        try:
            if self._api.get("/api/overview", timeout=2.0).status_code != 200:
                return False
            with self.amqp():
                return True
        except (httpx.HTTPError, pika.exceptions.AMQPError, OSError):
            return False

    def stop(self) -> None:
        self._api.close()
        self._server.stop(grace=30)
        subprocess.run(["epmd", "-kill"], env=self.env, capture_output=True, check=False, timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- addresses ---------------------------------------------------------------------------

    def amqp_url(self, vhost: str = "/", *, password: str | None = None, tls: bool = False) -> str:
        port = self.amqps_port if tls else self.amqp_port
        scheme = "amqps" if tls else "amqp"
        secret = PASSWORD if password is None else password
        return f"{scheme}://{USER}:{quote(secret, safe='')}@127.0.0.1:{port}/{quote(vhost, safe='')}"

    def http_url(self, vhost: str | None = None, *, password: str | None = None) -> str:
        secret = PASSWORD if password is None else password
        base = f"http://{USER}:{quote(secret, safe='')}@127.0.0.1:{self.http_port}"
        return base if vhost is None else f"{base}/{quote(vhost, safe='')}"

    # -- management API ----------------------------------------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._api.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def create_vhost(self, vhost: str) -> None:
        name = quote(vhost, safe="")
        self.api("PUT", f"/api/vhosts/{name}")
        self.api("PUT", f"/api/permissions/{name}/{USER}",
                 json={"configure": ".*", "write": ".*", "read": ".*"})

    def connections(self, name: str | None = None) -> list[dict[str, Any]]:
        """AMQP connections the broker holds, optionally only those with this connection_name.

        The statistics database may keep a short-lived connection's record, in state `closed`,
        until its garbage collection runs minutes later; such a connection is not held.
        """
        listed: list[dict[str, Any]] = self.api("GET", "/api/connections")
        found = [c for c in listed if c.get("state") != "closed"]
        if name is None:
            return found
        return [c for c in found if (c.get("client_properties") or {}).get("connection_name") == name]

    def churn(self, counter: str) -> int:
        """A broker-wide total such as `connection_created` or `connection_closed`."""
        return int(self.api("GET", "/api/overview").get("churn_rates", {}).get(counter, 0))

    def channels(self, connection_name: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for connection in self.connections(connection_name):
            found += self.api("GET", f"/api/connections/{quote(connection['name'], safe='')}/channels")
        return found

    def wait_connections(self, name: str, count: int, timeout: float = 15.0) -> int:
        """Poll until the broker lists `count` connections named `name`; return the last count."""
        return self._wait_count(lambda: len(self.connections(name)), count, timeout)

    def wait_channels(self, connection_name: str, count: int, timeout: float = 15.0) -> int:
        """Poll until the connections named `connection_name` list `count` channels in all. The
        management database learns of a channel at its next statistics collection, so a channel
        open for milliseconds may not be listed yet."""
        return self._wait_count(lambda: len(self.channels(connection_name)), count, timeout)

    @staticmethod
    def _wait_count(count_now: Callable[[], int], count: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        seen = count_now()
        while seen != count and time.monotonic() < deadline:
            time.sleep(0.2)
            seen = count_now()
        return seen

    @contextmanager
    def amqp(self, vhost: str = "/") -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
        """A pika channel for setting up queues and traffic."""
        credentials = pika.PlainCredentials(USER, PASSWORD)
        params = pika.ConnectionParameters("127.0.0.1", self.amqp_port, vhost, credentials,
                                           client_properties={"connection_name": "test-harness"},
                                           connection_attempts=1, socket_timeout=5, stack_timeout=10)
        connection = pika.BlockingConnection(params)
        try:
            yield connection.channel()
        finally:
            connection.close()

    def fill(self, vhost: str, queues: dict[str, int]) -> None:
        """Declare each queue (purged) and publish the given number of messages into it."""
        with self.amqp(vhost) as channel:
            for queue, count in queues.items():
                channel.queue_declare(queue)
                channel.queue_purge(queue)
                for i in range(count):
                    channel.basic_publish("", queue, str(i).encode())

    def hold_unacked(self, vhost: str, queue: str, count: int) -> pika.BlockingConnection:
        """Fetch `count` messages without acking them; they stay unacked until the connection closes."""
        credentials = pika.PlainCredentials(USER, PASSWORD)
        connection = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", self.amqp_port, vhost, credentials,
            client_properties={"connection_name": "test-harness"}))
        channel = connection.channel()
        for _ in range(count):
            channel.basic_get(queue, auto_ack=False)
        return connection

    def wait_queue(self, vhost: str, queue: str, field: str, value: int, timeout: float = 15.0) -> None:
        """Wait until the management API's statistics show `field == value` for the queue."""
        deadline = time.monotonic() + timeout
        path = f"/api/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}"
        while True:
            seen = self.api("GET", path).get(field)
            if seen == value:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"queue {queue}: {field} is {seen}, expected {value}")
            time.sleep(0.2)


def no_secret(error: object) -> str:
    """`str(error)`, after asserting that it holds the broker's password in no spelling."""
    text = str(error)
    assert PASSWORD not in text and quote(PASSWORD, safe="") not in text
    return text


def tcp_connections_to(port: int) -> int:
    """Established TCP connections on this machine whose remote end is 127.0.0.1:`port`."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote, state = fields[2], fields[3]
            if state == "01" and int(remote.rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


class RequestLog:
    """An httpx request hook (for `RabbitMQScaler(http_request_hooks=...)`) that keeps every path."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, request: httpx.Request) -> None:
        self.paths.append(request.url.raw_path.decode().split("?", 1)[0])


class Traffic:
    """Steady traffic so the broker reports rates: `busy` gets `publish_rate` messages a second and
    loses `consume_rate` of them to basic.get; `idle` gets published to and is never consumed.
    """

    def __init__(self, server: RabbitMQServer, vhost: str, busy: str, idle: str,
                 publish_rate: float = 40.0, consume_rate: float = 20.0) -> None:
        self.server, self.vhost, self.busy, self.idle = server, vhost, busy, idle
        self.publish_rate, self.consume_rate = publish_rate, consume_rate
        self.published = 0
        self.started = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rabbitmq-traffic", daemon=True)

    def __enter__(self) -> Traffic:
        with self.server.amqp(self.vhost) as channel:
            for queue in (self.busy, self.idle):
                channel.queue_declare(queue)
                channel.queue_purge(queue)
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @property
    def achieved_rate(self) -> float:
        return self.published / max(time.monotonic() - self.started, 1e-3)

    def _run(self) -> None:
        with self.server.amqp(self.vhost) as channel:
            tick, consumed = 1.0 / self.publish_rate, 0.0
            while not self._stop.wait(tick):
                channel.basic_publish("", self.busy, b"m")
                channel.basic_publish("", self.idle, b"m")
                self.published += 1
                consumed += self.consume_rate / self.publish_rate
                while consumed >= 1.0:
                    channel.basic_get(self.busy, auto_ack=True)
                    consumed -= 1.0
