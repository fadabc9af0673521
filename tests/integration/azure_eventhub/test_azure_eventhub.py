"""azure-eventhub: partitions from the Event Hubs management stand-in (real SDK over AMQP 1.0),
checkpoints in Azurite's blob service in every checkpointStrategy's layout."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from scalers.azure_eventhub.eventhub_scaler import AzureEventHubConfig, AzureEventHubScaler
from scalers.base import Reading, ScalerError
from scalers.params import TriggerParams
from tests.harness.azurite_server import AzuriteServer
from tests.harness.eventhubs_standin import EventHubsStandIn
from tests.integration.triggers import catalog_and_store, key, scaled_object, secret, trigger_auth

SCALER = AzureEventHubScaler(timeout=10.0)
WRONG_KEY = "V3Jvbmcta2V5LWZvci10aGUtbmFtZXNwYWNl"


@pytest.fixture
async def standin() -> AsyncIterator[EventHubsStandIn]:
    async with EventHubsStandIn() as server:
        yield server


def config(standin: EventHubsStandIn, azurite: AzuriteServer, hub: str, *, key: str | None = None,
           **metadata: str) -> AzureEventHubConfig:
    connection = standin.connection_string(hub, **({"key": key} if key else {}))
    params = TriggerParams(metadata, {"connection": connection, "storageConnection": azurite.connection_string()})
    return SCALER.parse("azure-eventhub", params)


async def put(azurite: AzuriteServer, container: str, blob: str, body: bytes = b"",
              metadata: dict[str, str] | None = None) -> None:
    async with azurite.blob_service() as service:
        client = service.get_container_client(container)
        if not await client.exists():
            await client.create_container()
        await client.upload_blob(blob, body, metadata=metadata, overwrite=True)


async def read(cfg: AzureEventHubConfig, *others: AzureEventHubConfig) -> list[Any]:
    client = SCALER.open_client(cfg)
    try:
        return list(await client.read([cfg, *others]))
    finally:
        await client.aclose()


def hub_with(standin: EventHubsStandIn, *lasts: int) -> str:
    """A hub whose partition i has last enqueued sequence number lasts[i] (beginning 0)."""
    name = f"hub-{uuid.uuid4().hex[:8]}"
    standin.add_hub(name, len(lasts))
    for index, last in enumerate(lasts):
        standin.set_partition(name, str(index), last=last)
    return name


async def test_every_checkpoint_strategy(standin: EventHubsStandIn, azurite: AzuriteServer) -> None:
    hub = hub_with(standin, 20, 30)
    ns, container = standin.namespace, f"cp-{uuid.uuid4().hex[:8]}"
    for partition, number in (("0", 15), ("1", 10)):  # unprocessed: 5 + 20
        await put(azurite, "azure-webjobs-eventhub", f"{ns}/{hub}/Workers/{partition}",
                  json.dumps({"Offset": "0", "SequenceNumber": number, "PartitionId": partition}).encode())
        await put(azurite, container, f"{ns}/{hub}/workers/checkpoint/{partition}",
                  metadata={"sequencenumber": str(number), "offset": "0"})
        await put(azurite, container, partition,
                  json.dumps({"checkpoint": {"sequenceNumber": number}, "partitionId": partition}).encode())
        await put(azurite, container, f"dapr-{hub}-Workers-{partition}",
                  json.dumps({"checkpoint": {"sequenceNumber": number}}).encode())
        await put(azurite, container, f"Workers/{partition}",
                  json.dumps({"sequence_number": number, "partition_id": partition}).encode())
    base = {"consumerGroup": "Workers", "unprocessedEventThreshold": "100"}
    configs = [config(standin, azurite, hub, **base),  # no container: the Azure Functions layout
               config(standin, azurite, hub, **base, blobContainer=container, checkpointStrategy="azureFunction"),
               config(standin, azurite, hub, **base, blobContainer=container, checkpointStrategy="blobMetadata"),
               config(standin, azurite, hub, **base, blobContainer=container, checkpointStrategy="goSdk"),
               config(standin, azurite, hub, **base, blobContainer=container, checkpointStrategy="dapr"),
               config(standin, azurite, hub, **base, blobContainer=container)]
    before = dict(standin.requests)
    assert await read(*configs) == [Reading(25.0, True)] * 6
    asked = {k: standin.requests[k] - before.get(k, 0) for k in ("eventhub", "partition")}
    assert asked == {"eventhub": 1, "partition": 2}  # one hub, two partitions, whatever the triggers


async def test_no_checkpoint_counts_every_event_and_empty_partitions_nothing(
        standin: EventHubsStandIn, azurite: AzuriteServer) -> None:
    hub = hub_with(standin, 9, -1, 0)  # 10 events, never used, one event (sequence 0)
    cfg = config(standin, azurite, hub, blobContainer=f"none-{uuid.uuid4().hex[:6]}",
                 activationUnprocessedEventThreshold="10")
    assert await read(cfg) == [Reading(11.0, True)]
    quiet = config(standin, azurite, hub, blobContainer="nothing-here", activationUnprocessedEventThreshold="11")
    assert await read(quiet) == [Reading(11.0, False)]


async def test_the_value_is_capped_by_partitions_not_the_activity(
        standin: EventHubsStandIn, azurite: AzuriteServer) -> None:
    hub = hub_with(standin, 999, 999)
    capped = config(standin, azurite, hub, blobContainer="nothing-here", unprocessedEventThreshold="10")
    assert await read(capped) == [Reading(20.0, True)]  # 2,000 unprocessed, 2 partitions x 10


async def test_failures_name_the_hub_never_the_key(standin: EventHubsStandIn, azurite: AzuriteServer) -> None:
    hub = hub_with(standin, 5)
    wrong = config(standin, azurite, hub, key=WRONG_KEY)
    client = SCALER.open_client(wrong)
    try:
        with pytest.raises(ScalerError) as refused:
            await client.read([wrong])
    finally:
        await client.aclose()
    assert str(refused.value).startswith(f"event hub {standin.namespace}/{hub}: refused: ")
    assert WRONG_KEY not in str(refused.value)
    missing = config(standin, azurite, "no-such-hub")
    client = SCALER.open_client(missing)
    try:
        with pytest.raises(ScalerError, match="404"):
            await client.read([missing])
    finally:
        await client.aclose()
    container = f"bad-{uuid.uuid4().hex[:6]}"
    await put(azurite, container, "Workers/0", b"not json")
    [broken] = await read(config(standin, azurite, hub, consumerGroup="Workers", blobContainer=container))
    assert isinstance(broken, ScalerError)
    assert "default checkpoint of consumer group Workers partition 0" in str(broken)
    assert "failed to decode blob data" in str(broken)


async def test_namespace_down(azurite: AzuriteServer) -> None:
    down = EventHubsStandIn()  # never started: nothing listens on its port
    cfg = SCALER.parse("azure-eventhub", TriggerParams({}, {"connection": down.connection_string("h"),
                                                           "storageConnection": azurite.connection_string()}))
    client = AzureEventHubScaler(timeout=3.0).open_client(cfg)
    try:
        with pytest.raises(ScalerError, match=f"event hub {down.namespace}/h: "):
            await client.read([cfg])
    finally:
        await client.aclose()


async def test_through_the_store(standin: EventHubsStandIn, azurite: AzuriteServer) -> None:
    hub = hub_with(standin, 40, 40)
    objects = [secret("eh", connection=standin.connection_string(hub), storageConnection=azurite.connection_string()),
               trigger_auth("eh", "eh", "connection", "storageConnection")]
    metadata = {"blobContainer": "nothing-here", "unprocessedEventThreshold": "16"}
    objects += [scaled_object(f"eh{i}", "azure-eventhub", {**metadata, "consumerGroup": f"group{i % 5}"}, "eh")
                for i in range(25)]
    async with catalog_and_store([SCALER], objects, timeout=15) as (_, store):
        entries = [store.entry(key(f"eh{i}", f"s0-azure-eventhub-group{i % 5}")) for i in range(25)]
        before = dict(standin.requests)
        await store.refresh([e for e in entries if e is not None])
        assert {e.value for e in entries if e is not None} == {32.0}  # 82 unprocessed, capped at 2 x 16
        assert all(e is not None and e.active for e in entries)
        assert standin.requests["partition"] - before.get("partition", 0) == 2
        assert store.open_clients() == {"azure-eventhub": 1}
