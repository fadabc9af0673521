"""postgresql: scale on the number a SQL query returns, read with asyncpg.

KEDA's keys and rules: `query` (required), `targetQueryValue` (required, not 0: "no
targetQueryValue given"), `activationTargetQueryValue` (0), and either `connection` (a libpq
connection string, key=value or a postgresql:// URI; from the TriggerAuthentication or
`connectionFromEnv`, never plain metadata) or `host`, `port`, `userName`, `dbName`, `sslmode`
(TriggerAuthentication first, then metadata; each required without `connection`) with
`password` (TriggerAuthentication or `passwordFromEnv`). KEDA joins those into
`host=... port=... user=... dbname=... sslmode=... password=...`, quoting a value that has
white space, `'` or `\\`; so does this module. The metric is `postgresql`. Azure workload
identity (a token as password) is not supported.

A key=value string is turned into the URI asyncpg reads, so both forms go through the one
parser of the driver. One asyncpg pool per distinct connection (server, database, user and
password) serves every trigger using it (`scalers.sql.query`); a poll's queries run on it with
bounded concurrency. Errors name the server, database and user, never the password.
"""

from __future__ import annotations

import dataclasses
import ssl
import urllib.parse
from dataclasses import dataclass

import asyncpg

from scalers.base import Served, ServedScaler
from scalers.params import ParameterError, TriggerParams, param, parse_params, secret_field
from scalers.sources import AUTH_OR_METADATA, METADATA_ONLY, SECRET_SOURCES
from scalers.sql.query import MAX_CONCURRENT_QUERIES, PoolClient, value_of

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# libpq keys that map onto the URI asyncpg reads; anything else is refused by name
URI_QUERY_KEYS = {"sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword", "sslcrl", "passfile",
                  "connect_timeout", "application_name", "target_session_attrs", "krbsrvname", "gsslib",
                  "options", "service"}


@dataclass(frozen=True, kw_only=True)
class PostgreSQLConfig:
    query: str = param("query", required=True, sources=METADATA_ONLY)
    target_query_value: float = param("targetQueryValue", default=0.0, sources=METADATA_ONLY)
    activation_target_query_value: float = param("activationTargetQueryValue", default=0.0,
                                                 sources=METADATA_ONLY)
    dsn: str = secret_field()  # a postgresql:// URI, password included


def escape(value: str) -> str:
    """A libpq connection-string value, quoted as KEDA quotes it (white space, `'` or `\\`)."""
    if not any(c.isspace() for c in value) and "'" not in value and "\\" not in value:
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def keyword_string(params: TriggerParams) -> str:
    """KEDA's connection string from host, port, userName, dbName, sslmode and password."""
    parts = []
    for key, word in (("host", "host"), ("port", "port"), ("userName", "user"), ("dbName", "dbname"),
                      ("sslmode", "sslmode")):
        value = params.get(key, AUTH_OR_METADATA)
        if value is None:
            raise ParameterError(f"no {key} given")
        parts.append(f"{word}={escape(value)}")
    parts.append("password=" + escape(params.get("password", SECRET_SOURCES) or ""))
    return " ".join(parts)


def parse_keywords(text: str) -> dict[str, str]:
    """libpq's `key=value key='quoted \\' value'` form; errors name the key, never a value."""
    found: dict[str, str] = {}
    index, length = 0, len(text)
    while True:
        while index < length and text[index].isspace():
            index += 1
        if index >= length:
            return found
        equals = text.find("=", index)
        if equals < 0:
            raise ParameterError('parameter "connection" is not a key=value connection string or a URI')
        key = text[index:equals].strip()
        index = equals + 1
        while index < length and text[index].isspace():
            index += 1
        value, index = _keyword_value(text, index, key)
        found[key] = value


def _keyword_value(text: str, index: int, key: str) -> tuple[str, int]:
    quoted = index < len(text) and text[index] == "'"
    if quoted:
        index += 1
    out: list[str] = []
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            out.append(text[index + 1])
            index += 2
            continue
        if (quoted and char == "'") or (not quoted and char.isspace()):
            return "".join(out), index + 1
        out.append(char)
        index += 1
    if quoted:
        raise ParameterError(f'parameter "connection": the value of "{key}" has no closing quote')
    return "".join(out), index


