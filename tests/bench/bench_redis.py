"""Benchmark: 10,000 redis list triggers on one server, read as the metric store reads them.

Prints, per read of all triggers: connections the client holds (CLIENT LIST), round trips and
commands the server saw (INFO stats/commandstats deltas), CPU time of this process
(time.process_time) and wall time. Run: `.venv/bin/python tests/bench/bench_redis.py [N] [READS]`.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scalers._redis_connection import CLIENT_NAME  # noqa: E402 - after the path fix above
from scalers.base import TriggerParams  # noqa: E402
from scalers.redis import RedisListConfig, RedisScaler  # noqa: E402
from tests.harness.redis_servers import RedisServer, Traffic, clients  # noqa: E402


def fill(server: RedisServer, count: int) -> None:
    with server.admin().pipeline(transaction=False) as pipe:
        for index in range(count):
            pipe.rpush(f"bench:{index}", *range(index % 10 + 1))
        pipe.execute()


def parse_all(scaler: RedisScaler, server: RedisServer, count: int) -> list[RedisListConfig]:
    return [
        scaler.parse("redis", TriggerParams(metadata={"listName": f"bench:{index}", "address": server.address}))
        for index in range(count)
    ]


async def bench(count: int, reads: int) -> None:
    scaler = RedisScaler()
    with RedisServer() as server:
        fill(server, count)
        started = time.perf_counter()
        configs = parse_all(scaler, server, count)
        print(f"parse {count} configs: {time.perf_counter() - started:.3f} s wall")
        print(f"distinct server keys: {len({scaler.server_key(c) for c in configs})}")
        client = scaler.open_client(configs[0])
        await client.read(configs)  # connect and load the script
        traffic = Traffic(server)
        cpu, wall, trips, commands = [], [], [], []
        for _ in range(reads):
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            values = await client.read(configs)
            cpu.append(time.process_time() - cpu_start)
            wall.append(time.perf_counter() - wall_start)
            count_ = traffic.since()
            trips.append(count_.reads)
            commands.append(count_.commands.get("evalsha", 0))
        assert values == [float(index % 10 + 1) for index in range(count)]
        held = len(clients(server, CLIENT_NAME))
        await client.aclose()
        print(f"reads of all {count} triggers: {reads}")
        print(f"connections held by the client: {held}")
        print(f"server socket reads per read (one pipeline): {statistics.median(trips):.0f} (max {max(trips)})")
        print(f"EVALSHA calls per read: {statistics.median(commands):.0f}")
        print(f"CPU per read: median {statistics.median(cpu) * 1000:.1f} ms, max {max(cpu) * 1000:.1f} ms")
        print(f"wall per read: median {statistics.median(wall) * 1000:.1f} ms, max {max(wall) * 1000:.1f} ms")
        print(f"connections after aclose: {len(clients(server, CLIENT_NAME))}")


if __name__ == "__main__":
    arguments = [int(value) for value in sys.argv[1:3]]
    asyncio.run(bench(*(arguments + [10_000, 10][len(arguments):])))
