"""The postgresql scaler against a real PostgreSQL: values, one pool, bounded concurrency, failures."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from scalers.base import Reading, ScalerError
from scalers.params import TriggerParams
from scalers.sql.postgresql import PostgreSQLClient, PostgreSQLConfig, PostgreSQLScaler
from scalers.sql.query import MAX_CONCURRENT_QUERIES
from tests.harness.postgres_server import PASSWORD, USER, PostgresServer
from tests.integration.triggers import catalog_and_store, key, scaled_object, secret, trigger_auth

SCALER = PostgreSQLScaler(timeout=2.0)


def config(server: PostgresServer, query: str, *, dsn: str | None = None, target: str = "5") -> PostgreSQLConfig:
    params = TriggerParams({"query": query, "targetQueryValue": target}, {"connection": dsn or server.dsn()})
    return SCALER.parse("postgresql", params)


@pytest.fixture
async def jobs(postgres_server: PostgresServer) -> str:
    """A fresh table `jobs_<id>` owned by the scaler's user, with 7 rows."""
    table = f"jobs_{uuid.uuid4().hex[:8]}"
    await postgres_server.execute(f"CREATE TABLE {table} (id serial, state text)")
    await postgres_server.execute(f"INSERT INTO {table} (state) SELECT 'new' FROM generate_series(1, 7)")
    await postgres_server.execute(f"ALTER TABLE {table} OWNER TO {USER}")
    return table


async def sessions(server: PostgresServer) -> int:
    rows = await server.fetch("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'eventscale'")
    return int(rows[0][0])


async def test_value_of_each_query_and_shared_pool(postgres_server: PostgresServer, jobs: str) -> None:
    configs = [config(postgres_server, f"SELECT count(*) FROM {jobs}"),
               config(postgres_server, f"SELECT count(*) * 1.5 FROM {jobs}"),
               config(postgres_server, f"SELECT max(id)::text FROM {jobs}"),
               config(postgres_server, "SELECT 0.25::numeric")]
    assert len({SCALER.server_key(c) for c in configs}) == 1
    client = SCALER.open_client(configs[0])
    try:
        assert await client.read(configs) == [7.0, 10.5, 7.0, 0.25]
        await postgres_server.execute(f"DELETE FROM {jobs} WHERE id > 2")
        assert (await client.read(configs))[0] == 2.0
    finally:
        await client.aclose()


async def test_every_sslmode_the_server_accepts(postgres_server: PostgresServer) -> None:
    for dsn in (postgres_server.dsn(sslmode="require"),
                postgres_server.dsn(sslmode="verify-full", sslrootcert=postgres_server.ca_file)):
        client = SCALER.open_client(config(postgres_server, "SELECT 3", dsn=dsn))
        try:
            assert await client.read([config(postgres_server, "SELECT 3", dsn=dsn)]) == [3.0]
        finally:
            await client.aclose()


async def test_host_keys_build_a_working_connection(postgres_server: PostgresServer) -> None:
    params = TriggerParams({"query": "SELECT 4", "targetQueryValue": "1", "host": postgres_server.host,
                            "port": str(postgres_server.port), "userName": USER, "dbName": postgres_server.database,
                            "sslmode": "disable"}, {"password": PASSWORD})
    built = SCALER.parse("postgresql", params)
    client = SCALER.open_client(built)
    try:
        assert await client.read([built]) == [4.0]
    finally:
        await client.aclose()


async def test_a_poll_runs_identical_queries_once_and_at_most_four_at_a_time(
        postgres_server: PostgresServer, jobs: str) -> None:
    await postgres_server.execute(f"CREATE TABLE {jobs}_calls (at timestamptz default now())")
    await postgres_server.execute(f"ALTER TABLE {jobs}_calls OWNER TO {USER}")
    await postgres_server.execute(
        f"CREATE FUNCTION {jobs}_counted(delay float) RETURNS bigint LANGUAGE sql VOLATILE AS "
        f"$$ INSERT INTO {jobs}_calls DEFAULT VALUES; SELECT pg_sleep(delay); SELECT count(*) FROM {jobs}_calls $$")
    await postgres_server.execute(f"ALTER FUNCTION {jobs}_counted(float) OWNER TO {USER}")
    same = [config(postgres_server, f"SELECT {jobs}_counted(0)") for _ in range(50)]
    slow = [config(postgres_server, f"SELECT {jobs}_counted(0.3) + {i} * 0") for i in range(12)]
    client = SCALER.open_client(same[0])
    try:
        assert await client.read(same) == [1.0] * 50  # fifty triggers, one query
        reading = asyncio.ensure_future(client.read(slow))
        peak = 0
        while not reading.done():
            peak = max(peak, await sessions(postgres_server))
            await asyncio.sleep(0.05)
        assert len(await reading) == 12
        assert 1 <= peak <= MAX_CONCURRENT_QUERIES
        rows = await postgres_server.fetch(f"SELECT count(*) FROM {jobs}_calls")
        assert rows[0][0] == 13
    finally:
        await client.aclose()
    assert await sessions(postgres_server) == 0


