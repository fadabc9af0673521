"""The metric store: single flight, batching per server, timeouts, client lifecycle, polling.

The scaler here is a real implementation of the interface, injected through the registry the
catalog is built with (no patching): it reads values from a dict and records every call.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from adapter.catalog.catalog import Catalog
from adapter.keda.activity import TargetsReport, TargetState
from adapter.store.store import READ_BATCH, MetricStore
from scalers import MetricSpec, Scaler, ScalerClient, ScalerError, ScalerRegistry, TriggerParams, param, parse_params


@dataclass(frozen=True, kw_only=True)
class CounterConfig:
    server: str = param("server", required=True)
    key: str = param("key", required=True)


@dataclass
class World:
    values: dict[str, float] = field(default_factory=dict)
    reads: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    delay: float = 0.0
    fail: bool = False
    opened: int = 0
    closed: int = 0


class CounterClient(ScalerClient[CounterConfig]):
    def __init__(self, world: World, server: str) -> None:
        self.world, self.server = world, server
        world.opened += 1

    async def read(self, configs: Sequence[CounterConfig]) -> list[float | ScalerError]:
        self.world.reads.append((self.server, tuple(c.key for c in configs)))
        await asyncio.sleep(self.world.delay)
        if self.world.fail:
            raise ScalerError(f"server {self.server} refused")
        return [self.world.values.get(c.key, ScalerError(f"no key {c.key}")) for c in configs]

    async def aclose(self) -> None:
        self.world.closed += 1


class CounterScaler(Scaler[CounterConfig]):
    types = ("counter",)

    def __init__(self, world: World) -> None:
        self.world = world

    def parse(self, trigger_type: str, params: TriggerParams) -> CounterConfig:
        return parse_params(CounterConfig, params)

    def metric(self, config: CounterConfig) -> MetricSpec:
        return MetricSpec(name=f"counter-{config.key}", target=5, activation=1)

    def server_key(self, config: CounterConfig) -> str:
        return config.server

    def open_client(self, config: CounterConfig) -> CounterClient:
        return CounterClient(self.world, config.server)


def scaled_object(name: str, server: str, key: str, cached: bool = False, interval: int = 30) -> dict[str, Any]:
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"name": name}, "pollingInterval": interval,
                     "triggers": [{"type": "counter", "useCachedMetrics": cached,
                                   "metadata": {"server": server, "key": key}}]}}


def setup(world: World, *objects: dict[str, Any], **store_args: Any) -> tuple[Catalog, MetricStore]:
    catalog = Catalog(ScalerRegistry(entries=(), scalers=[CounterScaler(world)]))
    store = MetricStore(**store_args)
    store.follow(catalog)
    catalog.replace_all([(o, "t") for o in objects])
    return catalog, store


def key(name: str, metric: str) -> tuple[str, str, str]:
    return ("default", name, f"s0-counter-{metric}")


async def test_concurrent_reads_share_one_call() -> None:
    world = World(values={"a": 3}, delay=0.05)
    _, store = setup(world, scaled_object("x", "s1", "a"))
    entries = await asyncio.gather(*(store.read(key("x", "a")) for _ in range(50)))
    assert world.reads == [("s1", ("a",))]
    assert all(e is entries[0] for e in entries)
    assert entries[0] is not None
    body = json.loads(entries[0].body)
    assert body["items"][0]["value"] == "3" and body["items"][0]["metricName"] == "s0-counter-a"


async def test_keys_of_one_server_are_batched_and_servers_are_separate() -> None:
    world = World(values={"a": 1, "b": 2, "c": 3})
    _, store = setup(world, scaled_object("x", "s1", "a"), scaled_object("y", "s1", "b"),
                     scaled_object("z", "s2", "c"))
    await asyncio.gather(store.read(key("x", "a")), store.read(key("y", "b")), store.read(key("z", "c")))
    assert sorted(world.reads) == [("s1", ("a", "b")), ("s2", ("c",))]
    assert world.opened == 2


async def test_fresh_values_are_reused_and_stale_ones_refreshed() -> None:
    now = [100.0]
    world = World(values={"a": 1})
    _, store = setup(world, scaled_object("x", "s1", "a"), scaled_object("c", "s1", "a", cached=True, interval=30),
                     max_age=2.0, clock=lambda: now[0])
    await store.read(key("x", "a"))
    await store.read(key("c", "a"))
    now[0] += 1.5
    await store.read(key("x", "a"))
    assert len(world.reads) == 2
    now[0] += 1.0  # 2.5 s: past max_age, within the cached trigger's 30 s polling interval
    await store.read(key("x", "a"))
    await store.read(key("c", "a"))
    assert [r[1] for r in world.reads] == [("a",), ("a",), ("a",)]


async def test_timeout_is_an_error_naming_the_trigger_and_the_client_is_rebuilt() -> None:
    world = World(values={"a": 1}, delay=0.5)
    _, store = setup(world, scaled_object("x", "s1", "a"), max_age=0, timeout=0.1)
    entry = await store.read(key("x", "a"))
    assert entry is not None and entry.status == 500 and entry.consecutive_failures == 1
    message = json.loads(entry.body)["message"]
    assert "ScaledObject default/x trigger 0 (counter)" in message and "no answer within 0.1s" in message
    assert world.closed == 1
    world.delay = 0
    entry = await store.read(key("x", "a"))
    assert entry is not None and entry.status == 200 and entry.consecutive_failures == 0 and world.opened == 2


async def test_server_failure_fails_every_trigger_of_the_batch_and_missing_key_only_its_own() -> None:
    world = World(values={"a": 1}, fail=True)
    _, store = setup(world, scaled_object("x", "s1", "a"), scaled_object("y", "s1", "b"), max_age=0)
    x, y = await asyncio.gather(store.read(key("x", "a")), store.read(key("y", "b")))
    assert x is not None and y is not None
    assert x.status == y.status == 500
    world.fail = False
    x, y = await asyncio.gather(store.read(key("x", "a")), store.read(key("y", "b")))
    assert x is not None and y is not None
    assert x.status == 200 and y.status == 500 and "no key b" in json.loads(y.body)["message"]


async def test_removed_triggers_release_their_client() -> None:
    world = World(values={"a": 1, "b": 1})
    catalog, store = setup(world, scaled_object("x", "s1", "a"), scaled_object("y", "s2", "b"))
    await asyncio.gather(store.read(key("x", "a")), store.read(key("y", "b")))
    catalog.replace_all([(scaled_object("x", "s1", "a"), "t")])
    await asyncio.sleep(0.01)
    assert world.closed == 1 and store.stats()["clients"] == 1
    await store.aclose()
    assert world.closed == 2


async def test_poll_reads_due_entries_in_one_batch_and_tracks_activity() -> None:
    now = [0.0]
    world = World(values={"a": 0, "b": 4})
    _, store = setup(world, scaled_object("x", "s1", "a", interval=10), scaled_object("y", "s1", "b", interval=30),
                     clock=lambda: now[0])
    await store.refresh(store.due())
    assert world.reads == [("s1", ("a", "b"))]
    now[0] = 15
    assert [e.trigger.scaled_object for e in store.due()] == ["x"]
    assert [e.active for e in store.entries()] == [False, True]  # value > activation (1)


async def test_a_large_batch_is_read_in_calls_of_at_most_read_batch() -> None:
    """100,000 triggers of one Redis in one call outlived the read timeout, and all failed."""
    n = 2 * READ_BATCH + 7
    world = World(values={f"k{i}": 1 for i in range(n)})
    _, store = setup(world, *(scaled_object(f"o{i}", "s1", f"k{i}") for i in range(n)))
    await store.refresh(store.entries())
    assert [len(keys) for _, keys in world.reads] == [READ_BATCH, READ_BATCH, 7]
    assert {k for _, keys in world.reads for k in keys} == set(world.values)  # each read once
    assert all(e.value == 1 and e.error is None for e in store.entries())
    await store.aclose()


def with_fallback(obj: dict[str, Any], threshold: int, replicas: int, behavior: str = "static") -> dict[str, Any]:
    obj["spec"]["fallback"] = {"failureThreshold": threshold, "replicas": replicas, "behavior": behavior}
    return obj


async def test_failures_past_the_threshold_answer_the_fallback_value() -> None:
    world = World(values={"a": 2}, fail=True)
    _, store = setup(world, with_fallback(scaled_object("x", "s1", "a"), threshold=2, replicas=3), max_age=0)
    statuses = []
    for _ in range(3):
        entry = await store.read(key("x", "a"))
        assert entry is not None
        statuses.append((entry.status, entry.in_fallback, entry.active))
    assert statuses == [(500, False, False), (500, False, False), (200, True, False)]  # 3 > failureThreshold 2
    assert entry is not None
    assert json.loads(entry.body)["items"][0]["value"] == "15"  # target 5 x 3 replicas
    world.fail = False
    entry = await store.read(key("x", "a"))
    assert entry is not None and (entry.status, entry.in_fallback, entry.consecutive_failures) == (200, False, 0)
    assert json.loads(entry.body)["items"][0]["value"] == "2"


async def test_current_replicas_reach_answers_already_in_fallback() -> None:
    world = World(fail=True)
    _, store = setup(world, with_fallback(scaled_object("x", "s1", "a"), 0, 2, "currentReplicasIfHigher"), max_age=0)
    entry = await store.read(key("x", "a"))
    assert entry is not None and entry.in_fallback and entry.status == 500  # current unknown: the error stands
    store.set_targets(TargetsReport((TargetState("default", "x", replicas=7),)))
    assert entry.status == 200 and json.loads(entry.body)["items"][0]["value"] == "35"  # max(7, 2) x 5, no read


async def test_a_value_metric_in_fallback_waits_for_the_ready_pods() -> None:
    """KEDA 2.20: target x replicas / ready pods; while no pod is Running and Ready the error stands."""
    obj = with_fallback(scaled_object("x", "s1", "a"), threshold=0, replicas=4)
    obj["spec"]["triggers"][0]["metricType"] = "Value"
    _, store = setup(World(fail=True), obj, max_age=0)
    entry = await store.read(key("x", "a"))
    assert entry is not None and entry.in_fallback and entry.status == 500  # not counted yet
    bodies = []
    for ready in (3, 0, 2):
        store.set_targets(TargetsReport((TargetState("default", "x", ready=ready),)))
        bodies.append((entry.status, json.loads(entry.body).get("items", [{}])[0].get("value")))
    assert bodies == [(200, "6666m"), (500, None), (200, "10")]  # 5 x 4 / 3 in whole thousandths; 5 x 4 / 2
    store.set_targets(TargetsReport((), complete=True))  # out of fallback for the controller: no count
    assert entry.status == 500


async def test_listeners_hear_of_changed_reads_only() -> None:
    now = [0.0]
    world = World(values={"a": 3})
    _, store = setup(world, scaled_object("x", "s1", "a", interval=1), clock=lambda: now[0])
    heard: list[set[tuple[str, str]]] = []
    store.subscribe(heard.append)
    await store.refresh(store.due())
    now[0] = 2
    await store.refresh(store.due())  # same value: nothing to tell
    world.values["a"] = 4
    now[0] = 4
    await store.refresh(store.due())
    assert heard == [{("default", "x")}] * 2 and len(world.reads) == 3


async def test_poller_keeps_the_polling_interval_between_ticks() -> None:
    world = World(values={"a": 1})
    _, store = setup(world, scaled_object("x", "s1", "a", interval=1), tick=5.0)
    poller = asyncio.create_task(store.poll_forever())
    await asyncio.sleep(2.6)
    poller.cancel()
    await store.aclose()
    assert len(world.reads) == 3  # at 0, 1 and 2 s although the tick is 5 s


async def wait_until(condition: Any, timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


async def test_wake_reads_at_once_batched_per_server_and_tells_listeners() -> None:
    world = World(values={"a": 0, "b": 0, "c": 0})
    _, store = setup(world, scaled_object("x", "s1", "a"), scaled_object("y", "s1", "b"),
                     scaled_object("z", "s2", "c"))
    await store.refresh(store.due())
    world.reads.clear()
    heard: list[int] = []
    store.subscribe(lambda changed: heard.append(1))
    world.values.update(a=3, b=3)
    store.wake([key("x", "a"), key("y", "b"), ("default", "gone", "s0-counter-q")])  # an unknown key is skipped
    await wait_until(lambda: len(heard) == 1)
    assert world.reads == [("s1", ("a", "b"))]  # one batch, and the other server is not asked
    entry = store.entry(key("x", "a"))
    assert entry is not None and entry.value == 3 and entry.active


async def test_wake_during_a_read_reads_again_after_it() -> None:
    world = World(values={"a": 0}, delay=0.05)
    _, store = setup(world, scaled_object("x", "s1", "a"))
    first = asyncio.ensure_future(store.read(key("x", "a")))
    await wait_until(lambda: len(world.reads) == 1)  # the read is under way, with the old value
    world.values["a"] = 5
    store.wake([key("x", "a")])
    await first
    await wait_until(lambda: len(world.reads) == 2)
    entry = store.entry(key("x", "a"))
    assert entry is not None and entry.value == 5


class PushClient(CounterClient):
    """A counter client whose server pushes news: it keeps what `watch` told it."""

    def __init__(self, world: World, server: str, watched: list[list[str]]) -> None:
        super().__init__(world, server)
        self.watched = watched
        self.wake: Any = None

    def watch(self, configs: Sequence[CounterConfig], wake: Any) -> None:
        self.watched.append(sorted(c.key for c in configs))
        self.wake = wake


class PushScaler(CounterScaler):
    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.watched: list[list[str]] = []
        self.clients: list[PushClient] = []

    def open_client(self, config: CounterConfig) -> PushClient:
        client = PushClient(self.world, config.server, self.watched)
        self.clients.append(client)
        return client


async def test_a_push_client_hears_its_configs_and_its_news_reads_them_at_once() -> None:
    world = World(values={"a": 0, "b": 0})
    scaler = PushScaler(world)
    catalog = Catalog(ScalerRegistry(entries=(), scalers=[scaler]))
    store = MetricStore()
    store.follow(catalog)
    catalog.replace_all([(scaled_object("x", "s1", "a"), "t"), (scaled_object("y", "s1", "b"), "t")])
    assert scaler.watched == []  # no client before the first read
    await store.refresh(store.due())
    assert scaler.watched == [["a", "b"]]  # told on opening
    catalog.replace_all([(scaled_object("x", "s1", "a"), "t")])
    await asyncio.sleep(0)  # told once per loop turn, however many triggers came or went
    assert scaler.watched[-1] == ["a"]  # and whenever the set changes
    heard: list[int] = []
    store.subscribe(lambda changed: heard.append(1))
    world.reads.clear()
    world.values["a"] = 4
    [client] = scaler.clients
    [config] = [e.trigger.config for e in store.entries()]
    client.wake([config])
    await wait_until(lambda: len(heard) == 1)
    assert world.reads == [("s1", ("a",))]
    entry = store.entry(key("x", "a"))
    assert entry is not None and entry.value == 4 and entry.active
    await store.aclose()


async def test_a_request_behind_a_stalled_batch_is_answered_within_the_timeout() -> None:
    world = World(values={"a": 1}, delay=1.0)
    _, store = setup(world, scaled_object("x", "s1", "a"), scaled_object("y", "s1", "b"), max_age=0, timeout=0.3)
    first = asyncio.ensure_future(store.answer(key("x", "a")))
    await asyncio.sleep(0.2)  # the first batch is in flight; the next request queues behind it
    started = asyncio.get_running_loop().time()
    answer = await store.answer(key("y", "b"))
    waited = asyncio.get_running_loop().time() - started
    assert answer is not None and answer[0] == 500 and waited < 0.3 + 0.1, waited
    message = json.loads(answer[1])["message"]
    assert "ScaledObject default/y trigger 0 (counter)" in message and "no answer within 0.3s" in message
    assert (await first) is not None
