"""The controller's view of activity, read from the adapter's real listener in-process.

A catalog with one ScaledObject whose trigger reads a value the test sets; the client long
polls `build_internal_app` through httpx's ASGI transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from adapter.api.activity_feed import ActivityFeed, build_internal_app
from adapter.catalog.catalog import Catalog
from adapter.controller.activity_client import ActivityClient
from adapter.keda.activity import Key, decode_document
from adapter.store.store import MetricStore
from scalers import MetricSpec, Scaler, ScalerClient, ScalerError, ScalerRegistry, TriggerParams, param, parse_params


@dataclass(frozen=True, kw_only=True)
class GaugeConfig:
    key: str = param("key", required=True)


class Gauges(ScalerClient[GaugeConfig]):
    def __init__(self, values: dict[str, float | ScalerError]) -> None:
        self.values = values

    async def read(self, configs: Sequence[GaugeConfig]) -> list[float | ScalerError]:
        return [self.values[c.key] for c in configs]


class GaugeScaler(Scaler[GaugeConfig]):
    types = ("gauge",)

    def __init__(self, values: dict[str, float | ScalerError]) -> None:
        self.values = values

    def parse(self, trigger_type: str, params: TriggerParams) -> GaugeConfig:
        return parse_params(GaugeConfig, params)

    def metric(self, config: GaugeConfig) -> MetricSpec:
        return MetricSpec(name=config.key, target=5, activation=2)

    def server_key(self, config: GaugeConfig) -> str:
        return "one"

    def open_client(self, config: GaugeConfig) -> Gauges:
        return Gauges(self.values)


@dataclass
class World:
    values: dict[str, float | ScalerError]
    catalog: Catalog
    store: MetricStore
    client: ActivityClient
    changes: list[set[Key]]
    wall: list[float]
    transport: httpx.ASGITransport


@pytest.fixture
async def world() -> AsyncIterator[World]:
    values: dict[str, float | ScalerError] = {"q": 0}
    catalog, store = Catalog(ScalerRegistry(entries=(), scalers=[GaugeScaler(values)])), MetricStore()
    store.follow(catalog)
    feed = ActivityFeed(catalog, store)
    catalog.replace_all([({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                           "metadata": {"name": "so", "namespace": "ns", "uid": "u", "generation": 1},
                           "spec": {"scaleTargetRef": {"name": "w"},
                                    "triggers": [{"type": "gauge", "metadata": {"key": "q"}}]}}, "t")])
    changes: list[set[Key]] = []
    wall = [1000.0]
    transport = httpx.ASGITransport(app=build_internal_app(feed))
    client = ActivityClient("http://adapter", changes.append, wait=5, wall=lambda: wall[0], transport=transport)
    yield World(values, catalog, store, client, changes, wall, transport)
    await client.aclose()
    await store.aclose()


async def read(world: World, value: Any) -> None:
    world.values["q"] = value
    await world.store.refresh(world.store.entries())


async def test_unread_objects_are_not_known_then_values_arrive(world: World) -> None:
    await world.client.poll_once()
    found = world.client.get("ns", "so")
    assert found is not None and not found.known and world.changes == [{("ns", "so")}]
    await read(world, 3)
    await world.client.poll_once()
    found = world.client.get("ns", "so")
    assert found is not None and found.known and found.active and found.triggers[0].value == 3.0
    assert world.client.last_active[("ns", "so")] == 1000.0


async def test_long_poll_wakes_on_a_change_and_marks_the_end_of_activity(world: World) -> None:
    await read(world, 3)
    await world.client.poll_once()
    waiting = asyncio.create_task(world.client.poll_once())
    await asyncio.sleep(0.1)
    assert not waiting.done()  # nothing changed: the adapter holds the request
    world.wall[0] = 1030.0
    await read(world, 1)  # not above activation 2: inactive from now on
    await asyncio.wait_for(waiting, 2)
    found = world.client.get("ns", "so")
    assert found is not None and not found.active
    assert world.client.last_active[("ns", "so")] == 1030.0  # active until this answer


async def test_unchanged_reads_do_not_wake_anyone_and_errors_count(world: World) -> None:
    await read(world, 3)
    await world.client.poll_once()
    before = len(world.changes)
    await read(world, 3)
    assert world.client.generation is not None
    async with httpx.AsyncClient(transport=world.transport, base_url="http://adapter") as plain:
        answer = await plain.get("/activity", params={"since": world.client.generation, "wait": "0.1"})
    assert answer.status_code == 304 and len(world.changes) == before
    await read(world, ScalerError("connection refused"))
    await world.client.poll_once()
    found = world.client.get("ns", "so")
    assert found is not None and found.failing and not found.active and found.triggers[0].failures == 1
    assert world.client.fresh


async def test_a_restarted_adapter_sends_everything_and_what_it_lacks_is_gone(world: World) -> None:
    await read(world, 3)
    await world.client.poll_once()
    assert world.client.get("ns", "so") is not None and world.client.generation is not None
    restarted = ActivityFeed(Catalog(ScalerRegistry(entries=(), scalers=[GaugeScaler(world.values)])), MetricStore())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_internal_app(restarted)),
                                 base_url="http://adapter") as plain:
        answer = await plain.get("/activity", params={"since": world.client.generation})
    document = decode_document(answer.content)
    assert document.full and document.objects == ()  # another process: not a delta from our generation
    world.client.update(document)
    assert world.client.get("ns", "so") is None and world.changes[-1] == {("ns", "so")}
    assert ("ns", "so") not in world.client.last_active and world.client.full_answers == 2
