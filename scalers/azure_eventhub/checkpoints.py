"""Where each checkpointStrategy keeps a partition's checkpoint in blob storage, and how it reads.

KEDA's layouts, one per `checkpointStrategy` (container / blob name):

* `azureFunction`, or no `blobContainer`: `azure-webjobs-eventhub` /
  `<namespace>/<hub>/<consumer group>/<partition>`, JSON with `SequenceNumber`;
* `blobMetadata` (the current SDKs' checkpoint store): `<blobContainer>` /
  `<namespace>/<hub>/<consumer group, lower case>/checkpoint/<partition>`, the number in the
  blob's `sequencenumber` metadata;
* `goSdk`: `<blobContainer>` / `<partition>`, JSON `{"checkpoint": {"sequenceNumber": n}}`;
* `dapr`: `<blobContainer>` / `dapr-<hub>-<consumer group>-<partition>`, the goSdk JSON;
* none of these (the default): `<blobContainer>` / `<consumer group>/<partition>`, JSON with
  `SequenceNumber` or Python's `sequence_number`.

`<namespace>` is the host of the connection string's `Endpoint`. Reading is pure here: the
client fetches the blob and hands its body and metadata to `sequence_number`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Strategy = Literal["azureFunction", "blobMetadata", "goSdk", "dapr", "default"]
AZURE_FUNCTIONS_CONTAINER = "azure-webjobs-eventhub"


class CheckpointError(ValueError):
    """A checkpoint blob that cannot be read as its strategy writes it."""


@dataclass(frozen=True)
class Layout:
    """Which blob holds a partition's checkpoint under one strategy."""

    strategy: Strategy
    container: str
    namespace: str
    hub: str
    consumer_group: str

    @property
    def reads_metadata(self) -> bool:
        return self.strategy == "blobMetadata"

    def blob(self, partition: str) -> str:
        if self.strategy == "azureFunction":
            return f"{self.namespace}/{self.hub}/{self.consumer_group}/{partition}"
        if self.strategy == "blobMetadata":
            return f"{self.namespace}/{self.hub}/{self.consumer_group.lower()}/checkpoint/{partition}"
        if self.strategy == "goSdk":
            return partition
        if self.strategy == "dapr":
            return f"dapr-{self.hub}-{self.consumer_group}-{partition}"
        return f"{self.consumer_group}/{partition}"


def layout(strategy: str | None, container: str | None, namespace: str, hub: str, consumer_group: str) -> Layout:
    """KEDA's newCheckpointer: the named strategy, azureFunction without a container, else the default."""
    named: Strategy
    if strategy in ("goSdk", "dapr", "blobMetadata"):
        named = strategy  # type: ignore[assignment]
    elif strategy == "azureFunction" or not container:
        named = "azureFunction"
    else:
        named = "default"
    chosen = AZURE_FUNCTIONS_CONTAINER if named == "azureFunction" else container or ""
    return Layout(named, chosen, namespace, hub, consumer_group)


def sequence_number(strategy: Strategy, body: bytes, metadata: Mapping[str, str]) -> int:
    """The checkpoint's sequence number, read as `strategy` writes it."""
    if strategy == "blobMetadata":
        found = metadata.get("sequencenumber", metadata.get("Sequencenumber"))
        if found is None:
            raise CheckpointError("sequencenumber on blob not found")
        try:
            return int(found)
        except ValueError:
            raise CheckpointError("sequencenumber is not a valid int64 value") from None
    try:
        document = json.loads(body or b"null")
    except ValueError:
        raise CheckpointError("failed to decode blob data") from None
    if not isinstance(document, dict):
        raise CheckpointError("failed to decode blob data")
    if strategy in ("goSdk", "dapr"):
        number = (document.get("checkpoint") or {}).get("sequenceNumber", 0)
    else:
        number = document.get("SequenceNumber") or document.get("sequence_number") or 0
    if not isinstance(number, int) or isinstance(number, bool):
        raise CheckpointError("failed to decode blob data")
    return number
