"""Activation probes and activation-only pushes: what the store does with the controller's report
of targets at zero."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, ClassVar

from adapter.catalog.catalog import Catalog
from adapter.keda.activity import TargetsReport, TargetState
from adapter.store.store import PROBES_PER_SECOND, MetricStore
from scalers import ScalerRegistry
from tests.unit.store.test_store import CounterConfig, CounterScaler, PushClient, PushScaler, World, scaled_object


def at_zero(*names: str) -> TargetsReport:
    return TargetsReport(tuple(TargetState("default", name, at_zero=True) for name in names), complete=True)


def store_of(scaler: CounterScaler, *objects: dict[str, Any], now: list[float]) -> MetricStore:
    catalog = Catalog(ScalerRegistry(entries=(), scalers=[scaler]))
    store = MetricStore(clock=lambda: now[0], probe_interval=1.0)
    store.follow(catalog)
    catalog.replace_all([(o, "t") for o in objects])
    return store


async def probes_until(store: MetricStore, world: World, now: list[float], until: float) -> list[int]:
    """Step the clock by 0.25 s to `until`, reading what is due and probing once a second: the
    configs each read carried."""
    sizes, steps = [], 0
    while now[0] < until:
        now[0] += 0.25
        steps += 1
        before = len(world.reads)
        await store.refresh(store.due())
        if steps % 4 == 0:
            await store.probe_once()
            await asyncio.sleep(0.01)  # the reads the probe woke
        sizes += [len(keys) for _, keys in world.reads[before:]]
    return sizes


async def test_objects_at_zero_are_probed_in_one_read_per_server_and_only_news_is_read_again() -> None:
    now, world = [0.3], World(values={f"k{i}": 0 for i in range(50)})
    objects = [scaled_object(f"o{i}", "s1", f"k{i}", interval=30) for i in range(50)]
    store = store_of(CounterScaler(world), *objects, now=now)
    await store.refresh(store.due())  # the first reads, at 0.3 s
    store.set_targets(at_zero(*(f"o{i}" for i in range(40))))  # 10 objects are scaled up
    changed: list[set[tuple[str, str]]] = []
    store.subscribe(changed.append)
    assert await probes_until(store, world, now, 5.3) == [40] * 5  # one read per server per second
    assert changed == []  # nothing new: nothing recorded, rendered or told
    world.values["k7"] = 3  # work for an object at zero
    assert await probes_until(store, world, now, 6.3) == [40, 1]  # the probe, then that trigger's read
    assert changed == [{("default", "o7")}]
    entry = store.entries_of("default", "o7")[0]
    assert entry.value == 3 and entry.active
    store.set_targets(at_zero())  # all scaled up: back to pollingInterval
    assert await probes_until(store, world, now, 29.0) == []
    await store.aclose()


async def test_a_failed_probe_changes_nothing() -> None:
    now, world = [0.0], World(values={"a": 2})
    store = store_of(CounterScaler(world), scaled_object("x", "s1", "a", interval=30), now=now)
    await store.refresh(store.due())
    store.set_targets(at_zero("x"))
    world.fail = True
    await store.probe_once()
    entry = store.entries_of("default", "x")[0]
    assert entry.value == 2 and entry.error is None  # the next poll reports the failure
    await store.aclose()


async def test_sources_billed_per_call_are_not_probed() -> None:
    class Billed(CounterScaler):
        activation_probes: ClassVar[bool] = False

    now, world = [0.0], World(values={"a": 0})
    store = store_of(Billed(world), scaled_object("x", "s1", "a", interval=30), now=now)
    await store.refresh(store.due())
    store.set_targets(at_zero("x"))
    assert await probes_until(store, world, now, 10.0) == []
    await store.aclose()


async def test_a_report_without_zero_keeps_the_current_counts() -> None:
    now, world = [0.0], World(values={"a": 0})
    store = store_of(CounterScaler(world), scaled_object("x", "s1", "a"), now=now)
    store.set_targets(TargetsReport((TargetState("default", "x", replicas=4),), complete=True))
    state = store.target(("default", "x"))
    assert state is not None and state.replicas == 4 and not store.at_zero(("default", "x"))
    store.set_targets(TargetsReport((), complete=True))
    assert store.target(("default", "x")) is None


class ActivationPushClient(PushClient):
    activation_only: ClassVar[bool] = True


class ActivationPushScaler(PushScaler):
    def open_client(self, config: CounterConfig) -> PushClient:
        client = ActivationPushClient(self.world, config.server, self.watched)
        self.clients.append(client)
        return client


async def test_an_activation_only_client_watches_the_objects_at_zero() -> None:
    now, world = [0.0], World(values={"a": 0, "b": 0})
    scaler = ActivationPushScaler(world)
    store = store_of(scaler, scaled_object("x", "s1", "a"), scaled_object("y", "s1", "b"), now=now)
    await store.refresh(store.due())
    assert scaler.watched == [["a", "b"]]  # nothing reported yet: every object may be at zero
    store.set_targets(at_zero("y"))
    await asyncio.sleep(0)
    assert scaler.watched[-1] == ["b"]
    store.set_targets(at_zero("x", "y"))
    await asyncio.sleep(0)
    assert scaler.watched[-1] == ["a", "b"]
    watched: Sequence[list[str]] = list(scaler.watched)
    store.set_targets(at_zero("x", "y"))  # the same report again: nothing to tell
    await asyncio.sleep(0)
    assert scaler.watched == watched
    await store.aclose()


BILLED_PER_CALL = {"azure-servicebus", "azure-queue", "azure-blob", "azure-eventhub", "aws-sqs-queue"}


def test_only_sources_billed_per_call_opt_out_of_probes() -> None:
    registry = ScalerRegistry()
    opted_out = {kind for kind in registry.types if not getattr(registry.get(kind), "activation_probes", True)}
    assert opted_out == BILLED_PER_CALL


def test_probes_are_spaced_so_that_they_read_a_bounded_number_of_triggers_a_second() -> None:
    store = MetricStore(probe_interval=1.0)
    assert store.probe_period(0) == store.probe_period(PROBES_PER_SECOND) == 1.0
    assert store.probe_period(2 * PROBES_PER_SECOND) == 2.0  # 10,000 at zero: every 2 s
