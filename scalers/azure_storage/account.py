"""What the Azure Storage scalers share: the account a connection string names, and its client pool.

KEDA takes a storage connection string (`connection`, from the TriggerAuthentication,
`connectionFromEnv` or metadata) and, for workload identity, an `accountName` with `cloud` /
`endpointSuffix`. Only connection strings are supported here: a trigger that asks for workload
identity (a TriggerAuthentication `podIdentity`, or `accountName` without a connection) is refused
with a ParameterError that says so, after `cloud` and `endpointSuffix` are checked with KEDA's
messages.

`Account` is the server key: the account name, its service endpoint and the credential (key or
SAS token). Triggers of one account and credential share one SDK client over one aiohttp pool of
at most `MAX_CONCURRENT_CALLS` connections; the SDK's own retries are off (the next poll is the
retry) and every call has the scaler's timeout.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import aiohttp
from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.core.pipeline.transport import AioHttpTransport

from scalers.azure_cloud import cloud_suffix, refuse_pod_identity
from scalers.base import ClientOptions, ConfigT, ScalerClient, ScalerError, masked_error
from scalers.params import ParameterError, TriggerParams, secret_field
from scalers.sources import METADATA_ONLY, Source

MAX_CONCURRENT_CALLS = 8
CONNECTION_SOURCES = (Source.AUTH, Source.METADATA, Source.ENV)  # KEDA: authParams;triggerMetadata;resolvedEnv
STORAGE_SUFFIXES = {  # the clouds KEDA knows, and their storage endpoint suffix
    "azurepubliccloud": "core.windows.net",
    "azureusgovernmentcloud": "core.usgovcloudapi.net",
    "azurechinacloud": "core.chinacloudapi.cn",
}
DEVELOPMENT_PORTS = {"blob": 10000, "queue": 10001}
DEVELOPMENT_ACCOUNT = "devstoreaccount1"


@dataclass(frozen=True)
class Account:
    """One storage account's service endpoint and credential: the server key."""

    name: str
    endpoint: str  # e.g. https://acct.queue.core.windows.net, or Azurite's http://127.0.0.1:10001/devstoreaccount1
    connection: str = secret_field("")  # the connection string, handed to the SDK as it is

    def __str__(self) -> str:
        return f"storage account {self.name} ({self.endpoint})"


def endpoint_suffix(params: TriggerParams, service: str) -> str:
    """KEDA's ParseAzureStorageEndpointSuffix: `<service>.<cloud's suffix>`, or `endpointSuffix` for Private."""
    return cloud_suffix(params, {cloud: f"{service}.{suffix}" for cloud, suffix in STORAGE_SUFFIXES.items()})


def trigger_account(params: TriggerParams, connection: str | None, service: str, *, what: str,
                    missing: str) -> Account:
    """The account of a blob or queue trigger, checked in KEDA's order: the endpoint suffix, the pod
    identity (refused, as `what` names it), then the connection string (`missing` when there is none)."""
    suffix = endpoint_suffix(params, service)
    account = params.get("accountName", METADATA_ONLY) or "(no accountName)"
    refuse_pod_identity(params, f"workload identity for storage account {account}.{suffix} is not supported: "
                        'only connection strings are (parameter "connection")',
                        f"pod identity {params.pod_identity} not supported for {what}")
    if not connection:
        raise ParameterError(missing)
    return parse_account(connection, service)


