"""postgresql and mysql trigger parameters: every key, default and error (KEDA's tables and wording)."""

from __future__ import annotations

import decimal
import urllib.parse
from typing import Any

import pytest

from scalers.base import metric_name
from scalers.params import ParameterError, TriggerParams, secret_values
from scalers.sql.mysql import Endpoint, MySQLScaler, db_name_of, parse_dsn
from scalers.sql.postgresql import PostgreSQLScaler, escape, parse_keywords, to_uri
from scalers.sql.query import QueryError, value_of

PG = PostgreSQLScaler()
MY = MySQLScaler()


def pg(metadata: dict[str, str], auth: dict[str, str] | None = None, env: dict[str, str] | None = None) -> Any:
    return PG.parse("postgresql", TriggerParams(metadata, auth or {}, env or {}))


def my(metadata: dict[str, str], auth: dict[str, str] | None = None, env: dict[str, str] | None = None) -> Any:
    return MY.parse("mysql", TriggerParams(metadata, auth or {}, env or {}))


BASE = {"query": "SELECT 1", "targetQueryValue": "5"}
HOST_KEYS = {"host": "db.example", "port": "5432", "userName": "app", "dbName": "jobs", "sslmode": "require"}


@pytest.mark.parametrize("metadata, auth, env, dsn", [
    # KEDA's TestPostgreSQLConnectionStringGeneration rows
    ({**BASE, "connectionFromEnv": "CONNECTION_ENV"}, None, {"CONNECTION_ENV": "postgresql://u:p@h:1/d"},
     "postgresql://u:p@h:1/d"),
    (BASE, {"connection": "postgresql://localhost:5432"}, None, "postgresql://localhost:5432"),
    ({**BASE, "host": "localhost", "port": "1234", "dbName": "testDb", "userName": "user", "sslmode": "require"},
     None, None, "postgresql://user@localhost:1234/testDb?sslmode=require"),
    ({**BASE, "host": "host1,host2", "port": "1234", "dbName": "testDb", "userName": "user", "sslmode": "disable"},
     None, None, "postgresql://user@host1:1234,host2:1234/testDb?sslmode=disable"),
    # host keys from the TriggerAuthentication win over metadata (KEDA: order=authParams;triggerMetadata)
    ({**BASE, **HOST_KEYS}, {"host": "auth.example", "password": "s3cret pw"}, None,
     "postgresql://app:s3cret%20pw@auth.example:5432/jobs?sslmode=require"),
    ({**BASE, **HOST_KEYS, "passwordFromEnv": "PGPASS"}, None, {"PGPASS": "from-env"},
     "postgresql://app:from-env@db.example:5432/jobs?sslmode=require"),
    # a key=value connection string is read as libpq reads it
    (BASE, {"connection": "host=h port=5 user=u password='a b\\'c' dbname=d sslmode=verify-full"}, None,
     "postgresql://u:a%20b%27c@h:5/d?sslmode=verify-full"),
    (BASE, {"connection": "host=::1 dbname=d application_name=x"}, None, "postgresql://[::1]/d?application_name=x"),
])
def test_postgresql_connection(metadata: dict[str, str], auth: dict[str, str] | None,
                               env: dict[str, str] | None, dsn: str) -> None:
    assert pg(metadata, auth, env).dsn == dsn


def test_postgresql_defaults_metric_and_sharing() -> None:
    config = pg({**BASE, "activationTargetQueryValue": "2.5"}, {"connection": "postgresql://u:p@h/d"})
    assert (config.query, config.target_query_value, config.activation_target_query_value) == ("SELECT 1", 5.0, 2.5)
    spec = PG.metric(config)
    assert (metric_name(0, spec.name), metric_name(1, spec.name)) == ("s0-postgresql", "s1-postgresql")
    assert (spec.target, spec.activation) == (5.0, 2.5)
    other = pg({**BASE, "query": "SELECT 2"}, {"connection": "postgresql://u:p@h/d"})
    assert PG.server_key(config) == PG.server_key(other)  # one pool per server and credentials
    assert PG.server_key(config) != PG.server_key(pg(BASE, {"connection": "postgresql://u:q@h/d"}))
    assert "u:p@h" not in repr(config)


def test_postgresql_password_is_a_secret() -> None:
    config = pg({**BASE, **HOST_KEYS}, {"password": "Very-s3cret"})
    assert "Very-s3cret" in secret_values(config)
    assert "Very-s3cret" not in repr(config)


def test_postgresql_connection_is_not_read_from_plain_metadata() -> None:
    with pytest.raises(ParameterError, match="no host given"):
        pg({**BASE, "connection": "postgresql://u:p@h/d"})


