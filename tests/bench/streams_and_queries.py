"""Scaler benchmark, streams and queries: 1,000 Kafka and 1,000 Prometheus ScaledObjects; RSS at 10,000.

Real servers started here: one Kafka broker with 100 topics of 10 partitions and 1,000 consumer
groups (group i reads topic i % 100), one Prometheus scraping 1,000 series. The shared path is
the adapter's own (catalog -> metric store -> one client per server, batched reads). The
baseline, in the same run, is KEDA's shape: one client per ScaledObject (the same scaler code,
one config per client), all reading at once as KEDA's per-ScaledObject loops do.

Per poll (median of POLLS): CPU of this process (threads included), requests (counted by the
scalers' request hooks), bytes (Kafka: both ways, the kernel's per-socket counters, `ss -ti`;
Prometheus: the answers' bytes, from Prometheus' own counter) and connections held (the
kernel's TCP table, less what was open before). Then the resident memory of this process holding
10,000 ScaledObjects across the new scalers (Kafka, Prometheus, Metrics API,
kubernetes-workload, cpu and memory) after a poll of all of them, with the adapter's own modules
loaded (its server, API and Kubernetes client) as in the adapter's process; and, for comparison,
the same process once every scaler module of the registry (and so every broker SDK) is loaded too.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx

import adapter.server  # noqa: F401  # the adapter's own modules, counted in its resident memory
from adapter.catalog.catalog import Catalog
from adapter.store.store import MetricStore
from scalers.base import ScalerClient
from scalers.kafka import KafkaScaler
from scalers.params import TriggerParams
from scalers.prometheus import PrometheusScaler
from scalers.registry import ENTRIES, ScalerRegistry
from tests.bench.brokers import rss_mb, scaled_object
from tests.harness.http_api_server import HttpApiServer
from tests.harness.kafka_server import KafkaServer
from tests.harness.prometheus_server import MetricsExporter, PrometheusServer
from tests.harness.rabbitmq_server import tcp_connections_to
from tests.harness.tls_material import TLSMaterial

TOPICS, PARTITIONS, GROUPS, SERIES, POLLS = 100, 10, 1000, 1000, 5
GAUGE = "bench_backlog"
BASELINE_CONCURRENCY = 20  # Prometheus answers 20 queries at a time by default
WARM_UP_POLLS = 5
SLOW = {"timeout": "30s"}  # for HTTP: a shared machine may take its time to accept a thousand connections


class Counter:
    """Requests sent, from the scalers' request hooks."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, _request: Any) -> None:
        self.count += 1

    async def http(self, _request: httpx.Request) -> None:
        self.count += 1


def wire_bytes(port: int) -> int:
    """Bytes sent plus received by every open TCP socket to 127.0.0.1:`port` (kernel counters)."""
    out = subprocess.run(["ss", "-tinH", "state", "established", "dst", f"127.0.0.1:{port}"],
                         capture_output=True, text=True, check=True).stdout
    return sum(int(n) for n in re.findall(r"bytes_(?:sent|received):(\d+)", out))


def prometheus_answer_bytes(prometheus: PrometheusServer) -> Callable[[], int]:
    """Bytes of every answer Prometheus' query API sent (its own counter): unlike socket counters, it
    survives connections that are closed and opened again during a poll."""
    def count() -> int:
        text = httpx.get(f"{prometheus.url}/metrics", timeout=30).text
        found = re.findall(r'prometheus_http_response_size_bytes_sum\{handler="/api/v1/query"\} (\S+)', text)
        return int(float(found[0])) if found else 0
    return count


def kafka_trigger(kafka: KafkaServer, i: int) -> dict[str, Any]:
    return {"type": "kafka", "metadata": {"bootstrapServers": kafka.bootstrap, "consumerGroup": f"bench-{i % GROUPS}",
                                          "topic": f"bench-{i % TOPICS}", "lagThreshold": "5"}}


def prometheus_trigger(prometheus: PrometheusServer, i: int) -> dict[str, Any]:
    return {"type": "prometheus", "metadata": {"serverAddress": prometheus.url, "threshold": "5", **SLOW,
                                               "query": f'sum({GAUGE}{{queue="{i % SERIES}"}})'}}


