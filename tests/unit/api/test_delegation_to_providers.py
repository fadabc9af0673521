"""Delegation to other adapters, against small real HTTPS servers acting as other providers.

Each provider asks for a client certificate from its own CA (as an adapter trusting a front
proxy does) and answers from a table of paths; what it received is recorded, so the tests see
the identity headers and the certificate we presented.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from adapter import certs
from adapter.api.delegation import (
    Credentials,
    Delegate,
    DelegateConfig,
    Delegates,
    ServiceRef,
    identity_headers,
    parse_delegate,
)
from adapter.auth.authentication import UserInfo
from adapter.kube.endpoints import EndpointIndex, strip_service, strip_slice
from adapter.kube.resources import ENDPOINT_SLICES, SERVICES

PATH = "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue-depth"
USER = UserInfo("alice", groups=("devs", "system:authenticated"), extra={"scopes.example/x y": ("a", "b")})


@dataclass
class Provider:
    answers: dict[str, tuple[int, dict[str, Any]]]
    seen: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    drop_idle: bool = False  # close each connection after its answer, without saying so
    answered_before_stalling: int | None = None  # then hold every request unanswered until `released`
    released: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"https://127.0.0.1:{self.server.server_address[1]}"


def _handler(provider: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as adapters serve

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            peer = self.connection.getpeercert() or {}
            provider.seen.append({"path": self.path, "user": self.headers.get("X-Remote-User"),
                                  "groups": self.headers.get_all("X-Remote-Group") or [],
                                  "extra": self.headers.get_all("X-Remote-Extra-scopes.example%2Fx%20y") or [],
                                  "peer": dict(pair[0] for pair in peer.get("subject", ())).get("commonName"),
                                  "port": self.client_address[1]})
            stall_after = provider.answered_before_stalling
            if stall_after is not None and len(provider.seen) > stall_after:
                provider.released.wait(10)
                self.close_connection = True
                return
            status, body = provider.answers.get(self.path, (404, {"kind": "Status", "code": 404}))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.close_connection = provider.drop_idle

    return Handler


def new_pki(directory: Path, client: str = "front-proxy-client", hosts: tuple[str, ...] = ("127.0.0.1",)) -> Path:
    """A CA, a provider's serving certificate for `hosts` and a client certificate `client` it
    trusts, in `directory`."""
    directory.mkdir(exist_ok=True)
    ca = certs.new_ca(f"{directory.name}-ca")
    (directory / "ca.crt").write_bytes(ca.cert_pem)
    certs.issue(ca, "provider", hosts=list(hosts), server=True).write(directory / "tls.crt", directory / "tls.key")
    certs.issue(ca, client, client=True).write(directory / "client.crt", directory / "client.key")
    return directory


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    return new_pki(tmp_path / "providers")


@pytest.fixture
def start(pki: Path) -> Iterator[Any]:
    running: list[ThreadingHTTPServer] = []
    providers: list[Provider] = []

    def started(answers: dict[str, tuple[int, dict[str, Any]]], own_pki: Path = pki) -> Provider:
        provider = Provider(answers)
        providers.append(provider)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(own_pki / "tls.crt", own_pki / "tls.key")
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(own_pki / "ca.crt"))
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(provider))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        provider.server = server
        running.append(server)
        return provider

    yield started
    for provider in providers:
        provider.released.set()
    for server in running:
        server.shutdown()
        server.server_close()


def credentials(pki: Path) -> Credentials:
    return Credentials(pki / "ca.crt", pki / "client.crt", pki / "client.key")


def config(pki: Path, *urls: str) -> DelegateConfig:
    return DelegateConfig(tuple(Delegate(url, credentials(pki)) for url in urls), timeout=1, open_for=30)


def forward(delegates: Delegates, query: bytes = b"labelSelector=app%3Dqueue", user: UserInfo = USER) -> Any:
    async def run() -> Any:
        try:
            return await delegates.forward(PATH, query, user)
        finally:
            await delegates.aclose()

    return asyncio.run(run())


def statuses(delegates: Delegates, count: int, pause: float = 0.0) -> list[int]:
    """The statuses of `count` forwards in a row, `pause` seconds after each."""
    async def run() -> list[int]:
        try:
            found = []
            for _ in range(count):
                answer = await delegates.forward(PATH, b"labelSelector=app%3Dqueue", USER)
                assert answer is not None
                found.append(answer.status)
                await asyncio.sleep(pause)
            return found
        finally:
            await delegates.aclose()

    return asyncio.run(run())


def forward_twice(delegates: Delegates) -> list[tuple[Any, float]]:
    """Two forwards in a row, each with the seconds it took (the second meets what the first left)."""
    async def run() -> list[tuple[Any, float]]:
        try:
            found = []
            for _ in range(2):
                started = time.monotonic()
                found.append((await delegates.forward(PATH, b"", USER), time.monotonic() - started))
            return found
        finally:
            await delegates.aclose()

    return asyncio.run(run())


def test_first_answer_that_is_not_404_is_returned_unchanged(start: Any, pki: Path) -> None:
    target = PATH + "?labelSelector=app%3Dqueue"
    first = start({})
    second = start({target: (403, {"kind": "Status", "code": 403, "message": "no, alice"})})
    third = start({target: (200, {"kind": "ExternalMetricValueList", "items": []})})
    answer = forward(Delegates(config(pki, first.url, second.url, third.url)))
    assert (answer.status, json.loads(answer.body)) == (403, {"kind": "Status", "code": 403, "message": "no, alice"})
    assert [len(p.seen) for p in (first, second, third)] == [1, 1, 0]  # in order, stopping at the answer
    assert second.seen[0] == {"path": target, "user": "alice", "groups": ["devs", "system:authenticated"],
                              "extra": ["a", "b"], "peer": "front-proxy-client", "port": second.seen[0]["port"]}


def test_a_long_answer_arrives_whole_and_one_past_the_bound_is_refused(start: Any, pki: Path) -> None:
    target = PATH + "?labelSelector=app%3Dqueue"
    items = [{"metricName": "queue-depth", "value": str(i), "timestamp": "2026-12-01T00:00:00Z"} for i in range(20000)]
    long = {"kind": "ExternalMetricValueList", "items": items}  # about 1.5 MB: many TLS records
    answer = forward(Delegates(config(pki, start({target: (200, long)}).url)))
    assert (answer.status, json.loads(answer.body)) == (200, long)
    too_long = {"kind": "ExternalMetricValueList", "items": items * 3}  # over MAX_ANSWER (4 MiB)
    refused = forward(Delegates(config(pki, start({target: (200, too_long)}).url)))
    assert refused.status == 503 and "answer over" in json.loads(refused.body)["message"]


@pytest.mark.parametrize("drop_idle, connections", [(False, 1), (True, 3)])
def test_connections_are_kept_alive_and_one_the_delegate_closed_is_passed_over(
        start: Any, pki: Path, drop_idle: bool, connections: int) -> None:
    target = PATH + "?labelSelector=app%3Dqueue"
    provider = start({target: (200, {"kind": "ExternalMetricValueList", "items": []})})
    provider.drop_idle = drop_idle
    delegates = Delegates(config(pki, provider.url))
    # a pause after each: the delegate's close arrives while the connection is idle
    assert statuses(delegates, 3, pause=0.05) == [200, 200, 200]
    assert len({seen["port"] for seen in provider.seen}) == connections


def test_every_delegate_404_leaves_the_answer_to_us(start: Any, pki: Path) -> None:
    assert forward(Delegates(config(pki, start({}).url, start({}).url))) is None


def test_a_delegate_that_is_down_is_a_quick_503_naming_it(start: Any, pki: Path) -> None:
    gone = start({})
    url = gone.url
    assert gone.server is not None
    gone.server.shutdown()
    gone.server.server_close()
    (first, _), (second, second_took) = forward_twice(Delegates(config(pki, url)))
    for answer in (first, second):
        body = json.loads(answer.body)
        assert answer.status == 503 and body["reason"] == "ServiceUnavailable" and url in body["message"]
    assert f"{url} (connection failed)" in json.loads(first.body)["message"]
    assert "retried in at most 30s" in json.loads(second.body)["message"] and second_took < 0.05  # breaker open


def test_identity_headers() -> None:
    assert identity_headers(UserInfo("system:serviceaccount:a:b", groups=("g",), extra={"k": ("v",)})) == (
        b"X-Remote-User: system:serviceaccount:a:b\r\nX-Remote-Group: g\r\nX-Remote-Extra-k: v\r\n")


@pytest.mark.parametrize("user", [UserInfo("alice\r\nX-Remote-Group: system:masters"), UserInfo("a", groups=("g\n",)),
                                  UserInfo("a", extra={"k": ("v\0",)})])
def test_an_identity_that_would_break_out_of_its_header_is_not_forwarded(start: Any, pki: Path,
                                                                         user: UserInfo) -> None:
    provider = start({})
    answer = forward(Delegates(config(pki, provider.url)), b"", user)
    assert answer.status == 400 and provider.seen == []


def test_a_delegate_that_never_answers_costs_its_timeout_once(pki: Path) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"https://127.0.0.1:{silent.getsockname()[1]}"
        (first, first_took), (second, second_took) = forward_twice(Delegates(config(pki, url)))
    assert first.status == 503 and f"{url} (no answer within 1s)" in json.loads(first.body)["message"]
    assert 0.9 < first_took < 3 and second.status == 503 and second_took < 0.05


def test_a_kept_connection_whose_delegate_stops_answering_costs_its_timeout(start: Any, pki: Path) -> None:
    provider = start({PATH: (200, {"kind": "ExternalMetricValueList", "items": []})})
    provider.answered_before_stalling = 1
    (first, _), (second, second_took) = forward_twice(Delegates(config(pki, provider.url)))
    assert first.status == 200 and second.status == 503
    assert f"{provider.url} (no answer within 1s)" in json.loads(second.body)["message"]
    assert 0.9 < second_took < 3 and provider.seen[0]["port"] == provider.seen[1]["port"]  # the kept connection


DEFAULTS = Credentials(Path("/d/ca.crt"), Path("/d/client.crt"), Path("/d/client.key"))


@pytest.mark.parametrize("value, expected", [
    ("https://a:443", Delegate("https://a:443", DEFAULTS)),
    ("https://a:443,ca=/a/ca.crt",
     Delegate("https://a:443", Credentials(Path("/a/ca.crt"), DEFAULTS.client_cert, DEFAULTS.client_key))),
    ("https://a:443, cert=/a/c.crt, key=/a/c.key",
     Delegate("https://a:443", Credentials(DEFAULTS.ca_file, Path("/a/c.crt"), Path("/a/c.key")))),
    ("https://a:443,key=/a/c.key,ca=/a/ca.crt,cert=/a/c.crt",
     Delegate("https://a:443", Credentials(Path("/a/ca.crt"), Path("/a/c.crt"), Path("/a/c.key")))),
    ("service:monitoring/prometheus-adapter", Delegate(ServiceRef("monitoring", "prometheus-adapter", 443), DEFAULTS)),
    ("service:monitoring/prometheus-adapter:6443,ca=/a/ca.crt",
     Delegate(ServiceRef("monitoring", "prometheus-adapter", 6443),
              Credentials(Path("/a/ca.crt"), DEFAULTS.client_cert, DEFAULTS.client_key))),
    ("service:a1/b-2:1,cert=/a/c.crt,key=/a/c.key",
     Delegate(ServiceRef("a1", "b-2", 1), Credentials(DEFAULTS.ca_file, Path("/a/c.crt"), Path("/a/c.key")))),
])
def test_parse_delegate(value: str, expected: Delegate) -> None:
    assert parse_delegate(value, DEFAULTS) == expected


def test_parse_delegate_without_defaults_uses_the_system_trust_store_and_no_certificate() -> None:
    assert parse_delegate("https://a:443", Credentials()) == Delegate("https://a:443", Credentials())


@pytest.mark.parametrize("value, error", [
    ("https://a:443,cert=/a/c.crt", "--delegate-to https://a:443: a client certificate needs its key"),
    ("https://a:443,key=/a/c.key", "--delegate-to https://a:443: a client certificate needs its key"),
    ("https://a:443,ca=/x,ca=/y", "--delegate-to https://a:443: ca= is given twice"),
    ("https://a:443,token=/t", "'token=/t' is not one of ca=FILE, cert=FILE, key=FILE"),
    ("https://a:443,ca=", "'ca=' is not one of"),
    ("https://a:443,/a/ca.crt", "'/a/ca.crt' is not one of"),
    ("http://a:80", "expected https://host:port"),
    ("https://a:443/path", "expected https://host:port"),
    ("prometheus-adapter.monitoring.svc:443", "expected https://host:port or service:NAMESPACE/NAME[:PORT]"),
    ("service:monitoring", "--delegate-to 'service:monitoring': expected service:NAMESPACE/NAME[:PORT]"),
    ("service:/prometheus-adapter", "expected service:NAMESPACE/NAME[:PORT]"),
    ("service:monitoring/", "expected service:NAMESPACE/NAME[:PORT]"),
    ("service:monitoring/Prometheus", "expected service:NAMESPACE/NAME[:PORT]"),
    ("service:monitoring/prometheus_adapter", "expected service:NAMESPACE/NAME[:PORT]"),
    ("service:monitoring/-adapter", "expected service:NAMESPACE/NAME[:PORT]"),
    ("service:mon/itoring/adapter", "expected service:NAMESPACE/NAME[:PORT]"),
    ("service:monitoring/" + "a" * 64, "expected service:NAMESPACE/NAME[:PORT]"),
    ("service:monitoring/adapter:", "expected service:NAMESPACE/NAME[:PORT]"),
    ("service:monitoring/adapter:0", "expected service:NAMESPACE/NAME[:PORT]"),
    ("service:monitoring/adapter:65536", "expected service:NAMESPACE/NAME[:PORT]"),
    ("service:monitoring/adapter:https", "expected service:NAMESPACE/NAME[:PORT]"),
    ("service:monitoring/adapter:443,cert=/a/c.crt",
     "--delegate-to service:monitoring/adapter:443: a client certificate needs its key"),
])
def test_parse_delegate_refuses(value: str, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        parse_delegate(value, DEFAULTS)


def test_each_delegate_is_reached_with_its_own_ca_and_client_certificate(start: Any, pki: Path, tmp_path: Path) -> None:
    """Two providers with different CAs, each trusting only the client certificate its own CA issued."""
    other_pki = new_pki(tmp_path / "other", client="other-front-proxy")
    target = PATH + "?labelSelector=app%3Dqueue"
    first = start({})
    second = start({target: (200, {"kind": "ExternalMetricValueList", "items": []})}, other_pki)
    defaults = credentials(pki)
    own = f"{second.url},ca={other_pki / 'ca.crt'},cert={other_pki / 'client.crt'},key={other_pki / 'client.key'}"
    delegates = DelegateConfig((parse_delegate(first.url, defaults), parse_delegate(own, defaults)), timeout=1)
    answer = forward(Delegates(delegates))
    assert answer.status == 200
    assert [seen["peer"] for seen in first.seen + second.seen] == ["front-proxy-client", "other-front-proxy"]


def test_a_delegate_given_the_default_credentials_of_another_ca_fails_tls(start: Any, pki: Path,
                                                                          tmp_path: Path) -> None:
    other = start({}, new_pki(tmp_path / "other"))
    answer = forward(Delegates(DelegateConfig((parse_delegate(other.url, credentials(pki)),), timeout=1)))
    assert answer.status == 503 and f"{other.url} (TLS failed)" in json.loads(answer.body)["message"]


def test_a_delegate_refusing_our_client_certificate_is_a_503_naming_it(start: Any, pki: Path,
                                                                       tmp_path: Path) -> None:
    other_pki = new_pki(tmp_path / "other")  # trusts only client certificates of its own CA
    other = start({}, other_pki)
    ours = Credentials(other_pki / "ca.crt", pki / "client.crt", pki / "client.key")
    answer = forward(Delegates(DelegateConfig((Delegate(other.url, ours),), timeout=1)))
    message = json.loads(answer.body)["message"]
    assert answer.status == 503 and other.url in message and other.seen == []
    assert "(TLS failed)" in message or "(connection failed)" in message, message


# -- a delegate named as a Service: endpoints from its EndpointSlices, its certificate for NAME.NAMESPACE.svc --

THEIRS = ServiceRef("monitoring", "theirs", 443)
SERVICE_TARGET = PATH + "?labelSelector=app%3Dqueue"


@pytest.fixture
def service_pki(tmp_path: Path) -> Path:
    """Serving certificates for `theirs.monitoring.svc` only: an endpoint's IP would not pass the check."""
    return new_pki(tmp_path / "service-providers", hosts=("theirs.monitoring.svc",))