@pytest.mark.parametrize("metadata, auth, error", [
    ({"targetQueryValue": "5", "host": "h"}, {}, 'missing required parameter "query"'),
    ({"query": "q"}, {"connection": "postgresql://h/d"}, "no targetQueryValue given"),
    ({**BASE, "targetQueryValue": "0"}, {"connection": "postgresql://h/d"}, "no targetQueryValue given"),
    ({**BASE, "targetQueryValue": "five"}, {"connection": "postgresql://h/d"},
     'parameter "targetQueryValue" value "five" must be a number'),
    ({**BASE, "activationTargetQueryValue": "AA"}, {"connection": "postgresql://h/d"},
     'parameter "activationTargetQueryValue" value "AA" must be a number'),
    (BASE, {}, "no host given"),
    ({**BASE, "host": "h"}, {}, "no port given"),
    ({**BASE, "host": "h", "port": "1"}, {}, "no userName given"),
    ({**BASE, "host": "h", "port": "1", "userName": "u"}, {}, "no dbName given"),
    ({**BASE, "host": "h", "port": "1", "userName": "u", "dbName": "d"}, {}, "no sslmode given"),
    ({**HOST_KEYS, **BASE, "sslmode": "required"}, {},
     'parameter "sslmode" value "required" must be one of [disable, allow, prefer, require, verify-ca, verify-full]'),
    ({**HOST_KEYS, **BASE, "port": "x"}, {}, 'parameter "port" value "x" must be an integer'),
    (BASE, {"connection": "host=h password='unterminated"}, 'the value of "password" has no closing quote'),
    (BASE, {"connection": "host=h pool_max_conns=3"}, "unsupported key(s) pool_max_conns"),
    (BASE, {"connection": "just-text"}, "is not a key=value connection string or a URI"),
])
def test_postgresql_errors(metadata: dict[str, str], auth: dict[str, str], error: str) -> None:
    with pytest.raises(ParameterError) as caught:
        pg(metadata, auth)
    assert error in str(caught.value)
    assert "unterminated" not in str(caught.value)


@pytest.mark.parametrize("value, quoted", [
    # KEDA's TestEscapePostgreConnectionParameter
    ("simple", "simple"), ("with space", "'with space'"), ("user\tsslmode=disable", "'user\tsslmode=disable'"),
    ("user\nhost=attacker", "'user\nhost=attacker'"), ("user'name", "'user\\'name'"),
    ("user\\name", "'user\\\\name'"), ("user\\'name", "'user\\\\\\'name'"),
])
def test_postgresql_escape_round_trips(value: str, quoted: str) -> None:
    assert escape(value) == quoted
    assert parse_keywords(f"password={quoted}") == {"password": value}


def test_postgresql_injected_keywords_stay_values() -> None:
    """KEDA's TestPostgreSQLConnectionStringGenerationEscapesWhitespace: a user name cannot add keys."""
    config = pg({**HOST_KEYS, **BASE, "userName": "user\tsslmode=disable"}, {"password": "secret\nhost=attacker"})
    assert to_uri(config.dsn) == config.dsn
    parts = urllib.parse.urlsplit(config.dsn)
    assert (parts.hostname, parts.port, parts.path, parts.query) == ("db.example", 5432, "/jobs", "sslmode=require")
    assert urllib.parse.unquote(parts.username or "") == "user\tsslmode=disable"


MY_BASE = {"query": "SELECT 1", "queryValue": "12"}
MY_ENV = {"MYSQL_USERNAME": "test_username", "MYSQL_PASSWORD": "pass",
          "MYSQL_CONN_STR": "user@tcp(my.mysql.dev:3306)/stats_db"}


@pytest.mark.parametrize("metadata, auth, endpoint, db_name", [
    # KEDA's testMySQLMetadata rows that parse
    ({**MY_BASE, "connectionStringFromEnv": "MYSQL_CONN_STR"}, {},
     Endpoint("my.mysql.dev", 3306, "stats_db", "user"), "stats_db"),
    ({**MY_BASE, "host": "test_host", "port": "3307", "username": "test_username", "passwordFromEnv": "MYSQL_PASSWORD",
      "dbName": "test_dbname"}, {}, Endpoint("test_host", 3307, "test_dbname", "test_username", "pass"), "test_dbname"),
    ({**MY_BASE, "host": "test_host", "port": "3307", "usernameFromEnv": "MYSQL_USERNAME",
      "passwordFromEnv": "MYSQL_PASSWORD", "dbName": "test_dbname"}, {},
     Endpoint("test_host", 3307, "test_dbname", "test_username", "pass"), "test_dbname"),
    (MY_BASE, {"host": "test_host", "port": "3307", "username": "test_username", "password": "pw",
               "dbName": "test_dbname"}, Endpoint("test_host", 3307, "test_dbname", "test_username", "pw"),
     "test_dbname"),
    ({**MY_BASE, "host": "h"}, {}, Endpoint("h", 3306, "", ""), ""),
    (MY_BASE, {"connectionString": "u:p:w@tcp([::1]:3310)/db?tls=skip-verify&timeout=1500ms&parseTime=true"},
     Endpoint("::1", 3310, "db", "u", "p:w", None, "skip-verify", 1.5),
     "db?tls=skip-verify&timeout=1500ms&parseTime=true"),
    (MY_BASE, {"connectionString": "root@unix(/run/mysqld/mysqld.sock)/app"},
     Endpoint("localhost", 0, "app", "root", "", "/run/mysqld/mysqld.sock"), "app"),
    (MY_BASE, {"connectionString": "/only_db"}, Endpoint("127.0.0.1", 3306, "only_db", ""), "only_db"),
])
def test_mysql_connection(metadata: dict[str, str], auth: dict[str, str], endpoint: Endpoint, db_name: str) -> None:
    config = my(metadata, auth, MY_ENV)
    assert config.endpoint == endpoint and config.endpoint.password == endpoint.password
    assert config.db_name == db_name


