"""aws-sqs-queue: scale on the messages of an Amazon SQS queue, read with aiobotocore.

KEDA's keys: `queueURL` (required; metadata or `queueURLFromEnv`), `queueLength` (5),
`activationQueueLength` (0), `awsRegion` (required; metadata, then TriggerAuthentication),
`awsEndpoint` (an SQS endpoint other than AWS's), `scaleOnInFlight` (true: in-flight messages
count), `scaleOnDelayed` (false: delayed messages do not), `identityOwner` (pod). The value is
the sum of the queue's ApproximateNumberOfMessages and, as asked, ...NotVisible and ...Delayed.
The metric is `aws-sqs-<queue name>`, the name being the last part of a URL of the form
`https://host/<account>/<name>` ("cannot get queueName from queueURL" otherwise) or the whole
`queueURL` when it is not a URL.

Credentials are KEDA's "pod" identity owner with access keys: `awsAccessKeyID` (or
`awsAccessKeyId`), `awsSecretAccessKey` and `awsSessionToken` from the TriggerAuthentication, or
`awsAccessKeyID`/`awsAccessKeyIDFromEnv` with `awsSecretAccessKeyFromEnv`. Pod identity (a
TriggerAuthentication `podIdentity` of `aws`/`aws-eks`, `identityOwner: operator`, or a role
to assume in `awsRoleArn`) needs AWS's identity services and is refused with a ParameterError
that says so.

One aiobotocore client per access key, region and endpoint serves every trigger using them; a
poll makes one GetQueueAttributes per distinct queue (asking the union of the attributes its
triggers need), at most `MAX_CONCURRENT_CALLS` at a time, each without retries and under the
scaler's timeout. Errors name the region and queue, never the secret key or session token.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from scalers.base import ClientOptions, ScalerClient, ScalerError, Served, ServerScaler, ask_once, masked_error
from scalers.params import ParameterError, TriggerParams, param, parse_params, secret_field
from scalers.sources import AUTH_ONLY, METADATA_ONLY, METADATA_OR_AUTH, METADATA_OR_ENV, Source

MAX_CONCURRENT_CALLS = 8
VISIBLE, IN_FLIGHT, DELAYED = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                               "ApproximateNumberOfMessagesDelayed")
POD_IDENTITY_PROVIDERS = ("aws", "aws-eks", "aws-kiam")


@dataclass(frozen=True)
class Account:
    """The server key: one client per access key, region and endpoint."""

    region: str
    endpoint: str | None
    access_key_id: str
    secret_access_key: str = secret_field()
    session_token: str | None = secret_field(None)


@dataclass(frozen=True, kw_only=True)
class AwsSqsConfig:
    queue_url: str = param("queueURL", required=True, sources=METADATA_OR_ENV)
    queue_length: int = param("queueLength", default=5, sources=METADATA_ONLY)
    activation_queue_length: int = param("activationQueueLength", default=0, sources=METADATA_ONLY)
    aws_region: str = param("awsRegion", required=True, sources=METADATA_OR_AUTH)
    aws_endpoint: str | None = param("awsEndpoint", sources=METADATA_ONLY)
    scale_on_in_flight: bool = param("scaleOnInFlight", default=True, sources=METADATA_ONLY)
    scale_on_delayed: bool = param("scaleOnDelayed", default=False, sources=METADATA_ONLY)
    identity_owner: str = param("identityOwner", default="pod", sources=METADATA_ONLY)
    queue_name: str = ""
    account: Account = field(default_factory=lambda: Account("", None, "", ""))  # its secret fields are masked

    @property
    def attributes(self) -> tuple[str, ...]:
        return (VISIBLE, *((IN_FLIGHT,) if self.scale_on_in_flight else ()), *((DELAYED,) if self.scale_on_delayed
                                                                              else ()))


def queue_name_of(queue_url: str) -> str:
    """KEDA's queue name: the third path part of an absolute URL, else the whole text."""
    parts = urllib.parse.urlsplit(queue_url)
    if not parts.scheme and not queue_url.startswith("/"):  # Go's ParseRequestURI refuses it
        return queue_url
    segments = parts.path.split("/")
    if len(segments) != 3 or not segments[2]:
        raise ParameterError("cannot get queueName from queueURL")
    return segments[2]