def endpoint_slice(name: str, service: ServiceRef, *addresses: tuple[str, int]) -> dict[str, Any]:
    """An EndpointSlice of `service` with `addresses` ready (one port, as one slice's endpoints share)."""
    ports = {port for _, port in addresses}
    assert len(ports) <= 1
    return strip_slice({
        "metadata": {"name": name, "namespace": service.namespace,
                     "labels": {"kubernetes.io/service-name": service.name}},
        "ports": [{"name": "https", "port": port} for port in ports],
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}} for address, _ in addresses]})


def publish(index: EndpointIndex, service: ServiceRef, *addresses: tuple[str, int]) -> None:
    """The Service (port 443, named `https`) and its one EndpointSlice, as the watches hand them over."""
    meta = {"name": service.name, "namespace": service.namespace}
    index.listed(SERVICES, [strip_service({"metadata": meta, "spec": {"ports": [
        {"name": "https", "port": 443, "targetPort": "https"}]}})])
    index.listed(ENDPOINT_SLICES, [endpoint_slice(f"{service.name}-a", service, *addresses)])


def served(provider: Provider) -> tuple[str, int]:
    assert provider.server is not None
    return "127.0.0.1", int(provider.server.server_address[1])


def closed_port() -> int:
    with socket.socket() as probe:  # bound, never listening: a connect is refused
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def service_delegates(pki: Path, *services: ServiceRef) -> Delegates:
    return Delegates(DelegateConfig(tuple(Delegate(service, credentials(pki)) for service in services),
                                    timeout=1, open_for=30))


