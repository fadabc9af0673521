"""nats-jetstream against real NATS servers: one server and a 3-node JetStream cluster."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from scalers.base import ScalerError
from scalers.nats_jetstream import NatsJetStreamConfig, NatsJetStreamScaler
from scalers.params import TriggerParams
from tests.harness.nats_server import ACCOUNT, NatsCluster, NatsServer
from tests.integration.triggers import catalog_and_store, key, scaled_object

SCALER = NatsJetStreamScaler(timeout=3.0)


class RequestLog:
    """Every monitoring request a client sends (an httpx event hook)."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, request: httpx.Request) -> None:
        self.paths.append(f"{request.url.host}{request.url.path}")


def config(endpoint: str, stream: str, consumer: str, **metadata: str) -> NatsJetStreamConfig:
    return SCALER.parse("nats-jetstream", TriggerParams({"natsServerMonitoringEndpoint": endpoint,
                                                         "account": ACCOUNT, "stream": stream,
                                                         "consumer": consumer, **metadata}))


def logged(client: Any) -> RequestLog:
    log = RequestLog()
    client._http.event_hooks["request"].append(log)
    return log


def name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


async def test_lag_is_pending_plus_ack_pending_one_request_per_poll(nats_server: NatsServer) -> None:
    admin = nats_server.admin()
    streams = [name("orders"), name("audit")]
    for stream in streams:
        await admin.create_stream(stream)
        for consumer in ("workers", "auditors"):
            await admin.create_pull_consumer(stream, consumer)
    await admin.publish(streams[0], 9)
    await admin.publish(streams[1], 4)
    assert await admin.consume(streams[0], "workers", 3, ack=False) == 3  # 6 pending + 3 ack-pending
    assert await admin.consume(streams[0], "auditors", 5) == 5  # acked: 4 pending
    configs = [config(nats_server.monitoring_endpoint, s, c) for s in streams for c in ("workers", "auditors")] * 25
    client = SCALER.open_client(configs[0])
    log = logged(client)
    try:
        assert await client.read(configs) == [9.0, 4.0, 4.0, 4.0] * 25
    finally:
        await client.aclose()
    assert log.paths == [f"{nats_server.host}/jsz"]


async def test_missing_stream_consumer_and_account(nats_server: NatsServer) -> None:
    stream = name("present")
    await nats_server.admin().create_stream(stream)
    await nats_server.admin().create_pull_consumer(stream, "c")
    endpoint = nats_server.monitoring_endpoint
    other_account = SCALER.parse("nats-jetstream", TriggerParams({"natsServerMonitoringEndpoint": endpoint,
                                                                  "account": "NOPE", "stream": stream,
                                                                  "consumer": "c"}))
    client = SCALER.open_client(config(endpoint, stream, "c"))
    try:
        ok, no_stream, no_consumer, no_account = await client.read([
            config(endpoint, stream, "c"), config(endpoint, "nostream", "c"), config(endpoint, stream, "nobody"),
            other_account])
    finally:
        await client.aclose()
    assert ok == 0.0
    assert str(no_stream) == f'nats-jetstream http://{endpoint}: stream "nostream" not found in account "{ACCOUNT}"'
    assert str(no_consumer).endswith(f'consumer "nobody" not found in stream "{stream}"')
    assert isinstance(no_account, ScalerError) and 'not found in account "NOPE"' in str(no_account)


async def test_server_down_names_the_endpoint() -> None:
    down = config("127.0.0.1:1", "s", "c")
    client = SCALER.open_client(down)
    try:
        with pytest.raises(ScalerError, match=r"nats-jetstream http://127.0.0.1:1: http://127.0.0.1:1/jsz: Connect"):
            await client.read([down])
    finally:
        await client.aclose()


async def test_cluster_reads_each_consumer_from_its_leader(nats_cluster: NatsCluster) -> None:
    admin = nats_cluster.admin()
    stream = name("replicated")
    await admin.create_stream(stream, replicas=3)
    await admin.create_pull_consumer(stream, "workers")
    await admin.publish(stream, 7)
    assert await admin.consume(stream, "workers", 2, ack=False) == 2
    endpoint = nats_cluster.nodes[0].monitoring_endpoint
    configs = [config(endpoint, stream, "workers")] * 10
    client = SCALER.open_client(configs[0])
    log = logged(client)
    try:
        assert await client.read(configs) == [7.0] * 10
        discovery = list(log.paths)
        log.paths.clear()
        assert await client.read(configs) == [7.0] * 10
    finally:
        await client.aclose()
    hosts = sorted(node.host for node in nats_cluster.nodes)
    endpoint_host = nats_cluster.nodes[0].host
    assert sorted(p for p in discovery if p.endswith("/varz")) == sorted(f"{h}/varz" for h in [endpoint_host, *hosts])
    assert sorted(log.paths) == sorted(f"{h}/jsz" for h in [endpoint_host, *hosts])  # the endpoint, then each node


async def test_through_the_store(nats_server: NatsServer) -> None:
    stream = name("store")
    await nats_server.admin().create_stream(stream)
    await nats_server.admin().create_pull_consumer(stream, "c")
    await nats_server.admin().publish(stream, 3)
    base = {"natsServerMonitoringEndpoint": nats_server.monitoring_endpoint, "account": ACCOUNT, "stream": stream,
            "consumer": "c"}
    objects = [scaled_object(f"n{i}", "nats-jetstream", {**base, "activationLagThreshold": str(i)}) for i in range(5)]
    objects.append(scaled_object("gone", "nats-jetstream", {**base, "consumer": "gone"}))
    async with catalog_and_store([SCALER], objects) as (_, store):
        entries = [await store.read(key(f"n{i}", f"s0-nats-jetstream-{stream}")) for i in range(5)]
        assert [e.active for e in entries if e is not None] == [True, True, True, False, False]
        gone = await store.read(key("gone", f"s0-nats-jetstream-{stream}"))
        assert gone is not None and "ScaledObject default/gone trigger 0 (nats-jetstream)" in gone.body.decode()
        assert store.open_clients() == {"nats-jetstream": 1}
