"""The mysql scaler against a real MariaDB: values, one pool, bounded concurrency, failures."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from scalers.base import ScalerError
from scalers.params import TriggerParams
from scalers.sql.mysql import MySQLConfig, MySQLScaler
from scalers.sql.query import MAX_CONCURRENT_QUERIES
from tests.harness.mariadb_server import PASSWORD, USER, MariaDBServer
from tests.integration.triggers import catalog_and_store, key, scaled_object, secret, trigger_auth

SCALER = MySQLScaler(timeout=2.0)


def config(server: MariaDBServer, query: str, *, dsn: str | None = None) -> MySQLConfig:
    params = TriggerParams({"query": query, "queryValue": "5"}, {"connectionString": dsn or server.dsn()})
    return SCALER.parse("mysql", params)


@pytest.fixture
async def jobs(mariadb_server: MariaDBServer) -> str:
    table = f"jobs_{uuid.uuid4().hex[:8]}"
    await mariadb_server.execute(f"CREATE TABLE {table} (id int auto_increment primary key, state text)")
    await mariadb_server.execute(f"INSERT INTO {table} (state) VALUES " + ",".join(["('new')"] * 7))
    return table


async def sessions(server: MariaDBServer) -> int:
    rows = await server.fetch("SELECT count(*) FROM information_schema.processlist WHERE user = %s", USER)
    return int(rows[0][0])


async def test_value_of_each_query(mariadb_server: MariaDBServer, jobs: str) -> None:
    configs = [config(mariadb_server, f"SELECT count(*) FROM {jobs}"),
               config(mariadb_server, f"SELECT count(*) / 2 FROM {jobs}"),
               config(mariadb_server, f"SELECT CAST(max(id) AS CHAR) FROM {jobs}")]
    assert SCALER.metric(configs[0]).name == "mysql-eventscale"
    client = SCALER.open_client(configs[0])
    try:
        assert await client.read(configs) == [7.0, 3.5, 7.0]
        await mariadb_server.execute(f"DELETE FROM {jobs} WHERE id > 1")
        assert (await client.read(configs))[0] == 1.0
    finally:
        await client.aclose()


async def test_host_keys_and_tls(mariadb_server: MariaDBServer) -> None:
    params = TriggerParams({"query": "SELECT 4", "queryValue": "1", "host": mariadb_server.host,
                            "port": str(mariadb_server.port), "username": USER, "dbName": "eventscale"},
                           {"password": PASSWORD})
    built = SCALER.parse("mysql", params)
    encrypted = ("SELECT variable_value <> '' FROM information_schema.session_status "
                 "WHERE variable_name = 'Ssl_cipher'")
    plain, tls = config(mariadb_server, encrypted), config(mariadb_server, encrypted,
                                                           dsn=mariadb_server.dsn() + "?tls=skip-verify")
    for trigger, expected in ((built, 4.0), (plain, 0.0), (tls, 1.0)):
        client = SCALER.open_client(trigger)
        try:
            assert await client.read([trigger]) == [expected]
        finally:
            await client.aclose()


async def test_identical_queries_run_once_and_at_most_four_at_a_time(mariadb_server: MariaDBServer,
                                                                    jobs: str) -> None:
    await mariadb_server.execute(f"CREATE TABLE {jobs}_calls (id int auto_increment primary key)")
    await mariadb_server.execute(
        f"CREATE FUNCTION {jobs}_counted() RETURNS int NOT DETERMINISTIC MODIFIES SQL DATA "
        f"BEGIN INSERT INTO {jobs}_calls VALUES (); RETURN (SELECT count(*) FROM {jobs}_calls); END")
    same = [config(mariadb_server, f"SELECT {jobs}_counted()") for _ in range(40)]
    slow = [config(mariadb_server, f"SELECT SLEEP(0.3) + {i}") for i in range(12)]
    client = SCALER.open_client(same[0])
    try:
        assert await client.read(same) == [1.0] * 40  # forty triggers, one query
        reading = asyncio.ensure_future(client.read(slow))
        peak = 0
        while not reading.done():
            peak = max(peak, await sessions(mariadb_server))
            await asyncio.sleep(0.05)
        assert await reading == [float(i) for i in range(12)]
        assert 1 <= peak <= MAX_CONCURRENT_QUERIES
    finally:
        await client.aclose()


@pytest.mark.parametrize("query, error", [
    ("SELECT count(*) FROM no_such_table", "the query failed: (1146)"),
    ("SELEC 1", "the query failed: (1064)"),
    ("SELECT 1 FROM DUAL WHERE false", "the query returned no row"),
    ("SELECT 1, 2", "the query returned 2 columns"),
    ("SELECT NULL", "the query returned NULL"),
    ("SELECT 'ten'", 'the query returned "ten", which is not a number'),
])
async def test_a_bad_query_fails_only_its_triggers(mariadb_server: MariaDBServer, query: str, error: str) -> None:
    client = SCALER.open_client(config(mariadb_server, "SELECT 1"))
    try:
        good, bad = await client.read([config(mariadb_server, "SELECT 1"), config(mariadb_server, query)])
    finally:
        await client.aclose()
    assert good == 1.0
    assert isinstance(bad, ScalerError)
    assert str(bad).startswith(f"mysql {mariadb_server.host}:{mariadb_server.port}/eventscale (user scaler): ")
    assert error in str(bad) and PASSWORD not in str(bad)


async def test_a_slow_query_is_killed_on_the_server(mariadb_server: MariaDBServer) -> None:
    slow = config(mariadb_server, "SELECT SLEEP(30)")
    client = SCALER.open_client(slow)
    try:
        fast, late = await client.read([config(mariadb_server, "SELECT 2"), slow])
        assert fast == 2.0
        assert isinstance(late, ScalerError) and "did not finish within 2s and was cancelled" in str(late)
        for _ in range(100):
            rows = await mariadb_server.fetch("SELECT count(*) FROM information_schema.processlist "
                                              "WHERE info LIKE 'SELECT SLEEP(30)%%'")
            if rows[0][0] == 0:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the slow query still runs on the server")
        assert await client.read([config(mariadb_server, "SELECT 3")]) == [3.0]  # the pool carries on
    finally:
        await client.aclose()


@pytest.mark.parametrize("dsn_of, error", [
    (lambda s: s.dsn(password="Wrong-s3cret-pw"), "login refused (1045): check username and password"),
    (lambda s: s.dsn(database="missing_db"), "(1044)"),
    (lambda s: s.dsn().replace(f":{s.port})", ":1)"), "cannot connect: (2003)"),
])
async def test_server_failures_fail_the_whole_read_without_secrets(
        mariadb_server: MariaDBServer, dsn_of: Callable[[MariaDBServer], str], error: str) -> None:
    failing = config(mariadb_server, "SELECT 1", dsn=dsn_of(mariadb_server))
    client = SCALER.open_client(failing)
    with pytest.raises(ScalerError) as caught:
        await client.read([failing])
    await client.aclose()
    assert error in str(caught.value)
    assert "Wrong-s3cret-pw" not in str(caught.value) and PASSWORD not in str(caught.value)


async def test_errors_through_the_store_name_the_trigger(mariadb_server: MariaDBServer, jobs: str) -> None:
    objects = [secret("my", connectionString=mariadb_server.dsn(password="Wrong-s3cret-pw")),
               trigger_auth("my", "my", "connectionString"),
               scaled_object("refused", "mysql", {"query": "SELECT 1", "queryValue": "2"}, "my")]
    async with catalog_and_store([SCALER], objects) as (_, store):
        entry = await store.read(key("refused", "s0-mysql-eventscale"))
        assert entry is not None and entry.status == 500
        body = entry.body.decode()
        assert "ScaledObject default/refused trigger 0 (mysql)" in body and "login refused" in body
        assert "Wrong-s3cret-pw" not in body
