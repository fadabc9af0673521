"""Start-up benchmark: how long each harness server takes to be ready for a test, and to stop.

A test session pays a server's start once, on first use; CI pays it on every run, so it is a
figure to keep small. Each server is started and stopped `ROUNDS` times here, already installed
(a cold first install, an apt-get or npm download, comes on top and happens once per machine).
Start ends when the harness has the server ready: listening, answering its own client, and its
users, databases or credentials set up.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from tests.harness.aws_standin import AwsStandIn
from tests.harness.azurite_server import AzuriteServer
from tests.harness.mariadb_server import MariaDBServer
from tests.harness.nats_server import NatsCluster, NatsServer
from tests.harness.postgres_server import PostgresServer
from tests.harness.tls_material import TLSMaterial

ROUNDS = 3
TLS = TLSMaterial.generate("startup-bench-ca")
SERVERS: dict[str, Callable[[], AbstractContextManager[Any]]] = {
    "PostgreSQL 15 (initdb + start)": lambda: PostgresServer(TLS),
    "MariaDB 10.11 (install-db + start)": lambda: MariaDBServer(TLS),
    "NATS JetStream, one server": NatsServer,
    "NATS JetStream, 3-node cluster": NatsCluster,
    "Azurite (blob, queue, table)": AzuriteServer,
    "AWS stand-in (moto server + IAM)": AwsStandIn,
}


def timed(factory: Callable[[], AbstractContextManager[Any]]) -> tuple[float, float]:
    server = factory()
    started = time.perf_counter()
    server.__enter__()
    ready = time.perf_counter()
    server.__exit__(None, None, None)
    return ready - started, time.perf_counter() - ready


def run() -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, factory in SERVERS.items():
        rounds = [timed(factory) for _ in range(ROUNDS)]
        result[name] = {"start_s": round(statistics.median(r[0] for r in rounds), 2),
                        "stop_s": round(statistics.median(r[1] for r in rounds), 2)}
    return result


def print_report(result: dict[str, Any]) -> None:
    print(f"Harness servers, already installed: median of {ROUNDS} starts (ready for a test) and stops")
    for name, figures in result.items():
        print(f"  {name + ':':38} start {figures['start_s']:5.2f} s   stop {figures['stop_s']:5.2f} s")
