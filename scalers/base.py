"""The scaler interface: what every trigger type implements, and the typed-config machinery.

A scaler turns one trigger's parameters into a frozen, typed config and knows how to read the
metric value for many configs of one server at once. It never sees Kubernetes objects: the
catalog resolves TriggerAuthentications, Secrets and container env first and hands over a
`TriggerParams`. It never imports `adapter`.

Sharing and batching are the point of the shape:

* `Scaler.server_key(config)` names the server a config talks to (address, credentials, TLS).
  All configs with equal keys share one `ScalerClient`, so 1,000 ScaledObjects on one Redis hold
  one connection pool, not 1,000.
* `ScalerClient.read(configs)` answers a whole batch in as few round trips as the server allows
  (one pipeline, one management API call, one listing).

A read answers a plain float (active when strictly above the activation target, as for most
scalers) or a `Reading` whose activity the scaler decided itself (KEDA's `GetMetricsAndActivity`:
Kafka counts persistent lag as activity while it serves the capped lag). Errors are
`ScalerError`s whose message names what failed. Secrets are declared once, with
`param(secret=True)`: `secret_values(config)` finds them (nested configs included) and the
metric store masks every error with them, so no scaler has to remember to.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import types
import typing
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, Generic, Literal, TypeVar

from scalers.cluster import ClusterView


class ParameterError(ValueError):
    """Trigger metadata that cannot be turned into a config; the message names the key."""


class ScalerError(Exception):
    """A failure to read a metric (unreachable, refused, missing entity). Never holds secrets."""


class Source(Enum):
    """Where a parameter may come from, in KEDA's fixed order of precedence."""

    METADATA = "metadata"
    AUTH = "authParams"
    ENV = "env"


ALL_SOURCES = (Source.METADATA, Source.AUTH, Source.ENV)
SECRET_SOURCES = (Source.AUTH, Source.ENV)  # credentials: never from plain metadata
METADATA_ONLY = (Source.METADATA,)
AUTH_ONLY = (Source.AUTH,)
METADATA_OR_AUTH = (Source.METADATA, Source.AUTH)


@dataclass(frozen=True)
class TriggerParams:
    """Everything a scaler may read for one trigger, already resolved by the catalog.

    `env` is the scale target container's environment with `valueFrom` references resolved;
    `<key>FromEnv` in the metadata names a variable there. `namespace` and `scaled_object` name
    the ScaledObject the trigger belongs to (KEDA's ScalableObjectNamespace and -Name), for the
    scalers whose data is kept per object rather than on a server (`http`). `cluster` is what the
    catalog knows of the cluster's pods and endpoints, for the scalers that count or call them; it
    is never queried over the network by a scaler.
    """

    metadata: Mapping[str, str] = field(default_factory=dict)
    auth: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    namespace: str = ""  # the ScaledObject's namespace
    scaled_object: str = ""
    # Resolve this trigger again: for scalers whose metric spec comes from their server (external),
    # called once the spec asked for in `metric` is known, or has changed.
    resolve_again: Callable[[], None] | None = field(default=None, compare=False, repr=False)
    pod_identity: str = ""  # the TriggerAuthentication's podIdentity.provider ("aws", "azure-workload", ...)
    metric_type: str | None = None  # the trigger's `metricType` as written; None when not set
    cluster: ClusterView | None = None  # pods and service endpoints the catalog watches

    def get(self, key: str, sources: Sequence[Source] = ALL_SOURCES) -> str | None:
        """The first non-empty, trimmed value of `key` from `sources`, or None."""
        for source in sources:
            if source is Source.METADATA:
                value = self.metadata.get(key)
            elif source is Source.AUTH:
                value = self.auth.get(key)
            else:
                env_name = (self.metadata.get(f"{key}FromEnv") or "").strip()
                value = self.env.get(env_name) if env_name else None
            if value is not None and str(value).strip():
                return str(value).strip()
        return None


_MISSING: Any = dataclasses.MISSING


@dataclass(frozen=True)
class ParamSpec:
    key: str
    sources: tuple[Source, ...]
    required: bool
    secret: bool = False


