"""Prometheus metrics at `/metrics`: per-scaler counters and per-trigger series from the store.

Nothing is counted on the request path. The per-scaler families (a handful of lines) are
collected at scrape time; the per-trigger ones (three lines per trigger, 300,000 at 100,000
ScaledObjects) are rendered per ScaledObject when the store says its entries changed, and a
scrape joins what is rendered: its cost is the objects changed since the last scrape plus one
copy of the bytes, not a formatting pass over every trigger. Labels name ScaledObjects (or
ScaledJobs, as `scaledjob=`), triggers, metrics and scaler types only, never a server address,
a user or a credential.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from adapter.keda.scaled_job import SCALED_JOB_KIND
from adapter.store.store import MetricEntry, MetricStore, ObjectKey

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TRIGGER_FAMILIES = (
    ("eventscale_trigger_value", "Last value read for a trigger"),
    ("eventscale_trigger_active", "1 when the trigger's value is above its activation"),
    ("eventscale_trigger_consecutive_failures", "Failed reads in a row"),
)


class ScalerCollector(Collector):
    """Per scaler type: batched reads, their failures and time, open clients."""

    def __init__(self, store: MetricStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
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


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _trigger_lines(entries: Sequence[MetricEntry]) -> tuple[bytes, bytes, bytes]:
    """One ScaledObject's lines of each trigger family (labels sorted, as prometheus_client does)."""
    lines: tuple[list[str], list[str], list[str]] = ([], [], [])
    for entry in entries:
        trigger = entry.trigger
        owner = "scaledjob" if trigger.kind == SCALED_JOB_KIND else "scaledobject"
        labels = (f'{{metric="{_escape(trigger.metric_name)}",namespace="{_escape(trigger.namespace)}",'
                  f'{owner}="{_escape(trigger.scaled_object)}",scaler="{_escape(trigger.spec.type)}",'
                  f'trigger="{trigger.spec.index}"}}')
        if entry.value is not None:
            lines[0].append(f"{TRIGGER_FAMILIES[0][0]}{labels} {_number(entry.value)}\n")
        lines[1].append(f"{TRIGGER_FAMILIES[1][0]}{labels} {_number(1.0 if entry.active else 0.0)}\n")
        lines[2].append(f"{TRIGGER_FAMILIES[2][0]}{labels} {_number(entry.consecutive_failures)}\n")
    return "".join(lines[0]).encode(), "".join(lines[1]).encode(), "".join(lines[2]).encode()


class TriggerSeries:
    """The per-trigger families, rendered per ScaledObject when the store says it changed."""

    def __init__(self, store: MetricStore) -> None:
        self.store = store
        self.rendered = 0  # ScaledObjects rendered since start, for tests and benchmarks
        self._lines: dict[ObjectKey, tuple[bytes, bytes, bytes]] = {}
        self._dirty: set[ObjectKey] = set(store.objects())
        self._body: bytes | None = None
        store.subscribe(self._mark)

    def _mark(self, keys: set[ObjectKey]) -> None:
        self._dirty |= keys
        self._body = None

    def render(self) -> bytes:
        dirty, self._dirty = self._dirty, set()
        for key in dirty:
            entries = self.store.entries_of(*key)
            if entries:
                self._lines[key] = _trigger_lines(entries)
                self.rendered += 1
            else:
                self._lines.pop(key, None)
        if self._body is None:
            parts: list[bytes] = []
            for i, (name, help_text) in enumerate(TRIGGER_FAMILIES):
                parts.append(f"# HELP {name} {help_text}\n# TYPE {name} gauge\n".encode())
                parts.extend(lines[i] for lines in self._lines.values())
            self._body = b"".join(parts)
        return self._body


class Exposition:
    """What `/metrics` answers: the scaler families and process metrics, then the trigger series."""

    def __init__(self, store: MetricStore) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ScalerCollector(store))
        self.registry.register(ProcessCollector(registry=None))
        self.triggers = TriggerSeries(store)

    def render(self) -> bytes:
        return generate_latest(self.registry) + self.triggers.render()
