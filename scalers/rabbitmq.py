"""rabbitmq: queue length and message rates of RabbitMQ queues (KEDA's `rabbitmq` trigger).

Two ways in, as in KEDA, chosen by `protocol` or the host URL's scheme:

* AMQP (`amqp://`, `amqps://`): the ready-message count from a passive queue declare. pika is
  synchronous, so each broker gets one worker thread holding ONE connection and ONE channel;
  a batch is one passive declare per distinct queue on that channel. A missing queue closes the
  channel (404): its slot gets an error and a new channel carries on with the rest.
* HTTP (`http://`, `https://`, the management API): ONE `GET /api/queues/<vhost>` per vhost per
  read, with only the columns needed, answers every config of that vhost, exact names by lookup
  and `useRegex` patterns (matched like the API does: case-insensitive search) aggregated with
  `operation`. KEDA asks the API for one page of `pageSize` matches and fails when there are
  more; the listing gives the same answer without a call per pattern.

Configs that share a broker (scheme, address, credentials, TLS; for AMQP also the vhost) have
equal `Broker`s, the server key, and so share one client. Every message names the broker as a
masked URL (`amqp://user:***@host:5672/vhost`); passwords never reach a message or a repr.

KEDA decides activity separately for a few modes (PublishedToDeliveredRatio and
ExpectedQueueConsumptionTime report `activationValue` but count as active when messages are
published or waiting and nothing is delivered). Here activity is always value > activation, so
those cases report one milli-unit above `activationValue`, the smallest step the metric carries.
An empty queue's ExpectedQueueConsumptionTime is 0 (KEDA's fix for idle queues that never
scaled to zero). MessageRate is the publish rate alone: KEDA's extra "or messages waiting"
activity has no value to carry it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple
from urllib.parse import SplitResult, quote, quote_plus, unquote, urlsplit

import httpx
import pika
import pika.exceptions

from .base import (
    ALL_SOURCES,
    SECRET_SOURCES,
    MetricSpec,
    ParameterError,
    Scaler,
    ScalerClient,
    ScalerError,
    Source,
    TriggerParams,
    param,
    parse_params,
)

Mode = Literal[
    "QueueLength", "MessageRate", "DeliverGetRate", "PublishedToDeliveredRatio",
    "ExpectedQueueConsumptionTime",
]
Operation = Literal["sum", "avg", "max"]
Protocol = Literal["amqp", "http"]

DEFAULT_VALUE = 20.0
DEFAULT_HTTP_TIMEOUT_MS = 3000
AMQP_TIMEOUT = 5.0
AMQP_HEARTBEAT = 30
ACTIVE_STEP = 0.001
CONNECTION_NAME = "eventscale"
HTTP_MAX_CONNECTIONS = 4
LISTING_COLUMNS = (
    "name,messages,messages_ready,"
    "message_stats.publish_details.rate,message_stats.deliver_get_details.rate"
)
_METADATA = (Source.METADATA,)
_METADATA_AUTH = (Source.METADATA, Source.AUTH)
_AUTH = (Source.AUTH,)
_DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671, "http": 80, "https": 443}
_PROTOCOLS: dict[str, Protocol] = {"amqp": "amqp", "amqps": "amqp", "http": "http", "https": "http"}


@dataclass(frozen=True, kw_only=True)
class _RawParams:
    """The trigger's keys as KEDA reads them, before cross-field rules."""

    queue_name: str = param("queueName", required=True, sources=_METADATA)
    mode: (
        Literal["QueueLength", "MessageRate", "DeliverGetRate", "PublishedToDeliveredRatio",
                "ExpectedQueueConsumptionTime"] | None
    ) = param("mode", sources=_METADATA)
    value: float | None = param("value", sources=_METADATA)
    activation_value: float = param("activationValue", default=0.0, sources=_METADATA)
    queue_length: float | None = param("queueLength", sources=_METADATA)
    host: str = param("host", required=True, sources=ALL_SOURCES, secret=True)
    protocol: Literal["auto", "amqp", "http"] = param("protocol", default="auto", sources=_METADATA_AUTH)
    vhost_name: str | None = param("vhostName", sources=_METADATA_AUTH)
    use_regex: bool = param("useRegex", default=False, sources=_METADATA)
    operation: Literal["sum", "avg", "max"] = param("operation", default="sum", sources=_METADATA)
    exclude_unacknowledged: bool = param("excludeUnacknowledged", default=False, sources=_METADATA)
    page_size: int = param("pageSize", default=100, sources=_METADATA)
    timeout_ms: int | None = param("timeout", sources=_METADATA)
    unsafe_ssl: bool = param("unsafeSsl", default=False, sources=_METADATA)
    username: str | None = param("username", sources=SECRET_SOURCES, secret=True)
    password: str | None = param("password", sources=SECRET_SOURCES, secret=True)
    tls: Literal["enable", "disable"] = param("tls", default="disable", sources=_AUTH)
    ca: str | None = param("ca", sources=_AUTH, secret=True)
    cert: str | None = param("cert", sources=_AUTH, secret=True)
    key: str | None = param("key", sources=_AUTH, secret=True)
    key_password: str | None = param("keyPassword", sources=_AUTH, secret=True)