def param(
    key: str,
    *,
    default: Any = _MISSING,
    required: bool = False,
    sources: Sequence[Source] = ALL_SOURCES,
    secret: bool = False,
) -> Any:
    """Declare a config field read from trigger parameter `key`.

    Without a default and not required, an absent parameter leaves the field None (so its type
    should be `X | None`). Field types drive conversion: str, int, float, bool, Literal[...].
    A `secret` field (password, key, connection string) is left out of the config's repr, and its
    value is masked in every error the store keeps (`secret_values`).
    """
    meta = {"param": ParamSpec(key, tuple(sources), required, secret)}
    if default is _MISSING and not required:
        default = None
    if default is _MISSING:
        return field(metadata=meta, repr=not secret)
    return field(default=default, metadata=meta, repr=not secret)


C = TypeVar("C")


def parse_params(config_type: type[C], params: TriggerParams, **overrides: Any) -> C:
    """Build `config_type` (a kw_only dataclass of `param` fields) from `params`.

    `overrides` set fields that are not trigger parameters (or replace parsed ones).
    """
    values: dict[str, Any] = {}
    for name, spec, hint in _param_fields(config_type):  # type: ignore[arg-type]
        if name in overrides:
            continue
        raw = params.get(spec.key, spec.sources)
        if raw is None:
            if spec.required:
                raise ParameterError(f'missing required parameter "{spec.key}"')
            continue
        try:
            values[name] = convert(spec.key, raw, hint)
        except ParameterError:
            if spec.secret:
                raise ParameterError(f'parameter "{spec.key}" is not valid (value not shown: it is a secret)') from None
            raise
    values.update(overrides)
    return config_type(**values)


@functools.cache
def _param_fields(config_type: type[Any]) -> tuple[tuple[str, ParamSpec, Any], ...]:
    """(field name, spec, type) of the `param` fields; resolving type hints is slow, so once per type."""
    hints = typing.get_type_hints(config_type)
    return tuple(
        (f.name, f.metadata["param"], hints[f.name])
        for f in dataclasses.fields(config_type)
        if "param" in f.metadata
    )


