"""aws-sqs-queue against the AWS stand-in (moto's server, SigV4 checked against IAM)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from scalers.aws_sqs import AwsSqsConfig, AwsSqsScaler
from scalers.base import ScalerError
from scalers.params import TriggerParams
from tests.harness.aws_standin import REGION, AwsCredentials, AwsStandIn
from tests.integration.triggers import catalog_and_store, key, scaled_object, secret, trigger_auth

SCALER = AwsSqsScaler(timeout=3.0)


def config(standin: AwsStandIn, queue_url: str, *, credentials: AwsCredentials | None = None,
           **metadata: str) -> AwsSqsConfig:
    key_pair = credentials or standin.credentials
    auth = {"awsAccessKeyID": key_pair.access_key_id, "awsSecretAccessKey": key_pair.secret_access_key}
    params = TriggerParams({"queueURL": queue_url, "awsRegion": REGION, "awsEndpoint": standin.endpoint_url,
                            **metadata}, auth)
    return SCALER.parse("aws-sqs-queue", params)


@pytest.fixture
async def queue(aws_standin: AwsStandIn) -> str:
    url = await aws_standin.create_queue(f"jobs-{uuid.uuid4().hex[:8]}")
    await aws_standin.send_messages(url, 6)
    assert await aws_standin.receive_without_deleting(url, 2) == 2  # 4 visible, 2 in flight
    await aws_standin.send_messages(url, 3, delay_seconds=600)  # 3 delayed
    return url


@pytest.mark.parametrize("metadata, expected", [
    ({}, 6.0),  # visible + in flight
    ({"scaleOnInFlight": "false"}, 4.0),
    ({"scaleOnDelayed": "true"}, 9.0),
    ({"scaleOnInFlight": "false", "scaleOnDelayed": "true"}, 7.0),
])
async def test_value_by_mode(aws_standin: AwsStandIn, queue: str, metadata: dict[str, str], expected: float) -> None:
    trigger = config(aws_standin, queue, credentials=None, **metadata)
    client = SCALER.open_client(trigger)
    try:
        assert await client.read([trigger]) == [expected]
    finally:
        await client.aclose()


async def test_one_get_queue_attributes_per_queue_per_poll(aws_standin: AwsStandIn, queue: str) -> None:
    other = await aws_standin.create_queue(f"other-{uuid.uuid4().hex[:8]}")
    await aws_standin.send_messages(other, 2)
    triggers = [config(aws_standin, queue, scaleOnDelayed="true") if i % 3 == 0 else config(aws_standin, queue)
                for i in range(30)]
    triggers += [config(aws_standin, other) for _ in range(30)]
    assert len({SCALER.server_key(t) for t in triggers}) == 1
    calls: list[str] = []
    client = AwsSqsScaler(timeout=3.0, request_hooks=[calls.append]).open_client(triggers[0])
    try:
        values = await client.read(triggers)
    finally:
        await client.aclose()
    assert calls == ["GetQueueAttributes", "GetQueueAttributes"]
    assert values == [9.0 if i % 3 == 0 else 6.0 for i in range(30)] + [2.0] * 30


async def test_a_missing_queue_fails_only_its_triggers(aws_standin: AwsStandIn, queue: str) -> None:
    missing = queue.rsplit("/", 1)[0] + "/no-such-queue"
    client = SCALER.open_client(config(aws_standin, queue))
    try:
        good, bad = await client.read([config(aws_standin, queue), config(aws_standin, missing)])
    finally:
        await client.aclose()
    assert good == 6.0
    assert isinstance(bad, ScalerError)
    assert str(bad) == f"aws-sqs-queue {REGION} queue {missing}: the queue does not exist"


async def test_refused_credentials_are_named_never_shown(aws_standin: AwsStandIn, queue: str) -> None:
    wrong_secret = AwsCredentials(aws_standin.credentials.access_key_id, "Wrong-secret-key-value")
    unknown = AwsCredentials("AKIAUNKNOWNKEY000000", "Unknown-secret-key-value")
    limited = await aws_standin.create_user(f"no-sqs-{uuid.uuid4().hex[:6]}", ["cloudwatch:*"])
    for credentials, words in ((wrong_secret, "SignatureDoesNotMatch"), (unknown, "InvalidClientTokenId"),
                               (limited, "AccessDenied")):
        trigger = config(aws_standin, queue, credentials=credentials)
        client = SCALER.open_client(trigger)
        try:
            [result] = await client.read([trigger])
        finally:
            await client.aclose()
        assert isinstance(result, ScalerError) and "GetQueueAttributes refused" in str(result)
        assert words in str(result) and credentials.secret_access_key not in str(result)


async def test_stand_in_down(aws_standin: AwsStandIn, queue: str) -> None:
    trigger = SCALER.parse("aws-sqs-queue", TriggerParams(
        {"queueURL": queue, "awsRegion": REGION, "awsEndpoint": "http://127.0.0.1:1"},
        {"awsAccessKeyID": "AKIDDOWN", "awsSecretAccessKey": "Down-secret-value"}))
    client = SCALER.open_client(trigger)
    try:
        [result] = await client.read([trigger])
    finally:
        await client.aclose()
    assert isinstance(result, ScalerError) and "EndpointConnectionError" in str(result)
    assert "Down-secret-value" not in str(result)


async def test_through_the_store_activation_and_errors(aws_standin: AwsStandIn, queue: str) -> None:
    credentials = aws_standin.credentials
    objects: list[dict[str, Any]] = [
        secret("aws", awsAccessKeyID=credentials.access_key_id, awsSecretAccessKey=credentials.secret_access_key),
        trigger_auth("aws", "aws", "awsAccessKeyID", "awsSecretAccessKey"),
        secret("bad", awsAccessKeyID=credentials.access_key_id, awsSecretAccessKey="Wrong-secret-key-value"),
        trigger_auth("bad", "bad", "awsAccessKeyID", "awsSecretAccessKey")]
    base = {"queueURL": queue, "awsRegion": REGION, "awsEndpoint": aws_standin.endpoint_url}
    objects += [scaled_object("busy", "aws-sqs-queue", {**base, "activationQueueLength": "5"}, "aws"),
                scaled_object("calm", "aws-sqs-queue", {**base, "activationQueueLength": "6"}, "aws"),
                scaled_object("denied", "aws-sqs-queue", base, "bad")]
    metric = "s0-aws-sqs-" + queue.rsplit("/", 1)[1]
    read: Callable[[str], Any] = lambda name: store.read(key(name, metric))  # noqa: E731
    async with catalog_and_store([SCALER], objects) as (_, store):
        busy, calm, denied = [await read(n) for n in ("busy", "calm", "denied")]
        assert busy.value == 6.0 and busy.active and calm.value == 6.0 and not calm.active
        body = denied.body.decode()
        assert "ScaledObject default/denied trigger 0 (aws-sqs-queue)" in body and "SignatureDoesNotMatch" in body
        assert "Wrong-secret-key-value" not in body
        assert store.open_clients() == {"aws-sqs-queue": 2}
