"""A real Prometheus server for the Prometheus scaler's tests, scraping an exporter the test controls.

`MetricsExporter` serves a prometheus_client registry over HTTP on a free 127.0.0.1 port from
the test process; `set_gauge` gives a labelled gauge a value. `PrometheusServer` runs Debian's
`prometheus` (installed when missing) with a configuration and a storage folder of its own in a
temporary directory, on a free loopback port, scraping its targets every second (`scrape` adds
to the job's configuration, e.g. `scheme: https` with a `tls_config` and target labels). It counts as
started once every target has been scraped (Prometheus begins scraping a few seconds after it
says it is ready); from then on a value set in the test is queryable a second or two later, and
`wait_for_value` polls an instant query until it answers that value, never a fixed sleep.

With `WebSecurity` the server takes a `--web.config.file`: HTTPS with the test CA's server
certificate, basic-auth users (bcrypt-hashed, as Prometheus reads them) and client certificates
from the test CA, verified when given or required. The harness's own client always brings all
of them; a test's client brings what it wants to try.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from wsgiref.simple_server import WSGIServer

import bcrypt
import httpx
import yaml
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from tests.harness.packages import ensure_packages
from tests.harness.ports import free_port
from tests.harness.server_process import ServerContext, ServerProcess
from tests.harness.tls_material import TLSMaterial

START_TIMEOUT = 60.0
VALUE_TIMEOUT = 30.0
SCRAPE_INTERVAL = "1s"
USER, PASSWORD = "scaler", "Prometheus-Pa55word-s3cret"
VERIFY_IF_GIVEN, REQUIRE = "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"


class MetricsExporter:
    """Gauges served in the Prometheus text format from this process; use as a context manager."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._gauges: dict[str, tuple[Gauge, tuple[str, ...]]] = {}
        self._lock = threading.Lock()
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """`127.0.0.1:port`, as a scrape target."""
        assert self._server is not None, "enter the exporter first"
        return f"127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> Self:
        self._server, self._thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def set_gauge(self, name: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        """Set the gauge `name` for these labels; a name keeps the label names it was first set with."""
        labels = dict(labels or {})
        names = tuple(sorted(labels))
        with self._lock:
            if name not in self._gauges:
                self._gauges[name] = (Gauge(name, "set by a test", names, registry=self.registry), names)
            gauge, known = self._gauges[name]
        if names != known:
            raise ValueError(f"gauge {name} has labels {known}, not {names}")
        (gauge.labels(**labels) if names else gauge).set(value)


@dataclass(frozen=True)
class WebSecurity:
    """What `--web.config.file` asks of clients: HTTPS always, basic auth and client certificates."""

    tls: TLSMaterial
    users: Mapping[str, str] = field(default_factory=lambda: {USER: PASSWORD})  # name -> password
    client_certificates: str = VERIFY_IF_GIVEN  # or REQUIRE

    def web_config(self, directory: Path) -> dict[str, Any]:
        """The web configuration, its certificate files written into `directory`."""
        files = self.tls.write_server_files(directory)
        tls_config = {"cert_file": str(files.cert), "key_file": str(files.key),
                      "client_ca_file": str(files.ca), "client_auth_type": self.client_certificates}
        hashed = {name: bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
                  for name, password in self.users.items()}  # the cheapest cost: tests log in often
        return {"tls_server_config": tls_config, **({"basic_auth_users": hashed} if hashed else {})}


class PrometheusServer(ServerContext):
    """One `prometheus` process scraping `targets` (`host:port`) every second; a context manager."""

    def __init__(self, targets: Sequence[str], security: WebSecurity | None = None,
                 flags: Sequence[str] = (), scrape: Mapping[str, Any] | None = None,
                 target_labels: Mapping[str, str] | None = None) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="prometheus-"))
        self.targets = list(targets)
        self.security = security
        self.flags = list(flags)  # more command-line flags (a benchmark raises connection limits)
        self.scrape = dict(scrape or {})
        self.target_labels = dict(target_labels or {})
        self.port = free_port()
        self.url = f"{'https' if security else 'http'}://127.0.0.1:{self.port}"
        self._server = ServerProcess("prometheus", self.directory)
        self._client: httpx.Client | None = None

    def start(self) -> None:
        ensure_packages("prometheus", ["prometheus"])
        self._server.start(self._command(), cwd=self.directory)
        self._server.wait_ready(self._ready, timeout=START_TIMEOUT, interval=0.1)

    def _command(self) -> list[str]:
        config = self.directory / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL,
                       "evaluation_interval": SCRAPE_INTERVAL},
            "scrape_configs": [{"job_name": "exporter", **self.scrape, "static_configs": [
                {"targets": self.targets, **({"labels": self.target_labels} if self.target_labels else {})}]}],
        }))
        command = ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={self.directory / 'data'}",
                   f"--web.listen-address=127.0.0.1:{self.port}", *self.flags]
        if self.security is not None:
            web = self.directory / "web.yml"
            web.write_text(yaml.safe_dump(self.security.web_config(self.directory)))
            command.append(f"--web.config.file={web}")
        return command

    def _ready(self) -> bool:
        """Every target has been scraped: Prometheus starts scraping up to five seconds after ready."""
        try:
            response = self.client().get("/api/v1/targets", params={"state": "active"}, timeout=2.0)
        except httpx.TransportError:
            return False
        if response.status_code != 200:
            return False
        scraped = {target["labels"]["instance"] for target in response.json()["data"]["activeTargets"]
                   if target["health"] == "up"}
        return scraped >= set(self.targets)

    def client(self) -> httpx.Client:
        """The harness's client: with the server's CA, a client certificate and the first user."""
        if self._client is None:
            options: dict[str, Any] = {}
            if self.security is not None:
                options["verify"] = self.security.tls.client_context(certificate=True)
                options["auth"] = next(iter(self.security.users.items()), None)
            self._client = httpx.Client(base_url=self.url, timeout=10.0, **options)
        return self._client

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._server.stop(grace=10)
        shutil.rmtree(self.directory, ignore_errors=True)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The result of an instant query: one `{"metric": ..., "value": [time, "text"]}` per series."""
        response = self.client().get("/api/v1/query", params={"query": promql})
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for_value(self, promql: str, value: float, timeout: float = VALUE_TIMEOUT) -> None:
        """Poll the instant query until it answers one series whose value is `value`."""
        deadline = time.monotonic() + timeout
        while True:
            seen = [float(sample["value"][1]) for sample in self.query(promql)]
            if seen == [value]:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{promql} answers {seen} after {timeout}s, not [{value}]")
            time.sleep(0.2)
