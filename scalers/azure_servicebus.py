"""azure-servicebus: scale on the active messages of a Service Bus queue or topic subscription.

KEDA's `azure-servicebus` trigger, read through the management API of the azure-servicebus SDK
(`ServiceBusAdministrationClient`, async). What KEDA does, this does: `queueName`, or `topicName`
with `subscriptionName`; the value is the entity's active message count; with `useRegex` the
queue (or subscription) name is a regular expression that must match a whole entity name, and
the counts of every match are combined by `operation` (sum, avg rounded down as KEDA does, max;
no match is 0). The metric is `azure-servicebus-<queue>` or `azure-servicebus-<topic>`
(`azure-servicebus-queue-regex` / `-topic-regex` with a regex).

Only connection strings (`connection` auth param or `connectionFromEnv`) are supported, with a
key (`SharedAccessKeyName` + `SharedAccessKey`) or a ready `SharedAccessSignature` token. A
trigger that names a `namespace` without a connection asks for workload identity, which is out of
scope here: it is parsed like KEDA (`namespace` + `cloud` / `endpointSuffix`) and refused with a
ParameterError that says so. An extra auth param `ca` (PEM) replaces the system trust store for
namespaces behind a private CA (Azure Stack Hub, air-gapped clouds, the test stand-in); it only
changes which CA is trusted, never whether certificates and host names are verified. Unlike
KEDA, `messageCount` must be positive (a zero target gives the HPA nothing to divide by), and
regexes are Python's, not Go's RE2 (the same for the usual `name-.*` patterns).

One client (one admin client, one aiohttp pool of at most `MAX_CONCURRENT_CALLS` connections)
serves every trigger of a namespace and credential. A poll groups the watched entities: queues,
and the subscriptions of each topic. A group of up to `LISTING_THRESHOLD` (5) distinct names is
read with one runtime-properties GET per entity, concurrently; a bigger group, or one with a
regex, with ONE listing (`list_queues_runtime_properties` /
`list_subscriptions_runtime_properties(topic)`, 100 entities a page). At six names or more the
listing costs fewer requests than the GETs in any namespace of up to 500 entities of that kind,
its cost stays flat as triggers are added, and Service Bus throttles management calls per
namespace. Every call has a timeout (a listing's, per page); error messages name the namespace
host and the entity, never the key, the token or the connection string.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import aiohttp
from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.core.pipeline.transport import AioHttpTransport
from azure.servicebus.aio._base_handler_async import ServiceBusSharedKeyCredential
from azure.servicebus.aio.management import ServiceBusAdministrationClient

from scalers.azure_cloud import cloud_suffix
from scalers.base import ScalerClient, ScalerError, Served, ServedScaler, masked_error
from scalers.params import ParameterError, TriggerParams, param, parse_params, secret_field
from scalers.sources import AUTH_ONLY, METADATA_ONLY, SECRET_SOURCES
from scalers.tls import TLSMaterialError, TLSSettings, client_context

SAS_PREFIX = "SharedAccessSignature "
LISTING_THRESHOLD = 5  # distinct names of one kind read one by one; more (or a regex) -> one listing
MAX_CONCURRENT_CALLS = 8  # per namespace; also the size of the connection pool
CLOUD_SUFFIXES = {
    "azurepubliccloud": "servicebus.windows.net",
    "azureusgovernmentcloud": "servicebus.usgovcloudapi.net",
    "azurechinacloud": "servicebus.chinacloudapi.cn",
    "azuregermancloud": "servicebus.cloudapi.de",
}


@dataclass(frozen=True, kw_only=True)
class AzureServiceBusConfig:
    queue_name: str | None = param("queueName", sources=METADATA_ONLY)
    topic_name: str | None = param("topicName", sources=METADATA_ONLY)
    subscription_name: str | None = param("subscriptionName", sources=METADATA_ONLY)
    message_count: int = param("messageCount", default=5, sources=METADATA_ONLY)
    activation_message_count: int = param("activationMessageCount", default=0, sources=METADATA_ONLY)
    use_regex: bool = param("useRegex", default=False, sources=METADATA_ONLY)
    operation: Literal["sum", "avg", "max"] = param("operation", default="sum", sources=METADATA_ONLY)
    connection: str = param("connection", default="", sources=SECRET_SOURCES, secret=True)
    ca: str | None = param("ca", sources=AUTH_ONLY, secret=True)  # public, but long

    @property
    def entity(self) -> str:
        """The name (or regex) the value is read from: the queue, or the subscription."""
        return self.queue_name or self.subscription_name or ""


@dataclass(frozen=True)
class Namespace:
    """The server key: equal namespaces (host, key name, key, CA) share one client."""

    host: str
    key_name: str
    credential: str = secret_field()  # the shared access key, or a whole SAS token
    ca: str | None = field(default=None, repr=False)

    @property
    def is_token(self) -> bool:
        return self.credential.startswith(SAS_PREFIX)


def parse_connection(connection: str) -> Namespace:
    """Host and credential of a Service Bus connection string; errors never quote it."""
    settings: dict[str, str] = {}
    for part in connection.strip().rstrip(";").split(";"):
        name, sep, value = part.partition("=")
        if not sep:
            raise ParameterError('parameter "connection" is not a Service Bus connection string')
        settings[name.strip().lower()] = value.strip()
    host = urlsplit(settings.get("endpoint", "")).netloc.lower()
    if not host:
        raise ParameterError('parameter "connection" has no Endpoint=sb://<namespace>/')
    key_name, key = settings.get("sharedaccesskeyname", ""), settings.get("sharedaccesskey", "")
    signature = settings.get("sharedaccesssignature", "")
    if bool(key_name) != bool(key) or bool(key) == bool(signature):
        raise ParameterError(f'parameter "connection" for {host} needs SharedAccessKeyName with '
                             "SharedAccessKey, or a SharedAccessSignature")
    if key:
        return Namespace(host, key_name, key)
    token = signature if signature.startswith(SAS_PREFIX) else SAS_PREFIX + signature
    return Namespace(host, _token_field(token, "skn"), token)


def _token_field(token: str, name: str) -> str:
    return parse_qs(token.removeprefix(SAS_PREFIX)).get(name, [""])[0]


class SasTokenCredential(ServiceBusSharedKeyCredential):
    """A ready SAS token, from `SharedAccessSignature=` in the connection string.

    The admin client sends `Authorization: SharedAccessSignature ...` only for a key credential
    (anything else goes out as `Bearer ...`, which Service Bus refuses), so the token poses as
    one and hands itself out unchanged; once it expires, Service Bus answers 401 ExpiredToken.
    """

    def __init__(self, token: str) -> None:
        super().__init__("", "")
        self._token = token
        expiry = _token_field(token, "se")
        self._expiry = int(expiry) if expiry.isdigit() else 2**31 - 1

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, self._expiry)


def _fully_qualified_namespace(params: TriggerParams, namespace: str) -> str:
    """KEDA's `namespace` + `cloud` (+ `endpointSuffix` for Private) host name."""
    return f"{namespace}.{cloud_suffix(params, CLOUD_SUFFIXES)}"


