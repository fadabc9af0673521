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

import logging
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import aiohttp
from yarl import URL

from adapter.auth.authentication import UserInfo
from adapter.kube.wire import status_body

log = logging.getLogger("eventscale.delegation")

MAX_ANSWER = 4 << 20  # bytes: a metric value list is small; a delegate sending more is broken


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


class _Forwarder:
    """One delegate's pooled client and breaker."""

    def __init__(self, url: str, context: ssl.SSLContext, timeout: float, open_for: float) -> None:
        self.url = url.rstrip("/")
        self.context = context
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.session: aiohttp.ClientSession | None = None  # made in the event loop, on first use
        self.open_for = open_for
        self.closed_until = 0.0  # monotonic time before which the breaker stays open
        self.last_error = ""

    @property
    def open(self) -> bool:
        return time.monotonic() < self.closed_until

    async def get(self, target: str, user: UserInfo) -> Answer:
        if self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.context),
                                                 timeout=self.timeout, skip_auto_headers=("User-Agent",))
        headers = [("Accept", "application/json"), *identity_headers(user)]
        url = URL(self.url + target, encoded=True)  # path and query as the caller sent them, not re-encoded
        async with self.session.get(url, headers=headers, allow_redirects=False) as response:
            return Answer(response.status, await _whole_body(response))

    def failed(self, error: Exception) -> None:
        self.closed_until = time.monotonic() + self.open_for
        self.last_error = self._reason(error)
        log.warning("delegate=%s failed (%s): skipped for %gs", self.url, self.last_error, self.open_for)

    def _reason(self, error: Exception) -> str:
        """What went wrong, in words (never the exception's text, which may quote a URL's secrets)."""
        if isinstance(error, TimeoutError):
            return f"no answer within {self.timeout.total:g}s"
        if isinstance(error, (ssl.SSLError, aiohttp.ClientSSLError)):
            return "TLS failed"
        if isinstance(error, (aiohttp.ClientConnectorError, ConnectionError)):
            return "connection failed"
        if isinstance(error, AnswerTooLarge):
            return f"answer over {MAX_ANSWER} bytes"
        return type(error).__name__


class Delegates:
    """The delegates, in order, each with a pooled HTTPS client (aiohttp: a third of httpx's
    per-request cost here, which matters on a path that adds a hop) and a breaker."""

    def __init__(self, config: DelegateConfig) -> None:
        self._delegates = [_Forwarder(delegate.url, delegate.credentials.ssl_context(), config.timeout, config.open_for)
                           for delegate in config.delegates]

    async def forward(self, path: str, query_string: bytes, user: UserInfo) -> Answer | None:
        """The first answer that is not a 404; a 503 naming the delegates that failed; or None
        (every delegate said 404: the caller answers with its own error)."""
        target = path + ("?" + query_string.decode("latin-1") if query_string else "")
        unavailable: list[str] = []
        for delegate in self._delegates:
            if delegate.open:
                unavailable.append(f"{delegate.url} ({delegate.last_error}, retried in at most {delegate.open_for:g}s)")
                continue
            try:
                answer = await delegate.get(target, user)
            except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError, AnswerTooLarge) as exc:
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
            if delegate.session is not None:
                await delegate.session.close()


async def _whole_body(response: aiohttp.ClientResponse) -> bytes:
    """The body to its end (so the connection goes back to the pool), refused past MAX_ANSWER."""
    if (response.content_length or 0) > MAX_ANSWER:
        raise AnswerTooLarge
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > MAX_ANSWER:
            raise AnswerTooLarge
    return bytes(body)


def identity_headers(user: UserInfo) -> list[tuple[str, str]]:
    """The caller, as kube-apiserver's front proxy says it (extra keys percent-encoded)."""
    headers = [("X-Remote-User", user.name)]
    headers += [("X-Remote-Group", group) for group in user.groups]
    headers += [(f"X-Remote-Extra-{quote(key, safe='')}", value)
                for key, values in user.extra.items() for value in values]
    return headers
