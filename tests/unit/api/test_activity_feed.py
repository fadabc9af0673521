"""The loopback activity listener: documents, the long poll, one object, replica reports.

A real catalog (with the real cron scaler) and metric store behind the ASGI app, over httpx's
in-process transport.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from adapter.api.activity_feed import ENCODE_SLICE, ActivityFeed, build_internal_app
from adapter.catalog.catalog import Catalog
from adapter.keda.activity import (
    ObjectActivity,
    ResourceMetric,
    TargetState,
    TriggerActivity,
    decode_document,
    encode_document,
    encode_object,
)
from adapter.store.store import MetricStore
from scalers.registry import REGISTRY

ALWAYS = {"timezone": "UTC", "start": "0 0 1 1 *", "end": "59 23 31 12 *", "desiredReplicas": "4"}


def scaled_object(name: str, triggers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": 2},
            "spec": {"scaleTargetRef": {"name": name}, "triggers": triggers, **spec}}


@pytest.fixture
async def world() -> AsyncIterator[tuple[Catalog, MetricStore, httpx.AsyncClient]]:
    catalog, store = Catalog(REGISTRY), MetricStore()
    store.follow(catalog)
    feed = ActivityFeed(catalog, store)
    catalog.replace_all([(o, "test") for o in (
        scaled_object("good", [{"type": "cron", "metadata": ALWAYS}]),
        scaled_object("mixed", [{"type": "cron", "metadata": ALWAYS}, {"type": "nosuch", "metadata": {}}]),
        scaled_object("bad", [{"type": "cron", "metadata": ALWAYS}], minReplicaCount=3, maxReplicaCount=2),
    )])
    transport = httpx.ASGITransport(app=build_internal_app(feed))
    async with httpx.AsyncClient(transport=transport, base_url="http://internal") as client:
        yield catalog, store, client
    await store.aclose()


def by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["name"]: o for o in document["scaledObjects"]}


async def test_document_has_every_object_trigger_and_problem(world: Any) -> None:
    _, store, client = world
    before = await client.get("/activity")
    objects = by_name(before.json())
    assert objects["good"]["uid"] == "uid-good" and objects["good"]["generation"] == 2
    trigger = objects["good"]["triggers"][0]
    assert (trigger["metricType"], trigger["target"], trigger["resolved"], trigger["readAt"]) == (
        "AverageValue", 1.0, True, None)
    unknown = objects["mixed"]["triggers"][1]
    assert not unknown["resolved"] and 'unknown trigger type "nosuch"' in unknown["error"]
    assert "minReplicaCount (3) must be less than or equal to maxReplicaCount (2)" in objects["bad"]["error"]
    await store.refresh(store.entries())
    after = await client.get("/activity")
    assert after.json()["generation"] != before.json()["generation"] and after.json()["full"]
    trigger = by_name(after.json())["good"]["triggers"][0]
    assert (trigger["value"], trigger["active"], trigger["consecutiveFailures"]) == (4.0, True, 0)
    assert trigger["readAt"].endswith("Z")


async def test_long_poll_answers_on_change_or_304_after_the_wait(world: Any) -> None:
    catalog, _, client = world
    generation = (await client.get("/activity")).json()["generation"]
    started = time.monotonic()
    unchanged = await client.get("/activity", params={"wait": 0.3, "since": generation})
    assert unchanged.status_code == 304 and time.monotonic() - started >= 0.3
    waiting = asyncio.create_task(client.get("/activity", params={"wait": 10, "since": generation}))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    started = time.monotonic()
    catalog.apply(scaled_object("new", [{"type": "cron", "metadata": ALWAYS}]))
    changed = await waiting
    assert changed.status_code == 200 and time.monotonic() - started < 1
    delta = changed.json()
    assert list(by_name(delta)) == ["new"] and not delta["full"] and delta["generation"] != generation


async def test_deltas_carry_changes_and_deletions_only(world: Any) -> None:
    catalog, store, client = world
    feed_generation = (await client.get("/activity")).json()["generation"]
    catalog.apply(scaled_object("good", [{"type": "cron", "metadata": ALWAYS}]), deleted=True)
    delta = (await client.get("/activity", params={"since": feed_generation})).json()
    assert not delta["full"] and delta["scaledObjects"] == [] and delta["deleted"] == [
        {"namespace": "ns", "name": "good"}]
    await store.refresh(store.entries())  # only "mixed" has a readable trigger left
    second = (await client.get("/activity", params={"since": delta["generation"]})).json()
    assert list(by_name(second)) == ["mixed"] and second["deleted"] == []
    other = (await client.get("/activity", params={"since": "another-process-7"})).json()
    assert other["full"] and set(by_name(other)) == {"mixed", "bad"}


async def test_one_object_and_unknown_ones(world: Any) -> None:
    _, _, client = world
    found = await client.get("/activity/ns/good")
    assert found.status_code == 200 and found.json()["name"] == "good"
    assert (await client.get("/activity/ns/bad")).json()["error"]
    assert (await client.get("/activity/ns/nothing")).status_code == 404


async def test_replica_reports_reach_the_store(world: Any) -> None:
    _, store, client = world
    answer = await client.post("/replicas", json={"items": [{"namespace": "ns", "name": "good", "replicas": 3,
                                                              "readyReplicas": 2}]})
    assert answer.status_code == 204
    assert store.target(("ns", "good")) == TargetState("ns", "good", replicas=3, ready=2)
    at_zero = {"complete": True, "items": [{"namespace": "ns", "name": "good", "replicas": None, "atZero": True}]}
    assert (await client.post("/replicas", json=at_zero)).status_code == 204
    assert store.target(("ns", "good")) == TargetState("ns", "good", at_zero=True) and store.at_zero(("ns", "good"))
    assert (await client.post("/replicas", json={"complete": True, "items": []})).status_code == 204
    assert not store.at_zero(("ns", "good"))  # left out of a complete report: scaled up
    assert (await client.post("/replicas", json={"items": [{"name": "x"}]})).status_code == 400
    negative = {"items": [{"namespace": "ns", "name": "good", "readyReplicas": -1}]}
    assert (await client.post("/replicas", json=negative)).status_code == 400


def test_cpu_triggers_travel_as_resource_metrics_and_keep_keda_activity() -> None:
    """Only cpu/memory: always active and known at once; mixed: the other triggers decide."""
    cpu = TriggerActivity(index=0, type="cpu", metric_name="s0-cpu", metric_type="Utilization", target=50.0,
                          activation=0.0, resolved=True, value=None, active=False, error=None, failures=0,
                          fallback=False, resource=ResourceMetric("cpu", "Utilization", "50", "app"))
    cron = TriggerActivity(index=1, type="cron", metric_name="s1-cron", metric_type="AverageValue", target=1.0,
                           activation=0.0, resolved=True, value=0.0, active=False, error=None, failures=0,
                           fallback=False, read_at="2026-01-01T00:00:00.000000Z")
    only = ObjectActivity("ns", "only", "u", 1, None, (cpu,))
    mixed = ObjectActivity("ns", "mixed", "u", 1, None, (cpu, cron))
    assert only.active and only.known
    assert not mixed.active and mixed.known
    document = decode_document(encode_document("g", True, [encode_object(only), encode_object(mixed)]))
    decoded = {(o.namespace, o.name): o for o in document.objects}
    assert decoded[("ns", "only")].triggers[0].resource == ResourceMetric("cpu", "Utilization", "50", "app")
    assert decoded[("ns", "mixed")] == mixed


async def test_encoding_many_objects_gives_way_to_the_event_loop() -> None:
    """At start-up every object is new: encoding them all in one go held the loop for seconds,
    and scaler reads in flight outlived their timeouts. A reader arriving meanwhile waits for
    the settle under way and sees every object."""
    catalog, store = Catalog(REGISTRY), MetricStore()
    store.follow(catalog)
    feed = ActivityFeed(catalog, store)
    objects = 4 * ENCODE_SLICE + 1
    catalog.replace_all([(scaled_object(f"so-{i}", [{"type": "cron", "metadata": ALWAYS}]), "t")
                         for i in range(objects)])
    turns = 0
    first_encoded = asyncio.Event()

    async def other_task() -> None:
        nonlocal turns
        while feed.encodings < objects:
            turns += feed.encodings > 0
            if feed.encodings:
                first_encoded.set()
            await asyncio.sleep(0)

    other = asyncio.create_task(other_task())
    settling = asyncio.create_task(feed.settled())
    await first_encoded.wait()
    late_reader = json.loads(await feed.document())  # arrives mid-settle
    generation = await settling
    await other
    await store.aclose()

    assert turns >= 4  # the other task ran between slices, not only before and after
    assert late_reader["generation"] == generation and len(late_reader["scaledObjects"]) == objects
