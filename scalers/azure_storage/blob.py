"""azure-blob: scale on the number of blobs in an Azure Storage container.

KEDA's keys: `blobContainerName` (required), `blobCount` (5), `activationBlobCount` (0),
`blobPrefix`, `blobDelimiter` ("/"), `recursive` (false), `globPattern`, `connection`,
`accountName`, `cloud` / `endpointSuffix` (see `account`). The value is, as KEDA counts it:

* with `globPattern`: the blobs of a flat listing (under `blobPrefix`) whose name matches the
  pattern (a leading `/` ignored; `*`, `?` and `[...]` as in fnmatch, where KEDA's Go glob also
  knows `{a,b}`);
* else the blobs directly under `blobPrefix` + `blobDelimiter` (a hierarchical listing; the
  virtual folders it also returns are not counted), or every blob under the prefix when
  `recursive` is true (the delimiter is then ignored).

The metric is `azure-blob-<blobContainerName>`. A poll lists each distinct (container, prefix,
delimiter, pattern) once, on the account's one client; a listing of many pages costs a request
per 5,000 blobs.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from azure.storage.blob.aio import BlobPrefix, BlobServiceClient

from scalers.azure_storage.account import (
    CONNECTION_SOURCES,
    Account,
    StorageClient,
    trigger_account,
)
from scalers.base import ScalerError, Served, ServerScaler, ask_once
from scalers.params import ParameterError, TriggerParams, param, parse_params
from scalers.sources import METADATA_ONLY


@dataclass(frozen=True, kw_only=True)
class AzureBlobConfig:
    container: str = param("blobContainerName", required=True, sources=METADATA_ONLY)
    blob_count: int = param("blobCount", default=5, sources=METADATA_ONLY)
    activation_blob_count: int = param("activationBlobCount", default=0, sources=METADATA_ONLY)
    blob_delimiter: str = param("blobDelimiter", default="/", sources=METADATA_ONLY)
    blob_prefix: str = param("blobPrefix", default="", sources=METADATA_ONLY)
    recursive: bool = param("recursive", default=False, sources=METADATA_ONLY)
    glob_pattern: str | None = param("globPattern", sources=METADATA_ONLY)
    connection: str = param("connection", default="", sources=CONNECTION_SOURCES, secret=True)
    account: Account = field(default_factory=lambda: Account("", ""))

    @property
    def listing(self) -> tuple[str, str, str, str | None]:
        """(container, prefix, delimiter, pattern): what one listing answers."""
        delimiter = "" if self.recursive or self.glob_pattern else self.blob_delimiter
        prefix = self.blob_prefix + self.blob_delimiter if self.blob_prefix and delimiter else self.blob_prefix
        return self.container, prefix, delimiter, self.glob_pattern.lstrip("/") if self.glob_pattern else None


@lru_cache(maxsize=1024)
def glob(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern))


def parse_config(params: TriggerParams) -> AzureBlobConfig:
    config = parse_params(AzureBlobConfig, params)
    if config.glob_pattern:
        try:
            glob(config.glob_pattern.lstrip("/"))
        except re.error as exc:
            raise ParameterError(f'invalid glob pattern "{config.glob_pattern}": {exc}') from None
    account = trigger_account(params, config.connection, "blob", what="Azure Storage Blobs (supported: none)",
                              missing="connection string is required when not using pod identity")
    return parse_params(AzureBlobConfig, params, account=account)


Listing = tuple[str, str, str, str | None]


class AzureBlobClient(StorageClient[AzureBlobConfig, BlobServiceClient]):
    """Each distinct listing of a poll once, on the account's one BlobServiceClient."""

    async def read(self, configs: Sequence[AzureBlobConfig]) -> list[float | ScalerError]:
        service = self._open()
        found = await ask_once((c.listing for c in configs), lambda listing: self._count(
            f"container {listing[0]}", "the container does not exist", lambda: self._list(service, listing)))
        return [found[c.listing] for c in configs]

    def _connect(self, connection: str, **options: Any) -> BlobServiceClient:
        return BlobServiceClient.from_connection_string(connection, **options)

    async def _list(self, service: BlobServiceClient, listing: Listing) -> float:
        container, prefix, delimiter, pattern = listing
        client = service.get_container_client(container)
        count = 0
        if delimiter:
            async for item in client.walk_blobs(name_starts_with=prefix or None, delimiter=delimiter):
                count += not isinstance(item, BlobPrefix)
        else:
            matcher = glob(pattern) if pattern else None
            async for name in client.list_blob_names(name_starts_with=prefix or None):
                count += matcher is None or matcher.match(name) is not None
        return float(count)


class AzureBlobScaler(ServerScaler[AzureBlobConfig, Account], parse=parse_config, client=AzureBlobClient):
    types = ("azure-blob",)
    activation_probes = False  # billed per call: no 1 s probes at zero

    def served(self, config: AzureBlobConfig) -> Served[Account]:
        return Served(config.account, f"azure-blob-{config.container}", config.blob_count, config.activation_blob_count)
