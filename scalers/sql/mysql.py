"""mysql: scale on the number a SQL query returns (MySQL or MariaDB), read with aiomysql.

KEDA's keys and rules: `query` and `queryValue` (both required), `activationQueryValue` (0),
and either `connectionString` (a Go MySQL driver DSN, `user:password@tcp(host:port)/dbname?...`;
from the TriggerAuthentication or `connectionStringFromEnv`) or `host`, `port`, `dbName`
(metadata, then TriggerAuthentication), `username` (metadata, TriggerAuthentication or
`usernameFromEnv`) and `password` (TriggerAuthentication or `passwordFromEnv`). The metric is
`mysql-<dbName>`; with a connection string KEDA takes the text after its last `/` as dbName, and
so does this module.

DSN parameters understood: `tls` (true, skip-verify, preferred, false) and `timeout` (a Go
duration); other parameters (`parseTime`, `charset`, ...) change nothing for one number and are
ignored. One aiomysql pool per server, database and user serves every trigger using it
(`scalers.sql.query`). A query past its timeout is killed on the server (`KILL QUERY`) from
another connection and its connection is dropped. Errors name the server, database and user,
never the password.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from dataclasses import dataclass, field

import aiomysql
import pymysql

from scalers.base import ClientOptions, Served, ServerScaler
from scalers.params import ParameterError, TriggerParams, param, parse_params, secret_field
from scalers.sources import ALL_SOURCES, METADATA_ONLY, METADATA_OR_AUTH, SECRET_SOURCES
from scalers.sql.query import MAX_CONCURRENT_QUERIES, PoolClient, value_of

DSN = re.compile(r"^(?:(?P<user>[^:@]*)(?::(?P<password>.*))?@)?(?:(?P<net>\w+)(?:\((?P<addr>[^)]*)\))?)?"
                 r"/(?P<db>[^?]*)(?:\?(?P<params>.*))?$", re.S)
GO_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Endpoint:
    """The server key: where to connect and as whom (equal endpoints share one pool)."""

    host: str
    port: int
    database: str
    user: str
    password: str = secret_field("")
    unix_socket: str | None = None
    tls: str = "false"  # false | true | skip-verify | preferred
    connect_timeout: float | None = None

    def __str__(self) -> str:
        where = self.unix_socket or f"{self.host}:{self.port}"
        return f"mysql {where}/{self.database} (user {self.user or 'default'})"


@dataclass(frozen=True, kw_only=True)
class MySQLConfig:
    query: str = param("query", required=True, sources=METADATA_ONLY)
    query_value: float = param("queryValue", required=True, sources=METADATA_ONLY)
    activation_query_value: float = param("activationQueryValue", default=0.0, sources=METADATA_ONLY)
    endpoint: Endpoint = field(default_factory=lambda: Endpoint("", 0, "", ""))
    db_name: str = ""  # for the metric name, as KEDA derives it


def db_name_of(connection_string: str) -> str:
    """KEDA's dbName of a connection string: whatever follows its last `/`."""
    return connection_string.split("/")[-1]


def parse_dsn(dsn: str) -> Endpoint:
    """A Go MySQL driver DSN as an Endpoint; errors never quote the DSN."""
    found = DSN.match(dsn.strip())
    if found is None:
        raise ParameterError('parameter "connectionString" is not a DSN like user:password@tcp(host:port)/dbname')
    net, addr = (found["net"] or "tcp"), (found["addr"] or "")
    options = dict(part.partition("=")[::2] for part in (found["params"] or "").split("&") if part)
    tls = options.get("tls", "false").lower()
    if tls not in ("true", "false", "skip-verify", "preferred"):
        raise ParameterError(f'connectionString parameter tls value "{tls}" must be one of '
                             "[true, false, skip-verify, preferred]")
    timeout = _duration(options["timeout"]) if "timeout" in options else None
    common = {"database": found["db"], "user": found["user"] or "", "password": found["password"] or "",
              "tls": tls, "connect_timeout": timeout}
    if net == "unix":
        return Endpoint(host="localhost", port=0, unix_socket=addr, **common)
    if net not in ("tcp", "tcp4", "tcp6"):
        raise ParameterError(f'connectionString network "{net}" must be tcp or unix')
    host, port = _host_port(addr or "127.0.0.1:3306")
    return Endpoint(host=host, port=port, **common)


def _host_port(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":") if addr.count(":") == 1 or addr.startswith("[") else (addr, "", "")
    host = host.strip("[]") or addr
    if not port:
        return host, 3306
    if not port.isdigit():
        raise ParameterError(f'parameter "port" value "{port}" must be an integer')
    return host, int(port)