@pytest.mark.parametrize("query, error", [
    ("SELECT count(*) FROM no_such_table", 'the query failed: 42P01 relation "no_such_table" does not exist'),
    ("SELEC 1", "the query failed: 42601"),
    ("SELECT 1 WHERE false", "the query returned no row"),
    ("SELECT 1, 2", "the query returned 2 columns"),
    ("SELECT NULL::int", "the query returned NULL"),
    ("SELECT 'ten'", 'the query returned "ten", which is not a number'),
    ("SELECT true", "the query returned a boolean"),
])
async def test_a_bad_query_fails_only_its_triggers(postgres_server: PostgresServer, query: str, error: str) -> None:
    client = SCALER.open_client(config(postgres_server, "SELECT 1"))
    try:
        good, bad = await client.read([config(postgres_server, "SELECT 1"), config(postgres_server, query)])
    finally:
        await client.aclose()
    assert good == 1.0
    assert isinstance(bad, ScalerError)
    assert str(bad).startswith(f"postgresql {postgres_server.host}:{postgres_server.port}/eventscale (user scaler): ")
    assert error in str(bad) and PASSWORD not in str(bad)


async def test_a_slow_query_is_cancelled_on_the_server(postgres_server: PostgresServer) -> None:
    slow = config(postgres_server, "SELECT 1 FROM pg_sleep(30)")
    client = SCALER.open_client(slow)
    try:
        started = asyncio.get_running_loop().time()
        fast, late = await client.read([config(postgres_server, "SELECT 2"), slow])
        assert asyncio.get_running_loop().time() - started < 10
    finally:
        await client.aclose()
    assert fast == 2.0
    assert isinstance(late, ScalerError) and "did not finish within 2s and was cancelled" in str(late)
    for _ in range(100):  # the server-side query ends (cancelled or its session terminated)
        rows = await postgres_server.fetch("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%'"
                                           " AND pid <> pg_backend_pid()")
        if rows[0][0] == 0:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the slow query still runs on the server")


@pytest.mark.parametrize("dsn_of, error", [
    (lambda s: s.dsn(password="Wrong-s3cret-pw"), "login refused (28P01): check userName and password"),
    (lambda s: s.dsn(database="missing_db"), "the database does not exist"),
    (lambda s: s.dsn().replace(f":{s.port}/", ":1/"), "cannot connect: "),
])
async def test_server_failures_fail_the_whole_read_without_secrets(
        postgres_server: PostgresServer, dsn_of: Callable[[PostgresServer], str], error: str) -> None:
    dsn = dsn_of(postgres_server)
    failing = config(postgres_server, "SELECT 1", dsn=dsn)
    client = PostgreSQLClient(failing, timeout=2.0)
    with pytest.raises(ScalerError) as caught:
        await client.read([failing])
    await client.aclose()
    assert error in str(caught.value)
    assert "Wrong-s3cret-pw" not in str(caught.value) and PASSWORD not in str(caught.value)


async def test_errors_through_the_store_name_the_trigger_and_never_the_password(
        postgres_server: PostgresServer, jobs: str) -> None:
    wrong = postgres_server.dsn(password="Wrong-s3cret-pw")
    objects = [secret("pg", connection=postgres_server.dsn()), trigger_auth("pg", "pg", "connection"),
               secret("pg-wrong", connection=wrong), trigger_auth("pg-wrong", "pg-wrong", "connection"),
               scaled_object("ok", "postgresql", {"query": f"SELECT count(*) FROM {jobs}", "targetQueryValue": "2"},
                             "pg"),
               scaled_object("typo", "postgresql", {"query": "SELECT * FROM nope", "targetQueryValue": "2"}, "pg"),
               scaled_object("refused", "postgresql", {"query": "SELECT 1", "targetQueryValue": "2"}, "pg-wrong")]
    async with catalog_and_store([SCALER], objects) as (_, store):
        ok, typo, refused = [await store.read(key(n, "s0-postgresql")) for n in ("ok", "typo", "refused")]
        assert ok is not None and ok.value == 7.0 and ok.active
        assert typo is not None and refused is not None
        assert "ScaledObject default/typo trigger 0 (postgresql)" in typo.body.decode()
        assert 'relation \\"nope\\" does not exist' in typo.body.decode()
        body = refused.body.decode()
        assert "ScaledObject default/refused trigger 0 (postgresql)" in body and "login refused" in body
        assert "Wrong-s3cret-pw" not in body and "Wrong-s3cret-pw" not in (refused.error or "")


async def test_activation_is_strictly_above_the_threshold(postgres_server: PostgresServer, jobs: str) -> None:
    objects = [secret("pg", connection=postgres_server.dsn()), trigger_auth("pg", "pg", "connection")]
    objects += [scaled_object(f"at{t}", "postgresql", {"query": f"SELECT count(*) FROM {jobs}",
                                                       "targetQueryValue": "2",
                                                       "activationTargetQueryValue": str(t)}, "pg") for t in (6, 7)]
    async with catalog_and_store([SCALER], objects) as (_, store):
        below, equal = [await store.read(key(f"at{t}", "s0-postgresql")) for t in (6, 7)]
        assert below is not None and below.active and equal is not None and not equal.active
        assert not isinstance(below.value, Reading)
