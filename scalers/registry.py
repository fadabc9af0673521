"""The explicit map from trigger type to scaler: adding a scaler is one line in `ENTRIES`.

A scaler's module (and so its broker SDK) is imported the first time a trigger of one of its
types is resolved, not at `import scalers`: a cluster that only uses Redis never loads the Azure
SDK. The entries name the types, so the set of known types is answered without importing.

Tests and benchmarks may put their own instances in front (`ScalerRegistry(scalers=...)`): a
scaler with request hooks or a short timeout, talking to a real server.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from scalers.base import Scaler


@dataclass(frozen=True)
class Entry:
    """Trigger types served by the class `name` of `module`, built with no arguments."""

    module: str
    name: str
    types: tuple[str, ...]


ENTRIES: tuple[Entry, ...] = (
    Entry("scalers.cron", "CronScaler", ("cron",)),
    Entry("scalers.redis.lists", "RedisScaler", ("redis", "redis-cluster", "redis-sentinel")),
    Entry("scalers.redis.streams", "RedisStreamsScaler",
          ("redis-streams", "redis-cluster-streams", "redis-sentinel-streams")),
    Entry("scalers.rabbitmq.queues", "RabbitMQScaler", ("rabbitmq",)),
    Entry("scalers.azure_servicebus", "AzureServiceBusScaler", ("azure-servicebus",)),
    Entry("scalers.external.grpc_scaler", "ExternalScaler", ("external", "external-push")),
    Entry("scalers.sql.postgresql", "PostgreSQLScaler", ("postgresql",)),
    Entry("scalers.sql.mysql", "MySQLScaler", ("mysql",)),
    Entry("scalers.aws_sqs", "AwsSqsScaler", ("aws-sqs-queue",)),
    Entry("scalers.azure_storage.queue", "AzureQueueScaler", ("azure-queue",)),
    Entry("scalers.azure_storage.blob", "AzureBlobScaler", ("azure-blob",)),
    Entry("scalers.nats_jetstream", "NatsJetStreamScaler", ("nats-jetstream",)),
    Entry("scalers.azure_eventhub.eventhub_scaler", "AzureEventHubScaler", ("azure-eventhub",)),
    Entry("scalers.http.http_scaler", "HttpScaler", ("http",)),
    Entry("scalers.kafka", "KafkaScaler", ("kafka",)),
    Entry("scalers.prometheus", "PrometheusScaler", ("prometheus",)),
    Entry("scalers.metrics_api", "MetricsApiScaler", ("metrics-api",)),
    Entry("scalers.cpu_memory", "CpuMemoryScaler", ("cpu", "memory")),
    Entry("scalers.kubernetes_workload", "KubernetesWorkloadScaler", ("kubernetes-workload",)),
)


class ScalerRegistry:
    def __init__(self, entries: Iterable[Entry] = ENTRIES, scalers: Iterable[Scaler[Any]] = ()) -> None:
        self._entries = {t: entry for entry in entries for t in entry.types}
        self._loaded: dict[str, Scaler[Any]] = {}
        for scaler in scalers:
            for trigger_type in scaler.types:
                self._loaded[trigger_type] = scaler

    @property
    def types(self) -> tuple[str, ...]:
        """Every trigger type known, loaded or not."""
        return tuple(sorted(self._entries.keys() | self._loaded.keys()))

    def get(self, trigger_type: str) -> Scaler[Any] | None:
        """The scaler of `trigger_type` (its module imported on first use), or None if unknown."""
        found = self._loaded.get(trigger_type)
        if found is not None:
            return found
        entry = self._entries.get(trigger_type)
        if entry is None:
            return None
        scaler: Scaler[Any] = getattr(importlib.import_module(entry.module), entry.name)()
        for served in entry.types:
            self._loaded.setdefault(served, scaler)
        return scaler


REGISTRY = ScalerRegistry()
