"""rabbitmq: the trigger's keys and KEDA's rules for them, the typed config and its broker.

The two ways in, chosen as in KEDA by `protocol` or the host URL's scheme, are the clients in
`amqp_client` and `management_client`; `queues` is the scaler that ties them together:

* AMQP (`amqp://`, `amqps://`): the ready-message count from a passive queue declare, over one
  connection and one channel per broker.
* HTTP (`http://`, `https://`): ONE management API queue listing per vhost per read answers
  every config of that vhost, exact names by lookup and `useRegex` patterns (matched like the API
  does: case-insensitive search) aggregated with `operation`.

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

import functools
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple
from urllib.parse import SplitResult, quote, unquote, urlsplit

import httpx

from scalers.base import ScalerError
from scalers.params import ParameterError, TriggerParams, mask, param, parse_params, secret_field, secret_values
from scalers.sources import ALL_SOURCES, AUTH_ONLY, METADATA_ONLY, METADATA_OR_AUTH, SECRET_SOURCES
from scalers.tls import TLSSettings, check_settings

Mode = Literal[
    "QueueLength", "MessageRate", "DeliverGetRate", "PublishedToDeliveredRatio",
    "ExpectedQueueConsumptionTime",
]
Operation = Literal["sum", "avg", "max"]
Protocol = Literal["amqp", "http"]
RequestHook = Callable[[httpx.Request], Awaitable[None]]

DEFAULT_VALUE = 20.0
DEFAULT_HTTP_TIMEOUT_MS = 3000
AMQP_TIMEOUT = 5.0
ACTIVE_STEP = 0.001
CONNECTION_NAME = "eventscale"  # how the broker lists the AMQP client's connections
_DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671, "http": 80, "https": 443}
_PROTOCOLS: dict[str, Protocol] = {"amqp": "amqp", "amqps": "amqp", "http": "http", "https": "http"}


@dataclass(frozen=True, kw_only=True)
class _RawParams:
    """The trigger's keys as KEDA reads them, before cross-field rules."""

    queue_name: str = param("queueName", required=True, sources=METADATA_ONLY)
    mode: (
        Literal["QueueLength", "MessageRate", "DeliverGetRate", "PublishedToDeliveredRatio",
                "ExpectedQueueConsumptionTime"] | None
    ) = param("mode", sources=METADATA_ONLY)
    value: float | None = param("value", sources=METADATA_ONLY)
    activation_value: float = param("activationValue", default=0.0, sources=METADATA_ONLY)
    queue_length: float | None = param("queueLength", sources=METADATA_ONLY)
    host: str = param("host", required=True, sources=ALL_SOURCES, secret=True)
    protocol: Literal["auto", "amqp", "http"] = param("protocol", default="auto", sources=METADATA_OR_AUTH)
    vhost_name: str | None = param("vhostName", sources=METADATA_OR_AUTH)
    use_regex: bool = param("useRegex", default=False, sources=METADATA_ONLY)
    operation: Literal["sum", "avg", "max"] = param("operation", default="sum", sources=METADATA_ONLY)
    exclude_unacknowledged: bool = param("excludeUnacknowledged", default=False, sources=METADATA_ONLY)
    page_size: int = param("pageSize", default=100, sources=METADATA_ONLY)
    timeout_ms: int | None = param("timeout", sources=METADATA_ONLY)
    unsafe_ssl: bool = param("unsafeSsl", default=False, sources=METADATA_ONLY)
    username: str | None = param("username", sources=SECRET_SOURCES, secret=True)
    password: str | None = param("password", sources=SECRET_SOURCES, secret=True)
    tls: Literal["enable", "disable"] = param("tls", default="disable", sources=AUTH_ONLY)
    ca: str | None = param("ca", sources=AUTH_ONLY, secret=True)
    cert: str | None = param("cert", sources=AUTH_ONLY, secret=True)
    key: str | None = param("key", sources=AUTH_ONLY, secret=True)
    key_password: str | None = param("keyPassword", sources=AUTH_ONLY, secret=True)


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
    password: str | None = secret_field(None)
    tls: TLSSettings | None = None
    timeout: float = AMQP_TIMEOUT  # seconds per HTTP request or AMQP connect

    def __str__(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        tail = f"/{quote(self.vhost, safe='')}" if self.vhost is not None else self.path
        return f"{self.scheme}://{user}{host}:{self.port}{tail}"

    def mask(self, text: str) -> str:
        """`text` without this broker's password, and without the password of any URL a library printed."""
        return re.sub(r"([^\s/:@]+):([^\s/:@]+)@", r"\1:***@", mask(text, secret_values(self)))

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
        queue_pattern(pattern)
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
            check_settings(tls)
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


@functools.lru_cache(maxsize=4096)
def queue_pattern(pattern: str) -> re.Pattern[str]:
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


def describe(exc: BaseException) -> str:
    """`Type: detail`; pika's connection errors carry their cause in args, not in str()."""
    text = str(exc).strip() or ", ".join(repr(arg) for arg in exc.args)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
