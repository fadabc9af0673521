"""Scaler benchmark: 1,000 ScaledObjects per scaler on one server, against one client per object.

For each of postgresql, mysql, external, nats-jetstream, azure-queue, azure-blob,
azure-eventhub and aws-sqs-queue, 1,000 ScaledObjects (over 10 queries, queues, streams,
containers or consumer groups; external: one ScaledObjectRef each) go through the adapter's path
(catalog -> metric store -> batched reads) against a real server, or a stand-in where the
service is a cloud's. Printed per scaler, median of `POLLS` polls: connections the server holds
for us, requests per poll (as the server or the client's request hook counts them), and CPU
time of this process per poll. The baseline, in the same run, is one client per ScaledObject
(KEDA's shape, except that KEDA pools gRPC channels per address) for a sample of
`BASELINE_SAMPLE` objects, per object.

CPU is this process's: the external scaler runs in a child process, so it is not counted; the
Event Hubs stand-in runs in this process, so its own work is (its figure is an upper bound).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from adapter.store.store import MetricStore
from scalers.aws_sqs import AwsSqsScaler
from scalers.azure_eventhub.eventhub_scaler import AzureEventHubScaler
from scalers.azure_storage.blob import AzureBlobScaler
from scalers.azure_storage.queue import AzureQueueScaler
from scalers.base import Scaler
from scalers.external.grpc_scaler import ExternalScaler
from scalers.nats_jetstream import NatsJetStreamScaler
from scalers.sql.mysql import MySQLScaler
from scalers.sql.postgresql import PostgreSQLScaler
from tests.harness.rabbitmq_server import tcp_connections_to
from tests.integration.triggers import catalog_and_store, scaled_object, secret, trigger_auth

OBJECTS, DISTINCT, POLLS, BASELINE_SAMPLE = 1000, 10, 5, 50

Count = Callable[[], Awaitable[int]]


@dataclass
class Case:
    name: str
    scaler: Scaler[Any]
    objects: list[dict[str, Any]]
    connections: Count  # connections the server holds for this process now
    requests: Count  # a counter of requests served (or sent), read before and after a poll
    baseline_sample: int = BASELINE_SAMPLE


@dataclass
class Figures:
    connections: int
    requests_per_poll: float
    cpu_ms_per_poll: float
    baseline_connections_per_object: float
    baseline_requests_per_object: float
    baseline_cpu_ms_per_object: float


class Counter:
    """A request hook that counts."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *_: Any) -> None:
        self.count += 1

    async def read(self) -> int:
        return self.count


async def measure(case: Case) -> Figures:
    idle = await case.connections()  # held by the harness itself (its readiness probes), not by a scaler
    async with catalog_and_store([case.scaler], case.objects, timeout=60) as (catalog, store):
        await _wait_resolved(catalog, store)
        entries = list(store.entries())
        await store.refresh(entries)  # connect, fill pools
        cpu, requests = [], []
        for _ in range(POLLS):
            before, started = await case.requests(), time.process_time()
            await store.refresh(entries)
            cpu.append(time.process_time() - started)
            requests.append(await case.requests() - before)
        failed = [e.error for e in entries if e.error]
        assert not failed, f"{case.name}: {failed[:2]}"
        connections = await case.connections() - idle
        sample = [e.trigger.config for e in entries[:case.baseline_sample]]
    baseline = await _baseline(case, sample, idle)  # after the store closed its clients
    return Figures(connections, statistics.median(requests), round(statistics.median(cpu) * 1000, 1), *baseline)


async def _wait_resolved(catalog: Any, store: MetricStore) -> None:
    """Until every object's trigger resolved (external triggers ask for their metric spec first)."""
    deadline = time.monotonic() + 120
    while len(list(store.entries())) < OBJECTS:
        assert time.monotonic() < deadline, [p.message for p in catalog.problems][:2]
        await asyncio.sleep(0.05)