def _check_entity(config: AzureServiceBusConfig) -> None:
    """Exactly one form, with KEDA's messages: queueName, or topicName with subscriptionName."""
    if config.queue_name and config.subscription_name:
        raise ParameterError("subscription name provided with queue name")
    if config.queue_name and config.topic_name:
        raise ParameterError("both topic and queue name metadata provided")
    if config.topic_name and not config.subscription_name:
        raise ParameterError("no subscription name provided with topic name")
    if not config.queue_name and not config.topic_name:
        raise ParameterError("no service bus entity type set")
    if config.use_regex:
        key = "queueName" if config.queue_name else "subscriptionName"
        try:
            re.compile(config.entity)
        except re.error:
            raise ParameterError(f"{key} is not a valid regular expression") from None


def _check_ca(ca: str | None) -> None:
    if ca is None:
        return
    try:
        _ssl_context(ca)
    except TLSMaterialError:
        raise ParameterError('parameter "ca" is not a PEM certificate') from None


def parse_config(params: TriggerParams) -> AzureServiceBusConfig:
    config = parse_params(AzureServiceBusConfig, params)
    _check_entity(config)
    if config.message_count <= 0:
        raise ParameterError(f'parameter "messageCount" value "{config.message_count}" must be positive')
    if not config.connection:
        namespace = params.get("namespace", METADATA_ONLY)
        if namespace is None:
            raise ParameterError("no connection setting given")
        raise ParameterError(
            f"workload identity for namespace {_fully_qualified_namespace(params, namespace)} is not "
            'supported: only connection strings are (auth parameter "connection" or connectionFromEnv)')
    parse_connection(config.connection)
    _check_ca(config.ca)
    return config


# -- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Fetch:
    """One read against the namespace: an entity (`name`), or a whole listing (`name` None).

    `topic` None means queues. Names keep the first config's spelling but compare
    case-insensitively, as Service Bus names do.
    """

    topic: str | None
    name: str | None

    @property
    def key(self) -> tuple[str | None, str | None]:
        return (_fold(self.topic), _fold(self.name))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fetch) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)


