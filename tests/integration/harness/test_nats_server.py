"""The NATS harness servers: JetStream state set up with nats-py shows on the monitoring /jsz."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import nats.errors
import pytest

from tests.harness.nats_server import ACCOUNT, PASSWORD, JetStreamAdmin, NatsCluster, NatsServer


async def consumer_state(node: NatsServer, stream: str, durable: str) -> dict[str, Any] | None:
    """The consumer as `node`'s /jsz reports it (the query KEDA's scaler sends), if listed."""
    document = await node.jsz(acc=ACCOUNT, consumers="true", config="true")
    for account in document.get("account_details", []):
        for listed in account.get("stream_detail", []):
            if listed["name"] != stream:
                continue
            for consumer in listed.get("consumer_detail", []):
                if consumer["name"] == durable:
                    found: dict[str, Any] = consumer
                    return found
    return None


async def fill(admin: JetStreamAdmin, stream: str, durable: str, *, replicas: int) -> None:
    """10 messages; 3 fetched and acked, 2 fetched and left unacked: 5 pending, 2 ack-pending."""
    await admin.create_stream(stream, [f"{stream}.>"], replicas=replicas)
    await admin.create_pull_consumer(stream, durable)
    await admin.publish(f"{stream}.new", 10)
    assert await admin.consume(stream, durable, 3) == 3
    assert await admin.consume(stream, durable, 2, ack=False) == 2


def counts(consumer: dict[str, Any] | None) -> tuple[int, int, int] | None:
    if consumer is None:
        return None
    return consumer["num_pending"], consumer["num_ack_pending"], consumer["ack_floor"]["stream_seq"]


async def test_a_server_reports_consumer_state_on_its_monitoring_endpoint(nats_server: NatsServer) -> None:
    stream, durable = f"s{uuid.uuid4().hex[:8]}", "workers"
    await fill(nats_server.admin(), stream, durable, replicas=1)
    assert counts(await consumer_state(nats_server, stream, durable)) == (5, 2, 3)


async def test_a_wrong_password_is_refused(nats_server: NatsServer) -> None:
    wrong = "not-" + PASSWORD
    with pytest.raises(nats.errors.Error, match="Authorization Violation") as refused:
        await nats_server.admin().connect(password=wrong)
    assert wrong not in str(refused.value)


async def test_a_cluster_leader_reports_a_replicated_consumer(nats_cluster: NatsCluster) -> None:
    """A stream with three replicas: every node lists the consumer and names one leader, whose
    /jsz has the counts (a follower's may lag, which is why KEDA asks every node)."""
    stream, durable = f"s{uuid.uuid4().hex[:8]}", "workers"
    await fill(nats_cluster.admin(), stream, durable, replicas=3)
    views = {node.name: await consumer_state(node, stream, durable) for node in nats_cluster.nodes}
    leaders = {view["cluster"]["leader"] for view in views.values() if view is not None}
    assert None not in views.values() and len(leaders) == 1, views
    leader = next(node for node in nats_cluster.nodes if node.name in leaders)
    state = await consumer_state(leader, stream, durable)
    deadline = time.monotonic() + 15
    while counts(state) != (5, 2, 3):
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.2)
        state = await consumer_state(leader, stream, durable)
    assert state is not None
    followers = {replica["name"] for replica in state["cluster"]["replicas"]}
    assert followers == set(views) - leaders