async def _baseline(case: Case, configs: list[Any], idle: int) -> tuple[float, float, float]:
    clients = [case.scaler.open_client(c) for c in configs]
    try:
        await asyncio.gather(*(client.read([c]) for client, c in zip(clients, configs, strict=True)))
        connections = await case.connections() - idle
        before, started = await case.requests(), time.process_time()
        await asyncio.gather(*(client.read([c]) for client, c in zip(clients, configs, strict=True)))
        cpu = time.process_time() - started
        requests = await case.requests() - before
    finally:
        await asyncio.gather(*(client.aclose() for client in clients), return_exceptions=True)
    size = len(configs)
    return round(connections / size, 2), round(requests / size, 2), round(cpu * 1000 / size, 3)


def spread(name: str, trigger_type: str, metadata: Callable[[int], dict[str, str]], auth: str | None = None
           ) -> list[dict[str, Any]]:
    return [scaled_object(f"{name}-{i}", trigger_type, metadata(i), auth) for i in range(OBJECTS)]


# -- the cases -----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def postgres_case() -> AsyncIterator[Case]:
    from tests.harness.postgres_server import USER, PostgresServer
    from tests.harness.tls_material import TLSMaterial

    with PostgresServer(TLSMaterial.generate()) as server:
        await server.execute("CREATE TABLE jobs (kind int)")
        await server.execute("INSERT INTO jobs SELECT i % 10 FROM generate_series(1, 1000) i")
        await server.execute(f"ALTER TABLE jobs OWNER TO {USER}")
        await server.execute("CREATE SEQUENCE bench_calls")
        await server.execute(f"ALTER SEQUENCE bench_calls OWNER TO {USER}")

        async def connections() -> int:
            rows = await server.fetch("SELECT count(*) FROM pg_stat_activity WHERE usename = $1", USER)
            return int(rows[0][0])

        async def requests() -> int:  # every benchmark query takes one number from this sequence
            return int((await server.fetch("SELECT last_value FROM bench_calls"))[0][0])

        objects = [secret("pg", connection=server.dsn()), trigger_auth("pg", "pg", "connection")]
        query = "WITH tick AS (SELECT nextval('bench_calls')) SELECT count(*) FROM jobs, tick WHERE kind = {}"
        objects += spread("pg", "postgresql", lambda i: {"query": query.format(i % 10), "targetQueryValue": "5"}, "pg")
        yield Case("postgresql", PostgreSQLScaler(), objects, connections, requests)


@contextlib.asynccontextmanager
async def mysql_case() -> AsyncIterator[Case]:
    from tests.harness.mariadb_server import USER, MariaDBServer
    from tests.harness.tls_material import TLSMaterial

    with MariaDBServer(TLSMaterial.generate()) as server:
        await server.execute("CREATE TABLE jobs (kind int)")
        await server.execute("INSERT INTO jobs VALUES " + ",".join(f"({i % 10})" for i in range(1000)))

        async def connections() -> int:
            rows = await server.fetch("SELECT count(*) FROM information_schema.processlist WHERE user = %s", USER)
            return int(rows[0][0])

        async def requests() -> int:
            rows = await server.fetch("SHOW GLOBAL STATUS LIKE 'Com_select'")
            return int(rows[0][1])

        objects = [secret("my", connectionString=server.dsn()), trigger_auth("my", "my", "connectionString")]
        objects += spread("my", "mysql", lambda i: {"query": f"SELECT count(*) FROM jobs WHERE kind = {i % 10}",
                                                    "queryValue": "5"}, "my")
        yield Case("mysql", MySQLScaler(), objects, connections, requests)


@contextlib.asynccontextmanager
async def external_case() -> AsyncIterator[Case]:
    with ChildScaler() as child:
        objects = spread("ext", "external", lambda i: {"scalerAddress": child.address, "queue": str(i % 10)})

        async def connections() -> int:
            return tcp_connections_to(child.port)

        async def requests() -> int:
            return await asyncio.to_thread(child.calls)

        yield Case("external", ExternalScaler(timeout=30), objects, connections, requests)


