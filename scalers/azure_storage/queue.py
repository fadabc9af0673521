"""azure-queue: scale on the messages of an Azure Storage queue.

KEDA's keys: `queueName` (required), `queueLength` (5), `activationQueueLength` (0),
`queueLengthStrategy` (all: the queue's approximate message count; visibleonly: the messages a
peek of 32 sees, or the approximate count when the peek is full), `connection`, `accountName`,
`cloud` / `endpointSuffix` (see `account`). The metric is `azure-queue-<queueName>`.

A poll asks each distinct queue once (one properties call, or one peek and, when it is full,
one properties call), on the account's one client.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from azure.storage.queue.aio import QueueServiceClient

from scalers.azure_storage.account import (
    CONNECTION_SOURCES,
    Account,
    StorageClient,
    trigger_account,
)
from scalers.base import ScalerError, Served, ServerScaler, ask_once
from scalers.params import TriggerParams, param, parse_params
from scalers.sources import METADATA_ONLY

PEEK = 32  # KEDA's maxPeekMessages


@dataclass(frozen=True, kw_only=True)
class AzureQueueConfig:
    queue_name: str = param("queueName", required=True, sources=METADATA_ONLY)
    queue_length: int = param("queueLength", default=5, sources=METADATA_ONLY)
    activation_queue_length: int = param("activationQueueLength", default=0, sources=METADATA_ONLY)
    queue_length_strategy: Literal["all", "visibleonly"] = param("queueLengthStrategy", default="all",
                                                                 sources=METADATA_ONLY)
    connection: str = param("connection", default="", sources=CONNECTION_SOURCES, secret=True)
    account: Account = field(default_factory=lambda: Account("", ""))


def parse_config(params: TriggerParams) -> AzureQueueConfig:
    config = parse_params(AzureQueueConfig, params)
    account = trigger_account(params, config.connection, "queue", what="azure storage queues",
                              missing="no connection setting given")
    return parse_params(AzureQueueConfig, params, account=account)


class AzureQueueClient(StorageClient[AzureQueueConfig, QueueServiceClient]):
    """Each distinct (queue, strategy) of a poll once, on the account's one QueueServiceClient."""

    async def read(self, configs: Sequence[AzureQueueConfig]) -> list[float | ScalerError]:
        service = self._open()
        found = await ask_once(((c.queue_name, c.queue_length_strategy) for c in configs),
                               lambda asked: self._count(f"queue {asked[0]}", "the queue does not exist",
                                                         lambda: self._messages(service, *asked)))
        return [found[(c.queue_name, c.queue_length_strategy)] for c in configs]

    def _connect(self, connection: str, **options: Any) -> QueueServiceClient:
        return QueueServiceClient.from_connection_string(connection, **options)

    async def _messages(self, service: QueueServiceClient, name: str, strategy: str) -> float:
        queue = service.get_queue_client(name)
        if strategy == "visibleonly":
            visible = await queue.peek_messages(max_messages=PEEK)
            if len(visible) < PEEK:
                return float(len(visible))
        properties = await queue.get_queue_properties()
        return float(properties.approximate_message_count or 0)


class AzureQueueScaler(ServerScaler[AzureQueueConfig, Account], parse=parse_config, client=AzureQueueClient):
    types = ("azure-queue",)
    activation_probes = False  # billed per call: no 1 s probes at zero

    def served(self, config: AzureQueueConfig) -> Served[Account]:
        return Served(config.account, f"azure-queue-{config.queue_name}",
                      config.queue_length, config.activation_queue_length)