def test_a_service_delegate_is_reached_at_its_ready_endpoint_with_its_certificate_checked_for_its_dns_name(
        start: Any, service_pki: Path) -> None:
    provider = start({SERVICE_TARGET: (200, {"kind": "ExternalMetricValueList", "items": []})}, service_pki)
    provider.drop_idle = True  # a new connection per GET: each picks an endpoint again
    delegates = service_delegates(service_pki, THEIRS)
    dead = ("127.0.0.1", closed_port())
    index = delegates.endpoints[THEIRS]
    publish(index, THEIRS, served(provider))
    index.changed(ENDPOINT_SLICES, endpoint_slice("theirs-b", THEIRS, dead), deleted=False)
    assert set(index.addresses(THEIRS.key, "443")) == {served(provider), dead}
    assert statuses(delegates, 10) == [200] * 10  # the refused endpoint, tried first half the time, is passed over
    assert len(provider.seen) == 10 and provider.seen[0]["peer"] == "front-proxy-client"


def test_a_service_whose_certificate_names_another_service_fails_tls(start: Any, service_pki: Path) -> None:
    other = ServiceRef("monitoring", "other", 443)  # its endpoint serves theirs.monitoring.svc's certificate
    provider = start({SERVICE_TARGET: (200, {"kind": "ExternalMetricValueList", "items": []})}, service_pki)
    delegates = service_delegates(service_pki, other)
    publish(delegates.endpoints[other], other, served(provider))
    answer = forward(delegates)
    assert answer.status == 503 and "service:monitoring/other:443 (TLS failed)" in json.loads(answer.body)["message"]
    assert provider.seen == []