def test_mysql_defaults_metric_and_sharing() -> None:
    config = my({**MY_BASE, "connectionStringFromEnv": "MYSQL_CONN_STR"}, {}, MY_ENV)
    assert (config.query_value, config.activation_query_value) == (12.0, 0.0)
    # KEDA's mySQLMetricIdentifiers
    assert metric_name(0, MY.metric(config).name) == "s0-mysql-stats_db"
    other = my({**MY_BASE, "host": "test_host", "port": "3306", "username": "u", "dbName": "test_dbname"})
    assert metric_name(1, MY.metric(other).name) == "s1-mysql-test_dbname"
    same = my({**MY_BASE, "query": "SELECT 2", "connectionStringFromEnv": "MYSQL_CONN_STR"}, {}, MY_ENV)
    assert MY.server_key(config) == MY.server_key(same)
    secret = my(MY_BASE, {"connectionString": "u:Hidden-pw@tcp(h:1)/d"})
    assert "Hidden-pw" in secret_values(secret) and "Hidden-pw" not in repr(secret)


@pytest.mark.parametrize("metadata, auth, error", [
    ({}, {}, 'missing required parameter "query"'),
    ({"query": "q"}, {"host": "h"}, 'missing required parameter "queryValue"'),
    ({**MY_BASE, "activationQueryValue": "AA"}, {"host": "h"},
     'parameter "activationQueryValue" value "AA" must be a number'),
    ({**MY_BASE, "queryValue": "x"}, {"host": "h"}, 'parameter "queryValue" value "x" must be a number'),
    ({**MY_BASE, "host": "h", "port": "p"}, {}, 'parameter "port" value "p" must be an integer'),
    (MY_BASE, {"connectionString": "no-slash-here"}, "is not a DSN like user:password@tcp(host:port)/dbname"),
    (MY_BASE, {"connectionString": "u:pw@tcp(h:1)/d?tls=maybe"}, 'tls value "maybe" must be one of'),
    (MY_BASE, {"connectionString": "u:pw@tcp(h:1)/d?timeout=soon"}, 'timeout value "soon" must be a duration'),
    (MY_BASE, {"connectionString": "u:pw@udp(h:1)/d"}, 'network "udp" must be tcp or unix'),
])
def test_mysql_errors(metadata: dict[str, str], auth: dict[str, str], error: str) -> None:
    with pytest.raises(ParameterError) as caught:
        my(metadata, auth)
    assert error in str(caught.value) and "pw@" not in str(caught.value)


def test_mysql_db_name_is_what_follows_the_last_slash() -> None:
    assert db_name_of("user@tcp(http://my.mysql.dev:3306)/stats_db") == "stats_db"
    assert parse_dsn("u@tcp(h)/d").port == 3306


@pytest.mark.parametrize("rows, value", [
    ([(5,)], 5.0), ([(2.5,)], 2.5), ([(decimal.Decimal("7.25"),)], 7.25), ([(" 12 ",)], 12.0),
    ([(b"3",)], 3.0), ([(1,), (2,)], 1.0),  # the first row, as QueryRow
])
def test_query_value(rows: list[tuple[Any, ...]], value: float) -> None:
    assert value_of(rows) == value


@pytest.mark.parametrize("rows, error", [
    ([], "returned no row"), ([(1, 2)], "returned 2 columns"), ([(None,)], "returned NULL"),
    ([(True,)], "returned a boolean"), ([("many",)], 'returned "many", which is not a number'),
    ([([1],)], "returned a list, which is not a number"),
])
def test_query_value_errors(rows: list[tuple[Any, ...]], error: str) -> None:
    with pytest.raises(QueryError, match=error):
        value_of(rows)
