"""What the HTTP scalers (prometheus, metrics-api) share: KEDA's `authModes`, timeouts, the client.

KEDA's `authentication.Config` is read the same way by both: `authModes` (or `authMode`) from
metadata or auth params, a comma-separated subset of apiKey, basic, tls, bearer, custom (oauth is
not supported here), at most one of basic and bearer; the credentials from auth params only
(`apiKey`, `method` and `keyParamName` also from metadata). The result is a frozen, hashable
`HttpAuth` whose secrets never show in its repr, part of each scaler's server key.

Deviations from KEDA, all in the user's favour: every mode given is applied by both scalers
(KEDA's prometheus scaler applies only the first of bearer, basic and custom and ignores apiKey;
its metrics-api scaler ignores custom); a `ca` is trusted whenever it is given (KEDA uses it only
with some auth mode set); `unsafeSsl` is honoured with client certificates (KEDA's prometheus
scaler drops it then).

`HttpServer` is both scalers' server key (origin, auth, timeout) and `HttpServerClient` the
client they build on. `open_client` builds the one keep-alive httpx client of a server: at most `MAX_CONNECTIONS`
connections (requests beyond that wait for one, so a poll of a thousand queries holds two
sockets), no environment proxies, TLS from `scalers.tls`.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import httpx

from scalers.base import ClientOptions, ConfigT, ScalerClient
from scalers.params import ParameterError, TriggerParams, param, parse_params, secret_field
from scalers.sources import AUTH_ONLY, METADATA_ONLY, METADATA_OR_AUTH
from scalers.tls import TLSSettings, check_settings, client_context

MAX_CONNECTIONS = 2
DEFAULT_TIMEOUT = 3.0  # seconds: KEDA's KEDA_HTTP_DEFAULT_TIMEOUT
AUTH_MODES = ("apiKey", "basic", "tls", "bearer", "custom", "oauth")
EXCLUSIVE_MODES = ("bearer", "basic", "oauth")

RequestHook = Callable[[httpx.Request], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class _RawAuth:
    modes: str | None = param("authModes", sources=METADATA_OR_AUTH)
    mode: str | None = param("authMode", sources=METADATA_OR_AUTH)
    bearer_token: str | None = param("bearerToken", sources=AUTH_ONLY, secret=True)
    token: str | None = param("token", sources=AUTH_ONLY, secret=True)
    username: str | None = param("username", sources=AUTH_ONLY)
    password: str | None = param("password", sources=AUTH_ONLY, secret=True)
    cert: str | None = param("cert", sources=AUTH_ONLY, secret=True)
    key: str | None = param("key", sources=AUTH_ONLY, secret=True)
    ca: str | None = param("ca", sources=AUTH_ONLY, secret=True)
    custom_header: str | None = param("customAuthHeader", sources=AUTH_ONLY)
    custom_value: str | None = param("customAuthValue", sources=AUTH_ONLY, secret=True)
    api_key: str | None = param("apiKey", sources=METADATA_OR_AUTH, secret=True)
    method: Literal["header", "query"] = param("method", default="header", sources=METADATA_OR_AUTH)
    key_param_name: str | None = param("keyParamName", sources=METADATA_OR_AUTH)
    unsafe_ssl: bool = param("unsafeSsl", default=False, sources=METADATA_ONLY)


@dataclass(frozen=True, kw_only=True, slots=True)
class HttpAuth:
    """How to authenticate to one HTTP server; equal values share a client."""

    modes: tuple[str, ...] = ()
    username: str | None = None
    password: str | None = secret_field(None)
    bearer_token: str | None = secret_field(None)
    custom_header: str | None = None
    custom_value: str | None = secret_field(None)
    api_key: str | None = secret_field(None)
    api_key_in_query: bool = False
    key_param_name: str | None = None
    tls: TLSSettings | None = None

    def headers(self) -> dict[str, str]:
        """The headers every request carries (basic auth goes through httpx's auth)."""
        found: dict[str, str] = {}
        if "bearer" in self.modes and self.bearer_token:
            found["Authorization"] = f"Bearer {self.bearer_token}"
        if "custom" in self.modes and self.custom_header and self.custom_value:
            found[self.custom_header] = self.custom_value
        if "apiKey" in self.modes and self.api_key and not self.api_key_in_query:
            found[self.key_param_name or "X-API-KEY"] = self.api_key
        return found

    def query(self) -> dict[str, str]:
        """Query parameters every request carries (an API key sent with `method: query`)."""
        if "apiKey" in self.modes and self.api_key and self.api_key_in_query:
            return {self.key_param_name or "api_key": self.api_key}
        return {}

    def basic(self) -> tuple[str, str] | None:
        if "basic" in self.modes and self.username:
            return self.username, self.password or ""
        return None


def parse_auth(params: TriggerParams) -> HttpAuth:
    """KEDA's authentication.Config, validated with its messages."""
    raw = parse_params(_RawAuth, params)
    modes = _modes(raw.modes or raw.mode)
    bearer = raw.bearer_token or raw.token
    if "oauth" in modes:
        raise ParameterError('authMode "oauth" is not supported')
    if "bearer" in modes and not bearer:
        raise ParameterError("bearer token=<empty> is required when bearer auth is enabled")
    if "basic" in modes and not raw.username:
        raise ParameterError("username=<empty> is required when basic auth is enabled")
    if "tls" in modes and not (raw.cert and raw.key):
        raise ParameterError(f"cert={_given(raw.cert)} and key={_given(raw.key)} are required when tls auth "
                             "is enabled")
    if "custom" in modes and not (raw.custom_header and raw.custom_value):
        raise ParameterError(f"customAuthHeader={_given(raw.custom_header)} and customAuthValue="
                             f"{_given(raw.custom_value)} are required when custom auth is enabled")
    if "apiKey" in modes and not raw.api_key:
        raise ParameterError("apiKey is required when apiKey auth is enabled")
    tls = None
    if raw.ca or "tls" in modes or raw.unsafe_ssl:
        use_cert = "tls" in modes
        tls = TLSSettings(ca=raw.ca, cert=raw.cert if use_cert else None, key=raw.key if use_cert else None,
                          unsafe_ssl=raw.unsafe_ssl)
        check_settings(tls)
    return HttpAuth(
        modes=modes, username=raw.username, password=raw.password, bearer_token=bearer,
        custom_header=raw.custom_header, custom_value=raw.custom_value, api_key=raw.api_key,
        api_key_in_query=raw.method == "query", key_param_name=raw.key_param_name, tls=tls,
    )


def _modes(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    modes = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [m for m in modes if m not in AUTH_MODES]
    if unknown:
        raise ParameterError(f'parameter "authModes" value "{text}" must be one of [{" ".join(AUTH_MODES)}]')
    if sum(m in EXCLUSIVE_MODES for m in modes) > 1:
        raise ParameterError(f'parameter "authModes" value "{text}" must contain only one of '
                             f'[{" ".join(EXCLUSIVE_MODES)}]')
    return modes


def _given(value: str | None) -> str:
    return "<present>" if value else "<empty>"


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_timeout(key: str, text: str | None) -> float | None:
    """KEDA's time.Duration parameter: a Go duration ("30s", "1m30s") or milliseconds, not negative."""
    if text is None:
        return None
    seconds = _go_duration(text)
    if seconds is None:
        if not re.fullmatch(r"[+-]?\d+", text):
            raise ParameterError(f'parameter "{key}" value "{text}" must be either a duration string '
                                 "(e.g. '30s', '5m') or a number of milliseconds")
        seconds = int(text) / 1000
    if seconds < 0:
        raise ParameterError(f'parameter "{key}" value "{text}" must not be negative')
    return seconds


def _go_duration(text: str) -> float | None:
    sign, body = (-1.0, text[1:]) if text.startswith("-") else (1.0, text.removeprefix("+"))
    if body == "0":
        return 0.0
    parts = _DURATION_PART.findall(body)
    if not parts or "".join(n + u for n, u in parts) != body:
        return None
    return sign * sum(float(number) * _UNITS[unit] for number, unit in parts)


def open_client(auth: HttpAuth, timeout: float, hooks: Sequence[RequestHook] = ()) -> httpx.AsyncClient:
    """The keep-alive client of one server: at most MAX_CONNECTIONS sockets, no wait limit for one."""
    return httpx.AsyncClient(
        auth=auth.basic(),
        headers=auth.headers(),
        timeout=httpx.Timeout(timeout, pool=None),
        verify=client_context(auth.tls) if auth.tls else True,
        limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS),
        event_hooks={"request": list(hooks)},
        trust_env=False,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class HttpServer:
    """The server key of an HTTP scaler: the URL's origin, how to log in, how long to wait."""

    origin: str
    auth: HttpAuth
    timeout: float = DEFAULT_TIMEOUT


def parse_server(url: httpx.URL, params: TriggerParams, timeout: str | None) -> HttpServer:
    """A trigger's server key: the origin of `url`, KEDA's authModes, and the `timeout` key (or
    KEDA's default); the timeout is checked first, as KEDA does."""
    seconds = parse_timeout("timeout", timeout)
    return HttpServer(origin=origin(url), auth=parse_auth(params), timeout=seconds if seconds else DEFAULT_TIMEOUT)


class HttpServerClient(ScalerClient[ConfigT]):
    """The one keep-alive client of a server, opened on the first request, closed when released."""

    def __init__(self, server: HttpServer, options: ClientOptions) -> None:
        self._server = server
        self._hooks: list[RequestHook] = list(options.request_hooks)  # awaited with each request sent
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = open_client(self._server.auth, self._server.timeout, self._hooks)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


# A server refusing a client certificate after a TLS 1.3 handshake surfaces as a bare SSLError.
TRANSPORT_ERRORS = (httpx.HTTPError, ssl.SSLError, OSError)


def describe_http_error(exc: BaseException) -> str:
    """`Type: detail` for a transport failure (httpx's messages name no credential)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def origin(url: httpx.URL) -> str:
    """`scheme://host:port` of a URL: the part that identifies a server."""
    port = url.port or (443 if url.scheme == "https" else 80)
    return f"{url.scheme}://{url.host}:{port}"


def check_url(key: str, text: str) -> httpx.URL:
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, ValueError):
        raise ParameterError(f'parameter "{key}" value "{text}" is not a URL') from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ParameterError(f'parameter "{key}" value "{text}" must be an http:// or https:// URL')
    return url


def key_values(key: str, text: str | None) -> tuple[tuple[str, str], ...]:
    """KEDA's map parameter: `k1=v1,k2=v2`, each pair trimmed; a pair without one `=` is an error."""
    if not text:
        return ()
    pairs = []
    for part in text.split(","):
        item = part.strip()
        name, sep, value = item.partition("=")
        if not sep or "=" in value:
            raise ParameterError(f'parameter "{key}" value "{text}": expected format key=value, got "{item}"')
        pairs.append((name.strip(), value.strip()))
    return tuple(pairs)