@contextlib.asynccontextmanager
async def nats_case() -> AsyncIterator[Case]:
    import httpx

    from tests.harness.nats_server import ACCOUNT, NatsServer

    with NatsServer() as server:
        admin = server.admin()
        for s in range(DISTINCT):
            await admin.create_stream(f"bench{s}")
            await admin.create_pull_consumer(f"bench{s}", "workers")
            await admin.publish(f"bench{s}", s)
        # no kept-alive connection of its own, so the connection count is the scaler's alone
        http = httpx.AsyncClient(base_url=server.monitoring_url, limits=httpx.Limits(max_keepalive_connections=0))

        async def requests() -> int:  # the server's own count of /jsz requests
            return int((await http.get("/varz")).json()["http_req_stats"].get("/jsz", 0))

        async def connections() -> int:
            return tcp_connections_to(server.monitoring_port)

        objects = spread("nats", "nats-jetstream", lambda i: {
            "natsServerMonitoringEndpoint": server.monitoring_endpoint, "account": ACCOUNT,
            "stream": f"bench{i % 10}", "consumer": "workers"})
        try:
            yield Case("nats-jetstream", NatsJetStreamScaler(timeout=30), objects, connections, requests)
        finally:
            await http.aclose()


@contextlib.asynccontextmanager
async def azure_cases() -> AsyncIterator[list[Case]]:
    from tests.harness.azurite_server import AzuriteServer
    from tests.harness.eventhubs_standin import EventHubsStandIn

    with AzuriteServer() as azurite:
        for q in range(DISTINCT):
            await azurite.create_queue(f"bench{q}")
            await azurite.put_messages(f"bench{q}", q)
        await azurite.create_container("bench")
        await azurite.upload_blobs("bench", {f"in{b % 10}/{b}.json": {} for b in range(100)})
        async with EventHubsStandIn() as hub:
            hub.add_hub("bench", 4)
            for p in range(4):
                hub.set_partition("bench", str(p), last=100 + p)
            queue_hook, blob_hook, checkpoint_hook = Counter(), Counter(), Counter()
            objects = [secret("az", connection=azurite.connection_string()), trigger_auth("az", "az", "connection"),
                       secret("eh", connection=hub.connection_string("bench"),
                              storageConnection=azurite.connection_string()),
                       trigger_auth("eh", "eh", "connection", "storageConnection")]

            async def azurite_connections() -> int:
                return tcp_connections_to(azurite.queue_port) + tcp_connections_to(azurite.blob_port)

            async def hub_requests() -> int:  # management requests, and checkpoint blobs read
                return hub.requests["eventhub"] + hub.requests["partition"] + checkpoint_hook.count

            async def hub_connections() -> int:
                return tcp_connections_to(hub.port) + tcp_connections_to(azurite.blob_port)

            yield [
                Case("azure-queue", AzureQueueScaler(timeout=30, request_hooks=[queue_hook]),
                     objects + spread("q", "azure-queue", lambda i: {"queueName": f"bench{i % 10}"}, "az"),
                     azurite_connections, queue_hook.read),
                Case("azure-blob", AzureBlobScaler(timeout=30, request_hooks=[blob_hook]),
                     objects + spread("b", "azure-blob", lambda i: {"blobContainerName": "bench",
                                                                    "blobPrefix": f"in{i % 10}"}, "az"),
                     azurite_connections, blob_hook.read),
                Case("azure-eventhub", AzureEventHubScaler(timeout=30, request_hooks=[checkpoint_hook]),
                     objects + spread("e", "azure-eventhub", lambda i: {"consumerGroup": f"group{i % 10}",
                                                                        "blobContainer": "checkpoints"}, "eh"),
                     hub_connections, hub_requests, baseline_sample=10),  # 5 AMQP connections per object
            ]