def parse_account(connection: str, service: str) -> Account:
    """The account, endpoint and credential of a storage connection string; errors never quote it."""
    settings: dict[str, str] = {}
    for part in connection.strip().strip(";").split(";"):
        name, sep, value = part.partition("=")
        if not sep:
            raise ParameterError('parameter "connection" is not a storage connection string (Name=value;...)')
        settings[name.strip().lower()] = value.strip()
    if settings.get("usedevelopmentstorage", "").lower() == "true":
        endpoint = f"http://127.0.0.1:{DEVELOPMENT_PORTS[service]}/{DEVELOPMENT_ACCOUNT}"
        return Account(DEVELOPMENT_ACCOUNT, endpoint, connection.strip())
    name = settings.get("accountname", "")
    endpoint = settings.get(f"{service}endpoint", "").rstrip("/")
    if not endpoint:
        if not name:
            raise ParameterError("can't parse storage connection string. Missing key or name")
        protocol = settings.get("defaultendpointsprotocol", "https")
        suffix = settings.get("endpointsuffix", STORAGE_SUFFIXES["azurepubliccloud"])
        endpoint = f"{protocol}://{name}.{service}.{suffix}"
    if not settings.get("accountkey") and not settings.get("sharedaccesssignature"):
        raise ParameterError(f'parameter "connection" for {name or endpoint} has neither AccountKey nor '
                             "SharedAccessSignature")
    return Account(name or endpoint, endpoint, connection.strip())


RequestHook = Callable[[Any], None]


def each(hooks: Sequence[RequestHook]) -> RequestHook | None:
    """One azure-core `raw_request_hook` calling every hook with the request, or None without hooks."""
    if not hooks:
        return None

    def call(request: Any) -> None:
        for hook in hooks:
            hook(request)
    return call


def transport(timeout: float) -> AioHttpTransport:
    """An aiohttp transport of at most MAX_CONCURRENT_CALLS connections, its calls under `timeout`."""
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=MAX_CONCURRENT_CALLS),
                                    cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False)
    return AioHttpTransport(session=session, session_owner=True, connection_timeout=timeout, read_timeout=timeout)


class StorageService(Protocol):
    """What the shared client needs of an SDK service client (BlobServiceClient, QueueServiceClient)."""

    async def close(self) -> None: ...


ServiceT = TypeVar("ServiceT", bound=StorageService)


class StorageClient(ScalerClient[ConfigT], Generic[ConfigT, ServiceT]):
    """One SDK service client per account and credential, made on the first read: the pool every
    trigger of the account shares, with the SDK's retries off and the scaler's timeout."""

    def __init__(self, account: Account, options: ClientOptions) -> None:
        self._account = account
        self._hooks: tuple[RequestHook, ...] = options.request_hooks  # told of each HTTP request sent
        self._timeout = options.timeout
        self._service: ServiceT | None = None

    @abstractmethod
    def _connect(self, connection: str, **options: Any) -> ServiceT:
        """The SDK's `from_connection_string(connection, **options)` of this service."""

    def _open(self) -> ServiceT:
        if self._service is None:
            self._service = self._connect(self._account.connection, transport=transport(self._timeout),
                                          retry_total=0, raw_request_hook=each(self._hooks))
        return self._service

    async def _count(self, what: str, missing: str, count: Callable[[], Awaitable[float]]) -> float | ScalerError:
        """`count()` within the timeout; its failure is a ScalerError naming `what` (the container or
        queue) and the account, `missing` when it does not exist, secrets masked."""
        try:
            async with asyncio.timeout(self._timeout):
                return await count()
        except TimeoutError:
            failure = f"no answer within {self._timeout:g}s"
        except (AzureError, OSError) as exc:
            failure = storage_failure(exc, missing)
        return masked_error(f"{self._account}: {what}: {failure}", self._account)

    async def aclose(self) -> None:
        service, self._service = self._service, None
        if service is not None:
            await service.close()


def storage_failure(exc: BaseException, missing: str) -> str:
    """How a failed call reads: `missing` for a 404, the service's error code for a refusal."""
    if isinstance(exc, ResourceNotFoundError):
        return missing
    if isinstance(exc, ClientAuthenticationError | HttpResponseError):
        code = getattr(exc, "error_code", None) or (exc.status_code if isinstance(exc, HttpResponseError) else "")
        return f"refused ({getattr(code, 'value', code)}): {str(exc.reason or '').strip() or type(exc).__name__}"
    inner = getattr(exc, "inner_exception", None) or exc
    return f"cannot connect: {type(inner).__name__}: {inner}"
