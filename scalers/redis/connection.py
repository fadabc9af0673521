"""Where a Redis trigger connects, and the one client per server that all its triggers share.

Both Redis scalers (lists and streams, each in standalone, cluster and sentinel form) take the
same connection keys, read from the same sources as KEDA's `redisConnectionInfo`: addresses from
metadata, then auth params, then env; username, password, host and port from metadata, then env,
then auth params; TLS material from auth params only. `parse_connection` turns them into a
frozen, hashable `RedisConnection` whose secrets never show in its repr: it is the scalers'
server key, so equal connections share one `RedisHandle`.

A handle owns a small connection pool (at most `POOL_SIZE` connections per server node), sets
connect and socket timeouts so no call can hang, builds one `ssl.SSLContext` from the PEM text
(`_tls.client_context`) for all its connections, and closes everything in `aclose`.
Constructing one does no I/O.
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelManagedConnection
from redis.backoff import NoBackoff

from scalers.params import ParameterError, TriggerParams, param, parse_params, secret_field
from scalers.sources import ALL_SOURCES, AUTH_ONLY, METADATA_ONLY, Source
from scalers.tls import TLSSettings, client_context

Kind = Literal["standalone", "cluster", "sentinel"]

POOL_SIZE = 4
CONNECT_TIMEOUT = 5.0
SOCKET_TIMEOUT = 10.0
CLIENT_NAME = "eventscale"
# RESP2: every Redis version speaks it, and with it the pool checks an idle connection before use
# (redis-py skips that check on RESP3 connections that may carry maintenance notifications).
PROTOCOL = 2

_CREDENTIAL_SOURCES = (Source.METADATA, Source.ENV, Source.AUTH)

NO_ADDRESS = (
    "no addresses or hosts given. address should be a comma separated list of host:port "
    "or set the host/port values"
)
UNEQUAL_HOSTS_PORTS = (
    "not enough hosts or ports given. number of hosts should be equal to the number of ports"
)


@dataclass(frozen=True, kw_only=True)
class _ConnectionParams:
    """The raw connection keys, with KEDA's per-key sources."""

    address: str | None = param("address", sources=ALL_SOURCES)
    addresses: str | None = param("addresses", sources=ALL_SOURCES)
    host: str | None = param("host", sources=_CREDENTIAL_SOURCES)
    hosts: str | None = param("hosts", sources=_CREDENTIAL_SOURCES)
    port: str | None = param("port", sources=_CREDENTIAL_SOURCES)
    ports: str | None = param("ports", sources=_CREDENTIAL_SOURCES)
    username: str | None = param("username", sources=_CREDENTIAL_SOURCES)
    password: str | None = param("password", sources=_CREDENTIAL_SOURCES, secret=True)
    sentinel_username: str | None = param("sentinelUsername", sources=ALL_SOURCES)
    sentinel_password: str | None = param("sentinelPassword", sources=ALL_SOURCES, secret=True)
    sentinel_master: str | None = param("sentinelMaster", sources=ALL_SOURCES)
    database_index: int = param("databaseIndex", default=0, sources=METADATA_ONLY)
    enable_tls: bool | None = param("enableTLS", sources=METADATA_ONLY)
    tls: Literal["enable", "disable"] | None = param("tls", sources=AUTH_ONLY)
    unsafe_ssl: bool = param("unsafeSsl", default=False, sources=METADATA_ONLY)
    ca: str | None = param("ca", sources=AUTH_ONLY)
    cert: str | None = param("cert", sources=AUTH_ONLY)
    key: str | None = param("key", sources=AUTH_ONLY, secret=True)
    key_password: str | None = param("keyPassword", sources=AUTH_ONLY, secret=True)


@dataclass(frozen=True, kw_only=True)
class RedisConnection:
    """Everything that identifies a Redis server and how to log in: the scalers' server key."""

    kind: Kind
    addresses: tuple[tuple[str, int], ...]
    database_index: int = 0
    username: str | None = None
    password: str | None = secret_field(None)
    sentinel_master: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = secret_field(None)
    tls: TLSSettings | None = None

    def describe(self) -> str:
        """How errors name this server: its address(es), never its credentials."""
        where = ",".join(format_address(address) for address in self.addresses)
        if self.kind == "cluster":
            return f"redis cluster {where}"
        if self.kind == "sentinel":
            return f'redis sentinel master "{self.sentinel_master}" via {where}'
        return f"redis {where}"