@dataclass(frozen=True, kw_only=True)
class TLSSettings:
    """TLS for an amqps:// or https:// broker; PEM material only with the `tls: enable` auth param."""

    ca: str | None = field(default=None, repr=False)
    cert: str | None = field(default=None, repr=False)
    key: str | None = field(default=None, repr=False)
    key_password: str | None = field(default=None, repr=False)
    unsafe_ssl: bool = False


@dataclass(frozen=True, kw_only=True)
class Broker:
    """What a config talks to; equal brokers share one client. `str()` is the masked URL."""

    protocol: Protocol
    scheme: str
    host: str
    port: int
    path: str = ""  # HTTP: the path in front of the management API (a reverse-proxy prefix)
    vhost: str | None = None  # AMQP only: a connection belongs to one vhost
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TLSSettings | None = None
    timeout: float = AMQP_TIMEOUT  # seconds per HTTP request or AMQP connect

    def __str__(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        tail = f"/{quote(self.vhost, safe='')}" if self.vhost is not None else self.path
        return f"{self.scheme}://{user}{host}:{self.port}{tail}"

    def mask(self, text: str) -> str:
        """`text` without this broker's password, in any spelling a library might print."""
        if self.password:
            for spelling in {self.password, quote(self.password, safe=""), quote_plus(self.password)}:
                text = text.replace(spelling, "***")
        return re.sub(r"([^\s/:@]+):([^\s/:@]+)@", r"\1:***@", text)

    def error(self, what: str) -> ScalerError:
        """A ScalerError naming this broker (masked), with any password in `what` masked too."""
        return ScalerError(self.mask(f"rabbitmq {self}: {what}"))


@dataclass(frozen=True, kw_only=True)
class RabbitMQConfig:
    queue_name: str
    mode: Mode
    value: float
    activation_value: float = 0.0
    vhost: str = "/"
    use_regex: bool = False
    operation: Operation = "sum"
    exclude_unacknowledged: bool = False
    page_size: int = 100
    broker: Broker


# -- parsing --------------------------------------------------------------------------------


def parse_config(params: TriggerParams) -> RabbitMQConfig:
    raw = parse_params(_RawParams, params)
    mode, value = _target(raw)
    url = _split_host(raw.host)
    protocol = _protocol(raw.protocol, url.scheme)
    _check_protocol_rules(raw, mode, protocol)
    if raw.page_size < 1:
        raise ParameterError('parameter "pageSize" must be 1 or greater')
    if raw.use_regex:
        _check_regex(raw.queue_name)
    vhost = _vhost(url, protocol, raw.vhost_name)
    return RabbitMQConfig(
        queue_name=raw.queue_name,
        mode=mode,
        value=value,
        activation_value=raw.activation_value,
        vhost=vhost,
        use_regex=raw.use_regex,
        operation=raw.operation,
        exclude_unacknowledged=raw.exclude_unacknowledged,
        page_size=raw.page_size,
        broker=_broker(raw, url, protocol, vhost),
    )


def _target(raw: _RawParams) -> tuple[Mode, float]:
    """KEDA's rules for mode, value and the deprecated queueLength (zero counts as not given)."""
    if not raw.queue_length and raw.mode is None and not raw.value:
        return "QueueLength", DEFAULT_VALUE
    if raw.queue_length:
        if raw.mode is not None or raw.value:
            raise ParameterError('parameter "queueLength" is deprecated; use "mode" and "value", not both')
        return "QueueLength", raw.queue_length
    if raw.mode is None:
        raise ParameterError('missing required parameter "mode"')
    if not raw.value:
        raise ParameterError('missing required parameter "value"')
    return raw.mode, raw.value


def _split_host(host: str) -> SplitResult:
    try:
        url = urlsplit(host)
        url.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ParameterError('parameter "host" is not a valid URL') from None
    if not url.hostname:
        raise ParameterError('parameter "host" has no host name')
    return url


def _protocol(requested: str, scheme: str) -> Protocol:
    found = _PROTOCOLS.get(scheme.lower())
    if found is None:
        raise ParameterError(f'parameter "host" has unknown URL scheme "{scheme}" (amqp, amqps, http, https)')
    if requested != "auto" and requested != found:
        raise ParameterError(f'protocol "{requested}" does not match the host URL scheme "{scheme}"')
    return found


def _check_protocol_rules(raw: _RawParams, mode: Mode, protocol: Protocol) -> None:
    if protocol == "amqp":
        if mode != "QueueLength":
            raise ParameterError(f'mode "{mode}" needs protocol http, not amqp')
        for key, given in (("useRegex", raw.use_regex), ("excludeUnacknowledged", raw.exclude_unacknowledged),
                           ("timeout", bool(raw.timeout_ms))):
            if given:
                raise ParameterError(f'parameter "{key}" needs protocol http, not amqp')
    if raw.timeout_ms is not None and raw.timeout_ms < 0:
        raise ParameterError('parameter "timeout" must not be negative')
    if bool(raw.username) != bool(raw.password):
        raise ParameterError('parameters "username" and "password" must be given together')
    if bool(raw.cert) != bool(raw.key):
        raise ParameterError('parameters "cert" and "key" must be given together')


def _check_regex(pattern: str) -> None:
    try:
        _compiled(pattern)
    except re.error as exc:
        raise ParameterError(f'parameter "queueName" is not a valid regular expression: {exc}') from None


def _vhost(url: SplitResult, protocol: Protocol, vhost_name: str | None) -> str:
    """`vhostName`, else the URL's vhost (AMQP: the path; HTTP: its last segment); empty is `/`."""
    if vhost_name:
        return vhost_name
    path = url.path.removeprefix("/")
    segment = path if protocol == "amqp" else path.rsplit("/", 1)[-1]
    return unquote(segment) or "/"


def _broker(raw: _RawParams, url: SplitResult, protocol: Protocol, vhost: str) -> Broker:
    scheme = url.scheme.lower()
    username = raw.username or (unquote(url.username) if url.username else None)
    password = raw.password or (unquote(url.password) if url.password else None)
    tls = None
    if scheme in ("amqps", "https"):
        given = raw.tls == "enable"
        tls = TLSSettings(ca=raw.ca if given else None, cert=raw.cert if given else None,
                          key=raw.key if given else None, key_password=raw.key_password if given else None,
                          unsafe_ssl=raw.unsafe_ssl)
        if given and (raw.ca or raw.cert):
            _check_tls(tls)
    timeout_ms = raw.timeout_ms or DEFAULT_HTTP_TIMEOUT_MS  # KEDA: 0 means the default
    return Broker(
        protocol=protocol,
        scheme=scheme,
        host=url.hostname or "",
        port=url.port or _DEFAULT_PORTS[scheme],
        path="" if protocol == "amqp" else url.path.rsplit("/", 1)[0].rstrip("/"),
        vhost=vhost if protocol == "amqp" else None,
        username=username,
        password=password,
        tls=tls,
        timeout=AMQP_TIMEOUT if protocol == "amqp" else timeout_ms / 1000,
    )


def tls_context(settings: TLSSettings) -> ssl.SSLContext:
    """An SSL context from PEM text; the client key touches disk only inside `load_cert_chain`."""
    context = ssl.create_default_context(cadata=settings.ca)
    if settings.unsafe_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if settings.cert and settings.key:
        with tempfile.TemporaryDirectory(prefix="eventscale-tls-") as directory:
            cert_path, key_path = Path(directory, "cert.pem"), Path(directory, "key.pem")
            for path, text in ((cert_path, settings.cert), (key_path, settings.key)):
                with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
                    out.write(text)
            context.load_cert_chain(cert_path, key_path, password=settings.key_password)
    return context


@functools.lru_cache(maxsize=256)
def _check_tls(settings: TLSSettings) -> None:
    """Fail at parse time on PEM material that does not load; once per distinct material."""
    try:
        tls_context(settings)
    except (ssl.SSLError, ValueError) as exc:
        raise ParameterError(f'TLS parameters "ca", "cert", "key" cannot be loaded: {exc}') from None


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str]:
    """The management API filters names with a case-insensitive regex search; so do we."""
    return re.compile(pattern, re.IGNORECASE)


