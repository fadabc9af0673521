"""Other external metrics adapters behind our APIService: what we do not serve, they may.

Only one server can own `v1beta1.external.metrics.k8s.io`. With `serve --delegate-to URL`
(repeatable) a metric GET that we would answer 404 (no such ScaledObject or metric here) or 400
(a selector that names no ScaledObject: another adapter's metric) is forwarded to the delegates
in order, as kube-apiserver's aggregation layer forwards it to us: the same path and query, a
client certificate the delegate trusts as a front proxy (each delegate may have its own, and its
own CA bundle: `--delegate-to URL,ca=FILE,cert=FILE,key=FILE`) and the caller's identity in
`X-Remote-User`, `X-Remote-Group` and `X-Remote-Extra-*`. The first delegate whose answer is not
404 is the answer, status and body unchanged; when every delegate says 404 the caller gets ours.

In cluster mode a delegate may be named as a Service, `service:NAMESPACE/NAME[:PORT]` (port 443
by default), and is reached the way kube-apiserver reaches an APIService's Service: the Service
port's target port on the ready endpoints of its EndpointSlices, kept from two watches of that
Service alone (`adapter.kube.endpoints`), so no forwarded GET costs an API call. We connect to
an endpoint's IP and check the serving certificate for `NAME.NAMESPACE.svc`; a connect that
fails moves on to another ready endpoint, and a Service without any is a 503 at once.

A delegate that is down costs only what we forward to it: each request has a deadline
(`timeout`), and after a failure the delegate is skipped for `open_for` seconds (a circuit
breaker), so the answer is a quick 503 naming the delegate. Our own metrics never wait for a
delegate: they are answered before any forwarding is considered. Discovery needs no merging:
every external metrics adapter lists the one resource `externalmetrics`. A change of a Service
delegate's endpoints closes its breaker: the new endpoints deserve a try.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import cast
from urllib.parse import quote, urlsplit

import httptools

from adapter.auth.authentication import UserInfo
from adapter.auth.tls_server import FeedsWeakly, shared_read_buffer
from adapter.kube.client import KubeApi, Object
from adapter.kube.endpoints import Address, EndpointIndex, ServiceKey, service_watches, strip_service, strip_slice
from adapter.kube.watch import Reflector, all_listed, run_reflectors
from adapter.kube.wire import status_body

log = logging.getLogger("eventscale.delegation")

MAX_ANSWER = 4 << 20  # bytes: a metric value list is small; a delegate sending more is broken
MAX_IDLE = 16  # idle connections kept per delegate; more, left by a burst, are closed


class AnswerTooLarge(Exception):
    pass


class NoReadyEndpoint(Exception):
    """A Service delegate without a ready endpoint: nothing to connect to."""


@dataclass(frozen=True)
class Credentials:
    """How we check a delegate's serving certificate, and the client certificate we present to it."""

    ca_file: Path | None = None  # None: the system's trust store
    client_cert: Path | None = None
    client_key: Path | None = None

    def __post_init__(self) -> None:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("a client certificate needs its key, and a key its certificate")

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.client_cert is not None:
            context.load_cert_chain(self.client_cert, self.client_key)
        return context


SERVICE_PREFIX = "service:"
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@dataclass(frozen=True)
class ServiceRef:
    """A delegate named as a Service (cluster mode): its port, and the name its certificate is for."""

    namespace: str
    name: str
    port: int = 443

    @classmethod
    def parse(cls, text: str) -> ServiceRef:
        """`service:NAMESPACE/NAME[:PORT]`."""
        reference, colon, port = text.removeprefix(SERVICE_PREFIX).partition(":")
        namespace, slash, name = reference.partition("/")
        if not (slash and _dns_label(namespace) and _dns_label(name)) or (colon and not _port(port)):
            raise ValueError(f"--delegate-to {text!r}: expected service:NAMESPACE/NAME[:PORT]")
        return cls(namespace, name, int(port) if colon else 443)

    @property
    def key(self) -> ServiceKey:
        return self.namespace, self.name

    @property
    def host(self) -> str:
        """The DNS name of the Service, which its serving certificate names (as kube-apiserver checks)."""
        return f"{self.name}.{self.namespace}.svc"

    def __str__(self) -> str:
        return f"{SERVICE_PREFIX}{self.namespace}/{self.name}:{self.port}"


