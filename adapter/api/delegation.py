"""Other external metrics adapters behind our APIService: what we do not serve, they may.

Only one server can own `v1beta1.external.metrics.k8s.io`. With `serve --delegate-to URL`
(repeatable) a metric GET that we would answer 404 (no such ScaledObject or metric here) or 400
(a selector that names no ScaledObject: another adapter's metric) is forwarded to the delegates
in order, as kube-apiserver's aggregation layer forwards it to us: the same path and query, a
client certificate the delegate trusts as a front proxy (each delegate may have its own, and its
own CA bundle: `--delegate-to URL,ca=FILE,cert=FILE,key=FILE`) and the caller's identity in
`X-Remote-User`, `X-Remote-Group` and `X-Remote-Extra-*`. The first delegate whose answer is not
404 is the answer, status and body unchanged; when every delegate says 404 the caller gets ours.

A delegate that is down costs only what we forward to it: each request has a deadline
(`timeout`), and after a failure the delegate is skipped for `open_for` seconds (a circuit
breaker), so the answer is a quick 503 naming the delegate. Our own metrics never wait for a
delegate: they are answered before any forwarding is considered. Discovery needs no merging:
every external metrics adapter lists the one resource `externalmetrics`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from urllib.parse import quote, urlsplit

import httptools

from adapter.auth.authentication import UserInfo
from adapter.kube.wire import status_body

log = logging.getLogger("eventscale.delegation")

MAX_ANSWER = 4 << 20  # bytes: a metric value list is small; a delegate sending more is broken
MAX_IDLE = 16  # idle connections kept per delegate; more, left by a burst, are closed


class AnswerTooLarge(Exception):
    pass


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


@dataclass(frozen=True)
class Delegate:
    """One adapter behind ours."""

    url: str
    credentials: Credentials = Credentials()

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme != "https" or not parts.hostname or parts.path.strip("/") or parts.query:
            raise ValueError(f"--delegate-to {self.url!r}: expected https://host:port")


_FILE_OPTIONS = ("ca", "cert", "key")


def parse_delegate(value: str, defaults: Credentials) -> Delegate:
    """A `--delegate-to` value, `URL[,ca=FILE][,cert=FILE,key=FILE]`: the files of that delegate
    alone; what it does not name comes from `defaults` (--delegate-ca-file and the others). A
    delegate naming its own cert= and key= never presents the default client certificate."""
    url, *options = (part.strip() for part in value.split(","))
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
    return Delegate(url, credentials)


@dataclass(frozen=True)
class DelegateConfig:
    """The delegates, in the order they are asked, and the deadline and breaker they share."""

    delegates: tuple[Delegate, ...]
    timeout: float = 2.0
    open_for: float = 10.0


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


class BadIdentity(Exception):
    """A caller whose name, group or extra value cannot be a header value (CR, LF or NUL in it)."""


class _Connection(asyncio.Protocol):
    """One keep-alive HTTPS connection to a delegate, one request at a time, its answer parsed
    with httptools: a third less CPU per forwarded GET than aiohttp's client (`bench delegation`)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: asyncio.Future[Answer] | None = None
        self.body = bytearray()
        self.received = False  # a byte of the current answer arrived
        self.lost = False

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
        if self.transport is not None:
            self.transport.close()

    async def request(self, data: bytes) -> Answer:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.body = bytearray()
        self.received = False
        self.transport.write(data)
        return await self.answer


class _Forwarder:
    """One delegate's idle connections and breaker."""

    def __init__(self, url: str, context: ssl.SSLContext, timeout: float, open_for: float) -> None:
        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        self.host, self.port = parts.hostname or "", parts.port or 443
        self.head = f"Host: {parts.netloc}\r\nAccept: application/json\r\n".encode()
        self.context = context
        self.timeout = timeout
        self.idle: list[_Connection] = []
        self.open_for = open_for
        self.closed_until = 0.0  # monotonic time before which the breaker stays open
        self.last_error = ""

    @property
    def open(self) -> bool:
        return time.monotonic() < self.closed_until

    async def get(self, target: bytes, identity: bytes) -> Answer:
        """The delegate's answer to GET `target`: on an idle connection if one is left (one the
        delegate closed while idle is passed over), else on a new one."""
        request = b"GET " + target + b" HTTP/1.1\r\n" + self.head + identity + b"\r\n"
        async with asyncio.timeout(self.timeout):
            while self.idle:
                connection = self.idle.pop()
                if connection.lost:
                    continue
                try:
                    return self._keep(connection, await connection.request(request))
                except ConnectionResetError:
                    if connection.received:
                        raise
                except BaseException:
                    connection.close()
                    raise
            loop = asyncio.get_running_loop()
            _, connection = await loop.create_connection(_Connection, self.host, self.port, ssl=self.context,
                                                         server_hostname=self.host)
            try:
                return self._keep(connection, await connection.request(request))
            except BaseException:
                connection.close()
                raise

    def _keep(self, connection: _Connection, answer: Answer) -> Answer:
        if len(self.idle) >= MAX_IDLE:
            connection.close()
        elif not connection.lost:
            self.idle.append(connection)
        return answer

    def failed(self, error: Exception) -> None:
        self.closed_until = time.monotonic() + self.open_for
        self.last_error = self._reason(error)
        log.warning("delegate=%s failed (%s): skipped for %gs", self.url, self.last_error, self.open_for)

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
    """The delegates, in order, each with its idle keep-alive connections and a breaker."""

    def __init__(self, config: DelegateConfig) -> None:
        self._delegates = [_Forwarder(delegate.url, delegate.credentials.ssl_context(), config.timeout, config.open_for)
                           for delegate in config.delegates]

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
                unavailable.append(f"{delegate.url} ({delegate.last_error}, retried in at most {delegate.open_for:g}s)")
                continue
            try:
                answer = await delegate.get(target, identity)
            except (TimeoutError, OSError, AnswerTooLarge, httptools.HttpParserError) as exc:
                delegate.failed(exc)
                unavailable.append(f"{delegate.url} ({delegate.last_error})")
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
