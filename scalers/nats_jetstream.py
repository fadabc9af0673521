"""nats-jetstream: scale on a JetStream consumer's lag, read from the server's monitoring endpoint.

KEDA's keys: `natsServerMonitoringEndpoint` (required, host:port; TriggerAuthentication first,
then metadata), `account` or `accountID` (one is required: "no account name or id given"; an
account matches by id or name), `stream` and `consumer` (required), `lagThreshold` (10),
`activationLagThreshold` (0), `useHttps` (false). The value is the consumer's `num_pending` +
`num_ack_pending`; the metric is `nats-jetstream-<stream>`.

KEDA asks `/jsz?acc=<account>&consumers=true&config=true` once per trigger per poll. Here ONE
`/jsz` per server per poll answers every stream and consumer its triggers watch (`acc=` when
they share one account, `accounts=true` otherwise). A clustered server (`meta_cluster.cluster_size`
above 1) is handled as KEDA handles it: the nodes are the client URLs the endpoint advertises
(`/varz` `connect_urls`, each turned into `<host>:<endpoint's monitoring port>`), or, when none
are advertised, the cluster route URLs' first DNS label prepended to the endpoint's host (a
headless Service); each node's name comes from its own `/varz`. A consumer's numbers are taken
from the node that leads it (`consumer_detail.cluster.leader`), so a poll of a cluster costs one
`/jsz` per node, whatever the number of triggers. The node map is found once and again when a
leader is not in it or a node fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from scalers.base import ClientOptions, ScalerClient, ScalerError, Served, ServerScaler
from scalers.params import ParameterError, TriggerParams, param, parse_params
from scalers.sources import AUTH_OR_METADATA, METADATA_ONLY

MAX_CONNECTIONS = 4


@dataclass(frozen=True, kw_only=True)
class NatsJetStreamConfig:
    endpoint: str = param("natsServerMonitoringEndpoint", required=True, sources=AUTH_OR_METADATA)
    account: str | None = param("account", sources=AUTH_OR_METADATA)
    account_id: str | None = param("accountID", sources=AUTH_OR_METADATA)
    stream: str = param("stream", required=True, sources=METADATA_ONLY)
    consumer: str = param("consumer", required=True, sources=METADATA_ONLY)
    lag_threshold: int = param("lagThreshold", default=10, sources=METADATA_ONLY)
    activation_lag_threshold: int = param("activationLagThreshold", default=0, sources=METADATA_ONLY)
    use_https: bool = param("useHttps", default=False, sources=METADATA_ONLY)

    @property
    def account_key(self) -> str:
        """What `acc=` asks for: the id, else the name (KEDA: accountID defaults to account)."""
        return self.account_id or self.account or ""

    def is_account(self, account: Mapping[str, Any]) -> bool:
        by_name = self.account is not None and account.get("name") == self.account
        return account.get("id") == self.account_key or by_name


@dataclass(frozen=True)
class Monitoring:
    """The server key: the monitoring endpoint and its scheme."""

    scheme: str
    endpoint: str

    def url(self, host: str | None = None) -> str:
        if host is None:
            return f"{self.scheme}://{self.endpoint}"
        port = urlsplit(f"//{self.endpoint}").port
        return f"{self.scheme}://{host}:{port}" if port else f"{self.scheme}://{host}"


def parse_config(params: TriggerParams) -> NatsJetStreamConfig:
    config = parse_params(NatsJetStreamConfig, params)
    if not config.account and not config.account_id:
        raise ParameterError("no account name or id given")
    return config


Consumer = Mapping[str, Any]
Streams = dict[tuple[str, str], Mapping[str, Any]]  # (account id, stream) -> stream_detail


class NatsJetStreamClient(ScalerClient[NatsJetStreamConfig]):
    """One httpx pool per monitoring endpoint; the cluster's node map once found."""

    def __init__(self, monitoring: Monitoring, options: ClientOptions) -> None:
        self._monitoring = monitoring
        self._http = httpx.AsyncClient(timeout=options.timeout, limits=httpx.Limits(max_connections=MAX_CONNECTIONS),
                                       trust_env=False)
        self._nodes: dict[str, str] | None = None  # server name -> monitoring base URL

    async def read(self, configs: Sequence[NatsJetStreamConfig]) -> list[float | ScalerError]:
        query = _query(configs)
        first = await self._jsz(self._monitoring.url(), query)
        if int((first.get("meta_cluster") or {}).get("cluster_size") or 0) <= 1:
            views = {"": first}
            return [self._value(c, views, clustered=False) for c in configs]
        views = await self._cluster_views(query, configs)
        return [self._value(c, views, clustered=True) for c in configs]

    async def _cluster_views(self, query: Mapping[str, str], configs: Sequence[NatsJetStreamConfig]
                             ) -> dict[str, Mapping[str, Any]]:
        """Every node's /jsz by node name; the node map found again if a leader is unknown."""
        for attempt in range(2):
            nodes = await self._node_map(refresh=attempt > 0)
            try:
                answers = await asyncio.gather(*(self._jsz(url, query) for url in nodes.values()))
            except ScalerError:
                if attempt:
                    raise
                continue
            views = dict(zip(nodes, answers, strict=True))
            if attempt or all(leader in views for leader in _leaders(configs, views)):
                return views
        raise AssertionError("unreachable")

    async def _node_map(self, *, refresh: bool) -> dict[str, str]:
        if self._nodes is None or refresh:
            varz = await self._get(f"{self._monitoring.url()}/varz", {})
            urls = list(varz.get("connect_urls") or [])
            if urls:
                hosts = [url.rsplit(":", 1)[0].strip("[]") for url in urls]
                bases = [self._monitoring.url(host) for host in dict.fromkeys(hosts)]
            else:  # not advertised: route URLs named after their nodes, as a headless Service names pods
                endpoint_host = self._monitoring.endpoint
                routes = (varz.get("cluster") or {}).get("urls") or []
                bases = [f"{self._monitoring.scheme}://{url.split('.')[0]}.{endpoint_host}" for url in routes]
                bases.append(self._monitoring.url())
            names = await asyncio.gather(*(self._get(f"{base}/varz", {}) for base in bases))
            self._nodes = {str(v.get("server_name")): base for v, base in zip(names, bases, strict=True)}
        return self._nodes

    def _value(self, config: NatsJetStreamConfig, views: Mapping[str, Mapping[str, Any]], *,
               clustered: bool) -> float | ScalerError:
        """The consumer's lag from the view of the node leading it (any view on a single server)."""
        found = {node: _find(view, config) for node, view in views.items()}
        for node, (_, consumer) in found.items():
            if consumer is not None and (not clustered or _leader(consumer) == node):
                return float(int(consumer.get("num_pending") or 0) + int(consumer.get("num_ack_pending") or 0))
        if not any(stream for stream, _ in found.values()):
            return self._error(f'stream "{config.stream}" not found in account "{config.account_key}"')
        if any(consumer is not None for _, consumer in found.values()):
            return self._error(f"leader node not found for consumer {config.consumer}")
        return self._error(f'consumer "{config.consumer}" not found in stream "{config.stream}"')

    async def _jsz(self, base: str, query: Mapping[str, str]) -> Mapping[str, Any]:
        return await self._get(f"{base}/jsz", query)

    async def _get(self, url: str, query: Mapping[str, str]) -> Mapping[str, Any]:
        try:
            response = await self._http.get(url, params=dict(query))
        except httpx.HTTPError as exc:
            raise self._error(f"{url}: {type(exc).__name__}: {exc}".rstrip(": ")) from None
        if response.status_code != 200:
            raise self._error(f"{url} answered HTTP {response.status_code}: {response.text[:200].strip()}")
        try:
            document: Mapping[str, Any] = response.json()
        except ValueError:
            raise self._error(f"{url} did not answer JSON") from None
        return document

    def _error(self, what: str) -> ScalerError:
        return ScalerError(f"nats-jetstream {self._monitoring.url()}: {what}")

    async def aclose(self) -> None:
        await self._http.aclose()


