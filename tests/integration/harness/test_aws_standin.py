"""The AWS stand-in (moto's server): SQS message counts and IAM-checked credentials."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from tests.harness.aws_standin import AwsCredentials, AwsStandIn

COUNTS = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed")


def queue_name() -> str:
    return f"jobs-{uuid.uuid4().hex[:8]}"


async def test_queue_attributes_count_visible_in_flight_and_delayed_messages(aws_standin: AwsStandIn) -> None:
    url = await aws_standin.create_queue(queue_name())
    await aws_standin.send_messages(url, 6)
    await aws_standin.send_messages(url, 2, delay_seconds=900)
    assert await aws_standin.receive_without_deleting(url, 4) == 4
    attributes = await aws_standin.queue_attributes(url, aws_standin.credentials)
    assert {key: attributes[key] for key in COUNTS} == {
        "ApproximateNumberOfMessages": "2",
        "ApproximateNumberOfMessagesNotVisible": "4",
        "ApproximateNumberOfMessagesDelayed": "2",
    }


async def test_the_scaler_user_round_trips_a_message(aws_standin: AwsStandIn) -> None:
    url = await aws_standin.create_queue(queue_name())
    async with aws_standin.client("sqs", aws_standin.credentials) as sqs:
        await sqs.send_message(QueueUrl=url, MessageBody="hello")
        received = (await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1))["Messages"]
        await sqs.delete_message(QueueUrl=url, ReceiptHandle=received[0]["ReceiptHandle"])
    assert [message["Body"] for message in received] == ["hello"]
    attributes = await aws_standin.queue_attributes(url)
    assert [attributes[key] for key in COUNTS] == ["0", "0", "0"]


@pytest.mark.parametrize("credentials, code", [
    ("wrong secret", "SignatureDoesNotMatch"),
    ("unknown key", "InvalidClientTokenId"),
    ("no permission", "AccessDenied"),
])
async def test_bad_credentials_are_refused(aws_standin: AwsStandIn, credentials: str, code: str) -> None:
    url = await aws_standin.create_queue(queue_name())
    key = {
        "wrong secret": AwsCredentials(aws_standin.credentials.access_key_id, "not-the-secret"),
        "unknown key": AwsCredentials("AKIAUNKNOWNKEY000000", "whatever"),
        "no permission": await aws_standin.create_user(f"sender-{uuid.uuid4().hex[:6]}", ["sqs:SendMessage"]),
    }[credentials]
    with pytest.raises(ClientError) as refused:
        await aws_standin.queue_attributes(url, key)
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert code in str(refused.value)  # moto answers these in XML, so botocore's Code is just "403"


async def test_the_scaler_user_reads_back_a_cloudwatch_metric(aws_standin: AwsStandIn) -> None:
    namespace, now = f"App{uuid.uuid4().hex[:6]}", datetime.now(UTC)
    query = {"Id": "jobs", "MetricStat": {"Metric": {"Namespace": namespace, "MetricName": "Jobs"},
                                          "Period": 60, "Stat": "Maximum"}}
    async with aws_standin.client("cloudwatch", aws_standin.credentials) as cloudwatch:
        await cloudwatch.put_metric_data(Namespace=namespace, MetricData=[{"MetricName": "Jobs", "Value": 7.0}])
        response = await cloudwatch.get_metric_data(MetricDataQueries=[query], StartTime=now - timedelta(minutes=5),
                                                    EndTime=now + timedelta(minutes=5))
    assert [result["Values"] for result in response["MetricDataResults"]] == [[7.0]]