async def fill_kafka(kafka: KafkaServer) -> None:
    for t in range(TOPICS):
        await kafka.create_topic(f"bench-{t}", PARTITIONS)
    await kafka.produce_many({(f"bench-{t}", p): 5 for t in range(TOPICS) for p in range(PARTITIONS)})
    await kafka.commit_many({f"bench-{g}": (f"bench-{g % TOPICS}", dict.fromkeys(range(PARTITIONS), g % 5))
                             for g in range(GROUPS)})


Poll = Callable[[], Awaitable[list[str]]]  # one poll of everything; the errors it met


async def warm(poll: Poll) -> None:
    """Polls until one meets no error (connections, coordinators, metadata): a loaded machine may
    time out the first bootstraps; the figures are of the polls after, with their failures counted."""
    for _ in range(WARM_UP_POLLS):
        errors = await poll()
        if not errors:
            return
    print(f"  ({len(errors)} reads still failing after {WARM_UP_POLLS} polls, e.g. {errors[0]})", flush=True)


async def measure_polls(poll: Poll, port: int, requests: Counter,
                        traffic: Callable[[], int] | None = None) -> dict[str, float]:
    """CPU, requests, bytes (`traffic`, else the sockets' counters) and connections held by `poll`."""
    traffic = traffic or (lambda: wire_bytes(port))
    held_before = tcp_connections_to(port)
    await warm(poll)
    cpu, wire, sent, failed = [], [], [], []
    for _ in range(POLLS):
        before_bytes, before_requests = traffic(), requests.count
        started = time.process_time()
        failed.append(len(await poll()))  # a loaded machine may time out a few of a thousand baseline clients
        cpu.append(time.process_time() - started)
        wire.append(traffic() - before_bytes)
        sent.append(requests.count - before_requests)
    return {"cpu_ms": round(statistics.median(cpu) * 1000, 1), "requests": statistics.median(sent),
            "kbytes": round(statistics.median(wire) / 1024, 1), "connections": tcp_connections_to(port) - held_before,
            "failed": max(failed)}


async def shared(triggers: Sequence[dict[str, Any]], registry: ScalerRegistry, port: int,
                 requests: Counter, traffic: Callable[[], int] | None = None) -> dict[str, float]:
    """The adapter's path: one catalog and store, one client per server."""
    catalog, store = Catalog(registry), MetricStore(timeout=60)
    store.follow(catalog)
    catalog.replace_all([(scaled_object(f"s{i}", t), "bench") for i, t in enumerate(triggers)])

    async def poll() -> list[str]:
        await store.refresh(list(store.entries()))
        return [e.error for e in store.entries() if e.error]

    try:
        return await measure_polls(poll, port, requests, traffic)
    finally:
        await store.aclose()


async def one_client(scaler: Any, trigger_type: str, triggers: Sequence[dict[str, Any]], port: int,
                     requests: Counter, traffic: Callable[[], int] | None = None) -> dict[str, float]:
    """Ours at the scaler's level: one client reading every config of the server in one batch."""
    configs = [scaler.parse(trigger_type, TriggerParams(metadata=t["metadata"])) for t in triggers]
    client: ScalerClient[Any] = scaler.open_client(configs[0])

    async def poll() -> list[str]:
        return [str(a) for a in await client.read(configs) if isinstance(a, BaseException)]

    try:
        return await measure_polls(poll, port, requests, traffic)
    finally:
        await client.aclose()


