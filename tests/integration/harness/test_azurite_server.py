"""Azurite, the Azure Storage emulator: queues and blobs through the real SDK, with shared-key auth."""

from __future__ import annotations

import base64
import uuid

import pytest
from azure.core.exceptions import HttpResponseError

from tests.harness.azurite_server import AzuriteServer


def name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def test_queue_counts_include_messages_in_flight(azurite: AzuriteServer) -> None:
    queue = name("jobs")
    await azurite.create_queue(queue)
    await azurite.put_messages(queue, 5)
    assert await azurite.hide_messages(queue, 2) == 2
    async with azurite.queue_service() as service:
        client = service.get_queue_client(queue)
        properties = await client.get_queue_properties()
        visible = await client.peek_messages(max_messages=32)
    assert properties.approximate_message_count == 5
    assert sorted(message.content for message in visible) == ["2", "3", "4"]


async def test_blobs_are_listed_by_prefix_with_their_metadata(azurite: AzuriteServer) -> None:
    container = name("container")
    await azurite.create_container(container)
    await azurite.upload_blobs(container, {"in/a": {"owner": "x"}, "in/b": {}, "out/c": {}})
    async with azurite.blob_service() as service:
        client = service.get_container_client(container)
        listed = {blob.name: blob.metadata async for blob in client.list_blobs(name_starts_with="in/",
                                                                               include=["metadata"])}
    assert listed == {"in/a": {"owner": "x"}, "in/b": {}}


async def test_a_wrong_account_key_is_refused(azurite: AzuriteServer) -> None:
    """What the scalers read (a queue's properties, a container's listing) needs the account key.
    Azurite's two services name the refusal differently (Azure says AuthenticationFailed)."""
    queue, container = name("jobs"), name("container")
    await azurite.create_queue(queue)
    await azurite.create_container(container)
    wrong_key = base64.b64encode(b"not the development account key").decode()
    with pytest.raises(HttpResponseError) as queue_refused:
        async with azurite.queue_service(account_key=wrong_key) as queues:
            await queues.get_queue_client(queue).get_queue_properties()
    with pytest.raises(HttpResponseError) as blob_refused:
        async with azurite.blob_service(account_key=wrong_key) as blobs:
            _ = [blob async for blob in blobs.get_container_client(container).list_blobs()]
    assert refusal(queue_refused.value) == (403, "AuthenticationFailed")
    assert refusal(blob_refused.value) == (403, "AuthorizationFailure")


def refusal(error: HttpResponseError) -> tuple[int | None, str]:
    """The status of a refused request and the storage error code the SDK put in its message."""
    return error.status_code, str(error).split("ErrorCode:", 1)[1].split()[0]