# -- values ---------------------------------------------------------------------------------


class QueueStats(NamedTuple):
    messages: int
    ready: int
    publish_rate: float = 0.0
    deliver_rate: float = 0.0


def aggregate(stats: Sequence[QueueStats], operation: Operation) -> QueueStats:
    """KEDA's composed queue for a regex: sum, average (whole messages) or maximum per field."""
    if not stats:
        return QueueStats(0, 0)
    columns = list(zip(*stats, strict=True))
    if operation == "max":
        return QueueStats(*(max(column) for column in columns))
    total = QueueStats(*(sum(column) for column in columns))
    if operation == "sum":
        return total
    n = len(stats)
    return QueueStats(total.messages // n, total.ready // n, total.publish_rate / n, total.deliver_rate / n)


def metric_value(config: RabbitMQConfig, stats: QueueStats) -> float:
    """The value of `config`'s mode, with KEDA's formulas for the two derived modes."""
    messages = stats.ready if config.exclude_unacknowledged else stats.messages
    publish, deliver = stats.publish_rate, stats.deliver_rate
    forced_active = config.activation_value + ACTIVE_STEP
    if config.mode == "QueueLength":
        return float(messages)
    if config.mode == "MessageRate":
        return publish
    if config.mode == "DeliverGetRate":
        return deliver
    if config.mode == "PublishedToDeliveredRatio":
        if publish > 0 and deliver == 0:
            return forced_active
        return publish / deliver if publish > 0 and deliver > 0 else 0.0
    if messages == 0:
        return 0.0
    if deliver == 0:
        return forced_active
    return (publish - deliver) / deliver + messages / deliver


# -- HTTP: the management API ---------------------------------------------------------------

RequestHook = Callable[[httpx.Request], Awaitable[None]]
Listing = dict[str, QueueStats]


class ManagementClient(ScalerClient[RabbitMQConfig]):
    """One httpx pool per broker; one queue listing per vhost per read."""

    def __init__(self, broker: Broker, request_hooks: Sequence[RequestHook] = ()) -> None:
        self._broker = broker
        self._hooks = list(request_hooks)
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            b = self._broker
            host = f"[{b.host}]" if ":" in b.host else b.host
            self._http = httpx.AsyncClient(
                base_url=f"{b.scheme}://{host}:{b.port}{b.path}",
                auth=(b.username, b.password or "") if b.username else None,
                timeout=b.timeout,
                verify=tls_context(b.tls) if b.tls else False,  # plain http: nothing to verify
                limits=httpx.Limits(max_connections=HTTP_MAX_CONNECTIONS),
                event_hooks={"request": self._hooks},
                trust_env=False,
            )
        return self._http

    async def read(self, configs: Sequence[RabbitMQConfig]) -> list[float | ScalerError]:
        vhosts = list(dict.fromkeys(c.vhost for c in configs))
        listings = dict(zip(vhosts, await asyncio.gather(*(self._list(v) for v in vhosts)), strict=True))
        matches: dict[tuple[str, str], list[QueueStats]] = {}
        return [self._answer(c, listings[c.vhost], matches) for c in configs]

    async def _list(self, vhost: str) -> Listing | ScalerError:
        try:
            response = await self._client().get(
                f"/api/queues/{quote(vhost, safe='')}", params={"columns": LISTING_COLUMNS}
            )
        except httpx.HTTPError as exc:
            raise self._broker.error(_describe(exc)) from None
        if response.status_code == 200:
            try:
                return _listing(response.json())
            except (ValueError, TypeError, KeyError, AttributeError):
                raise self._broker.error("the queue listing is not JSON from RabbitMQ") from None
        reason = response.text[:200].strip()
        error = self._broker.error(f'listing vhost "{vhost}" answered HTTP {response.status_code}: {reason}')
        if response.status_code == 401:
            raise error
        return error

    def _answer(
        self, config: RabbitMQConfig, listing: Listing | ScalerError,
        matches: dict[tuple[str, str], list[QueueStats]],
    ) -> float | ScalerError:
        if isinstance(listing, ScalerError):
            return listing
        if not config.use_regex:
            stats = listing.get(config.queue_name)
            if stats is None:
                return self._broker.error(f'queue "{config.queue_name}" not found in vhost "{config.vhost}"')
            return metric_value(config, stats)
        key = (config.vhost, config.queue_name)
        if key not in matches:
            pattern = _compiled(config.queue_name)
            matches[key] = [s for name, s in listing.items() if pattern.search(name)]
        found = matches[key]
        if len(found) > config.page_size:
            return self._broker.error(
                f'queue regex "{config.queue_name}" matches {len(found)} queues in vhost "{config.vhost}", '
                f"more than pageSize {config.page_size}"
            )
        return metric_value(config, aggregate(found, config.operation))

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def _listing(items: list[dict[str, Any]]) -> Listing:
    listing: Listing = {}
    for item in items:
        stats = item.get("message_stats") or {}
        listing[item["name"]] = QueueStats(
            messages=int(item.get("messages") or 0),
            ready=int(item.get("messages_ready") or 0),
            publish_rate=float((stats.get("publish_details") or {}).get("rate") or 0.0),
            deliver_rate=float((stats.get("deliver_get_details") or {}).get("rate") or 0.0),
        )
    return listing


def _describe(exc: BaseException) -> str:
    """`Type: detail`; pika's connection errors carry their cause in args, not in str()."""
    text = str(exc).strip() or ", ".join(repr(arg) for arg in exc.args)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- AMQP: passive declares -----------------------------------------------------------------

# Anything else pika or the socket raises outside a queue's own channel close ends the connection.
_CONNECTION_ERRORS = (pika.exceptions.AMQPError, OSError)


class AmqpClient(ScalerClient[RabbitMQConfig]):
    """One pika connection and channel per broker, used only from this client's worker thread."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rabbitmq-amqp")
        self._connection: pika.BlockingConnection | None = None
        self._channel: Any = None
        self._closed = False

    async def read(self, configs: Sequence[RabbitMQConfig]) -> list[float | ScalerError]:
        if self._closed:
            raise ScalerError(f"rabbitmq {self._broker}: client is closed")
        names = list(dict.fromkeys(c.queue_name for c in configs))
        counts = await asyncio.get_running_loop().run_in_executor(self._executor, self._declare_all, names)
        return [_amqp_value(c, counts[c.queue_name]) for c in configs]

    def _declare_all(self, names: list[str]) -> dict[str, int | ScalerError]:
        """Runs in the worker thread. A reused connection may have gone stale (idle past its
        heartbeat, closed by the broker): then one fresh connection gets a second try."""
        may_retry = self._connection is not None
        while True:
            try:
                return self._declare_batch(names)
            except _CONNECTION_ERRORS as exc:
                self._close_connection()
                if not may_retry:
                    raise self._broker.error(_amqp_failure(exc)) from None
                may_retry = False

    def _declare_batch(self, names: list[str]) -> dict[str, int | ScalerError]:
        if self._connection is None:
            self._connection = pika.BlockingConnection(self._parameters())
        if self._channel is None:
            self._channel = self._connection.channel()
        counts: dict[str, int | ScalerError] = {}
        for name in names:
            try:
                counts[name] = int(self._channel.queue_declare(name, passive=True).method.message_count)
            except pika.exceptions.ChannelClosedByBroker as exc:
                counts[name] = self._queue_error(name, exc)
                self._channel = self._connection.channel()
        return counts

    def _queue_error(self, name: str, exc: pika.exceptions.ChannelClosedByBroker) -> ScalerError:
        if exc.reply_code == 404:
            return self._broker.error(f'queue "{name}" not found in vhost "{self._broker.vhost}"')
        return self._broker.error(f'queue "{name}": broker refused ({exc.reply_code}) {exc.reply_text}')

    def _parameters(self) -> pika.ConnectionParameters:
        b = self._broker
        ssl_options = pika.SSLOptions(tls_context(b.tls), server_hostname=b.host) if b.tls else None
        return pika.ConnectionParameters(
            host=b.host, port=b.port, virtual_host=b.vhost or "/",
            credentials=pika.PlainCredentials(b.username or "guest", b.password or "guest"),
            ssl_options=ssl_options, connection_attempts=1, retry_delay=0,
            socket_timeout=b.timeout, stack_timeout=2 * b.timeout, blocked_connection_timeout=2 * b.timeout,
            heartbeat=AMQP_HEARTBEAT, client_properties={"connection_name": CONNECTION_NAME},
        )

    def _close_connection(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                connection.close()

    async def aclose(self) -> None:
        """Close in the worker thread, but never wait on it longer than a connect could take."""
        if self._closed:
            return
        self._closed = True
        closing = asyncio.get_running_loop().run_in_executor(self._executor, self._close_connection)
        try:
            await asyncio.wait_for(asyncio.shield(closing), timeout=2 * self._broker.timeout)
        except TimeoutError:
            pass
        finally:
            self._executor.shutdown(wait=False)


def _amqp_value(config: RabbitMQConfig, count: int | ScalerError) -> float | ScalerError:
    return count if isinstance(count, ScalerError) else metric_value(config, QueueStats(count, count))


def _amqp_failure(exc: BaseException) -> str:
    if isinstance(exc, pika.exceptions.ProbableAuthenticationError | pika.exceptions.AuthenticationError):
        return "login refused (check username and password)"
    if isinstance(exc, pika.exceptions.ProbableAccessDeniedError):
        return "access to the vhost refused"
    return f"cannot connect: {_describe(exc)}"


# -- the scaler -----------------------------------------------------------------------------


class RabbitMQScaler(Scaler[RabbitMQConfig]):
    """`http_request_hooks` are given to every management API client (tests count requests)."""

    types = ("rabbitmq",)

    def __init__(self, http_request_hooks: Sequence[RequestHook] = ()) -> None:
        self._hooks = tuple(http_request_hooks)

    def parse(self, trigger_type: str, params: TriggerParams) -> RabbitMQConfig:
        return parse_config(params)

    def metric(self, config: RabbitMQConfig) -> MetricSpec:
        return MetricSpec(
            name=f"rabbitmq-{quote_plus(config.queue_name, safe='')}",
            target=config.value,
            activation=config.activation_value,
        )

    def server_key(self, config: RabbitMQConfig) -> Broker:
        return config.broker

    def open_client(self, config: RabbitMQConfig) -> ScalerClient[RabbitMQConfig]:
        if config.broker.protocol == "amqp":
            return AmqpClient(config.broker)
        return ManagementClient(config.broker, self._hooks)
