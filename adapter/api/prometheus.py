"""Prometheus metrics at `/metrics`, computed from the store when scraped.

Nothing is counted on the request path: a collector walks the store's entries and read
statistics at scrape time, so the hot path pays nothing. Labels name ScaledObjects, triggers,
metrics and scaler types only, never a server address, a user or a credential.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from adapter.store.store import MetricStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TRIGGER_LABELS = ["namespace", "scaledobject", "trigger", "metric", "scaler"]




class StoreCollector(Collector):
    def __init__(self, store: MetricStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        yield from self._scalers()
        yield from self._triggers()

    def _scalers(self) -> Iterator[Metric]:
        reads = CounterMetricFamily("eventscale_scaler_reads", "Batched reads of a scaler's servers", labels=["scaler"])
        failed = CounterMetricFamily("eventscale_scaler_read_failures",
                                     "Batched reads that failed as a whole (server unreachable, refused, timeout)",
                                     labels=["scaler"])
        seconds = CounterMetricFamily("eventscale_scaler_read_seconds", "Time spent in batched reads",
                                      labels=["scaler"])
        for name, stats in sorted(self.store.read_stats.items()):
            reads.add_metric([name], stats.reads)
            failed.add_metric([name], stats.failed)
            seconds.add_metric([name], stats.seconds)
        clients = GaugeMetricFamily("eventscale_scaler_clients", "Open scaler clients (one per server)",
                                    labels=["scaler"])
        for name, count in sorted(self.store.open_clients().items()):
            clients.add_metric([name], count)
        yield from (reads, failed, seconds, clients)

    def _triggers(self) -> Iterator[Metric]:
        value = GaugeMetricFamily("eventscale_trigger_value", "Last value read for a trigger", labels=TRIGGER_LABELS)
        active = GaugeMetricFamily("eventscale_trigger_active", "1 when the trigger's value is above its activation",
                                   labels=TRIGGER_LABELS)
        failures = GaugeMetricFamily("eventscale_trigger_consecutive_failures", "Failed reads in a row",
                                     labels=TRIGGER_LABELS)
        for entry in self.store.entries():
            trigger = entry.trigger
            labels = [trigger.namespace, trigger.scaled_object, str(trigger.spec.index), trigger.metric_name,
                      trigger.spec.type]
            if entry.value is not None:
                value.add_metric(labels, entry.value)
            active.add_metric(labels, 1.0 if entry.active else 0.0)
            failures.add_metric(labels, entry.consecutive_failures)
        yield from (value, active, failures)


def build_collector_registry(store: MetricStore) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))
    registry.register(ProcessCollector(registry=None))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