def convert(key: str, raw: str, hint: Any) -> Any:
    """Convert one raw parameter to the field type, with KEDA-style errors naming the key."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        hint = args[0]
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        for choice in choices:
            if raw.lower() == str(choice).lower():
                return choice
        listed = ", ".join(str(c) for c in choices)
        raise ParameterError(f'parameter "{key}" value "{raw}" must be one of [{listed}]')
    if hint is bool:
        return parse_bool(key, raw)
    if hint is int:
        try:
            return int(raw)
        except ValueError:
            raise ParameterError(f'parameter "{key}" value "{raw}" must be an integer') from None
    if hint is float:
        try:
            value = float(raw)
        except ValueError:
            raise ParameterError(f'parameter "{key}" value "{raw}" must be a number') from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ParameterError(f'parameter "{key}" value "{raw}" must be a finite number')
        return value
    return raw


_TRUE = {"1", "t", "true", "yes", "y"}
_FALSE = {"0", "f", "false", "no", "n"}


def parse_bool(key: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ParameterError(f'parameter "{key}" value "{raw}" must be a boolean')


def secret_field(default: Any = _MISSING) -> Any:
    """A config field that is not a trigger parameter but holds a secret (left out of repr, masked)."""
    if default is _MISSING:
        return field(repr=False, metadata={"secret": True})
    return field(default=default, repr=False, metadata={"secret": True})


def secret_values(config: Any) -> tuple[str, ...]:
    """Every secret a config holds, longest first, for masking.

    A field is secret when declared `param(..., secret=True)` or `secret_field()`; nested dataclasses
    (a connection, a broker) are searched too. A secret that is a URL with a password yields the
    password (in its raw and percent-encoded spellings) and not the whole URL, so a masked message
    still says which server it is about.
    """
    found: set[str] = set()
    _collect_secrets(config, found, depth=0)
    return tuple(sorted((s for s in found if len(s) >= 3), key=len, reverse=True))


def _collect_secrets(value: Any, found: set[str], depth: int) -> None:
    if depth > 4 or not dataclasses.is_dataclass(value) or isinstance(value, type):
        return
    for f in dataclasses.fields(value):
        item = getattr(value, f.name, None)
        spec = f.metadata.get("param")
        if (spec is not None and spec.secret) or f.metadata.get("secret"):
            _add_secret(item, found)
        elif dataclasses.is_dataclass(item):
            _collect_secrets(item, found, depth + 1)


def _add_secret(value: Any, found: set[str]) -> None:
    if isinstance(value, (tuple, list)):
        for item in value:
            _add_secret(item, found)
        return
    if not isinstance(value, str) or not value:
        return
    password = _url_password(value)
    if password is None:
        found.add(value)
        found.update(_connection_string_secrets(value))
    elif password:
        found.update({password, urllib.parse.quote(password, safe=""), urllib.parse.quote_plus(password)})


_SECRET_KEY_WORDS = ("key", "password", "pwd", "secret", "signature", "token")


def _connection_string_secrets(text: str) -> set[str]:
    """Values of secret-looking `Name=value` pairs of a `;`- or space-separated connection string
    (Azure's `SharedAccessKey=`, `AccountKey=`; libpq's `password=`), so each is masked on its own."""
    found = set()
    for part in text.replace(";", " ").split():
        name, sep, value = part.partition("=")
        lowered = name.lower()
        if sep and value and not lowered.endswith("name") and any(word in lowered for word in _SECRET_KEY_WORDS):
            found.add(value.strip("'\""))
    return found


def _url_password(text: str) -> str | None:
    """The password of a URL (`scheme://user:password@host`), "" for a URL without one, None otherwise."""
    if "://" not in text or any(c.isspace() for c in text):
        return None
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    return urllib.parse.unquote(parts.password) if parts.password else ""


def mask(text: str, secrets: Sequence[str]) -> str:
    """`text` with every one of `secrets` (longest first) replaced by `***`."""
    for value in secrets:
        if value in text:
            text = text.replace(value, "***")
    return text


def normalize_metric_part(text: str) -> str:
    """KEDA's NormalizeString: characters an HPA metric name cannot carry become '-'."""
    for char in "/.:%()":
        text = text.replace(char, "-")
    return text


def metric_name(index: int, part: str) -> str:
    """The served metric name, `s<index>-<normalised scaler part>`."""
    return f"s{index}-{normalize_metric_part(part)}"


@dataclass(frozen=True, slots=True)
class Reading:
    """A value with an activity the scaler decided itself (None: value > activation decides)."""

    value: float
    active: bool | None = None


ReadResult = float | Reading | ScalerError


@dataclass(frozen=True, kw_only=True, slots=True)
class ResourceTarget:
    """A cpu or memory target the HPA computes itself (a Resource or ContainerResource metric).

    `value` is the utilization percent for `Utilization`, a canonical Kubernetes quantity for
    `AverageValue`. Such a trigger is never polled and has no external metric.
    """

    resource: Literal["cpu", "memory"]
    target_type: Literal["Utilization", "AverageValue"]
    value: str
    container: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class MetricSpec:
    """What the HPA and the activation loop need to know of one trigger's metric."""

    name: str  # the scaler part, before `s<index>-` and normalisation
    target: float  # HPA target (per pod for AverageValue)
    activation: float = 0.0  # active when value > activation
    resource: ResourceTarget | None = None  # set for cpu and memory: no external metric at all


ConfigT = TypeVar("ConfigT", bound=Hashable)


