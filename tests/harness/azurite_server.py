"""Azurite, the Azure Storage emulator, for the azure-queue and azure-blob scalers' tests.

There is no Azure here; Azurite is Microsoft's own emulator of the Storage REST APIs, so the
real SDKs (`azure-storage-queue`, `azure-storage-blob`) talk to it as to an account, signing
every request with the account key (a wrong key is refused with 403). `AzuriteServer` runs one
Azurite process with blob, queue and table services on free loopback ports, keeping data in
memory and accepting any API version the SDK sends. The account is Azurite's well-known
development account, `devstoreaccount1`, reached with path-style URLs
(`http://127.0.0.1:PORT/devstoreaccount1`) that `connection_string()` names.

Azurite comes from npm: `ensure_azurite()` installs the pinned version with the machine's npm
into the user's cache (~/.cache/eventscale/azurite/VERSION) once, under a file lock, and later
runs find it there. The pin is 3.33.0, the last release before Azurite took on a telemetry
library, which later releases load even with telemetry off: that costs them several seconds per
start and three times the disk, and they ask for Node 22 where 3.33.0 asks for Node 10 or later.
The helpers use the SDKs' asyncio clients.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import httpx
from azure.storage.blob.aio import BlobServiceClient
from azure.storage.queue.aio import QueueServiceClient

from tests.cluster.build import cache_root, locked
from tests.harness.packages import ensure_packages
from tests.harness.ports import free_port
from tests.harness.server_process import ServerContext, ServerProcess

AZURITE_VERSION = "3.33.0"
START_TIMEOUT = 60.0
INSTALL_TIMEOUT = 900.0
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
HOST = "127.0.0.1"


def install_dir() -> Path:
    return cache_root() / "azurite" / AZURITE_VERSION


def _entry_point(prefix: Path) -> Path:
    return prefix / "node_modules" / "azurite" / "dist" / "src" / "azurite.js"


def ensure_azurite() -> Path:
    """Azurite's entry script, installed from npm into the cache first when it is not there."""
    target = install_dir()
    stamp = target / ".installed"
    if stamp.exists():
        return _entry_point(target)
    ensure_packages("npm", ["npm"])
    with locked(target.parent / ".lock"):
        if not stamp.exists():  # nobody installed it while we waited
            _npm_install(target)
            stamp.write_text(AZURITE_VERSION)
    return _entry_point(target)


def _npm_install(target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    command = ["npm", "install", "--prefix", str(target), "--omit=dev", "--no-audit", "--no-fund",
               "--loglevel=error", f"azurite@{AZURITE_VERSION}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
    if result.returncode != 0 or not _entry_point(target).exists():
        raise RuntimeError(f"{' '.join(command)} failed (exit {result.returncode}):\n{result.stderr[-2000:]}")


class AzuriteServer(ServerContext):
    """One Azurite process (blob, queue and table services); use as a context manager."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="azurite-"))
        self.blob_port, self.queue_port, self.table_port = free_port(), free_port(), free_port()
        self.account_name, self.account_key = ACCOUNT_NAME, ACCOUNT_KEY
        self._server = ServerProcess("azurite", self.directory)

    @property
    def blob_endpoint(self) -> str:
        return f"http://{HOST}:{self.blob_port}/{ACCOUNT_NAME}"

    @property
    def queue_endpoint(self) -> str:
        return f"http://{HOST}:{self.queue_port}/{ACCOUNT_NAME}"

    @property
    def table_endpoint(self) -> str:
        return f"http://{HOST}:{self.table_port}/{ACCOUNT_NAME}"

    def connection_string(self, *, account_key: str = ACCOUNT_KEY) -> str:
        """A storage connection string for every service, as `connectionFromEnv` would hold."""
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={account_key};"
                f"BlobEndpoint={self.blob_endpoint};QueueEndpoint={self.queue_endpoint};"
                f"TableEndpoint={self.table_endpoint};")

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        entry_point = ensure_azurite()
        command = ["node", str(entry_point), "--inMemoryPersistence", "--extentMemoryLimit", "256",
                   "--skipApiVersionCheck", "--silent",
                   "--blobHost", HOST, "--blobPort", str(self.blob_port),
                   "--queueHost", HOST, "--queuePort", str(self.queue_port),
                   "--tableHost", HOST, "--tablePort", str(self.table_port)]
        self._server.start(command, cwd=self.directory)
        self._server.wait_ready(self._answers, timeout=START_TIMEOUT, interval=0.1)

    def _answers(self) -> bool:
        """Every service answers HTTP (an unsigned request is refused, which is an answer)."""
        try:
            for port in (self.blob_port, self.queue_port, self.table_port):
                httpx.get(f"http://{HOST}:{port}/{ACCOUNT_NAME}", timeout=2.0)
        except httpx.HTTPError:
            return False
        return True

    def stop(self) -> None:
        self._server.stop(grace=10)
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- clients and set-up --------------------------------------------------------------------

    def queue_service(self, *, account_key: str = ACCOUNT_KEY) -> QueueServiceClient:
        """An asyncio queue service client; close it (or use `async with`)."""
        return QueueServiceClient.from_connection_string(self.connection_string(account_key=account_key))

    def blob_service(self, *, account_key: str = ACCOUNT_KEY) -> BlobServiceClient:
        """An asyncio blob service client; close it (or use `async with`)."""
        return BlobServiceClient.from_connection_string(self.connection_string(account_key=account_key))

    async def create_queue(self, name: str) -> None:
        async with self.queue_service() as service:
            await service.create_queue(name)

    async def put_messages(self, queue: str, count: int) -> None:
        """Put `count` messages ("0", "1", ...) on `queue`."""
        async with self.queue_service() as service:
            client = service.get_queue_client(queue)
            for index in range(count):
                await client.send_message(str(index))

    async def hide_messages(self, queue: str, count: int, *, visibility_timeout: int = 300) -> int:
        """Receive up to `count` messages without deleting them: they stay on the queue, invisible
        for `visibility_timeout` seconds (in flight). Returns the number received."""
        async with self.queue_service() as service:
            client = service.get_queue_client(queue)
            received = 0
            async for _ in client.receive_messages(messages_per_page=count, visibility_timeout=visibility_timeout,
                                                   max_messages=count):
                received += 1
            return received

    async def create_container(self, name: str) -> None:
        async with self.blob_service() as service:
            await service.create_container(name)

    async def upload_blobs(self, container: str, blobs: Mapping[str, Mapping[str, str]]) -> None:
        """Upload one small blob per name in `blobs`, with that name's metadata."""
        async with self.blob_service() as service:
            client = service.get_container_client(container)
            for name, metadata in blobs.items():
                await client.upload_blob(name, name.encode(), metadata=dict(metadata), overwrite=True)
