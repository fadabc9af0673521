"""An AWS stand-in for the aws-sqs-queue (and later CloudWatch) scalers' tests: moto's server mode.

There is no AWS here. `AwsStandIn` runs moto's server (the `moto` dev dependency, with flask for
its server mode) as a child process on a free loopback port: one HTTP endpoint that answers the
AWS query and JSON protocols of every service moto emulates (SQS, CloudWatch, IAM, STS, ...) for
the account 123456789012. It is a stand-in, not AWS: it keeps everything in memory and is only
as faithful as moto is. Two differences tests meet: a refused request to a JSON-protocol service
(SQS, CloudWatch) is answered in XML, so botocore's error code is the HTTP status ("403") and
the AWS code (e.g. InvalidClientTokenId) is only in the message; and moto names CloudWatch's
IAM actions `monitoring:*` where AWS says `cloudwatch:*`.

Unlike moto's default, it checks every request's SigV4 signature against IAM: at start-up the
harness creates an administrator user, switches authentication on, and then creates the user
`USER` with an inline policy for SQS and CloudWatch, whose access key (`credentials`) a test
hands to a scaler. A wrong secret is refused with SignatureDoesNotMatch, an unknown key id with
InvalidClientTokenId, and an action outside a user's policy with AccessDenied. The helpers use
aiobotocore, the asyncio client a scaler uses.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiobotocore.session import get_session

from tests.harness.async_setup import run_to_completion
from tests.harness.ports import free_port
from tests.harness.server_process import ServerContext, ServerProcess

START_TIMEOUT = 60.0
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
ADMIN_USER = "harness-admin"
USER = "scaler"
USER_ACTIONS = ("sqs:*", "cloudwatch:*", "monitoring:*")  # moto names CloudWatch actions by its endpoint
HOST = "127.0.0.1"


@dataclass(frozen=True)
class AwsCredentials:
    """An IAM user's access key in the stand-in."""

    access_key_id: str
    secret_access_key: str


class AwsStandIn(ServerContext):
    """One moto server with IAM authentication on; use as a context manager."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="moto-"))
        self.port = free_port()
        self.region, self.account_id = REGION, ACCOUNT_ID
        self._admin: AwsCredentials | None = None
        self._credentials: AwsCredentials | None = None
        self._session = get_session()  # one session: service models are loaded once
        self._server = ServerProcess("moto_server", self.directory)

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def credentials(self) -> AwsCredentials:
        """The access key of `USER`, allowed every SQS and CloudWatch action."""
        assert self._credentials is not None, "start() first"
        return self._credentials

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        command = [sys.executable, "-m", "moto.server", "--host", HOST, "--port", str(self.port)]
        self._server.start(command, cwd=self.directory)
        self._server.wait_ready(self._answers, timeout=START_TIMEOUT, interval=0.1)
        run_to_completion(self._set_up_iam())

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.endpoint_url}/moto-api/", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    async def _set_up_iam(self) -> None:
        """While moto still takes unsigned requests: an administrator; then authentication on,
        and `USER` created by that administrator."""
        self._admin = await self._create_user(ADMIN_USER, ["*"], AwsCredentials("setup", "setup"))
        async with httpx.AsyncClient(base_url=self.endpoint_url, timeout=10.0) as moto_api:
            (await moto_api.post("/moto-api/reset-auth", content=b"0")).raise_for_status()
        self._credentials = await self.create_user(USER, USER_ACTIONS)

    def stop(self) -> None:
        self._server.stop(grace=10)
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- clients and set-up --------------------------------------------------------------------

    @asynccontextmanager
    async def client(self, service: str, credentials: AwsCredentials | None = None) -> AsyncIterator[Any]:
        """An aiobotocore client for `service` at the stand-in, as the harness's administrator
        unless given other credentials."""
        key = credentials or self._admin
        assert key is not None, "start() first"
        async with self._session.create_client(
            service, region_name=REGION, endpoint_url=self.endpoint_url,
            aws_access_key_id=key.access_key_id, aws_secret_access_key=key.secret_access_key,
        ) as client:
            yield client

    async def create_user(self, name: str, actions: Sequence[str]) -> AwsCredentials:
        """An IAM user allowed exactly `actions` on every resource; returns its access key."""
        assert self._admin is not None, "start() first"
        return await self._create_user(name, actions, self._admin)

    async def _create_user(self, name: str, actions: Sequence[str], creator: AwsCredentials) -> AwsCredentials:
        policy = {"Version": "2012-10-17",
                  "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}]}
        async with self.client("iam", creator) as iam:
            await iam.create_user(UserName=name)
            await iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
            key = (await iam.create_access_key(UserName=name))["AccessKey"]
        return AwsCredentials(key["AccessKeyId"], key["SecretAccessKey"])

    async def create_queue(self, name: str, attributes: dict[str, str] | None = None) -> str:
        """An SQS queue (FIFO when `name` ends in .fifo); returns its URL."""
        if name.endswith(".fifo"):
            attributes = {"FifoQueue": "true", **(attributes or {})}
        async with self.client("sqs") as sqs:
            response = await sqs.create_queue(QueueName=name, Attributes=attributes or {})
        return str(response["QueueUrl"])

    async def send_messages(self, queue_url: str, count: int, *, delay_seconds: int = 0) -> None:
        """Send `count` messages; with `delay_seconds`, each stays delayed (invisible) that long."""
        async with self.client("sqs") as sqs:
            for index in range(count):
                await sqs.send_message(QueueUrl=queue_url, MessageBody=str(index), DelaySeconds=delay_seconds)

    async def receive_without_deleting(self, queue_url: str, count: int, *, visibility_timeout: int = 300) -> int:
        """Receive up to `count` messages and leave them in flight (not visible, not deleted) for
        `visibility_timeout` seconds. Returns the number received."""
        received = 0
        async with self.client("sqs") as sqs:
            while received < count:
                response = await sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=min(count - received, 10),
                                                     VisibilityTimeout=visibility_timeout, WaitTimeSeconds=0)
                batch = response.get("Messages", [])
                if not batch:
                    break
                received += len(batch)
        return received

    async def queue_attributes(self, queue_url: str, credentials: AwsCredentials | None = None) -> dict[str, str]:
        """Every attribute of the queue (GetQueueAttributes with All)."""
        async with self.client("sqs", credentials) as sqs:
            response = await sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])
        attributes: dict[str, str] = response["Attributes"]
        return attributes
