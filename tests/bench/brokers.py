"""Broker benchmark: one poll of 10,000 ScaledObjects spread over one Redis and one RabbitMQ.

The objects go through the adapter's own path (catalog -> metric store -> batched scaler
reads): 4,000 Redis list triggers, 3,000 RabbitMQ triggers over AMQP and 3,000 over the
management API, on real servers started here. Printed per poll: connections each server holds
for us (Redis CLIENT LIST, the RabbitMQ management API, the kernel's TCP table), round trips
(Redis socket reads, management API requests; AMQP channels), CPU time of this process
(threads included) and wall time, and the resident memory of the process.

The baseline, in the same run, is KEDA's shape: one client per ScaledObject, for a sample of
the Redis objects; its per-object cost is the ratio's denominator.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from adapter.catalog.catalog import Catalog
from adapter.store.store import MetricStore
from scalers.params import TriggerParams
from scalers.rabbitmq.queue_config import CONNECTION_NAME
from scalers.rabbitmq.queues import RabbitMQScaler
from scalers.redis.lists import RedisScaler
from scalers.registry import ScalerRegistry
from tests.harness.rabbitmq_server import RabbitMQServer, RequestLog, tcp_connections_to
from tests.harness.redis_servers import RedisServer, Traffic, clients

REDIS, AMQP, HTTP = 4000, 3000, 3000
QUEUES, POLLS, BASELINE_SAMPLE = 100, 5, 300


def scaled_object(name: str, trigger: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": name, "namespace": "b"},
            "spec": {"scaleTargetRef": {"name": name}, "triggers": [trigger]}}


def objects(redis: RedisServer, rabbitmq: RabbitMQServer) -> list[dict[str, Any]]:
    found = [scaled_object(f"r{i}", {"type": "redis", "metadata": {
        "address": redis.address, "listName": f"bench-{i % QUEUES}"}}) for i in range(REDIS)]
    found += [scaled_object(f"a{i}", {"type": "rabbitmq", "metadata": {
        "host": rabbitmq.amqp_url("/"), "queueName": f"bench-{i % QUEUES}"}}) for i in range(AMQP)]
    found += [scaled_object(f"h{i}", {"type": "rabbitmq", "metadata": {
        "host": rabbitmq.http_url("/"), "protocol": "http", "queueName": f"bench-{i % QUEUES}"}})
        for i in range(HTTP)]
    return found


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def poll(store: MetricStore) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    await store.refresh(list(store.entries()))
    return time.process_time() - cpu, time.perf_counter() - wall


async def baseline(redis: RedisServer) -> dict[str, float]:
    """One client per ScaledObject, as KEDA builds them: CPU and round trips per object."""
    scaler = RedisScaler()
    configs = [scaler.parse("redis", _params(redis, i)) for i in range(BASELINE_SAMPLE)]
    opened = [scaler.open_client(c) for c in configs]
    await asyncio.gather(*(client.read([c]) for client, c in zip(opened, configs, strict=True)))
    traffic = Traffic(redis)
    cpu = time.process_time()
    await asyncio.gather(*(client.read([c]) for client, c in zip(opened, configs, strict=True)))
    cpu = time.process_time() - cpu
    seen = traffic.since()
    held = len(clients(redis, "eventscale"))
    for client in opened:
        await client.aclose()
    return {"cpu_ms_per_object": cpu * 1000 / BASELINE_SAMPLE, "round_trips_per_object": seen.reads / BASELINE_SAMPLE,
            "connections_per_object": held / BASELINE_SAMPLE}


def _params(redis: RedisServer, i: int) -> TriggerParams:
    return TriggerParams(metadata={"address": redis.address, "listName": f"bench-{i % QUEUES}"})


async def measure(redis: RedisServer, rabbitmq: RabbitMQServer) -> dict[str, Any]:
    requests = RequestLog()
    catalog = Catalog(ScalerRegistry(scalers=[RabbitMQScaler(http_request_hooks=[requests])]))
    store = MetricStore(timeout=30)
    store.follow(catalog)
    rss_before = rss_mb()
    started = time.perf_counter()
    catalog.replace_all([(o, "bench") for o in objects(redis, rabbitmq)])
    load_seconds = time.perf_counter() - started
    await poll(store)  # connect, load scripts
    traffic = Traffic(redis)
    cpu, wall, trips, http = [], [], [], []
    for _ in range(POLLS):
        traffic.since()
        before = len(requests.paths)
        poll_cpu, poll_wall = await poll(store)
        cpu.append(poll_cpu)
        wall.append(poll_wall)
        trips.append(traffic.since().reads)
        http.append(len(requests.paths) - before)
    assert all(e.status == 200 for e in store.entries()), [e.error for e in store.entries() if e.error][:3]
    result = {
        "objects": REDIS + AMQP + HTTP,
        "catalog_load_s": round(load_seconds, 2),
        "cpu_ms_per_poll": round(statistics.median(cpu) * 1000, 1),
        "wall_ms_per_poll": round(statistics.median(wall) * 1000, 1),
        "redis_connections": len(clients(redis, "eventscale")),
        "redis_round_trips_per_poll": statistics.median(trips),
        "rabbitmq_amqp_connections": rabbitmq.wait_connections(CONNECTION_NAME, 1),
        "rabbitmq_http_connections": tcp_connections_to(rabbitmq.http_port),
        "rabbitmq_http_requests_per_poll": statistics.median(http),
        "rabbitmq_amqp_channels": len(rabbitmq.channels(CONNECTION_NAME)),
        "rss_mb": round(rss_mb(), 1),
        "rss_growth_mb": round(rss_mb() - rss_before, 1),
    }
    await store.aclose()
    return result


def fill(redis: RedisServer, rabbitmq: RabbitMQServer) -> None:
    admin = redis.admin()
    for i in range(QUEUES):
        admin.delete(f"bench-{i}")
        admin.rpush(f"bench-{i}", *range(i + 1))
    rabbitmq.fill("/", {f"bench-{i}": i % 7 for i in range(QUEUES)})
    rabbitmq.wait_queue("/", f"bench-{QUEUES - 1}", "messages", (QUEUES - 1) % 7, timeout=30)


def run() -> dict[str, Any]:
    with RedisServer() as redis, RabbitMQServer() as rabbitmq:
        fill(redis, rabbitmq)
        result = asyncio.run(measure(redis, rabbitmq))
        result["baseline"] = asyncio.run(baseline(redis))
    return result


def print_report(result: dict[str, Any]) -> None:
    base = result["baseline"]
    per_object_cpu = result["cpu_ms_per_poll"] / result["objects"]
    print(f"Brokers: one poll of {result['objects']} ScaledObjects (4,000 Redis lists, 3,000 RabbitMQ over AMQP, "
          f"3,000 over HTTP), median of {POLLS} polls")
    print(f"  catalog load (parse + resolve):   {result['catalog_load_s']} s")
    print(f"  CPU per poll:                     {result['cpu_ms_per_poll']} ms "
          f"(wall {result['wall_ms_per_poll']} ms)")
    print(f"  Redis connections held:           {result['redis_connections']}")
    print(f"  Redis round trips per poll:       {result['redis_round_trips_per_poll']}")
    print(f"  RabbitMQ AMQP connections held:   {result['rabbitmq_amqp_connections']} "
          f"({result['rabbitmq_amqp_channels']} channel; one passive declare per distinct queue)")
    print(f"  RabbitMQ HTTP connections held:   {result['rabbitmq_http_connections']} "
          f"({result['rabbitmq_http_requests_per_poll']} management API requests per poll)")
    print(f"  resident memory:                  {result['rss_mb']} MB (+{result['rss_growth_mb']} MB for the objects)")
    print(f"  baseline, one client per object ({BASELINE_SAMPLE} Redis objects): "
          f"{base['cpu_ms_per_object']:.3f} ms CPU, {base['round_trips_per_object']:.2f} round trips, "
          f"{base['connections_per_object']:.2f} connections per object")
    print(f"  ratio CPU per object, shared/baseline: {per_object_cpu / base['cpu_ms_per_object']:.3f}")