def to_uri(connection: str) -> str:
    """The connection as a postgresql:// URI (a URI is kept as it is)."""
    if connection.startswith(("postgresql://", "postgres://")):
        return connection
    words = parse_keywords(connection)
    unknown = sorted(set(words) - URI_QUERY_KEYS - {"host", "hostaddr", "port", "user", "password", "dbname"})
    if unknown:
        raise ParameterError(f'parameter "connection": unsupported key(s) {", ".join(unknown)}')
    sslmode = words.get("sslmode")
    if sslmode is not None and sslmode not in SSL_MODES:
        raise ParameterError(f'parameter "sslmode" value "{sslmode}" must be one of [{", ".join(SSL_MODES)}]')
    quote = urllib.parse.quote
    user = quote(words.get("user", ""), safe="")
    password = words.get("password", "")
    credentials = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    hosts = (words.get("host") or words.get("hostaddr") or "").split(",")
    ports = (words.get("port") or "").split(",")
    if len(ports) == 1:
        ports = ports * len(hosts)
    if len(ports) != len(hosts):
        raise ParameterError('parameter "connection": host and port list different numbers of servers')
    netloc = ",".join(_host_port(h, p) for h, p in zip(hosts, ports, strict=True))
    query = urllib.parse.urlencode({k: v for k, v in words.items() if k in URI_QUERY_KEYS})
    return f"postgresql://{credentials}{netloc}/{quote(words.get('dbname', ''), safe='')}" + (
        f"?{query}" if query else "")


def _host_port(host: str, port: str) -> str:
    host = host.strip()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    if port.strip() and not port.strip().isdigit():
        raise ParameterError(f'parameter "port" value "{port.strip()}" must be an integer')
    return f"{host}:{port.strip()}" if port.strip() else host


def parse_config(params: TriggerParams) -> PostgreSQLConfig:
    keys = parse_params(PostgreSQLConfig, params, dsn="")  # KEDA's order: keys, then connection, then target
    connection = params.get("connection", SECRET_SOURCES)
    config = dataclasses.replace(keys, dsn=to_uri(connection if connection is not None else keyword_string(params)))
    if config.target_query_value == 0:
        raise ParameterError("no targetQueryValue given")
    return config


@dataclass(frozen=True)
class Server:
    """Where a URI points, for messages: hosts, database and user (never the password)."""

    hosts: str
    database: str
    user: str

    @classmethod
    def of(cls, dsn: str) -> Server:
        parts = urllib.parse.urlsplit(dsn)
        netloc = parts.netloc.rpartition("@")[2]
        user = urllib.parse.unquote(parts.netloc.rpartition("@")[0].partition(":")[0])
        return cls(netloc or "localhost", urllib.parse.unquote(parts.path.lstrip("/")), user)

    def __str__(self) -> str:
        return f"postgresql {self.hosts}/{self.database} (user {self.user or 'default'})"


class PostgreSQLClient(PoolClient[PostgreSQLConfig, asyncpg.Pool]):
    """One asyncpg pool of at most MAX_CONCURRENT_QUERIES connections, opened on the first read."""

    def __init__(self, config: PostgreSQLConfig, *, timeout: float) -> None:
        # errors name the server, database and user; the config's secrets are masked in every one
        super().__init__(Server.of(config.dsn), config, timeout=timeout, describe=_describe,
                         connect_failure=_connect_failure)
        self._dsn = config.dsn

    async def _create_pool(self) -> asyncpg.Pool:
        return await asyncpg.create_pool(
            self._dsn, min_size=0, max_size=MAX_CONCURRENT_QUERIES, timeout=self._timeout,
            command_timeout=self._timeout, server_settings={"application_name": "eventscale"})

    async def _run(self, pool: asyncpg.Pool, query: str) -> float:
        connection = await self._connection(pool.acquire(timeout=self._timeout))
        try:
            rows = await connection.fetch(query, timeout=self._timeout)
        finally:
            await pool.release(connection)
        return value_of([tuple(r.values()) for r in rows[:1]])

    async def _close(self, pool: asyncpg.Pool) -> None:
        pool.terminate()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncpg.PostgresError):
        return f"{exc.sqlstate} {exc}"
    return f"{type(exc).__name__}: {exc}"


def _connect_failure(exc: BaseException) -> str:
    if isinstance(exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError):
        return f"login refused ({exc.sqlstate}): check userName and password"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"the database does not exist ({exc})"
    if isinstance(exc, TimeoutError):
        return "no connection within the timeout"
    if isinstance(exc, ssl.SSLError | ConnectionError | OSError):
        return f"cannot connect: {type(exc).__name__}: {exc}"
    return f"cannot connect: {_describe(exc)}"


class PostgreSQLScaler(ServedScaler[PostgreSQLConfig, tuple[str, str]]):
    types = ("postgresql",)

    def __init__(self, *, timeout: float = 4.0) -> None:
        self._timeout = timeout  # per query, and per connection attempt; below the store's read timeout

    def parse(self, trigger_type: str, params: TriggerParams) -> PostgreSQLConfig:
        return parse_config(params)

    def served(self, config: PostgreSQLConfig) -> Served[tuple[str, str]]:
        return Served(("postgresql", config.dsn), "postgresql", config.target_query_value,
                      config.activation_target_query_value)

    def open_client(self, config: PostgreSQLConfig) -> PostgreSQLClient:
        return PostgreSQLClient(config, timeout=self._timeout)