class ScalerClient(ABC, Generic[ConfigT]):
    """A connection (or pool) to one server, shared by every config with the same server key."""

    # True: the pushes this client listens to matter for activation only (Redis keyspace
    # notifications), so `watch` is given the configs of objects at zero, not every config.
    activation_only: ClassVar[bool] = False

    @abstractmethod
    async def read(self, configs: Sequence[ConfigT]) -> Sequence[ReadResult]:
        """Values (or `Reading`s) for `configs`, in order, in as few round trips as possible.

        A per-config failure (missing queue) is a `ScalerError` in its slot; a failure of the
        whole server (unreachable, bad password) raises `ScalerError`, after which the owner
        closes this client and opens a new one for the next read.
        """

    def watch(self, configs: Sequence[ConfigT], wake: Callable[[Sequence[ConfigT]], None]) -> None:
        """For clients whose server pushes news (a stream per trigger, keyspace notifications):
        `configs` is every config this client serves now (with `activation_only`, those of objects
        at zero), replacing the previous set; call `wake(changed)` when news about some arrives
        and the store reads them at once. Called without I/O, from the event loop; clients that
        only answer reads ignore it.
        """

    async def aclose(self) -> None:
        """Release connections. Called once, when no trigger uses this server any more."""


Key = TypeVar("Key", bound=Hashable)
Answer = TypeVar("Answer")


async def ask_once(keys: Iterable[Key], ask: Callable[[Key], Awaitable[Answer]]) -> dict[Key, Answer]:
    """Each distinct key asked once, all at the same time: the configs of a batch that want the
    same thing (one queue, one listing, one query) share one call instead of repeating it."""
    distinct = list(dict.fromkeys(keys))
    return dict(zip(distinct, await asyncio.gather(*(ask(key) for key in distinct)), strict=True))


class Scaler(ABC, Generic[ConfigT]):
    """One trigger type (or a family of them, such as redis, redis-cluster and redis-sentinel)."""

    types: ClassVar[tuple[str, ...]]
    # Whether triggers of objects at zero are read every activation-probe interval (1 s) rather
    # than every pollingInterval. False for sources billed per call (Service Bus, SQS, Event Hubs,
    # Azure Storage), where a probe a second per server is a cost the user did not ask for.
    activation_probes: ClassVar[bool] = True

    @abstractmethod
    def parse(self, trigger_type: str, params: TriggerParams) -> ConfigT:
        """A typed, validated, hashable config, or `ParameterError`."""

    @abstractmethod
    def metric(self, config: ConfigT) -> MetricSpec:
        """The metric name part and targets for this config."""

    def server_key(self, config: ConfigT) -> Hashable:
        """What identifies the server (address, credentials, TLS): equal keys share a client."""
        return config

    @abstractmethod
    def open_client(self, config: ConfigT) -> ScalerClient[ConfigT]:
        """A client for the server of `config`; no I/O may happen before the first read."""


@dataclass(frozen=True)
class ClientOptions:
    """What a scaler opens its clients with: the timeout of one request (below the store's read
    deadline) and hooks told of every request sent (tests and benchmarks count them)."""

    timeout: float = 4.0
    request_hooks: tuple[Callable[..., Any], ...] = ()


class ServerScaler(Scaler[ConfigT]):
    """The shape most scalers have, declared rather than written out each time.

    `parse_config` is the module's parse entry, `server_key` names the server, and a client is
    `client_type(server_key(config), options)`. A subclass sets `types`, those two class attributes
    (as static methods: `client_type = staticmethod(TheClient)`) and `default_timeout` where it
    differs, and writes `metric` and `server_key`.
    """

    parse_config: ClassVar[staticmethod[[TriggerParams], Any]]
    client_type: ClassVar[staticmethod[[Any, ClientOptions], ScalerClient[Any]]]
    default_timeout: ClassVar[float] = 4.0

    def __init__(self, *, timeout: float | None = None, request_hooks: Iterable[Callable[..., Any]] = ()) -> None:
        self.options = ClientOptions(self.default_timeout if timeout is None else timeout, tuple(request_hooks))

    def parse(self, trigger_type: str, params: TriggerParams) -> ConfigT:
        config: ConfigT = type(self).parse_config(params)
        return config

    @abstractmethod
    def server_key(self, config: ConfigT) -> Hashable:
        """What identifies the server: equal keys share a client, opened on that key."""

    def open_client(self, config: ConfigT) -> ScalerClient[ConfigT]:
        client: ScalerClient[ConfigT] = type(self).client_type(self.server_key(config), self.options)
        return client
