"""Benchmark: 10,000 rabbitmq triggers on one broker, read as the metric store reads them.

The triggers point at 300 real queues spread over 3 vhosts. Configs are grouped by server key
(HTTP: one client for the broker; AMQP: one client per vhost) and every group is read in one
`read` call, concurrently, as the metric store polls. Prints, per read of all triggers:
connections held (the broker's own list for AMQP, the kernel's TCP table for HTTP), management
API requests or passive declares per poll, CPU time of this process (time.process_time, worker
threads included) and wall time.

Run: `.venv/bin/python tests/bench/bench_rabbitmq.py [TRIGGERS] [READS]`.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scalers.base import ScalerClient, ScalerError, TriggerParams  # noqa: E402 - after the path fix
from scalers.rabbitmq import CONNECTION_NAME, RabbitMQConfig, RabbitMQScaler  # noqa: E402
from tests.harness.rabbitmq_server import RabbitMQServer, RequestLog, tcp_connections_to  # noqa: E402

VHOSTS = ("/", "bench-a", "bench-b")
QUEUES_PER_VHOST = 100


def queue_name(index: int) -> str:
    return f"bench-{index:03d}"


def prepare(server: RabbitMQServer) -> dict[tuple[str, str], int]:
    """Declare the queues with i % 13 messages each; wait until the management API shows them."""
    expected: dict[tuple[str, str], int] = {}
    for vhost in VHOSTS:
        if vhost != "/":
            server.create_vhost(vhost)
        queues = {queue_name(i): i % 13 for i in range(QUEUES_PER_VHOST)}
        server.fill(vhost, queues)
        expected.update({(vhost, name): count for name, count in queues.items()})
        last = queue_name(QUEUES_PER_VHOST - 1)
        server.wait_queue(vhost, last, "messages", (QUEUES_PER_VHOST - 1) % 13, timeout=30)
    return expected


def configs_for(scaler: RabbitMQScaler, host_of: Any, triggers: int) -> list[RabbitMQConfig]:
    configs = []
    for i in range(triggers):
        vhost = VHOSTS[i % len(VHOSTS)]
        metadata = {"queueName": queue_name((i // len(VHOSTS)) % QUEUES_PER_VHOST), "host": host_of(vhost),
                    "mode": "QueueLength", "value": str(1 + i % 50)}
        configs.append(scaler.parse("rabbitmq", TriggerParams(metadata=metadata)))
    return configs


async def poll(scaler: RabbitMQScaler, clients: dict[Any, ScalerClient[RabbitMQConfig]],
               groups: dict[Any, list[RabbitMQConfig]]) -> list[float | ScalerError]:
    for key, group in groups.items():
        if key not in clients:
            clients[key] = scaler.open_client(group[0])
    results = await asyncio.gather(*(clients[key].read(group) for key, group in groups.items()))
    return [value for values in results for value in values]  # in group order, like `want` below


async def measure(label: str, server: RabbitMQServer, host_of: Any, triggers: int, reads: int,
                  expected: dict[tuple[str, str], int]) -> None:
    requests = RequestLog()
    scaler = RabbitMQScaler(http_request_hooks=[requests])
    started = time.perf_counter()
    configs = configs_for(scaler, host_of, triggers)
    parse_ms = (time.perf_counter() - started) * 1000
    groups: dict[Any, list[RabbitMQConfig]] = defaultdict(list)
    for config in configs:
        groups[scaler.server_key(config)].append(config)
    want = [float(expected[(c.vhost, c.queue_name)]) for group in groups.values() for c in group]
    clients: dict[Any, ScalerClient[RabbitMQConfig]] = {}
    cpu, wall, per_poll = [], [], []
    for _ in range(reads + 1):  # the first read opens connections; it is reported separately
        before_requests = len(requests.paths)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        values = await poll(scaler, clients, groups)
        cpu.append((time.process_time() - cpu0) * 1000)
        wall.append((time.perf_counter() - wall0) * 1000)
        per_poll.append(len(requests.paths) - before_requests)
        wrong = sum(1 for got, expect in zip(values, want, strict=True) if got != expect)
        if wrong:
            raise SystemExit(f"{label}: {wrong} of {len(values)} values wrong, e.g. {values[:3]}")
    held = (server.wait_connections(CONNECTION_NAME, len(groups)) if label == "amqp"
            else tcp_connections_to(server.http_port))
    for client in clients.values():
        await client.aclose()
    distinct = len({(c.vhost, c.queue_name) for c in configs})
    calls = f"{statistics.median(per_poll[1:]):.0f} HTTP requests" if label == "http" else (
        f"{distinct} passive declares on {len(groups)} channels")
    print(f"{label:5} {triggers} triggers, {len(groups)} client(s): parse {parse_ms:.0f} ms; "
          f"connections held {held}; per poll {calls}")
    print(f"      first read (connect) cpu {cpu[0]:.1f} ms wall {wall[0]:.1f} ms; "
          f"then per read cpu median {statistics.median(cpu[1:]):.1f} ms "
          f"(min {min(cpu[1:]):.1f}), wall median {statistics.median(wall[1:]):.1f} ms (min {min(wall[1:]):.1f})")


async def main(triggers: int, reads: int) -> None:
    with RabbitMQServer() as server:
        expected = prepare(server)
        print(f"broker ready: {len(VHOSTS)} vhosts x {QUEUES_PER_VHOST} queues; {triggers} triggers, {reads} reads")
        await measure("http", server, server.http_url, triggers, reads, expected)
        await measure("amqp", server, server.amqp_url, triggers, reads, expected)


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:3]]
    asyncio.run(main(*(arguments + [10_000, 10][len(arguments):])))