@contextlib.asynccontextmanager
async def sqs_case() -> AsyncIterator[Case]:
    from tests.harness.aws_standin import REGION, AwsStandIn

    with AwsStandIn() as standin:
        urls = [await standin.create_queue(f"bench{q}-{uuid.uuid4().hex[:4]}") for q in range(DISTINCT)]
        key = standin.credentials
        hook = Counter()
        objects = [secret("aws", awsAccessKeyID=key.access_key_id, awsSecretAccessKey=key.secret_access_key),
                   trigger_auth("aws", "aws", "awsAccessKeyID", "awsSecretAccessKey")]
        objects += spread("sqs", "aws-sqs-queue", lambda i: {"queueURL": urls[i % 10], "awsRegion": REGION,
                                                             "awsEndpoint": standin.endpoint_url}, "aws")

        async def connections() -> int:
            return tcp_connections_to(standin.port)

        yield Case("aws-sqs-queue", AwsSqsScaler(timeout=30, request_hooks=[hook]), objects, connections, hook.read)


# -- the external scaler in a child process ------------------------------------------------------


def _serve_child(port: int, pipe: Any) -> None:
    from tests.harness.external_scaler import ExternalScalerServer

    async def serve() -> None:
        server = ExternalScalerServer()
        server.port = port
        async with server:
            pipe.send("ready")
            while True:
                if await asyncio.to_thread(pipe.poll, 0.2):
                    if pipe.recv() == "stop":
                        return
                    pipe.send(sum(server.calls.values()))
    asyncio.run(serve())


class ChildScaler:
    """A gRPC external scaler in a child process; `calls()` is how many calls it has answered."""

    def __init__(self) -> None:
        from tests.harness.ports import free_port

        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        context = multiprocessing.get_context("spawn")
        self._pipe, child_end = context.Pipe()
        self._process = context.Process(target=_serve_child, args=(self.port, child_end), daemon=True)

    def __enter__(self) -> ChildScaler:
        self._process.start()
        if not self._pipe.poll(60) or self._pipe.recv() != "ready":
            raise RuntimeError("the external scaler process did not start")
        return self

    def calls(self) -> int:
        self._pipe.send("calls")
        return int(self._pipe.recv())

    def __exit__(self, *exc: object) -> None:
        self._pipe.send("stop")
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()


# -- running and printing -----------------------------------------------------------------------


async def _run_all() -> dict[str, Figures]:
    found: dict[str, Figures] = {}
    for single in (postgres_case, mysql_case, external_case, nats_case, sqs_case):
        async with single() as case:
            found[case.name] = await measure(case)
    async with azure_cases() as cases:
        for case in cases:
            found[case.name] = await measure(case)
    return found


def run() -> dict[str, Figures]:
    return asyncio.run(_run_all())


def print_report(result: dict[str, Figures]) -> None:
    print(f"Scalers: {OBJECTS} ScaledObjects per scaler on one server ({DISTINCT} distinct queries, queues, streams, "
          f"containers or consumer groups), median of {POLLS} polls; baseline: one client per object "
          f"({BASELINE_SAMPLE} objects; azure-eventhub 10)")
    print(f"  {'scaler':16} {'conns':>5} {'req/poll':>8} {'CPU ms/poll':>11} | "
          f"{'baseline per object: conns':>26} {'req':>6} {'CPU ms':>7} | {'CPU ratio':>9}")
    for name, f in result.items():
        ratio = (f.cpu_ms_per_poll / OBJECTS) / f.baseline_cpu_ms_per_object if f.baseline_cpu_ms_per_object else 0
        print(f"  {name:16} {f.connections:>5} {f.requests_per_poll:>8g} {f.cpu_ms_per_poll:>11} | "
              f"{f.baseline_connections_per_object:>26} {f.baseline_requests_per_object:>6} "
              f"{f.baseline_cpu_ms_per_object:>7} | {ratio:>9.3f}")
