"""The PostgreSQL harness server: password users, TLS from the test CA, and the SQL helpers."""

from __future__ import annotations

import ssl
import uuid
from pathlib import Path

import asyncpg
import pytest

from tests.harness.postgres_server import PASSWORD, PostgresServer
from tests.harness.tls_material import TLSMaterial


def table_name() -> str:
    return f"t_{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("sslmode, encrypted", [("disable", False), ("require", True), ("verify-full", True)])
async def test_the_scaler_user_round_trips_rows(postgres_server: PostgresServer, sslmode: str, encrypted: bool) -> None:
    table = table_name()
    root = postgres_server.ca_file if sslmode == "verify-full" else None
    connection = await asyncpg.connect(postgres_server.dsn(sslmode=sslmode, sslrootcert=root))
    try:
        await connection.execute(f"CREATE TABLE {table} (id int)")
        await connection.executemany(f"INSERT INTO {table} VALUES ($1)", [(1,), (2,), (3,)])
        assert await connection.fetchval(f"SELECT count(*) FROM {table}") == 3
        in_tls = await connection.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert in_tls is encrypted
    finally:
        await connection.close()
    rows = await postgres_server.fetch(f"SELECT id FROM {table} ORDER BY id")
    assert [row["id"] for row in rows] == [1, 2, 3]
    assert await postgres_server.execute(f"DELETE FROM {table} WHERE id > $1", 1) == "DELETE 2"


async def test_a_wrong_password_is_refused_without_echoing_it(postgres_server: PostgresServer) -> None:
    wrong = "not-" + PASSWORD
    with pytest.raises(asyncpg.InvalidPasswordError) as refused:
        await asyncpg.connect(postgres_server.dsn(password=wrong))
    assert 'password authentication failed for user "scaler"' in str(refused.value)
    assert wrong not in str(refused.value)


async def test_verify_full_refuses_a_server_outside_the_trusted_ca(postgres_server: PostgresServer,
                                                                   tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_text(TLSMaterial.generate("another-ca").ca_pem)
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncpg.connect(postgres_server.dsn(sslmode="verify-full", sslrootcert=other_ca))
