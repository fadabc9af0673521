"""The scaler interface: what every trigger type implements.

A scaler turns one trigger's parameters into a frozen, typed config (with the machinery of
`scalers.params`) and knows how to read the metric value for many configs of one server at once.
It never sees Kubernetes objects: the catalog resolves TriggerAuthentications, Secrets and
container env first and hands over a `TriggerParams`. It never imports `adapter`.

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
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypeVar

from scalers.params import TriggerParams, mask, secret_values


class ScalerError(Exception):
    """A failure to read a metric (unreachable, refused, missing entity). Never holds secrets."""


def masked_error(text: str, holder: Any) -> ScalerError:
    """A `ScalerError` of `text` with every secret that `holder` (a config, or the part of one a client
    keeps) declares masked. Errors are few, so the secrets are looked up again for each."""
    return ScalerError(mask(text, secret_values(holder)))


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


KeyT = TypeVar("KeyT", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Served(Generic[KeyT]):
    """What a `ServedScaler` says of one config: the server it is read from (the key its clients
    share) and its metric (the scaler part of the name, the HPA target, the activation target)."""

    server: KeyT
    name: str
    target: float
    activation: float = 0.0


class ServedScaler(Scaler[ConfigT], Generic[ConfigT, KeyT]):
    """A scaler whose config names one server and one metric against two targets, as most do:
    a subclass writes `served(config)` once and the metric and server key follow from it."""

    @abstractmethod
    def served(self, config: ConfigT) -> Served[KeyT]:
        """The server `config` is read from and the metric it serves."""

    def metric(self, config: ConfigT) -> MetricSpec:
        served = self.served(config)
        return MetricSpec(name=served.name, target=float(served.target), activation=float(served.activation))

    def server_key(self, config: ConfigT) -> KeyT:
        """What identifies the server: equal keys share a client, opened on that key."""
        return self.served(config).server


ParseConfig = Callable[[TriggerParams], Any]
ClientType = Callable[[Any, ClientOptions], ScalerClient[Any]]


class ServerScaler(ServedScaler[ConfigT, KeyT]):
    """The shape most scalers have, declared rather than written out each time.

    A subclass names the module's parse entry and its client class in its header
    (`class TheScaler(ServerScaler[TheConfig, TheKey], parse=parse_config, client=TheClient)`),
    sets `types` and `default_timeout` where it differs, and writes `served`. A client is
    `client(server_key(config), options)`.
    """

    parse_config: ClassVar[ParseConfig]
    client_type: ClassVar[ClientType]
    default_timeout: ClassVar[float] = 4.0

    def __init_subclass__(cls, *, parse: ParseConfig, client: ClientType, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.parse_config, cls.client_type = staticmethod(parse), staticmethod(client)

    def __init__(self, *, timeout: float | None = None, request_hooks: Iterable[Callable[..., Any]] = ()) -> None:
        self.options = ClientOptions(self.default_timeout if timeout is None else timeout, tuple(request_hooks))

    def parse(self, trigger_type: str, params: TriggerParams) -> ConfigT:
        config: ConfigT = type(self).parse_config(params)
        return config

    def open_client(self, config: ConfigT) -> ScalerClient[ConfigT]:
        client: ScalerClient[ConfigT] = type(self).client_type(self.server_key(config), self.options)
        return client
