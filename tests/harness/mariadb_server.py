"""A real MariaDB server (the MySQL protocol) for the mysql scaler's tests, private to one session.

`MariaDBServer` runs Debian's MariaDB (installed with apt-get when missing): `mariadb-install-db`
makes a data directory in a temporary directory, and `mariadbd` serves it as the `mysql` system
user on a free loopback port and a socket of its own, reading no option files. The harness
administers it as MariaDB's `root`, which authenticates by the connecting process's own user
(unix_socket) on that private socket, so it has no password to leak; `USER` / `PASSWORD` is a
password user with every privilege on `DATABASE`, as a scaler would be configured. TLS is
offered on the same port with a server certificate from the test CA (not required).

Durability is traded for speed: the data directory is thrown away at the end. The SQL helpers
use aiomysql, the client the scaler itself uses.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import aiomysql
import pymysql

from tests.harness.async_setup import run_to_completion
from tests.harness.packages import ensure_packages
from tests.harness.ports import free_port
from tests.harness.server_process import ServerContext, ServerProcess
from tests.harness.service_user import hand_over
from tests.harness.tls_material import TLSMaterial

MARIADBD = Path("/usr/sbin/mariadbd")
INSTALL_DB = Path("/usr/bin/mariadb-install-db")
SERVICE_USER = "mysql"
START_TIMEOUT = 60.0
USER, PASSWORD, DATABASE = "scaler", "My-Pa55word-s3cret", "eventscale"
HOST = "127.0.0.1"
_SIZES = ["--innodb-buffer-pool-size=32M", "--innodb-log-file-size=8M"]  # small and quick to create
_OPTIONS = [
    *_SIZES,
    "--skip-name-resolve",
    "--skip-log-bin",
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-doublewrite=0",
    "--performance-schema=0",
]


class MariaDBServer(ServerContext):
    """One MariaDB data directory and server; use as a context manager."""

    def __init__(self, tls: TLSMaterial) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="mariadb-"))
        self.data_dir = self.directory / "data"
        self.socket = self.directory / "mariadb.sock"
        self.host, self.port = HOST, free_port()
        self.user, self.password, self.database = USER, PASSWORD, DATABASE
        self.tls = tls
        self.tls_files = tls.write_server_files(self.directory)
        self.ca_file = self.tls_files.ca
        self._server = ServerProcess("mariadbd", self.directory)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        ensure_packages(MARIADBD, ["mariadb-server"])
        self._install_data_dir()
        self._server.start(self._command())
        self._server.wait_ready(self._answers, timeout=START_TIMEOUT, interval=0.1)
        run_to_completion(self._create_user_and_database())

    def _install_data_dir(self) -> None:
        hand_over(self.directory, SERVICE_USER)
        command = [str(INSTALL_DB), "--no-defaults", f"--datadir={self.data_dir}", f"--user={SERVICE_USER}",
                   "--skip-test-db", "--skip-name-resolve", *_SIZES]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed (exit {result.returncode}): "
                               f"{result.stdout[-2000:]}{result.stderr[-2000:]}")

    def _command(self) -> list[str]:
        d = self.directory
        return [str(MARIADBD), "--no-defaults", f"--datadir={self.data_dir}", f"--user={SERVICE_USER}",
                f"--bind-address={HOST}", f"--port={self.port}", f"--socket={self.socket}",
                f"--pid-file={d / 'mariadbd.pid'}", f"--tmpdir={d}", *_OPTIONS,
                f"--ssl-cert={self.tls_files.cert}", f"--ssl-key={self.tls_files.key}",
                f"--ssl-ca={self.tls_files.ca}"]

    def _answers(self) -> bool:
        try:
            run_to_completion(self.fetch("SELECT 1", database="mysql"))
        except (OSError, pymysql.err.MySQLError):
            return False
        return True

    async def _create_user_and_database(self) -> None:
        await self.execute(f"CREATE DATABASE {DATABASE}", database="mysql")
        await self.execute(f"CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'", database="mysql")
        await self.execute(f"GRANT ALL PRIVILEGES ON {DATABASE}.* TO '{USER}'@'%'", database="mysql")

    def stop(self) -> None:
        self._server.stop(grace=30)
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- addresses ---------------------------------------------------------------------------

    def dsn(self, *, user: str = USER, password: str = PASSWORD, database: str = DATABASE) -> str:
        """A go-sql-driver/mysql data source name, the shape KEDA's `connectionString` takes."""
        return f"{user}:{password}@tcp({self.host}:{self.port})/{database}"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the test CA and checks the server's name."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    # -- SQL as root ---------------------------------------------------------------------------

    async def execute(self, sql: str, *args: Any, database: str = DATABASE) -> int:
        """Run one statement as root (committed); returns the affected row count."""
        connection = await self._connect(database)
        try:
            async with connection.cursor() as cursor:
                affected = int(await cursor.execute(sql, args or None))
            await connection.commit()
            return affected
        finally:
            connection.close()

    async def fetch(self, sql: str, *args: Any, database: str = DATABASE) -> list[tuple[Any, ...]]:
        """The rows of one query, run as root."""
        connection = await self._connect(database)
        try:
            async with connection.cursor() as cursor:
                await cursor.execute(sql, args or None)
                return list(await cursor.fetchall())
        finally:
            connection.close()

    async def _connect(self, database: str) -> aiomysql.Connection:
        return await aiomysql.connect(unix_socket=str(self.socket), user="root", db=database, connect_timeout=10)
