"""Prometheus metrics at `/metrics`, under KEDA's names and labels where KEDA has a metric for
the same thing, so that KEDA's Grafana dashboard and alerts carry over; ours where it has none.

KEDA's: per trigger `keda_scaler_metrics_value`, `keda_scaler_active` and
`keda_scaler_detail_errors_total` (labels `namespace`, `scaledObject`, `scaler` -- the trigger
type, `triggerIndex`, `metric`, `type="scaledobject"`), per ScaledObject
`keda_scaled_object_errors_total`, and `keda_build_info`. Ours: per trigger
`eventscale_trigger_consecutive_failures` (same labels), per scaler type the batched reads, their
failures and time, and the open clients.

Nothing is counted on the request path. The per-scaler families (a handful of lines) are
collected at scrape time; the per-ScaledObject ones (a few lines per trigger, hundreds of
thousands at 100,000 ScaledObjects) are rendered per ScaledObject when the store says its
entries changed, and a scrape joins what is rendered: its cost is the objects changed since the
last scrape plus one copy of the bytes, not a formatting pass over every trigger. Labels name
ScaledObjects (and ScaledJobs, `type="scaledjob"`, with KEDA's `keda_scaled_job_errors_total`),
triggers, metrics and scaler types only, never a server address, a user or a credential.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from adapter.keda.scaled_job import SCALED_JOB_KIND
from adapter.store.store import MetricEntry, MetricStore, ObjectKey
from adapter.version import version

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# name, type, help: the families rendered per ScaledObject, in this order
OBJECT_FAMILIES = (
    ("keda_scaler_metrics_value", "gauge",
     "The current value for each scaler's metric that would be used by the HPA in computing the target average"),
    ("keda_scaler_active", "gauge", "Indicates whether a scaler is active (1), or not (0)"),
    ("keda_scaler_detail_errors_total", "counter", "The total number of errors encountered for each scaler"),
    ("keda_scaled_object_errors_total", "counter", "The number of errors that have occurred for each ScaledObject"),
    ("eventscale_trigger_consecutive_failures", "gauge", "Failed reads of a trigger in a row"),
    ("keda_scaled_job_errors_total", "counter", "The number of errors that have occurred for each ScaledJob"),
)
ObjectLines = tuple[bytes, ...]  # one ScaledObject's lines of each of OBJECT_FAMILIES


class BuildInfo(Collector):
    """`keda_build_info`: KEDA's info metric, with our version and the Python that runs us."""

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("keda_build_info", "Info metric, with static information about the eventscale "
                                 "build: version and runtime", labels=["version", "python_version", "os", "arch"])
        info.add_metric([version(), platform.python_version(), platform.system().lower(), platform.machine()], 1)
        yield info


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


def _object_lines(entries: Sequence[MetricEntry]) -> ObjectLines:
    """One ScaledObject's lines of each family of OBJECT_FAMILIES."""
    value, active, detail_errors, failures = [], [], [], []
    for entry in entries:
        trigger = entry.trigger
        owner = "scaledjob" if trigger.kind == SCALED_JOB_KIND else "scaledobject"
        labels = (f'{{namespace="{_escape(trigger.namespace)}",scaledObject="{_escape(trigger.scaled_object)}",'
                  f'scaler="{_escape(trigger.spec.type)}",triggerIndex="{trigger.spec.index}",'
                  f'metric="{_escape(trigger.metric_name)}",type="{owner}"}}')
        if entry.value is not None:
            value.append(f"{OBJECT_FAMILIES[0][0]}{labels} {_number(entry.value)}\n")
        active.append(f"{OBJECT_FAMILIES[1][0]}{labels} {_number(1.0 if entry.active else 0.0)}\n")
        detail_errors.append(f"{OBJECT_FAMILIES[2][0]}{labels} {_number(entry.errors)}\n")
        failures.append(f"{OBJECT_FAMILIES[4][0]}{labels} {_number(entry.consecutive_failures)}\n")
    first = entries[0].trigger
    errors = _number(sum(e.errors for e in entries))
    object_errors, job_errors = [], []
    if first.kind == SCALED_JOB_KIND:
        job_errors.append(f'{OBJECT_FAMILIES[5][0]}{{namespace="{_escape(first.namespace)}",'
                          f'scaledJob="{_escape(first.scaled_object)}"}} {errors}\n')
    else:
        object_errors.append(f'{OBJECT_FAMILIES[3][0]}{{namespace="{_escape(first.namespace)}",'
                             f'scaledObject="{_escape(first.scaled_object)}"}} {errors}\n')
    return tuple("".join(lines).encode() for lines in (value, active, detail_errors, object_errors, failures,
                                                       job_errors))


class ObjectSeries:
    """The per-ScaledObject families, rendered per ScaledObject when the store says it changed."""

    def __init__(self, store: MetricStore) -> None:
        self.store = store
        self.rendered = 0  # ScaledObjects rendered since start, for tests and benchmarks
        self._lines: dict[ObjectKey, ObjectLines] = {}
        self._dirty: set[ObjectKey] = set(store.objects())
        store.subscribe(self._mark)

    def _mark(self, keys: set[ObjectKey]) -> None:
        self._dirty |= keys

    def render(self) -> bytes:
        dirty, self._dirty = self._dirty, set()
        for key in dirty:
            entries = self.store.entries_of(*key)
            if entries:
                self._lines[key] = _object_lines(entries)
                self.rendered += 1
            else:
                self._lines.pop(key, None)
        parts: list[bytes] = []  # joined per scrape, not kept (a second copy of every line: 0.8 KB an object)
        for i, (name, kind, help_text) in enumerate(OBJECT_FAMILIES):
            parts.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n".encode())
            parts.extend(lines[i] for lines in self._lines.values())
        return b"".join(parts)


class Exposition:
    """What `/metrics` answers: build info, the scaler families and process metrics, then the
    per-ScaledObject series."""

    def __init__(self, store: MetricStore) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(BuildInfo())
        self.registry.register(ScalerCollector(store))
        self.registry.register(ProcessCollector(registry=None))
        self.objects = ObjectSeries(store)

    def render(self) -> bytes:
        return generate_latest(self.registry) + self.objects.render()