def _duration(text: str) -> float:
    found = GO_DURATION.match(text)
    if found is None:
        raise ParameterError(f'connectionString parameter timeout value "{text}" must be a duration such as 5s')
    return float(found[1]) * DURATION_UNITS[found[2]]


def parse_config(params: TriggerParams) -> MySQLConfig:
    connection = params.get("connectionString", SECRET_SOURCES)
    if connection is not None:
        endpoint, db_name = parse_dsn(connection), db_name_of(connection)
    else:
        port = params.get("port", METADATA_OR_AUTH) or "3306"
        if not port.isdigit():
            raise ParameterError(f'parameter "port" value "{port}" must be an integer')
        endpoint = Endpoint(
            host=params.get("host", METADATA_OR_AUTH) or "", port=int(port),
            database=params.get("dbName", METADATA_OR_AUTH) or "",
            user=params.get("username", ALL_SOURCES) or "",
            password=params.get("password", SECRET_SOURCES) or "")
        db_name = endpoint.database
    return parse_params(MySQLConfig, params, endpoint=endpoint, db_name=db_name)


class MySQLClient(PoolClient[MySQLConfig, aiomysql.Pool]):
    """One aiomysql pool of at most MAX_CONCURRENT_QUERIES connections, opened on the first read."""

    def __init__(self, endpoint: Endpoint, options: ClientOptions) -> None:
        super().__init__(endpoint, endpoint, timeout=options.timeout, describe=_describe,
                         connect_failure=_connect_failure)
        self._endpoint = endpoint
        self._kills: set[asyncio.Task[None]] = set()

    async def _create_pool(self) -> aiomysql.Pool:
        e = self._endpoint
        return await aiomysql.create_pool(
            minsize=0, maxsize=MAX_CONCURRENT_QUERIES, host=e.host, port=e.port or 3306,
            unix_socket=e.unix_socket, user=e.user, password=e.password, db=e.database or None,
            connect_timeout=e.connect_timeout or self._timeout, autocommit=True, ssl=_ssl(e.tls),
            program_name="eventscale")

    async def _run(self, pool: aiomysql.Pool, query: str) -> float:
        connection = await self._connection(pool.acquire())
        finished = False
        try:
            async with connection.cursor() as cursor:
                await cursor.execute(query)
                rows = await cursor.fetchmany(1)
            finished = True
            return value_of(rows)
        finally:
            if finished:
                pool.release(connection)
            else:  # cancelled (timeout) or failed mid-query: the connection's state is unknown
                self._kill(connection.thread_id())
                connection.close()
                pool.release(connection)

    def _kill(self, thread_id: int) -> None:
        """KILL QUERY from a fresh connection, in the background and bounded by the timeout."""
        task = asyncio.get_running_loop().create_task(self._kill_query(thread_id))
        self._kills.add(task)
        task.add_done_callback(self._kills.discard)

    async def _kill_query(self, thread_id: int) -> None:
        e = self._endpoint
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._timeout):
                connection = await aiomysql.connect(
                    host=e.host, port=e.port or 3306, unix_socket=e.unix_socket, user=e.user, password=e.password,
                    connect_timeout=self._timeout, ssl=_ssl(e.tls))
                try:
                    async with connection.cursor() as cursor:
                        await cursor.execute(f"KILL QUERY {int(thread_id)}")
                finally:
                    connection.close()

    async def _close(self, pool: aiomysql.Pool) -> None:
        pool.close()
        await pool.wait_closed()

    async def aclose(self) -> None:
        await super().aclose()
        if self._kills:
            await asyncio.gather(*self._kills, return_exceptions=True)


def _ssl(tls: str) -> ssl.SSLContext | None:
    if tls == "false":
        return None
    context = ssl.create_default_context()
    if tls in ("skip-verify", "preferred"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _describe(exc: BaseException) -> str:
    if isinstance(exc, pymysql.err.MySQLError) and len(exc.args) >= 2:
        return f"({exc.args[0]}) {exc.args[1]}"
    return f"{type(exc).__name__}: {exc}"


def _connect_failure(exc: BaseException) -> str:
    if isinstance(exc, pymysql.err.OperationalError) and exc.args and exc.args[0] == 1045:
        return "login refused (1045): check username and password"
    if isinstance(exc, pymysql.err.OperationalError) and exc.args and exc.args[0] == 1049:
        return f"the database does not exist {_describe(exc)}"
    return f"cannot connect: {_describe(exc)}"


class MySQLScaler(ServerScaler[MySQLConfig, Endpoint], parse=parse_config, client=MySQLClient):
    types = ("mysql",)

    def served(self, config: MySQLConfig) -> Served[Endpoint]:
        return Served(config.endpoint, f"mysql-{config.db_name}", config.query_value, config.activation_query_value)