def _dns_label(text: str) -> bool:
    """A namespace or Service name: an RFC 1123 label."""
    return len(text) <= 63 and DNS_LABEL.fullmatch(text) is not None


def _port(text: str) -> bool:
    return text.isascii() and text.isdigit() and 0 < int(text) < 65536


@dataclass(frozen=True)
class Delegate:
    """One adapter behind ours: at an https://host:port URL, or behind a Service (cluster mode)."""

    to: str | ServiceRef
    credentials: Credentials = Credentials()

    def __post_init__(self) -> None:
        if isinstance(self.to, ServiceRef):
            return
        parts = urlsplit(self.to)
        if parts.scheme != "https" or not parts.hostname or parts.path.strip("/") or parts.query:
            raise ValueError(f"--delegate-to {self.to!r}: expected https://host:port or service:NAMESPACE/NAME[:PORT]")


_FILE_OPTIONS = ("ca", "cert", "key")


def parse_delegate(value: str, defaults: Credentials) -> Delegate:
    """A `--delegate-to` value, `URL|service:NAMESPACE/NAME[:PORT]` then `[,ca=FILE][,cert=FILE,key=FILE]`:
    the files of that delegate alone; what it does not name comes from `defaults` (--delegate-ca-file
    and the others). A delegate naming its own cert= and key= never presents the default client
    certificate."""
    url, *options = (part.strip() for part in value.split(","))
    to = ServiceRef.parse(url) if url.startswith(SERVICE_PREFIX) else url
    files: dict[str, Path] = {}
    for option in options:
        name, equals, file = option.partition("=")
        if not equals or name not in _FILE_OPTIONS or not file:
            raise ValueError(f"--delegate-to {url}: {option!r} is not one of ca=FILE, cert=FILE, key=FILE")
        if name in files:
            raise ValueError(f"--delegate-to {url}: {name}= is given twice")
        files[name] = Path(file)
    own_pair = "cert" in files or "key" in files
    try:
        credentials = Credentials(
            ca_file=files.get("ca", defaults.ca_file),
            client_cert=files.get("cert") if own_pair else defaults.client_cert,
            client_key=files.get("key") if own_pair else defaults.client_key,
        )
    except ValueError as exc:
        raise ValueError(f"--delegate-to {url}: {exc}") from None
    return Delegate(to, credentials)


@dataclass(frozen=True)
class DelegateConfig:
    """The delegates, in the order they are asked, and the deadline and breaker they share."""

    delegates: tuple[Delegate, ...]
    timeout: float = 2.0
    open_for: float = 10.0

    @property
    def services(self) -> list[ServiceRef]:
        """The delegates named as Services (cluster mode only)."""
        return [delegate.to for delegate in self.delegates if isinstance(delegate.to, ServiceRef)]


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


class BadIdentity(Exception):
    """A caller whose name, group or extra value cannot be a header value (CR, LF or NUL in it)."""


class _Connection(asyncio.BufferedProtocol):
    """One keep-alive HTTPS connection to a delegate, one request at a time, its answer parsed
    with httptools: a third less CPU per forwarded GET than aiohttp's client (`bench delegation`).
    It reads into the server's shared buffer, as the server's own connections do. Its deadline is
    one timer per connection, re-armed when it fires early, not one armed and cancelled per request."""

    get_buffer = staticmethod(shared_read_buffer)
    buffer_updated = FeedsWeakly()  # type: ignore[assignment]  # the method, holding its protocol weakly

    def __init__(self, address: Address) -> None:
        self.address = address
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: asyncio.Future[Answer] | None = None
        self.body = bytearray()
        self.received = False  # a byte of the current answer arrived
        self.lost = False
        self.deadline = 0.0  # loop time by which the current answer must be complete
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # asyncio has turned Nagle's algorithm off

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def on_body(self, body: bytes) -> None:
        self.body += body
        if len(self.body) > MAX_ANSWER:
            self._fail(AnswerTooLarge())

    def on_message_complete(self) -> None:
        if not self.parser.should_keep_alive():
            self.close()
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(Answer(self.parser.get_status_code(), bytes(self.body)))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.answer is not None and not self.answer.done():  # a TLS alert is the delegate refusing us
            self.answer.set_exception(exc if isinstance(exc, ssl.SSLError) else ConnectionResetError())

    def _fail(self, error: Exception) -> None:
        self.close()
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(error)

    def close(self) -> None:
        self.lost = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.close()

    async def request(self, data: bytes, deadline: float) -> Answer:
        """The answer to `data`, or TimeoutError when it is not complete by loop time `deadline`."""
        assert self.transport is not None
        self.answer = self.loop.create_future()
        self.body = bytearray()
        self.received = False
        self.deadline = deadline
        if self._timer is None:
            self._timer = self.loop.call_at(deadline, self._deadline_reached)
        self.transport.write(data)
        return await self.answer

    def _deadline_reached(self) -> None:
        self._timer = None
        if self.answer is None or self.answer.done() or self.lost:
            return
        if self.loop.time() >= self.deadline:
            self._fail(TimeoutError())
        else:
            self._timer = self.loop.call_at(self.deadline, self._deadline_reached)


