"""azure-eventhub: scale on the events a consumer group has not processed yet.

KEDA's keys: `connection` (the Event Hubs connection string; TriggerAuthentication or
`connectionFromEnv`) with `EntityPath` or `eventHubName`, `storageConnection` (where the
checkpoints are; TriggerAuthentication or `storageConnectionFromEnv`), `consumerGroup`
($Default), `blobContainer`, `checkpointStrategy` (see `checkpoints`),
`unprocessedEventThreshold` (64, positive), `activationUnprocessedEventThreshold` (0),
`stalePartitionInfoThreshold` (10000), `eventHubNamespace`, `storageAccountName`, `cloud` /
`endpointSuffix`. Workload identity (a TriggerAuthentication `podIdentity`) is refused by name.

The value is KEDA's: per partition, its last enqueued sequence number minus the checkpoint's
(0 for a partition that never had an event; across a wrap of the sequence numbers, the
distance through the top; 0 when the checkpoint is more than `stalePartitionInfoThreshold`
ahead, i.e. the partition information is stale); a partition without a checkpoint blob (or
container) counts every event it holds. The total is capped at partitions x threshold (more
replicas than partitions cannot help), and the trigger is active when the uncapped total is
above the activation threshold. The metric is `azure-eventhub-<consumerGroup>`.

A poll asks each hub once for its partitions and each partition once for its properties
(management requests over AMQP, with the azure-eventhub aio client), whatever the number of
triggers and consumer groups reading it, and reads each distinct checkpoint blob once, on one
blob client per storage account. Errors name the namespace, hub, consumer group and partition,
never a key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.eventhub.aio import EventHubProducerClient
from azure.eventhub.exceptions import AuthenticationError, ConnectError, EventHubError
from azure.storage.blob.aio import BlobServiceClient

from scalers.azure_cloud import cloud_suffix, refuse_pod_identity
from scalers.azure_eventhub.checkpoints import CheckpointError, Layout, layout, sequence_number
from scalers.azure_storage.account import Account, RequestHook, each, parse_account, storage_failure, transport
from scalers.base import (
    ClientOptions,
    Reading,
    ScalerClient,
    ScalerError,
    Served,
    ServerScaler,
    ask_once,
    masked_error,
)
from scalers.params import ParameterError, TriggerParams, param, parse_params, secret_field
from scalers.sources import METADATA_ONLY, METADATA_OR_ENV, SECRET_SOURCES

INT64_MAX = 2**63 - 1
SERVICE_BUS_SUFFIXES = {
    "azurepubliccloud": "servicebus.windows.net",
    "azureusgovernmentcloud": "servicebus.usgovcloudapi.net",
    "azurechinacloud": "servicebus.chinacloudapi.cn",
}


@dataclass(frozen=True)
class Hub:
    """One Event Hub and where its checkpoints are: the server key."""

    namespace: str  # the Endpoint's host (and port), as the checkpoint paths spell it
    name: str
    connection: str = secret_field("")  # with EntityPath
    storage: Account = field(default_factory=lambda: Account("", ""))

    def __str__(self) -> str:
        return f"event hub {self.namespace}/{self.name}"


@dataclass(frozen=True, kw_only=True)
class AzureEventHubConfig:
    threshold: int = param("unprocessedEventThreshold", default=64, sources=METADATA_ONLY)
    activation_threshold: int = param("activationUnprocessedEventThreshold", default=0, sources=METADATA_ONLY)
    stale_threshold: int = param("stalePartitionInfoThreshold", default=10000, sources=METADATA_ONLY)
    consumer_group: str = param("consumerGroup", default="$Default", sources=METADATA_ONLY)
    blob_container: str | None = param("blobContainer", sources=METADATA_ONLY)
    checkpoint_strategy: str | None = param("checkpointStrategy", sources=METADATA_ONLY)
    hub: Hub = field(default_factory=lambda: Hub("", ""))

    @property
    def layout(self) -> Layout:
        return layout(self.checkpoint_strategy, self.blob_container, self.hub.namespace, self.hub.name,
                      self.consumer_group)


def connection_settings(connection: str) -> dict[str, str]:
    """`Name=value` pairs of a connection string, names lower-cased (values may hold `=`)."""
    found: dict[str, str] = {}
    for part in connection.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            found[name.strip().lower()] = value
    return found


def service_bus_suffix(params: TriggerParams) -> str:
    """KEDA's ParseEnvironmentProperty for the Service Bus suffix (`cloud`, `endpointSuffix`)."""
    return cloud_suffix(params, SERVICE_BUS_SUFFIXES)