def test_a_service_without_ready_endpoints_is_a_quick_503_and_answers_once_refilled(
        start: Any, service_pki: Path) -> None:
    provider = start({SERVICE_TARGET: (200, {"kind": "ExternalMetricValueList", "items": []})}, service_pki)
    delegates = service_delegates(service_pki, THEIRS)
    index = delegates.endpoints[THEIRS]

    async def run() -> list[tuple[int, str, float]]:
        found = []
        try:
            for addresses in ([], [served(provider)], [], [("127.0.0.1", closed_port())], [served(provider)]):
                publish(index, THEIRS, *addresses)
                started = time.monotonic()
                answer = await delegates.forward(PATH, b"labelSelector=app%3Dqueue", USER)
                assert answer is not None
                found.append((answer.status, json.loads(answer.body).get("message", ""), time.monotonic() - started))
            return found
        finally:
            await delegates.aclose()

    empty, filled, emptied, refused, refilled = asyncio.run(run())
    assert empty[:2] == (503, f"{PATH} is not served here, and delegates are unavailable: "
                              "service:monitoring/theirs:443 (no ready endpoint)") and empty[2] < 0.05
    assert filled[0] == 200 and emptied[0] == 503 and "(no ready endpoint)" in emptied[1]
    assert refused[0] == 503 and "service:monitoring/theirs:443 (connection failed)" in refused[1]
    assert refilled[0] == 200  # new endpoints close the breaker the refused one opened