Addresses = Callable[[], list[Address]]  # where a delegate may be reached now


class _Forwarder:
    """One delegate's idle connections and breaker."""

    def __init__(self, name: str, addresses: Addresses, host: str, authority: str, context: ssl.SSLContext,
                 timeout: float, open_for: float) -> None:
        self.name = name
        self.addresses = addresses
        self.host = host  # the name the delegate's serving certificate is checked for
        self.head = f"Host: {authority}\r\nAccept: application/json\r\n".encode()
        self.context = context
        self.timeout = timeout
        self.idle: list[_Connection] = []
        self.open_for = open_for
        self.closed_until = 0.0  # monotonic time before which the breaker stays open
        self.last_error = ""

    @classmethod
    def at_url(cls, url: str, context: ssl.SSLContext, timeout: float, open_for: float) -> _Forwarder:
        parts = urlsplit(url.rstrip("/"))
        host = parts.hostname or ""
        addresses = [(host, parts.port or 443)]
        return cls(url.rstrip("/"), lambda: addresses, host, parts.netloc, context, timeout, open_for)

    @classmethod
    def at_service(cls, service: ServiceRef, index: EndpointIndex, context: ssl.SSLContext, timeout: float,
                   open_for: float) -> _Forwarder:
        forwarder = cls(str(service), lambda: index.addresses(service.key, str(service.port)), service.host,
                        f"{service.host}:{service.port}", context, timeout, open_for)
        index.listeners.append(lambda _: forwarder.reset())
        return forwarder

    @property
    def open(self) -> bool:
        return time.monotonic() < self.closed_until

    def reset(self) -> None:
        """Close the breaker: where the delegate is reached has changed."""
        self.closed_until = 0.0

    async def get(self, target: bytes, identity: bytes) -> Answer:
        """The delegate's answer to GET `target`: on an idle connection to a ready address if one
        is left (one the delegate closed while idle is passed over), else on a new one."""
        ready = self.addresses()
        if not ready:
            raise NoReadyEndpoint()
        request = b"GET " + target + b" HTTP/1.1\r\n" + self.head + identity + b"\r\n"
        deadline = asyncio.get_running_loop().time() + self.timeout
        while self.idle:
            connection = self.idle.pop()
            if connection.lost or connection.address not in ready:
                connection.close()
                continue
            try:
                return self._keep(connection, await connection.request(request, deadline))
            except ConnectionResetError:
                if connection.received:
                    raise
            except BaseException:
                connection.close()
                raise
        async with asyncio.timeout_at(deadline):
            connection = await self._connect(ready)
        try:
            return self._keep(connection, await connection.request(request, deadline))
        except BaseException:
            connection.close()
            raise

    async def _connect(self, ready: list[Address]) -> _Connection:
        """A new connection to one of the ready addresses, in random order; the next after a failure."""
        loop = asyncio.get_running_loop()
        failure: OSError | None = None
        for address in random.sample(ready, len(ready)):
            try:
                _, connection = await loop.create_connection(partial(_Connection, address), *address,
                                                             ssl=self.context, server_hostname=self.host)
                return connection
            except OSError as exc:
                failure = exc
        assert failure is not None
        raise failure

    def _keep(self, connection: _Connection, answer: Answer) -> Answer:
        if len(self.idle) >= MAX_IDLE:
            connection.close()
        elif not connection.lost:
            self.idle.append(connection)
        return answer

    def failed(self, error: Exception) -> None:
        self.closed_until = time.monotonic() + self.open_for
        self.last_error = self._reason(error)
        log.warning("delegate=%s failed (%s): skipped for %gs", self.name, self.last_error, self.open_for)

    def _reason(self, error: Exception) -> str:
        """What went wrong, in words (never the exception's text, which may quote a URL's secrets)."""
        if isinstance(error, TimeoutError):
            return f"no answer within {self.timeout:g}s"
        if isinstance(error, ssl.SSLError):
            return "TLS failed"
        if isinstance(error, OSError):
            return "connection failed"
        if isinstance(error, AnswerTooLarge):
            return f"answer over {MAX_ANSWER} bytes"
        if isinstance(error, httptools.HttpParserError):
            return "an answer that is not HTTP/1.1"
        return type(error).__name__

    def close(self) -> None:
        for connection in self.idle:
            connection.close()
        self.idle.clear()