def parse_hub(params: TriggerParams) -> Hub:
    """The hub and checkpoint store of a trigger that authenticates with connection strings."""
    storage = params.get("storageConnection", SECRET_SOURCES)
    if not storage:
        raise ParameterError("no storage connection string given")
    connection = params.get("connection", SECRET_SOURCES)
    if not connection:
        raise ParameterError("no event hub connection string given")
    settings = connection_settings(connection)
    if "entitypath" not in settings:
        name = params.get("eventHubName", METADATA_OR_ENV)
        if not name:
            raise ParameterError("connection string does not contain event hub name, and parameter eventHubName "
                                 "not provided")
        connection = f"{connection.rstrip(';')};EntityPath={name}"
        settings["entitypath"] = name
    namespace = settings.get("endpoint", "").strip().removeprefix("sb://").rstrip("/")
    if not namespace or not settings["entitypath"]:
        raise ParameterError("can't parse event hub connection string. Missing eventHubNamespace or eventHubName")
    return Hub(namespace, settings["entitypath"], connection, parse_account(storage, "blob"))


def parse_config(params: TriggerParams) -> AzureEventHubConfig:
    config = parse_params(AzureEventHubConfig, params)
    if config.threshold <= 0:
        raise ParameterError('"unprocessedEventThreshold" must be a positive number')
    suffix = service_bus_suffix(params)
    namespace = params.get("eventHubNamespace", METADATA_OR_ENV) or "(no eventHubNamespace)"
    refuse_pod_identity(params, f"workload identity for Event Hubs namespace {namespace}.{suffix} is not supported: "
                        'only connection strings are ("connection" and "storageConnection")',
                        f"event hub does not support pod identity {params.pod_identity}")
    return parse_params(AzureEventHubConfig, params, hub=parse_hub(params))


# -- the arithmetic, KEDA's ----------------------------------------------------------------------


@dataclass(frozen=True)
class Partition:
    id: str
    beginning: int  # beginning_sequence_number
    last: int  # last_enqueued_sequence_number (-1: never had an event)


def unprocessed(partition: Partition, checkpoint: int, stale_threshold: int) -> int:
    """Events after the checkpoint, through a wrap of the sequence numbers; 0 when stale."""
    wrapped = partition.last < checkpoint
    count = (INT64_MAX - checkpoint) + partition.last if wrapped else partition.last - checkpoint
    return 0 if count > INT64_MAX - stale_threshold else count


def without_checkpoint(partition: Partition) -> int:
    """Every event the partition holds, when nothing was checkpointed."""
    if (partition.beginning == 0 and partition.last == 0) or partition.beginning != partition.last:
        return partition.last - partition.beginning + 1
    return 0


def capped(total: int, partitions: int, threshold: int) -> int:
    """KEDA's getTotalLagRelatedToPartitionAmount: at most partitions x threshold."""
    return partitions * threshold if total // threshold > partitions else total


# -- reading ---------------------------------------------------------------------------------------


Checkpoint = int | None  # None: no checkpoint blob (or container)


