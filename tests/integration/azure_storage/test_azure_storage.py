"""azure-queue and azure-blob against Azurite, the real Azure Storage emulator, via the real SDKs."""

from __future__ import annotations

import uuid
from typing import Any

from scalers.azure_storage.blob import AzureBlobScaler
from scalers.azure_storage.queue import PEEK, AzureQueueScaler
from scalers.base import ScalerError
from scalers.params import TriggerParams
from tests.harness.azurite_server import ACCOUNT_KEY, AzuriteServer
from tests.integration.triggers import catalog_and_store, key, scaled_object, secret, trigger_auth

QUEUE, BLOB = AzureQueueScaler(timeout=3.0), AzureBlobScaler(timeout=3.0)
WRONG_KEY = "V3Jvbmcta2V5LXZhbHVlLW5vdC10aGUtYWNjb3VudHM="


def queue_config(azurite: AzuriteServer, name: str, *, account_key: str = ACCOUNT_KEY, **metadata: str) -> Any:
    params = TriggerParams({"queueName": name, **metadata}, {"connection": azurite.connection_string(
        account_key=account_key)})
    return QUEUE.parse("azure-queue", params)


def blob_config(azurite: AzuriteServer, container: str, *, account_key: str = ACCOUNT_KEY, **metadata: str) -> Any:
    params = TriggerParams({"blobContainerName": container, **metadata}, {"connection": azurite.connection_string(
        account_key=account_key)})
    return BLOB.parse("azure-blob", params)


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def test_queue_strategies(azurite: AzuriteServer) -> None:
    small, big = name("small"), name("big")
    for queue, count in ((small, 5), (big, PEEK + 8)):
        await azurite.create_queue(queue)
        await azurite.put_messages(queue, count)
    assert await azurite.hide_messages(small, 2) == 2
    configs = [queue_config(azurite, small), queue_config(azurite, small, queueLengthStrategy="visibleonly"),
               queue_config(azurite, big, queueLengthStrategy="visibleonly"), queue_config(azurite, big)]
    assert len({QUEUE.server_key(c) for c in configs}) == 1
    sent: list[Any] = []
    client = AzureQueueScaler(timeout=3.0, request_hooks=[sent.append]).open_client(configs[0])
    try:
        # all: the approximate count (hidden ones too); visibleonly: a peek, or the count past 32
        assert await client.read(configs * 10) == [5.0, 3.0, 40.0, 40.0] * 10
    finally:
        await client.aclose()
    # per queue and strategy once: small all, small peek, big peek + its count, big all
    peeks = ["peekonly=true" in r.http_request.url for r in sent]
    assert sorted(peeks) == [False, False, False, True, True]


async def test_queue_failures(azurite: AzuriteServer) -> None:
    present = name("present")
    await azurite.create_queue(present)
    client = QUEUE.open_client(queue_config(azurite, present))
    try:
        ok, missing = await client.read([queue_config(azurite, present), queue_config(azurite, "no-such-queue")])
    finally:
        await client.aclose()
    assert ok == 0.0
    assert isinstance(missing, ScalerError) and str(missing).endswith("queue no-such-queue: the queue does not exist")
    assert str(missing).startswith("storage account devstoreaccount1 (http://127.0.0.1:")
    wrong = queue_config(azurite, present, account_key=WRONG_KEY)
    client = QUEUE.open_client(wrong)
    try:
        [refused] = await client.read([wrong])
    finally:
        await client.aclose()
    assert isinstance(refused, ScalerError) and "refused (AuthenticationFailed)" in str(refused)
    assert WRONG_KEY not in str(refused) and ACCOUNT_KEY not in str(refused)


async def test_blob_counts(azurite: AzuriteServer) -> None:
    container = name("blobs")
    await azurite.create_container(container)
    await azurite.upload_blobs(container, {n: {} for n in (
        "top.txt", "in/a.json", "in/b.json", "in/c.txt", "in/deep/d.json", "in/deep/e.json", "other/f.json")})
    cases = [({}, 1.0), ({"blobPrefix": "in"}, 3.0), ({"blobPrefix": "in", "recursive": "true"}, 5.0),
             ({"recursive": "true"}, 7.0), ({"globPattern": "in/*.json"}, 4.0),
             ({"globPattern": "/*.json", "blobPrefix": "other"}, 1.0), ({"blobPrefix": "in/deep"}, 2.0),
             ({"blobPrefix": "in", "blobDelimiter": "."}, 0.0)]
    configs = [blob_config(azurite, container, **metadata) for metadata, _ in cases]
    sent: list[Any] = []
    client = AzureBlobScaler(timeout=3.0, request_hooks=[sent.append]).open_client(configs[0])
    try:
        assert await client.read(configs * 10) == [expected for _, expected in cases] * 10
    finally:
        await client.aclose()
    assert len(sent) == len(cases)  # one listing (of one page) per distinct listing


async def test_blob_failures(azurite: AzuriteServer) -> None:
    client = BLOB.open_client(blob_config(azurite, "x"))
    try:
        [missing] = await client.read([blob_config(azurite, "no-such-container")])
    finally:
        await client.aclose()
    assert isinstance(missing, ScalerError) and "container no-such-container: the container does not exist" in str(
        missing)
    wrong = blob_config(azurite, "any", account_key=WRONG_KEY)
    client = BLOB.open_client(wrong)
    try:
        [refused] = await client.read([wrong])
    finally:
        await client.aclose()
    assert isinstance(refused, ScalerError) and "refused (" in str(refused) and WRONG_KEY not in str(refused)


async def test_through_the_store(azurite: AzuriteServer) -> None:
    queue = name("store")
    await azurite.create_queue(queue)
    await azurite.put_messages(queue, 3)
    objects = [secret("az", connection=azurite.connection_string()), trigger_auth("az", "az", "connection"),
               secret("bad", connection=azurite.connection_string(account_key=WRONG_KEY)),
               trigger_auth("bad", "bad", "connection")]
    objects += [scaled_object(f"q{i}", "azure-queue", {"queueName": queue, "activationQueueLength": str(i)}, "az")
                for i in range(20)]
    objects.append(scaled_object("denied", "azure-queue", {"queueName": queue}, "bad"))
    async with catalog_and_store([QUEUE], objects) as (_, store):
        entries = [await store.read(key(f"q{i}", f"s0-azure-queue-{queue}")) for i in range(20)]
        assert [e.active for e in entries if e is not None] == [i < 3 for i in range(20)]
        denied = await store.read(key("denied", f"s0-azure-queue-{queue}"))
        assert denied is not None and denied.status == 500
        body = denied.body.decode()
        assert "ScaledObject default/denied trigger 0 (azure-queue)" in body and WRONG_KEY not in body
        assert store.open_clients() == {"azure-queue": 2}  # one per account and credential