def kind_of(trigger_type: str) -> Kind:
    """`redis-cluster[-streams]` is a cluster, `redis-sentinel[-streams]` a sentinel setup."""
    if trigger_type.startswith("redis-cluster"):
        return "cluster"
    if trigger_type.startswith("redis-sentinel"):
        return "sentinel"
    return "standalone"


_CONNECTIONS: weakref.WeakValueDictionary[RedisConnection, RedisConnection] = weakref.WeakValueDictionary()


def parse_connection(trigger_type: str, params: TriggerParams) -> RedisConnection:
    """The connection of one trigger, or `ParameterError` with KEDA's messages; the triggers of
    one server share one (equal) connection, which 10,000 triggers on one Redis would otherwise
    hold 10,000 times."""
    connection = _parse_connection(trigger_type, params)
    return _CONNECTIONS.setdefault(connection, connection)


def _parse_connection(trigger_type: str, params: TriggerParams) -> RedisConnection:
    raw = parse_params(_ConnectionParams, params)
    kind = kind_of(trigger_type)
    if raw.database_index < 0:
        raise ParameterError('parameter "databaseIndex" must not be negative')
    if kind == "sentinel" and not raw.sentinel_master:
        raise ParameterError('missing required parameter "sentinelMaster"')
    return RedisConnection(
        kind=kind,
        addresses=_addresses(raw),
        database_index=0 if kind == "cluster" else raw.database_index,
        username=raw.username,
        password=raw.password,
        sentinel_master=raw.sentinel_master if kind == "sentinel" else None,
        sentinel_username=raw.sentinel_username if kind == "sentinel" else None,
        sentinel_password=raw.sentinel_password if kind == "sentinel" else None,
        tls=_tls_settings(raw),
    )


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _addresses(raw: _ConnectionParams) -> tuple[tuple[str, int], ...]:
    """`address`/`addresses` first, then `host`/`hosts` paired with `port`/`ports` (KEDA's order)."""
    key = "address" if raw.address else "addresses"
    found = [parse_address(key, item) for item in _split(raw.address or raw.addresses)]
    hosts, ports = _split(raw.host or raw.hosts), _split(raw.port or raw.ports)
    if hosts and ports:
        if len(hosts) != len(ports):
            raise ParameterError(UNEQUAL_HOSTS_PORTS)
        found += [(host.strip("[]"), parse_port(port)) for host, port in zip(hosts, ports, strict=True)]
    if not found:
        raise ParameterError(NO_ADDRESS)
    return tuple(found)


def parse_address(key: str, text: str) -> tuple[str, int]:
    """`host:port` or `[ipv6]:port`."""
    host, _, port = text.rpartition(":")
    if not host or not _is_port(port):
        raise ParameterError(f'parameter "{key}" value "{text}" must be host:port')
    return host.strip("[]"), int(port)


def parse_port(text: str) -> int:
    if not _is_port(text):
        raise ParameterError(f'parameter "port" value "{text}" is not a port number')
    return int(text)


def _is_port(text: str) -> bool:
    return text.isdigit() and 0 < int(text) < 65536


