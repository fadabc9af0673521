"""The MariaDB harness server: a password user on its database, TLS offered, and the SQL helpers."""

from __future__ import annotations

import ssl
import uuid

import aiomysql
import pymysql
import pytest

from tests.harness.mariadb_server import PASSWORD, MariaDBServer
from tests.harness.tls_material import TLSMaterial


@pytest.mark.parametrize("tls", [False, True])
async def test_the_scaler_user_round_trips_rows(mariadb_server: MariaDBServer, tls: bool) -> None:
    table = f"t_{uuid.uuid4().hex[:8]}"
    connection = await aiomysql.connect(host=mariadb_server.host, port=mariadb_server.port,
                                        user=mariadb_server.user, password=mariadb_server.password,
                                        db=mariadb_server.database, autocommit=True,
                                        ssl=mariadb_server.ssl_context() if tls else None)
    try:
        async with connection.cursor() as cursor:
            await cursor.execute(f"CREATE TABLE {table} (id int)")
            await cursor.executemany(f"INSERT INTO {table} VALUES (%s)", [(1,), (2,), (3,)])
            await cursor.execute(f"SELECT count(*) FROM {table}")
            assert await cursor.fetchone() == (3,)
            await cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            (_, cipher) = await cursor.fetchone()
            assert bool(cipher) is tls
    finally:
        connection.close()
    assert await mariadb_server.fetch(f"SELECT id FROM {table} ORDER BY id") == [(1,), (2,), (3,)]
    assert await mariadb_server.execute(f"DELETE FROM {table} WHERE id > %s", 1) == 2


async def test_a_wrong_password_is_refused_without_echoing_it(mariadb_server: MariaDBServer) -> None:
    wrong = "not-" + PASSWORD
    with pytest.raises(pymysql.err.OperationalError) as refused:
        await aiomysql.connect(host=mariadb_server.host, port=mariadb_server.port, user=mariadb_server.user,
                               password=wrong, db=mariadb_server.database)
    code, message = refused.value.args
    assert code == 1045 and "Access denied for user 'scaler'" in message
    assert wrong not in str(refused.value)


async def test_tls_refuses_a_server_outside_the_trusted_ca(mariadb_server: MariaDBServer) -> None:
    context = ssl.create_default_context(cadata=TLSMaterial.generate("another-ca").ca_pem)
    with pytest.raises(pymysql.err.OperationalError) as refused:
        await aiomysql.connect(host=mariadb_server.host, port=mariadb_server.port, user=mariadb_server.user,
                               password=mariadb_server.password, ssl=context)
    assert isinstance(refused.value.__cause__, ssl.SSLCertVerificationError)