def _query(configs: Sequence[NatsJetStreamConfig]) -> dict[str, str]:
    accounts = {c.account_key for c in configs}
    scope = {"acc": next(iter(accounts))} if len(accounts) == 1 else {"accounts": "true"}
    return {**scope, "consumers": "true", "config": "true"}


def _leaders(configs: Sequence[NatsJetStreamConfig], views: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """The nodes the watched consumers name as their leaders."""
    found = (_find(view, config)[1] for view in views.values() for config in configs)
    return {_leader(consumer) for consumer in found if consumer is not None and _leader(consumer)}


def _leader(consumer: Consumer) -> str:
    return str((consumer.get("cluster") or {}).get("leader") or "")


def _find(view: Mapping[str, Any], config: NatsJetStreamConfig) -> tuple[bool, Consumer | None]:
    """Whether the view has the config's stream, and its consumer if it has that too."""
    stream_found = False
    for account in view.get("account_details") or []:
        if not config.is_account(account):
            continue
        for stream in account.get("stream_detail") or []:
            if stream.get("name") == config.stream:
                stream_found = True
                for consumer in stream.get("consumer_detail") or []:
                    if consumer.get("name") == config.consumer:
                        return True, consumer
    return stream_found, None


class NatsJetStreamScaler(ServerScaler[NatsJetStreamConfig, Monitoring],
                          parse=parse_config, client=NatsJetStreamClient):
    types = ("nats-jetstream",)

    def served(self, config: NatsJetStreamConfig) -> Served[Monitoring]:
        return Served(Monitoring("https" if config.use_https else "http", config.endpoint),
                      f"nats-jetstream-{config.stream}", config.lag_threshold, config.activation_lag_threshold)