def format_address(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _tls_settings(raw: _ConnectionParams) -> TLSSettings | None:
    """KEDA's SetEnableTLS: `enableTLS` (metadata) or `tls` (auth params), never both."""
    if raw.enable_tls is not None and raw.tls is not None:
        raise ParameterError("unable to set `tls` in both ScaledObject and TriggerAuthentication together")
    if not (raw.enable_tls or raw.tls == "enable"):
        return None
    if bool(raw.cert) != bool(raw.key):
        raise ParameterError('parameters "cert" and "key" must be given together')
    return TLSSettings(
        ca=raw.ca, cert=raw.cert, key=raw.key, key_password=raw.key_password, unsafe_ssl=raw.unsafe_ssl
    )


class TLSConnection(Connection):
    """A connection that uses a prepared `ssl.SSLContext` instead of building one per socket."""

    def __init__(self, *, tls_context: ssl.SSLContext, **kwargs: Any) -> None:
        self.tls_context = tls_context
        super().__init__(**kwargs)

    def _connection_arguments(self) -> Mapping[str, Any]:
        return {**super()._connection_arguments(), "ssl": self.tls_context}


class TLSSentinelManagedConnection(TLSConnection, SentinelManagedConnection):
    """The same, for connections to the master a sentinel names."""


class RedisHandle:
    """The redis-py client of one server, built on the first use, plus what must be closed with it."""

    def __init__(self, connection: RedisConnection) -> None:
        self.connection = connection
        self._client: Redis | RedisCluster | None = None
        self._sentinel_nodes: list[Redis] = []
        self._building = asyncio.Lock()  # reads and the keyspace subscription share one client

    async def client(self) -> Redis | RedisCluster:
        async with self._building:
            if self._client is None:
                settings = self.connection.tls
                context = await asyncio.to_thread(client_context, settings) if settings else None
                self._client = self._build(context)
        return self._client

    def _build(self, context: ssl.SSLContext | None) -> Redis | RedisCluster:
        connection = self.connection
        if connection.kind == "cluster":
            return _cluster_client(connection, context)
        options = _options(connection.username, connection.password, context)
        if connection.kind == "standalone":
            host, port = connection.addresses[0]
            return _redis(host, port, connection.database_index, options)
        node_options = _options(connection.sentinel_username, connection.sentinel_password, context)
        self._sentinel_nodes = [_redis(host, port, 0, node_options) for host, port in connection.addresses]
        # Sentinel() takes no connection class for its nodes: give it nodes built with our options.
        sentinel = Sentinel([])  # type: ignore[no-untyped-call]
        sentinel.sentinels = self._sentinel_nodes
        if context is not None:
            options["connection_class"] = TLSSentinelManagedConnection
        name = connection.sentinel_master or ""
        master: Redis = sentinel.master_for(name, db=connection.database_index, **options)
        return master

    async def aclose(self) -> None:
        clients: list[Redis | RedisCluster] = [*self._sentinel_nodes]
        if self._client is not None:
            clients.insert(0, self._client)
        self._client, self._sentinel_nodes = None, []
        for client in clients:
            await client.aclose()


def _options(username: str | None, password: str | None, context: ssl.SSLContext | None) -> dict[str, Any]:
    """Connection options shared by every pool: credentials, bounds, timeouts, TLS."""
    options: dict[str, Any] = {
        "username": username,
        "password": password,
        "max_connections": POOL_SIZE,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": SOCKET_TIMEOUT,
        "client_name": CLIENT_NAME,
        "protocol": PROTOCOL,
        "retry": Retry(NoBackoff(), 0),  # a failed read is reported; the pool re-checks idle connections
    }
    if context is not None:
        options.update(connection_class=TLSConnection, tls_context=context)
    return options


def _redis(host: str, port: int, db: int, options: dict[str, Any]) -> Redis:
    """A client on a pool that waits for a free connection rather than opening more."""
    pool = BlockingConnectionPool(host=host, port=port, db=db, timeout=SOCKET_TIMEOUT, **options)
    return Redis.from_pool(pool)


def _cluster_client(connection: RedisConnection, context: ssl.SSLContext | None) -> RedisCluster:
    client = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in connection.addresses],
        username=connection.username,
        password=connection.password,
        max_connections=POOL_SIZE,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT,
        client_name=CLIENT_NAME,
        protocol=PROTOCOL,
        retry=Retry(NoBackoff(), 1),  # one more try after a failover or resharding refreshed the slots
    )
    if context is not None:
        # RedisCluster takes no connection class; every node it creates (startup nodes now,
        # discovered nodes later) copies these kwargs, so set the prepared context on both.
        client.get_connection_kwargs().update(connection_class=TLSConnection, tls_context=context)
        for node in client.startup_nodes:
            node.connection_class = TLSConnection
            node.connection_kwargs["tls_context"] = context
    return client