def _account(params: TriggerParams, region: str, endpoint: str | None, identity_owner: str) -> Account:
    """KEDA's GetAwsAuthorization for the identity owner `pod` with access keys."""
    if params.pod_identity.lower() in POD_IDENTITY_PROVIDERS:
        raise ParameterError(f'pod identity "{params.pod_identity}" is not supported: give awsAccessKeyID and '
                             "awsSecretAccessKey in the TriggerAuthentication")
    if identity_owner == "operator":
        raise ParameterError("identityOwner operator (the operator's own AWS identity) is not supported: give "
                             "awsAccessKeyID and awsSecretAccessKey in the TriggerAuthentication")
    if identity_owner != "pod":
        raise ParameterError(f'parameter "identityOwner" value "{identity_owner}" must be one of [pod, operator]')
    if params.auth.get("awsRoleArn"):
        raise ParameterError("awsRoleArn (a role to assume) is not supported: give awsAccessKeyID and "
                             "awsSecretAccessKey in the TriggerAuthentication")
    auth_key = params.get("awsAccessKeyID", AUTH_ONLY) or params.get("awsAccessKeyId", AUTH_ONLY)
    if auth_key:
        secret = params.get("awsSecretAccessKey", AUTH_ONLY)
        if not secret:
            raise ParameterError("awsSecretAccessKey not found")
        return Account(region, endpoint, auth_key, secret, params.get("awsSessionToken", AUTH_ONLY))
    key_id = params.get("awsAccessKeyID", METADATA_OR_ENV)
    if not key_id:
        raise ParameterError("awsAccessKeyID not found")
    secret = params.get("awsSecretAccessKey", (Source.ENV,))
    if not secret:
        raise ParameterError("awsSecretAccessKey not found")
    return Account(region, endpoint, key_id, secret)


def parse_config(params: TriggerParams) -> AwsSqsConfig:
    config = parse_params(AwsSqsConfig, params, account=Account("", None, "", ""))
    return parse_params(AwsSqsConfig, params, queue_name=queue_name_of(config.queue_url),
                        account=_account(params, config.aws_region, config.aws_endpoint, config.identity_owner))


class AwsSqsClient(ScalerClient[AwsSqsConfig]):
    """One aiobotocore SQS client, made on the first read, for one access key, region and endpoint."""

    def __init__(self, account: Account, options: ClientOptions) -> None:
        self._account = account
        self._hooks: tuple[RequestHook, ...] = options.request_hooks  # told each operation's name
        self._timeout = options.timeout
        self._client: Any = None
        self._context: Any = None
        self._calls = asyncio.Semaphore(MAX_CONCURRENT_CALLS)

    async def read(self, configs: Sequence[AwsSqsConfig]) -> list[float | ScalerError]:
        client = await self._open()
        wanted: dict[str, set[str]] = {}
        for config in configs:
            wanted.setdefault(config.queue_url, set()).update(config.attributes)
        found = await ask_once(wanted, lambda url: self._attributes(client, url, sorted(wanted[url])))
        return [self._value(config, found[config.queue_url]) for config in configs]

    async def _open(self) -> Any:
        if self._client is None:
            a = self._account
            config = AioConfig(connect_timeout=self._timeout, read_timeout=self._timeout,
                               retries={"total_max_attempts": 1}, max_pool_connections=MAX_CONCURRENT_CALLS)
            self._context = get_session().create_client(
                "sqs", region_name=a.region, endpoint_url=a.endpoint or None, aws_access_key_id=a.access_key_id,
                aws_secret_access_key=a.secret_access_key, aws_session_token=a.session_token, config=config)
            self._client = await self._context.__aenter__()
            for hook in self._hooks:
                self._client.meta.events.register("before-call.sqs.*", _called(hook))
        return self._client

    async def _attributes(self, client: Any, url: str, names: list[str]) -> dict[str, str] | ScalerError:
        try:
            async with self._calls:
                response = await client.get_queue_attributes(QueueUrl=url, AttributeNames=names)
        except ClientError as exc:
            return self._error(url, _client_error(exc))
        except (BotoCoreError, OSError, TimeoutError) as exc:
            return self._error(url, f"{type(exc).__name__}: {exc}")
        attributes: dict[str, str] = response.get("Attributes") or {}
        return attributes

    def _value(self, config: AwsSqsConfig, attributes: dict[str, str] | ScalerError) -> float | ScalerError:
        if isinstance(attributes, ScalerError):
            return attributes
        total = 0
        for name in config.attributes:
            if name not in attributes:
                return self._error(config.queue_url, f"metric {name} not found in SQS queue attributes")
            try:
                total += int(attributes[name])
            except ValueError:
                return self._error(config.queue_url, f"attribute {name} is not an integer")
        return float(total)

    def _error(self, url: str, what: str) -> ScalerError:
        return masked_error(f"aws-sqs-queue {self._account.region} queue {url}: {what}", self._account)

    async def aclose(self) -> None:
        context, self._context, self._client = self._context, None, None
        if context is not None:
            await context.__aexit__(None, None, None)


RequestHook = Callable[[str], None]


def _called(hook: RequestHook) -> Callable[..., None]:
    """A botocore before-call handler telling `hook` the operation's name."""
    def handler(model: Any, **_: Any) -> None:
        hook(model.name)
    return handler


def _client_error(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    code, message = error.get("Code", "?"), error.get("Message", "")
    if "NonExistentQueue" in str(code) or "NonExistentQueue" in message:
        return "the queue does not exist"
    return f"GetQueueAttributes refused ({code}): {message}".rstrip(": ")


class AwsSqsScaler(ServerScaler[AwsSqsConfig, Account], parse=parse_config, client=AwsSqsClient):
    types = ("aws-sqs-queue",)
    activation_probes = False  # billed per call: no 1 s probes at zero

    def served(self, config: AwsSqsConfig) -> Served[Account]:
        return Served(config.account, f"aws-sqs-{config.queue_name}",
                      config.queue_length, config.activation_queue_length)