class AzureEventHubClient(ScalerClient[AzureEventHubConfig]):
    """One producer client (management requests only) and one blob client, made on the first read."""

    def __init__(self, hub: Hub, options: ClientOptions) -> None:
        self._hub = hub
        self._hooks: tuple[RequestHook, ...] = options.request_hooks  # told of each checkpoint request sent
        self._timeout = options.timeout
        self._producer: EventHubProducerClient | None = None
        self._blobs: BlobServiceClient | None = None

    async def read(self, configs: Sequence[AzureEventHubConfig]) -> list[Reading | ScalerError]:
        partitions = await self._partitions()
        wanted = ((c.layout, p.id) for c in configs for p in partitions if p.last != -1)
        checkpoints = await ask_once(wanted, lambda key: self._checkpoint(*key))
        return [self._value(c, partitions, checkpoints) for c in configs]

    def _value(self, config: AzureEventHubConfig, partitions: Sequence[Partition],
               checkpoints: Mapping[tuple[Layout, str], Checkpoint | ScalerError]) -> Reading | ScalerError:
        total = 0
        for partition in partitions:
            if partition.last == -1:
                continue
            found = checkpoints[(config.layout, partition.id)]
            if isinstance(found, ScalerError):
                return found
            total += without_checkpoint(partition) if found is None else unprocessed(
                partition, found, config.stale_threshold)
        total = min(total, INT64_MAX)  # KEDA's int64 sum overflows to negative and is then set to the maximum
        value = capped(total, len(partitions), config.threshold)
        return Reading(float(value), total > config.activation_threshold)

    async def _partitions(self) -> list[Partition]:
        producer = self._producer_client()
        try:
            async with asyncio.timeout(self._timeout):
                properties = await producer.get_eventhub_properties()
                ids = [str(p) for p in properties["partition_ids"]]
                found = await asyncio.gather(*(producer.get_partition_properties(p) for p in ids))
        except TimeoutError:
            raise self._error(f"no answer within {self._timeout:g}s") from None
        except AuthenticationError as exc:
            raise self._error(f"refused: {_first_line(exc)}") from None
        except ConnectError as exc:
            raise self._error(f"cannot connect: {_first_line(exc)}") from None
        except (EventHubError, OSError) as exc:
            raise self._error(f"{type(exc).__name__}: {_first_line(exc)}") from None
        return [Partition(str(p["id"]), int(p["beginning_sequence_number"]), int(p["last_enqueued_sequence_number"]))
                for p in found]

    async def _checkpoint(self, place: Layout, partition: str) -> Checkpoint | ScalerError:
        blob = self._blob_client().get_blob_client(place.container, place.blob(partition))
        try:
            async with asyncio.timeout(self._timeout):
                if place.reads_metadata:
                    properties = await blob.get_blob_properties()
                    return sequence_number(place.strategy, b"", properties.metadata or {})
                download = await blob.download_blob()
                return sequence_number(place.strategy, await download.readall(), download.properties.metadata or {})
        except ResourceNotFoundError:  # no blob or no container: count without a checkpoint, as KEDA
            return None
        except TimeoutError:
            return self._checkpoint_error(place, partition, f"no answer within {self._timeout:g}s")
        except CheckpointError as exc:
            return self._checkpoint_error(place, partition, str(exc))
        except (AzureError, OSError) as exc:
            return self._checkpoint_error(place, partition, storage_failure(exc, "not found"))

    def _producer_client(self) -> EventHubProducerClient:
        if self._producer is None:
            self._producer = EventHubProducerClient.from_connection_string(self._hub.connection, retry_total=0)
        return self._producer

    def _blob_client(self) -> BlobServiceClient:
        if self._blobs is None:
            self._blobs = BlobServiceClient.from_connection_string(
                self._hub.storage.connection, transport=transport(self._timeout), retry_total=0,
                raw_request_hook=each(self._hooks))
        return self._blobs

    def _error(self, what: str) -> ScalerError:
        return masked_error(f"{self._hub}: {what}", self._hub)

    def _checkpoint_error(self, place: Layout, partition: str, what: str) -> ScalerError:
        where = f"{place.strategy} checkpoint of consumer group {place.consumer_group} partition {partition}"
        return masked_error(f"{self._hub}: {where} ({place.container}/{place.blob(partition)}): {what}", self._hub)

    async def aclose(self) -> None:
        producer, self._producer = self._producer, None
        blobs, self._blobs = self._blobs, None
        if producer is not None:
            await producer.close()
        if blobs is not None:
            await blobs.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class AzureEventHubScaler(ServerScaler[AzureEventHubConfig, Hub], parse=parse_config, client=AzureEventHubClient):
    types = ("azure-eventhub",)
    activation_probes = False  # billed per call: no 1 s probes at zero

    def served(self, config: AzureEventHubConfig) -> Served[Hub]:
        return Served(config.hub, f"azure-eventhub-{config.consumer_group}",
                      config.threshold, config.activation_threshold)
