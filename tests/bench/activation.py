"""Activation benchmark: 1,000 idle ScaledObjects on one Redis, `pollingInterval: 30`.

The objects go through the adapter's own path (catalog -> metric store -> batched reads, the
store's poller running), every one reported at zero as the controller reports it. Three runs,
in the same command, on one real Redis started here with `notify-keyspace-events Kl`:

* push: keyspace notifications on, probes on (the defaults);
* probe: `keyspaceNotifications: off`, probes every 1 s;
* poll: notifications off, probes off (`--activation-probe-interval 0`): the polled baseline.

Per run: Redis requests per second while all 1,000 are idle (script calls: one per batch of up
to 500 keys), then `SAMPLES` LPUSHes to distinct idle lists, spread over one pollingInterval,
each timed from the LPUSH to the store holding the trigger active (what the controller's long
poll reads next; the controller and the scale write add about 0.1 s on the e2e control plane).
Then the CPU the catalog and store spend while 10,000 objects sit idle at zero, with 1 s
probes and without (what probes cost at scale).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from redis.asyncio import Redis

from adapter.catalog.catalog import Catalog
from adapter.keda.activity import TargetsReport, TargetState
from adapter.store.store import MetricStore
from scalers.registry import ScalerRegistry
from tests.harness.redis_servers import RedisServer, Traffic

OBJECTS, SAMPLES, POLLING_INTERVAL, IDLE_WINDOW = 1000, 20, 30, 5.0
IDLE_CPU_OBJECTS, IDLE_CPU_SECONDS = 10_000, 10.0
RUNS = {"push": ("use", 1.0), "probe": ("off", 1.0), "poll": ("off", 0.0)}


def scaled_object(run: str, i: int, address: str, notifications: str) -> dict[str, Any]:
    trigger = {"type": "redis", "metadata": {"address": address, "listName": f"{run}-{i}", "listLength": "5",
                                             "keyspaceNotifications": notifications}}
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": f"o{i}", "namespace": "b"},
            "spec": {"scaleTargetRef": {"name": f"o{i}"}, "pollingInterval": POLLING_INTERVAL, "triggers": [trigger]}}


async def active(store: MetricStore, name: str) -> None:
    while not any(e.active for e in store.entries() if e.trigger.scaled_object == name):
        await asyncio.sleep(0.002)


async def one_run(redis: RedisServer, run: str) -> dict[str, Any]:
    notifications, probe_interval = RUNS[run]
    catalog = Catalog(ScalerRegistry())
    store = MetricStore(timeout=30, probe_interval=probe_interval)
    store.follow(catalog)
    catalog.replace_all([(scaled_object(run, i, redis.address, notifications), "bench") for i in range(OBJECTS)])
    store.set_targets(TargetsReport(tuple(TargetState("b", f"o{i}", at_zero=True) for i in range(OBJECTS)),
                                    complete=True))
    poller = asyncio.create_task(store.poll_forever())
    pusher = Redis.from_url(f"redis://{redis.address}")
    try:
        while not all(e.read_at > float("-inf") for e in store.entries()):
            await asyncio.sleep(0.05)  # every trigger read once, subscriptions under way
        await asyncio.sleep(1.0)  # settle: the first probe grid point passes
        traffic, started = Traffic(redis), time.monotonic()
        await asyncio.sleep(IDLE_WINDOW)
        idle = traffic.since()
        requests_per_second = idle.commands.get("evalsha", 0) / (time.monotonic() - started)
        latencies = await asyncio.gather(*(push_one(store, pusher, run, i) for i in range(SAMPLES)))
    finally:
        poller.cancel()
        await pusher.aclose()
        await store.aclose()
    return {"idle_requests_per_s": round(requests_per_second, 2), "p50_s": round(statistics.median(latencies), 3),
            "p95_s": round(statistics.quantiles(latencies, n=20)[-1], 3), "max_s": round(max(latencies), 3)}


async def push_one(store: MetricStore, pusher: Redis, run: str, i: int) -> float:
    await asyncio.sleep(i * POLLING_INTERVAL / SAMPLES)  # spread over one interval: every poll phase
    pushed = time.perf_counter()
    await pusher.lpush(f"{run}-{i}", "job")
    await asyncio.wait_for(active(store, f"o{i}"), POLLING_INTERVAL + 10)
    return time.perf_counter() - pushed


async def idle_cpu(redis: RedisServer, objects: int, probe_interval: float) -> float:
    """% of a core the catalog and store spend while `objects` ScaledObjects sit idle at zero."""
    catalog = Catalog(ScalerRegistry())
    store = MetricStore(timeout=30, probe_interval=probe_interval)
    store.follow(catalog)
    catalog.replace_all([(scaled_object("cpu", i, redis.address, "off"), "bench") for i in range(objects)])
    store.set_targets(TargetsReport(tuple(TargetState("b", f"o{i}", at_zero=True) for i in range(objects)),
                                    complete=True))
    poller = asyncio.create_task(store.poll_forever())
    try:
        while not all(e.read_at > float("-inf") for e in store.entries()):
            await asyncio.sleep(0.05)
        await asyncio.sleep(2.0)  # the first reads are over
        started, cpu = time.monotonic(), time.process_time()
        await asyncio.sleep(IDLE_CPU_SECONDS)
        return 100 * (time.process_time() - cpu) / (time.monotonic() - started)
    finally:
        poller.cancel()
        await store.aclose()


def run() -> dict[str, Any]:
    with RedisServer(extra_args=["--notify-keyspace-events", "Kl"]) as redis:
        result: dict[str, Any] = {name: asyncio.run(one_run(redis, name)) for name in RUNS}
        result["idle_cpu_pct"] = {interval: asyncio.run(idle_cpu(redis, IDLE_CPU_OBJECTS, interval))
                                  for interval in (1.0, 0.0)}
        return result


def print_report(result: dict[str, Any]) -> None:
    print(f"activation: {OBJECTS} idle ScaledObjects on one Redis, pollingInterval {POLLING_INTERVAL}s, "
          f"LPUSH -> trigger active in the store ({SAMPLES} samples each)")
    for name in RUNS:
        figures = result[name]
        print(f"  {name:5s} p50={figures['p50_s']:.3f}s p95={figures['p95_s']:.3f}s max={figures['max_s']:.3f}s  "
              f"idle Redis requests/s={figures['idle_requests_per_s']:.2f}")
    push, poll = result["push"]["p50_s"], result["poll"]["p50_s"]
    print(f"  poll/push p50 ratio {poll / push:.0f}x")
    cpu = result["idle_cpu_pct"]
    print(f"  {IDLE_CPU_OBJECTS:,} objects idle at zero (keyspace notifications off): catalog and store CPU "
          f"{cpu[1.0]:.1f} % of a core with 1 s probes, {cpu[0.0]:.1f} % without")
