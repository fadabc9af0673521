"""A real PostgreSQL server for the postgresql scaler's tests, private to one test session.

`PostgresServer` runs Debian's PostgreSQL (installed with apt-get when missing) from a cluster
`initdb` makes in a temporary directory, as the `postgres` system user (the server refuses to
run as root), on a free loopback port and a socket directory of its own. Every connection
needs a password (scram-sha-256): the superuser `postgres` / `ADMIN_PASSWORD` sets up data,
and `USER` / `PASSWORD` owns the database `DATABASE`, as a scaler would be configured. TLS is
on, with a server certificate from the test CA for 127.0.0.1 and localhost, so a client can
use `sslmode=disable`, `require` or `verify-full` (trusting `ca_file`) against the same port.

Durability is traded for speed (no fsync): the cluster is thrown away at the end. The SQL
helpers use asyncpg, the client the scaler itself uses.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import asyncpg

from tests.harness.async_setup import run_to_completion
from tests.harness.packages import ensure_packages
from tests.harness.ports import free_port
from tests.harness.server_process import ServerContext, ServerProcess
from tests.harness.service_user import hand_over, run_as
from tests.harness.tls_material import TLSMaterial

PG_BIN = Path("/usr/lib/postgresql/15/bin")  # Debian 12's PostgreSQL
SERVICE_USER = "postgres"
START_TIMEOUT = 60.0
ADMIN_USER, ADMIN_PASSWORD = "postgres", "Pg-Adm1n-s3cret"
USER, PASSWORD, DATABASE = "scaler", "Pg-Pa55word-s3cret", "eventscale"
HOST = "127.0.0.1"
_SETTINGS = {
    "listen_addresses": HOST,
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "32MB",
    "ssl": "on",
    "password_encryption": "scram-sha-256",
}


class PostgresServer(ServerContext):
    """One PostgreSQL cluster and server; use as a context manager."""

    def __init__(self, tls: TLSMaterial) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="postgres-"))
        self.data_dir = self.directory / "data"
        self.host, self.port = HOST, free_port()
        self.user, self.password, self.database = USER, PASSWORD, DATABASE
        self.tls = tls
        self.tls_files = tls.write_server_files(self.directory)
        self.ca_file = self.tls_files.ca
        self._server = ServerProcess("postgres", self.directory)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        ensure_packages(PG_BIN / "postgres", ["postgresql"])
        self._init_cluster()
        self._server.start([*run_as(SERVICE_USER), str(PG_BIN / "postgres"), *self._options()])
        self._server.wait_ready(self._answers, timeout=START_TIMEOUT, interval=0.1)
        run_to_completion(self._create_user_and_database())

    def _init_cluster(self) -> None:
        password_file = self.directory / "admin-password"
        password_file.write_text(ADMIN_PASSWORD)
        password_file.chmod(0o600)
        hand_over(self.directory, SERVICE_USER)
        command = [*run_as(SERVICE_USER), str(PG_BIN / "initdb"), "--pgdata", str(self.data_dir),
                   "--username", ADMIN_USER, "--pwfile", str(password_file), "--auth", "scram-sha-256",
                   "--encoding", "UTF8", "--locale", "C", "--no-sync", "--no-instructions"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        password_file.unlink()
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed (exit {result.returncode}): {result.stdout[-2000:]}{result.stderr}")

    def _options(self) -> list[str]:
        settings = {
            **_SETTINGS,
            "port": str(self.port),
            "unix_socket_directories": str(self.directory),
            "ssl_cert_file": str(self.tls_files.cert),
            "ssl_key_file": str(self.tls_files.key),
            "ssl_ca_file": str(self.tls_files.ca),
        }
        return ["-D", str(self.data_dir), *(f"-c{name}={value}" for name, value in settings.items())]

    def _answers(self) -> bool:
        try:
            run_to_completion(self.fetch("SELECT 1", database="postgres"))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        return True

    async def _create_user_and_database(self) -> None:
        await self.execute(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'", database="postgres")
        await self.execute(f"CREATE DATABASE {DATABASE} OWNER {USER}", database="postgres")

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():  # fast shutdown: open sessions are ended
            subprocess.run([*run_as(SERVICE_USER), str(PG_BIN / "pg_ctl"), "stop", "--pgdata", str(self.data_dir),
                            "--mode", "fast", "--wait", "--timeout", "30"],
                           capture_output=True, timeout=60, check=False)
        self._server.stop(grace=10)
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- addresses ---------------------------------------------------------------------------

    def dsn(self, *, user: str = USER, password: str = PASSWORD, database: str = DATABASE,
            sslmode: str = "disable", sslrootcert: Path | None = None) -> str:
        """A libpq connection URL; `sslrootcert` (for verify-ca/verify-full) is usually `ca_file`."""
        query = {"sslmode": sslmode, **({"sslrootcert": str(sslrootcert)} if sslrootcert else {})}
        credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
        return f"postgresql://{credentials}@{self.host}:{self.port}/{quote(database, safe='')}?{urlencode(query)}"

    # -- SQL as the superuser ----------------------------------------------------------------

    async def execute(self, sql: str, *args: Any, database: str = DATABASE) -> str:
        """Run one statement as the superuser; returns its status (e.g. `INSERT 0 3`)."""
        connection = await self._connect(database)
        try:
            return str(await connection.execute(sql, *args))
        finally:
            await connection.close()

    async def fetch(self, sql: str, *args: Any, database: str = DATABASE) -> list[asyncpg.Record]:
        """The rows of one query, run as the superuser."""
        connection = await self._connect(database)
        try:
            return list(await connection.fetch(sql, *args))
        finally:
            await connection.close()

    async def _connect(self, database: str) -> asyncpg.Connection:
        return await asyncpg.connect(host=self.host, port=self.port, user=ADMIN_USER, password=ADMIN_PASSWORD,
                                     database=database, ssl=False, timeout=10)