class Delegates:
    """The delegates, in order, each with its idle keep-alive connections and a breaker. Those
    named as Services each have an `EndpointIndex` in `endpoints`, kept by `run`'s watches when
    `api` is given (cluster mode)."""

    def __init__(self, config: DelegateConfig, api: KubeApi | None = None, resync: float = 1800.0) -> None:
        self.endpoints: dict[ServiceRef, EndpointIndex] = {}
        self.reflectors: list[Reflector[Object]] = []
        self._delegates = [self._forwarder(delegate, config) for delegate in config.delegates]
        if api is not None:
            for service, index in self.endpoints.items():
                services, slices = service_watches(service.key)
                self.reflectors += [Reflector(api, services, index, strip_service, resync=resync),
                                    Reflector(api, slices, index, strip_slice, resync=resync)]

    def _forwarder(self, delegate: Delegate, config: DelegateConfig) -> _Forwarder:
        context = delegate.credentials.ssl_context()
        if not isinstance(delegate.to, ServiceRef):
            return _Forwarder.at_url(delegate.to, context, config.timeout, config.open_for)
        index = self.endpoints.setdefault(delegate.to, EndpointIndex())
        return _Forwarder.at_service(delegate.to, index, context, config.timeout, config.open_for)

    @property
    def synced(self) -> bool:
        """Every Service delegate's watches have listed."""
        return all_listed(self.reflectors)

    async def run(self) -> None:
        await run_reflectors(self.reflectors)

    async def forward(self, path: str, query_string: bytes, user: UserInfo) -> Answer | None:
        """The first answer that is not a 404; a 503 naming the delegates that failed; or None
        (every delegate said 404: the caller answers with its own error)."""
        target = path.encode() + (b"?" + query_string if query_string else b"")
        try:
            identity = identity_headers(user)
        except BadIdentity:
            return Answer(400, status_body(400, "the caller's identity cannot be passed to a delegate in headers"))
        unavailable: list[str] = []
        for delegate in self._delegates:
            if delegate.open:
                unavailable.append(f"{delegate.name} ({delegate.last_error}, "
                                   f"retried in at most {delegate.open_for:g}s)")
                continue
            try:
                answer = await delegate.get(target, identity)
            except NoReadyEndpoint:
                unavailable.append(f"{delegate.name} (no ready endpoint)")
                continue
            except (TimeoutError, OSError, AnswerTooLarge, httptools.HttpParserError) as exc:
                delegate.failed(exc)
                unavailable.append(f"{delegate.name} ({delegate.last_error})")
                continue
            if answer.status != 404:
                return answer
        if not unavailable:
            return None
        message = f"{path} is not served here, and delegates are unavailable: {', '.join(unavailable)}"
        return Answer(503, status_body(503, message))

    async def aclose(self) -> None:
        for delegate in self._delegates:
            delegate.close()


def identity_headers(user: UserInfo) -> bytes:
    """The caller, as kube-apiserver's front proxy says it (extra keys percent-encoded), as
    header lines; BadIdentity when a value would break out of its header."""
    lines = [("X-Remote-User", user.name)]
    lines += [("X-Remote-Group", group) for group in user.groups]
    lines += [(f"X-Remote-Extra-{quote(key, safe='')}", value)
              for key, values in user.extra.items() for value in values]
    if any(bad in value for _, value in lines for bad in ("\r", "\n", "\0")):
        raise BadIdentity
    return "".join(f"{name}: {value}\r\n" for name, value in lines).encode()