def _fold(name: str | None) -> str | None:
    return name.casefold() if name is not None else None


def describe(topic: str | None, name: str | None) -> str:
    """How errors name an entity: a queue, a subscription, a topic or the queue listing."""
    if topic is None:
        return f'queue "{name}"' if name is not None else "the queue listing"
    return f'subscription "{name}" of topic "{topic}"' if name is not None else f'topic "{topic}"'


Counts = dict[str, int]  # entity name as Service Bus spells it -> active messages


def plan(configs: Sequence[AzureServiceBusConfig]) -> list[Fetch]:
    """The fetch answering each config: a listing for a regex or a group above the threshold."""
    names: dict[str | None, set[str]] = {}
    listed: set[str | None] = set()
    for config in configs:
        group = _fold(config.topic_name)
        names.setdefault(group, set()).add(config.entity.casefold())
        if config.use_regex:
            listed.add(group)
    listed.update(group for group, entities in names.items() if len(entities) > LISTING_THRESHOLD)
    return [Fetch(c.topic_name, None if _fold(c.topic_name) in listed else c.entity) for c in configs]


@lru_cache(maxsize=1024)
def _pattern(expression: str) -> re.Pattern[str]:
    return re.compile(expression)


def aggregate(config: AzureServiceBusConfig, counts: Mapping[str, int]) -> float:
    """The config's value from the counts of its fetch (KEDA's performOperation for regexes)."""
    if not config.use_regex:
        if config.entity in counts:
            return float(counts[config.entity])
        wanted = config.entity.casefold()
        for name, count in counts.items():
            if name.casefold() == wanted:
                return float(count)
        raise LookupError(config.entity)
    pattern = _pattern(config.entity)
    matched = [count for name, count in counts.items() if pattern.fullmatch(name)]
    if not matched:
        return 0.0
    if config.operation == "max":
        return float(max(matched))
    total = sum(matched)
    return float(total // len(matched) if config.operation == "avg" else total)


class AzureServiceBusClient(ScalerClient[AzureServiceBusConfig]):
    """One namespace: an admin client built on the first read, over a bounded connection pool."""

    def __init__(self, config: AzureServiceBusConfig, *, timeout: float) -> None:
        self._config = config  # its secrets are masked in every error
        self._connection = config.connection
        self._namespace = parse_connection(config.connection)
        self._ca = config.ca
        self._timeout = timeout
        self._admin: ServiceBusAdministrationClient | None = None
        self._calls = asyncio.Semaphore(MAX_CONCURRENT_CALLS)

    async def read(self, configs: Sequence[AzureServiceBusConfig]) -> list[float | ScalerError]:
        fetches = plan(configs)
        results: dict[Fetch, Counts | ScalerError] = {}
        try:
            async with asyncio.TaskGroup() as group:
                for fetch in dict.fromkeys(fetches):
                    group.create_task(self._fetch_into(fetch, results))
        except* ScalerError as failure:
            raise failure.exceptions[0] from None
        pairs = zip(configs, fetches, strict=True)
        return [self._value(config, fetch, results[fetch]) for config, fetch in pairs]

    async def aclose(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            await admin.close()

    def _value(self, config: AzureServiceBusConfig, fetch: Fetch,
               counts: Counts | ScalerError) -> float | ScalerError:
        if isinstance(counts, ScalerError):
            return counts
        try:
            return aggregate(config, counts)
        except LookupError:
            return self._error(f"{describe(config.topic_name, config.entity)} not found")

    async def _fetch_into(self, fetch: Fetch, results: dict[Fetch, Counts | ScalerError]) -> None:
        """Run one fetch; entity-level failures land in `results`, namespace-level ones raise."""
        entity = describe(fetch.topic, fetch.name)
        try:
            async with self._calls, asyncio.timeout(self._timeout) as deadline:
                results[fetch] = await self._fetch(fetch, deadline)
        except ResourceNotFoundError:
            results[fetch] = self._error(f"{entity} not found")
        except ClientAuthenticationError as exc:
            raise self._error(f"HTTP 401 unauthorized, check the key name and key{_detail(exc)}") from None
        except HttpResponseError as exc:
            if exc.status_code == 403:
                raise self._error(f"HTTP 403 forbidden, the policy needs Manage{_detail(exc)}") from None
            results[fetch] = self._error(f"{entity}: HTTP {exc.status_code}{_detail(exc)}")
        except MissingCounts:
            results[fetch] = self._error(f"{entity}: runtime properties without message counts")
        except TimeoutError:
            raise self._error(f"no answer within {self._timeout:g}s") from None
        except Exception as exc:  # unreachable, TLS, protocol: the whole namespace fails
            raise self._error(f"unreachable: {_reason(exc)}") from None

    async def _fetch(self, fetch: Fetch, deadline: asyncio.Timeout) -> Counts:
        admin = self._admin_client()
        if fetch.name is not None and fetch.topic is None:
            queue = await admin.get_queue_runtime_properties(fetch.name)
            return {queue.name: _active(queue)}
        if fetch.name is not None and fetch.topic is not None:
            sub = await admin.get_subscription_runtime_properties(fetch.topic, fetch.name)
            return {sub.name: _active(sub)}
        listing: Any = (admin.list_queues_runtime_properties() if fetch.topic is None
                        else admin.list_subscriptions_runtime_properties(fetch.topic))
        counts: Counts = {}
        async for entity in listing:
            counts[entity.name] = _active(entity)
            deadline.reschedule(asyncio.get_running_loop().time() + self._timeout)  # per page
        return counts

    def _admin_client(self) -> ServiceBusAdministrationClient:
        if self._admin is None:
            connector = aiohttp.TCPConnector(ssl=_ssl_context(self._ca), limit=MAX_CONCURRENT_CALLS)
            session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                            auto_decompress=False, trust_env=True)
            transport = AioHttpTransport(session=session, session_owner=True,
                                         connection_timeout=self._timeout, read_timeout=self._timeout)
            if self._namespace.is_token:
                credential = SasTokenCredential(self._namespace.credential)
                self._admin = ServiceBusAdministrationClient(
                    self._namespace.host, credential, transport=transport, retry_total=0)  # type: ignore[arg-type]
            else:
                self._admin = ServiceBusAdministrationClient.from_connection_string(
                    self._connection, transport=transport, retry_total=0)
        return self._admin

    def _error(self, what: str) -> ScalerError:
        message = f"azure-servicebus namespace {self._namespace.host}: {what}"
        return masked_error(message, self._config)


class MissingCounts(Exception):
    """An entity answered without CountDetails (KEDA sees this when Service Bus throttles)."""


def _active(properties: Any) -> int:
    """The active message count of runtime properties, which the SDK reads from CountDetails."""
    try:
        count = properties.active_message_count
    except AttributeError:  # the SDK dereferences a missing CountDetails element
        count = None
    if count is None:
        raise MissingCounts
    return int(count)


def _ssl_context(ca: str | None) -> ssl.SSLContext:
    """The system trust store, or only `ca` when given; verification stays on either way."""
    return client_context(TLSSettings(ca=ca or None))


def _detail(exc: HttpResponseError) -> str:
    """Service Bus's own explanation (`<Detail>InvalidSignature: ...`), without its tracking ids."""
    try:
        text = exc.response.text() if exc.response is not None else ""
    except Exception:  # a body that cannot be decoded explains nothing
        return ""
    found = re.search(r"<Detail>\s*(.*?)\s*(?:TrackingId|</Detail>)", text, re.S)
    return f" ({found.group(1).rstrip(' .,')})" if found else ""


def _reason(exc: BaseException) -> str:
    """The innermost cause of a transport failure, e.g. `ClientConnectorError: ... refused`."""
    inner = getattr(exc, "inner_exception", None) or exc.__cause__ or exc
    return f"{type(inner).__name__}: {inner}"



class AzureServiceBusScaler(ServedScaler[AzureServiceBusConfig, Namespace]):
    types = ("azure-servicebus",)
    activation_probes = False  # billed per call: no 1 s probes at zero

    def __init__(self, *, timeout: float = 10.0) -> None:
        self._timeout = timeout

    def parse(self, trigger_type: str, params: TriggerParams) -> AzureServiceBusConfig:
        return parse_config(params)

    def served(self, config: AzureServiceBusConfig) -> Served[Namespace]:
        kind, entity = ("queue", config.queue_name) if config.queue_name else ("topic", config.topic_name)
        name = f"azure-servicebus-{kind}-regex" if config.use_regex else f"azure-servicebus-{entity}"
        namespace = parse_connection(config.connection)
        server = Namespace(namespace.host, namespace.key_name, namespace.credential, config.ca)
        return Served(server, name, config.message_count, config.activation_message_count)

    def open_client(self, config: AzureServiceBusConfig) -> AzureServiceBusClient:
        return AzureServiceBusClient(config, timeout=self._timeout)