async def baseline(scaler: Any, trigger_type: str, triggers: Sequence[dict[str, Any]], port: int,
                   requests: Counter, traffic: Callable[[], int] | None = None) -> dict[str, float]:
    """KEDA's shape: one client per ScaledObject, each reading its own config, BASELINE_CONCURRENCY at a
    time (KEDA's loops are spread over the polling interval; all at once would only queue in the server)."""
    configs = [scaler.parse(trigger_type, TriggerParams(metadata={**t["metadata"], **SLOW})) for t in triggers]
    clients: list[ScalerClient[Any]] = [scaler.open_client(c) for c in configs]
    gate = asyncio.Semaphore(BASELINE_CONCURRENCY)

    async def one(client: ScalerClient[Any], config: Any) -> Any:
        async with gate:
            return await client.read([config])

    async def poll() -> list[str]:
        answers = await asyncio.gather(*(one(client, c) for client, c in zip(clients, configs, strict=True)),
                                       return_exceptions=True)
        return [str(a if isinstance(a, BaseException) else a[0]) for a in answers
                if isinstance(a, BaseException) or isinstance(a[0], BaseException)]

    try:
        return await measure_polls(poll, port, requests, traffic)
    finally:
        for client in clients:
            await client.aclose()


def imports_mb(modules: Sequence[str]) -> float:
    """Resident memory of a new process that imported this module and then `modules` (measured in a
    child, so that this process's figures hold only what it uses)."""
    code = ("import importlib, sys; import tests.bench.streams_and_queries as bench; "
            "[importlib.import_module(m) for m in sys.argv[1:]]; print(bench.rss_mb())")
    out = subprocess.run([sys.executable, "-c", code, *modules], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def mixed_objects(kafka: KafkaServer, prometheus: PrometheusServer, api: HttpApiServer) -> list[tuple[Any, str]]:
    """10,000 ScaledObjects across the new scalers, and the pods the kubernetes-workload ones count."""
    triggers: list[dict[str, Any]] = [kafka_trigger(kafka, i) for i in range(2500)]
    triggers += [prometheus_trigger(prometheus, i) for i in range(2500)]
    triggers += [{"type": "metrics-api", "metadata": {"url": f"{api.url}/m{i % 100}", "valueLocation": "queue",
                                                      "targetValue": "5"}} for i in range(2000)]
    triggers += [{"type": "kubernetes-workload", "metadata": {"podSelector": f"job=j{i % 100}", "value": "2"}}
                 for i in range(1500)]
    resources = [{"type": kind, "metricType": "Utilization", "metadata": {"value": "50"}}
                 for kind in ("cpu", "memory") for _ in range(750)]
    pods = [{"kind": "Pod", "metadata": {"name": f"p{i}", "namespace": "b", "labels": {"job": f"j{i % 100}"}},
             "status": {"phase": "Running"}} for i in range(1000)]
    objects = [(scaled_object(f"m{i}", t), "bench") for i, t in enumerate(triggers)]
    objects += [({**scaled_object(f"r{i}", t), "spec": {"scaleTargetRef": {"name": f"r{i}"}, "minReplicaCount": 1,
                                                       "triggers": [t]}}, "bench") for i, t in enumerate(resources)]
    return [*objects, *((p, "bench") for p in pods)]


async def mixed_rss(kafka: KafkaServer, prometheus: PrometheusServer, api: HttpApiServer) -> dict[str, float]:
    """10,000 ScaledObjects across the new scalers in one catalog and store, after one poll of all.
    The objects are handed over as a source hands them (this process keeps no reference), so the
    figure holds what the catalog keeps of them."""
    catalog, store = Catalog(ScalerRegistry()), MetricStore(timeout=60)
    store.follow(catalog)
    before = rss_mb()
    catalog.replace_all(mixed_objects(kafka, prometheus, api))
    async def poll() -> list[str]:
        await store.refresh(list(store.entries()))
        return [e.error for e in store.entries() if e.error]

    try:
        started = time.perf_counter()
        await warm(poll)
        print(f"  (10,000 objects: first full poll in {time.perf_counter() - started:.1f} s)", flush=True)
        resolved = sum(1 for _ in catalog.scaled_objects())
        loaded = [e.module for e in ENTRIES if e.module in sys.modules]  # by the catalog, for these triggers
        every_sdk = imports_mb([e.module for e in ENTRIES]) - imports_mb(loaded)
        return {"objects": resolved, "rss_mb": round(rss_mb(), 1), "growth_mb": round(rss_mb() - before, 1),
                "every_scaler_mb": round(rss_mb() + every_sdk, 1)}
    finally:
        await store.aclose()


async def measure(kafka: KafkaServer, prometheus: PrometheusServer, api: HttpApiServer) -> dict[str, Any]:
    started = time.monotonic()
    await fill_kafka(kafka)
    result: dict[str, Any] = {"setup_s": round(time.monotonic() - started, 1)}
    result["rss"] = await mixed_rss(kafka, prometheus, api)
    kafka_port = int(kafka.bootstrap.rsplit(":", 1)[1])
    prometheus_port = int(prometheus.url.rsplit(":", 1)[1])
    counter = Counter()
    kafka_scaler = KafkaScaler(request_hooks=[counter])
    prometheus_scaler = PrometheusScaler(request_hooks=[counter.http])
    registry = ScalerRegistry(scalers=[kafka_scaler, prometheus_scaler])
    kafka_triggers = [kafka_trigger(kafka, i) for i in range(GROUPS)]
    prometheus_triggers = [prometheus_trigger(prometheus, i) for i in range(SERIES)]
    answers = prometheus_answer_bytes(prometheus)
    parts = (("kafka", kafka_scaler, kafka_triggers, kafka_port, None),
             ("prometheus", prometheus_scaler, prometheus_triggers, prometheus_port, answers))
    for name, scaler, triggers, port, traffic in parts:
        result[name] = await one_client(scaler, name, triggers, port, counter, traffic)
        result[f"{name}_adapter"] = await shared(triggers, registry, port, counter, traffic)
        result[f"{name}_baseline"] = await baseline(scaler, name, triggers, port, counter, traffic)
        print(f"  ({name}: {result[name]}; through the store: {result[name + '_adapter']}; "
              f"baseline: {result[name + '_baseline']})", flush=True)
    return result


def run() -> dict[str, Any]:
    with MetricsExporter() as exporter, HttpApiServer() as api:
        for i in range(SERIES):
            exporter.set_gauge(GAUGE, i % 7, {"queue": str(i)})
        for i in range(100):
            api.answer(f"/m{i}", f'{{"queue": {i}}}')
        # Prometheus takes 512 connections by default: the baseline's thousand clients, each keeping its
        # own, would queue behind that limit (as 1,000 KEDA ScaledObjects would); raised so it can be measured.
        with KafkaServer(TLSMaterial.generate()) as kafka, \
                PrometheusServer([exporter.address], flags=["--web.max-connections=4096"]) as prometheus:
            prometheus.wait_for_value(f"count({GAUGE})", SERIES)
            return asyncio.run(measure(kafka, prometheus, api))


def print_report(result: dict[str, Any]) -> None:
    print(f"Scalers: {GROUPS:,} Kafka ScaledObjects on one broker ({TOPICS} topics x {PARTITIONS} partitions, "
          f"{GROUPS:,} groups) and {SERIES:,} Prometheus ScaledObjects on one server; median of {POLLS} polls")
    print(f"  {'':<22}{'connections':>12}{'requests/poll':>15}{'KiB/poll':>10}{'CPU ms/poll':>13}{'failed':>8}")
    for name in ("kafka", "kafka_adapter", "kafka_baseline", "prometheus", "prometheus_adapter",
                 "prometheus_baseline"):
        row = result[name]
        print(f"  {name:<22}{row['connections']:>12}{row['requests']:>15}{row['kbytes']:>10}{row['cpu_ms']:>13}"
              f"{row['failed']:>8}")
    for name in ("kafka", "prometheus"):
        ratio = result[name]["cpu_ms"] / max(result[f"{name}_baseline"]["cpu_ms"], 0.001)
        print(f"  {name} CPU per poll, one client/one client per object: {ratio:.3f} (goal <= 0.1); "
              f"the adapter's path adds the metric store's bookkeeping "
              f"({result[name + '_adapter']['cpu_ms']} ms)")
    rss = result["rss"]
    print(f"  resident memory with {rss['objects']:,} ScaledObjects across the new scalers, after a poll: "
          f"{rss['rss_mb']} MB (+{rss['growth_mb']} MB for the objects; goal < 200 MB); "
          f"{rss['every_scaler_mb']} MB once every scaler module is loaded too")
