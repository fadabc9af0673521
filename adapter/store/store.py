"""Metric store: the one place the API and the controller read values from.

Each served trigger has an entry holding its last value (or error), when it was read, and the
response body already rendered, so a metric GET that hits the cache is a dictionary lookup and
bytes. Values are refreshed in three ways, all through the same per-server batch:

* a background poll every tick takes each trigger whose `pollingInterval` has passed;
* a request finding a value older than its trigger allows (the `pollingInterval` with
  `useCachedMetrics`, else the store's short `max_age`) asks for a refresh and waits for it;
* a source that pushes news (`wake`: the interceptors' counts) asks for a read of the triggers
  it concerns, at once.

A scaler client whose server pushes news itself (KEDA's external-push stream, Redis keyspace
notifications) is told which configs it serves (`ScalerClient.watch`, on every change of that
set; a client that pushes for activation only is told the configs of objects at zero) and calls
back; its triggers are then woken like any other pushed news.

Activation probes: the controller tells the store which ScaledObjects have their target at 0
(or at idleReplicaCount) (`set_targets`, over loopback). Every `probe_interval` (1 s) the
triggers of those objects are probed besides their pollingInterval reads: one
`ScalerClient.read` per server for all of them, whatever the number of objects, whose results
are only compared with what each entry holds; an entry whose value or activity differs is
woken (read through the usual path, recorded, rendered, listeners told). Past
`PROBES_PER_SECOND` triggers at zero the probes are spaced further apart, so that their cost
stays bounded (10,000 at zero: a probe every 2 s). A probe that finds
nothing new costs a comparison per trigger and no rendering, rescheduling or notification:
10,000 objects at zero cost 48 % of a core when every probe was a full read, about 5 % now
(docs/performance.md). A failed probe changes nothing (the polls report errors). Scalers billed
per call opt out (`Scaler.activation_probes`).

Concurrent requests for one trigger share one refresh (single flight). Refreshes of triggers on
the same server are gathered into one `ScalerClient.read` call (of up to `READ_BATCH`), one call in flight per server
at a time, so load on a broker is bounded whatever the request rate. Every read has a timeout;
a failed read closes the server's client so the next one starts from a fresh connection.
A request (`answer`) waits at most the timeout too, counted from its own arrival: one that
joins a server's queue behind a stalled batch would otherwise wait for that batch and then for
its own, twice the timeout. It then answers the trigger's last error (or fallback), else a 500
saying no answer came in time; the read goes on and its result is kept.

The poller keeps entries in a heap by due time and sleeps until the first is due (entries due
within `batch_window` join the batch), so a trigger is read every `pollingInterval`, not at the
next whole tick after it, and a tick costs the entries that are due, not every entry.
Listeners (the activity feed, `/metrics`) are told which ScaledObjects changed: a read that
changed a value, an error or a failure count, or entries added or removed by the catalog. The
store follows the catalog object by object (`follow`), so one ScaledObject changing costs its
own triggers, whatever the number of others. Past `fallback.failureThreshold` consecutive
failures the rendered answer is the fallback value (adapter/keda/fallback.py) instead of the
error, from the counts the controller reports (`set_targets`: current replicas, and for a Value
metric the target's ready pods); each report that changes them renders the entries again.

Native zero: for an object whose HPA has minReplicas 0 (the controller reports it `native`,
see adapter/controller/native_zero.py), what the HPA computes is what takes the target to 0 and
back, so an inactive object's answer is gated (`_served`): 0 from the controller's `zero_from`
(the cooldown's end minus the HPA's scale-down window), at least 1m before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Coroutine, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from adapter.catalog.catalog import Catalog
from adapter.catalog.resolve import MetricKey, ResolvedTrigger
from adapter.keda.activity import TargetsReport, TargetState
from adapter.keda.fallback import fallback_value, in_fallback
from adapter.kube.wire import internal_error, render_value_list
from scalers import Reading, ReadResult, ScalerClient, ScalerError, mask, secret_values

log = logging.getLogger("eventscale.store")

PROBES_PER_SECOND = 5_000  # the most triggers activation probes read a second, all servers together

Clock = Callable[[], float]
ObjectKey = tuple[str, str]  # the object_key of a ScaledObject or ScaledJob (adapter.keda.activity)
Listener = Callable[[set[ObjectKey]], None]
NATIVE_FLOOR = 0.001  # 1m, the least positive quantity: the HPA computes 1 replica from it


@dataclass(eq=False, slots=True)
class MetricEntry:
    trigger: ResolvedTrigger
    value: float | None = None
    error: str | None = None
    read_at: float = float("-inf")  # monotonic
    consecutive_failures: int = 0
    errors: int = 0  # failed reads since start, for /metrics (keda_scaler_detail_errors_total)
    status: int = 503
    body: bytes = b""
    inflight: asyncio.Future[None] | None = field(default=None, repr=False)
    reported_active: bool | None = None  # the scaler's own activity decision on the last read, if it made one
    secrets: tuple[str, ...] = field(default=(), repr=False)  # masked out of every error kept
    queued_for: float | None = None  # the due time it sits in the poll heap under, if it does
    server: _Server | None = field(default=None, repr=False, compare=False)  # the one reading it, once added

    def __post_init__(self) -> None:
        self.secrets = secret_values(self.trigger.config)

    @property
    def object_key(self) -> ObjectKey:
        return self.trigger.owner_key

    @property
    def active(self) -> bool:
        """The scaler's decision, else value > activation threshold; a failed read is never active."""
        metric = self.trigger.metric
        if self.error is not None or self.value is None or metric is None:
            return False
        return self.reported_active if self.reported_active is not None else self.value > metric.activation

    @property
    def in_fallback(self) -> bool:
        return in_fallback(self.trigger.fallback, self.consecutive_failures)

    def record(self, result: ReadResult, now: float) -> bool:
        """Keep one read's outcome; True when the value, activity, error or failure count changed."""
        before = (self.value, self.reported_active, self.error, self.consecutive_failures)
        self.read_at = now
        if isinstance(result, ScalerError):
            self.error = mask(str(result), self.secrets)
            self.consecutive_failures += 1
            self.errors += 1
        else:
            reading = result if isinstance(result, Reading) else Reading(result)
            self.value, self.reported_active = reading.value, reading.active
            self.error, self.consecutive_failures = None, 0
        return before != (self.value, self.reported_active, self.error, self.consecutive_failures)

    def differs(self, result: float | Reading) -> bool:
        """A successful reading is not what this entry holds (value, activity, or a held error)."""
        if isinstance(result, Reading):
            return (result.value, result.active, None) != (self.value, self.reported_active, self.error)
        return (result, None, None) != (self.value, self.reported_active, self.error)

    def render(self, target: TargetState | None) -> None:
        """The bytes a metric GET answers: the value, the fallback value, or the error; `target` is
        what the controller reported of the object's target (counts the fallback may need)."""
        trigger = self.trigger
        fallback = None
        if self.error is not None and self.in_fallback and trigger.fallback and trigger.metric:
            current, ready = (target.replicas, target.ready) if target is not None else (None, None)
            fallback = fallback_value(trigger.fallback, trigger.metric.target, current, trigger.spec.metric_type,
                                      ready)
        if self.error is None and self.value is not None:
            self.status, self.body = 200, render_value_list(trigger.metric_name, self.value, time.time())
        elif fallback is not None:
            self.status, self.body = 200, render_value_list(trigger.metric_name, fallback, time.time())
        elif self.error is not None:
            self.status, self.body = 500, self.error_body(self.error)

    def error_body(self, error: str) -> bytes:
        """The Status of a failed read of this trigger, naming it."""
        trigger = self.trigger
        return internal_error(f"unable to get external metric {trigger.metric_name} of {trigger.describe()}: "
                              f"{error}").body()



# Triggers per read call at most. A read has one timeout: 100,000 triggers of one Redis in one
# call took over 5 s on a loaded machine, and all of them failed. Pending triggers past this are
# read by the next calls, one in flight per server as before.
READ_BATCH = 5_000


class _Server:
    """One server (scaler type + server key): its client and its queue of pending reads."""

    def __init__(self, store: MetricStore, trigger: ResolvedTrigger) -> None:
        assert trigger.scaler is not None
        self.store = store
        self.scaler = trigger.scaler
        self.sample_config = trigger.config
        self.name = trigger.scaler.types[0]
        self.client: ScalerClient[Any] | None = None
        self.pending: dict[MetricKey, MetricEntry] = {}
        self.again: dict[MetricKey, MetricEntry] = {}  # woken while being read: read once more
        self.worker: asyncio.Task[None] | None = None
        self.stats = store.read_stats.setdefault(self.name, ReadStats())
        self.watched: dict[Hashable, list[MetricKey]] = {}  # config -> the triggers reading it
        self._users = 0
        self._watch_due = False

    @property
    def users(self) -> int:
        return self._users

    def serve(self, entry: MetricEntry) -> None:
        """One more trigger reads this server; a push client hears of a new config."""
        self._users += 1
        keys = self.watched.setdefault(entry.trigger.config, [])
        keys.append(entry.trigger.key)
        if len(keys) == 1:
            self._tell_watch_soon()

    def unserve(self, entry: MetricEntry) -> None:
        self._users -= 1
        keys = self.watched.get(entry.trigger.config, [])
        if entry.trigger.key in keys:
            keys.remove(entry.trigger.key)
        if not keys and self.watched.pop(entry.trigger.config, None) is not None:
            self._tell_watch_soon()

    def _tell_watch_soon(self) -> None:
        """Tell a push client (`ScalerClient.watch`) the configs it serves, once per loop turn
        however many triggers came or went in it (1,000 new objects: one call, not 1,000)."""
        if self._watch_due or self.client is None:
            return
        self._watch_due = True
        try:
            asyncio.get_running_loop().call_soon(self._tell_watch)
        except RuntimeError:  # no loop yet: the client is told when it opens
            self._watch_due = False

    def _tell_watch(self) -> None:
        self._watch_due = False
        if self.client is not None:
            self.client.watch(self.watched_configs(self.client), self.woken)

    def watched_configs(self, client: ScalerClient[Any]) -> list[Hashable]:
        """What `client` is told to watch: every config, or for a client that pushes for
        activation only, the configs of objects at zero (or not reported yet)."""
        if not client.activation_only:
            return list(self.watched)
        return [config for config, keys in self.watched.items()
                if any(self.store.wants_pushes(key[:2]) for key in keys)]

    def targets_changed(self) -> None:
        """Objects of this server moved to or from zero: an activation-only client hears of it."""
        if self.client is not None and self.client.activation_only:
            self._tell_watch_soon()

    def woken(self, configs: Iterable[Hashable]) -> None:
        """A push client's news about `configs`: read their triggers now."""
        self.store.wake([key for config in configs for key in self.watched.get(config, ())])

    def request(self, entry: MetricEntry) -> asyncio.Future[None]:
        if entry.inflight is None:
            entry.inflight = asyncio.get_running_loop().create_future()
            self.pending[entry.trigger.key] = entry
            if self.worker is None or self.worker.done():
                self.worker = asyncio.create_task(self._drain(), name=f"read-{self.name}")
        return entry.inflight

    def wake(self, entry: MetricEntry) -> None:
        """Read `entry` soon; if its read is already under way, read it once more after that one,
        since the news that woke it may have come too late for the read in progress."""
        if entry.inflight is not None and entry.trigger.key not in self.pending:
            self.again[entry.trigger.key] = entry
        else:
            self.request(entry)

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let requests arriving in this loop turn join the batch
        while self.pending:
            batch = list(itertools.islice(self.pending.values(), READ_BATCH))
            for entry in batch:
                del self.pending[entry.trigger.key]
            await self._read(batch)
            again, self.again = list(self.again.values()), {}
            for entry in again:
                self.request(entry)

    def _opened(self) -> ScalerClient[Any]:
        """The server's client, opened (and told what to watch) on first use."""
        if self.client is None:
            self.client = self.scaler.open_client(self.sample_config)
            self.client.watch(self.watched_configs(self.client), self.woken)
        return self.client

    async def _read(self, batch: list[MetricEntry]) -> None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.store.timeout):
                results: Sequence[ReadResult] = await self._opened().read([e.trigger.config for e in batch])
        except Exception as exc:  # a scaler's bug must fail this batch, not the worker
            error = ScalerError(mask(str(_as_scaler_error(exc, self.store.timeout)),
                                     tuple({s for e in batch for s in e.secrets})))
            log.warning("scaler=%s triggers=%d scaledobjects=%s error=%r", self.name, len(batch),
                        _object_names(batch), str(error))
            results = [error] * len(batch)
            self.stats.failed += 1
            self.discard_client()
        self.stats.reads += 1
        self.stats.seconds += time.perf_counter() - started
        now = self.store.clock()
        changed: set[ObjectKey] = set()
        for entry, result in zip(batch, results, strict=True):
            if entry.record(result, now):
                changed.add(entry.object_key)
            entry.render(self.store.target(entry.object_key))
        for entry in batch:
            if entry.inflight is not None and not entry.inflight.done():
                entry.inflight.set_result(None)
            entry.inflight = None
            self.store.schedule(entry)
        if changed:
            self.store.notify(changed)

    async def probe(self, entries: list[MetricEntry]) -> None:
        """Read `entries` in one call and wake those whose reading differs from what they hold."""
        try:
            async with asyncio.timeout(self.store.timeout):
                results: Sequence[ReadResult] = await self._opened().read([e.trigger.config for e in entries])
        except Exception as exc:  # the next poll of these triggers reports what is wrong
            log.debug("scaler=%s probe of %d triggers failed: %s", self.name, len(entries), type(exc).__name__)
            return
        self.stats.probes += 1
        woken = [entry.trigger.key for entry, result in zip(entries, results, strict=True)
                 if not isinstance(result, ScalerError) and entry.differs(result)]
        if woken:
            self.store.wake(woken)

    def discard_client(self) -> None:
        """Forget the client now (the next read opens a new one) and close it in the background:
        waiting readers are answered at once, however long a stalled server takes to hang up."""
        client, self.client = self.client, None
        if client is not None:
            self.store.spawn(self._close(client))

    async def _close(self, client: ScalerClient[Any]) -> None:
        try:
            async with asyncio.timeout(self.store.timeout):
                await client.aclose()
        except Exception:
            log.debug("scaler=%s close failed", self.name, exc_info=True)

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await self._close(client)


@dataclass
class ReadStats:
    """Batched reads of one scaler type since start: for /metrics, never reset."""

    reads: int = 0
    failed: int = 0  # whole-batch failures (per-trigger errors are on the entries)
    seconds: float = 0.0
    probes: int = 0  # activation probes (one read of a server's triggers at zero)


def _object_names(entries: Sequence[MetricEntry], shown: int = 5) -> str:
    """`ns/a,ns/b`: the ScaledObjects a failure affects, the first `shown` by name and a count of the rest."""
    names = sorted({f"{namespace}/{name}" for namespace, name in (entry.object_key for entry in entries)})
    more = f",+{len(names) - shown}" if len(names) > shown else ""
    return ",".join(names[:shown]) + more


def _as_scaler_error(exc: BaseException, timeout: float) -> ScalerError:
    if isinstance(exc, ScalerError):
        return exc
    if isinstance(exc, TimeoutError):
        return ScalerError(f"no answer within {timeout:g}s")
    return ScalerError(f"{type(exc).__name__}: {exc}")


class MetricStore:
    def __init__(self, *, max_age: float = 2.0, timeout: float = 5.0, tick: float = 1.0,
                 batch_window: float = 0.25, probe_interval: float = 1.0, clock: Clock = time.monotonic) -> None:
        self.max_age = max_age
        self.timeout = timeout
        self.probe_interval = probe_interval  # 0: no activation probes
        self.tick = tick  # longest sleep of the poller
        self.batch_window = batch_window  # entries due this soon join the current batch
        self.clock = clock
        self._entries: dict[MetricKey, MetricEntry] = {}
        self._by_object: dict[ObjectKey, tuple[MetricEntry, ...]] = {}
        self._servers: dict[tuple[str, Hashable], _Server] = {}
        self._due: list[tuple[float, int, MetricEntry]] = []  # the poll heap
        self._order = itertools.count()  # ties in the heap, never compare entries
        self._wake_at = float("inf")  # when the sleeping poller looks next
        self._wake = asyncio.Event()  # set when an entry is due before that
        self._tasks: set[asyncio.Task[None]] = set()  # closes and polls in flight, owned here
        self._listeners: list[Listener] = []
        self._targets: dict[ObjectKey, TargetState] = {}  # what the controller reported, by ScaledObject
        self._targets_complete = False  # a complete report came: objects left out are not at zero
        self.read_stats: dict[str, ReadStats] = {}  # by scaler type

    # -- who is told about changes ---------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(objects)` after reads changed a value, an error or a failure count of
        those ScaledObjects' triggers, or the catalog added or removed some of their entries."""
        self._listeners.append(listener)

    def notify(self, changed: set[ObjectKey]) -> None:
        for listener in self._listeners:
            listener(changed)

    # -- what the controller reports of the targets ------------------------------------------

    def set_targets(self, report: TargetsReport) -> None:
        """Take the controller's report (replica and ready counts, objects at zero); the
        objects whose state changed are rendered again, rescheduled and re-watched."""
        incoming = {t.key: t for t in report.items if t.reported}
        keys = {t.key for t in report.items} | (set(self._targets) if report.complete else set())
        if report.complete and not self._targets_complete:
            self._targets_complete = True
            keys |= set(self._by_object)  # "not reported yet" becomes "not at zero"
        changed = []
        for key in keys:
            before, after = self._targets.get(key), incoming.get(key)
            if after is None:
                self._targets.pop(key, None)
            else:
                self._targets[key] = after
            if before != after:
                changed.append(key)
        servers: set[int] = set()
        for key in changed:
            for entry in self._by_object.get(key, ()):
                if entry.in_fallback:
                    entry.render(self.target(entry.object_key))
                server = self._servers.get(entry.trigger.server) if entry.trigger.scaler is not None else None
                if server is not None and id(server) not in servers:
                    servers.add(id(server))
                    server.targets_changed()

    def at_zero(self, key: ObjectKey) -> bool:
        state = self._targets.get(key)
        return state is not None and state.at_zero

    def wants_pushes(self, key: ObjectKey) -> bool:
        """Pushes for activation matter for objects at zero, and for those not reported yet."""
        state = self._targets.get(key)
        return state.at_zero if state is not None else not self._targets_complete

    def target(self, key: ObjectKey) -> TargetState | None:
        """What the controller reported of this ScaledObject's target (None: nothing)."""
        return self._targets.get(key)

    # -- what the catalog tells us -------------------------------------------------------------

    def follow(self, catalog: Catalog) -> None:
        """Keep the entries equal to the catalog's triggers, object by object as it changes."""
        def changed(objects: set[ObjectKey]) -> None:
            self.sync_objects({key: catalog.triggers_of(key) for key in sorted(objects)})

        catalog.subscribe(changed)
        self.sync_objects({key: catalog.triggers_of(key) for key in catalog.readers()})

    def sync_objects(self, objects: dict[ObjectKey, tuple[ResolvedTrigger, ...]]) -> None:
        """Make these ScaledObjects' entries match their triggers (none: the object is gone);
        entries of unchanged triggers keep their values; servers nobody uses are released."""
        changed: set[ObjectKey] = set()
        for key, triggers in objects.items():
            old = {e.trigger.key: e for e in self._by_object.get(key, ())}
            new = tuple(old[t.key] if t.key in old and old[t.key].trigger == t else MetricEntry(t) for t in triggers)
            kept = {id(e) for e in new}
            for entry in old.values():
                if id(entry) not in kept:
                    self._remove(entry)
            for entry in new:
                if entry.trigger.key not in old or old[entry.trigger.key] is not entry:
                    self._add(entry)
            if new:
                self._by_object[key] = new
            else:
                self._by_object.pop(key, None)
                self._targets.pop(key, None)
            if [id(e) for e in new] != [id(e) for e in old.values()]:
                changed.add(key)
        if changed:
            self.notify(changed)

    def _add(self, entry: MetricEntry) -> None:
        self._entries[entry.trigger.key] = entry
        entry.server = self._server(entry.trigger)
        entry.server.serve(entry)
        self.schedule(entry)

    def _remove(self, entry: MetricEntry) -> None:
        if self._entries.get(entry.trigger.key) is entry:
            del self._entries[entry.trigger.key]
        entry.queued_for = None  # its heap item is dropped when it comes up
        server = self._servers.get(entry.trigger.server)
        if server is None:
            return
        server.unserve(entry)
        if server.users <= 0:
            del self._servers[entry.trigger.server]
            server.discard_client()

    # -- reading ---------------------------------------------------------------------------

    def entry(self, key: MetricKey) -> MetricEntry | None:
        return self._entries.get(key)

    def entries(self) -> Iterable[MetricEntry]:
        return self._entries.values()

    def objects(self) -> Iterable[ObjectKey]:
        """The ScaledObjects that have entries."""
        return self._by_object.keys()

    def entries_of(self, namespace: str, name: str) -> tuple[MetricEntry, ...]:
        return self._by_object.get((namespace, name), ())

    def max_age_of(self, trigger: ResolvedTrigger) -> float:
        return float(trigger.polling_interval) if trigger.spec.use_cached_metrics else self.max_age

    async def read(self, key: MetricKey) -> MetricEntry | None:
        """The entry for `key`, refreshed first when older than its trigger allows."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._stale(entry):
            await asyncio.shield(self._server(entry.trigger).request(entry))
        return entry

    def _stale(self, entry: MetricEntry) -> bool:
        return self.clock() - entry.read_at > self.max_age_of(entry.trigger) or entry.status == 503

    def wake(self, keys: Iterable[MetricKey]) -> None:
        """Read these triggers now, batched per server, without waiting for the reads.

        For sources that push news (interceptor counts; later keyspace notifications, KEDA's
        external push stream): a read that changes a value or an activity tells the listeners,
        so the controller's long poll hears of it within milliseconds, not a pollingInterval.
        Unknown keys and triggers that failed to resolve are skipped.
        """
        for key in keys:
            entry = self._entries.get(key)
            if entry is not None and entry.trigger.scaler is not None and entry.trigger.config is not None:
                self._server(entry.trigger).wake(entry)

    async def answer(self, key: MetricKey) -> tuple[int, bytes] | None:
        """Status and body a metric GET answers for `key`, within `timeout` seconds of asking."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if not self._stale(entry):  # a cache hit: no read, so no deadline to arm
            return self._served(entry)
        try:
            async with asyncio.timeout(self.timeout):
                await self.read(key)
        except TimeoutError:
            if entry.error is None:  # the last answer was a value, too old to serve now
                return 500, entry.error_body(_as_scaler_error(TimeoutError(), self.timeout).args[0])
        return self._served(entry)

    def _served(self, entry: MetricEntry) -> tuple[int, bytes]:
        """The answer, gated for an object whose HPA owns 0 <-> N (native scale-to-zero): while
        no trigger is active, 0 from the controller's `zero_from` (the HPA goes to 0) and at
        least NATIVE_FLOOR before it (the HPA keeps 1 during the cooldown). Errors, fallback
        values and any trigger active or not read yet pass unchanged."""
        state = self._targets.get(entry.object_key)
        if state is None or not state.native or entry.status != 200 or entry.value is None:
            return entry.status, entry.body
        siblings = self._by_object.get(entry.object_key, ())
        if any(e.active or e.error is not None or e.value is None for e in siblings):
            return entry.status, entry.body
        now = time.time()
        zero = state.zero_from is not None and now >= state.zero_from
        served = 0.0 if zero else max(entry.value, NATIVE_FLOOR)
        return 200, render_value_list(entry.trigger.metric_name, served, now)

    async def refresh(self, entries: Iterable[MetricEntry]) -> None:
        """Read these entries now, batched per server."""
        futures = [self._server(e.trigger).request(e) for e in entries]
        if futures:
            await asyncio.gather(*futures)

    def _server(self, trigger: ResolvedTrigger) -> _Server:
        key = trigger.server
        server = self._servers.get(key)
        if server is None:
            server = self._servers[key] = _Server(self, trigger)
        return server

    # -- background polling ----------------------------------------------------------------

    def next_due(self, entry: MetricEntry) -> float:
        """When `entry` is read next: a pollingInterval after its last read."""
        return entry.read_at + entry.trigger.polling_interval

    def probed(self) -> dict[_Server, list[MetricEntry]]:
        """The triggers to probe now, by server: those of objects at zero whose scaler allows
        probes, read once already and not being read."""
        found: dict[_Server, list[MetricEntry]] = {}
        for key, state in self._targets.items():
            if not state.at_zero:
                continue
            for entry in self._by_object.get(key, ()):
                server = entry.server
                if (server is not None and server.scaler.activation_probes and entry.inflight is None
                        and entry.read_at > float("-inf")):
                    found.setdefault(server, []).append(entry)
        return found

    async def probe_once(self) -> int:
        """One probe of every server with triggers at zero, the servers in parallel; how many
        triggers it read."""
        probed = self.probed()
        await asyncio.gather(*(server.probe(entries) for server, entries in probed.items()))
        return sum(len(entries) for entries in probed.values())

    def probe_period(self, probed: int) -> float:
        """Seconds from one probe to the next: `probe_interval`, stretched so that probes read at
        most `PROBES_PER_SECOND` triggers a second (10,000 at zero: every 2 s)."""
        return max(self.probe_interval, probed / PROBES_PER_SECOND)

    async def probe_forever(self) -> None:
        while True:
            started = self.clock()
            probed = await self.probe_once()
            await asyncio.sleep(max(0.0, self.probe_period(probed) - (self.clock() - started)))

    def schedule(self, entry: MetricEntry) -> None:
        """Put `entry` in the poll heap at its next due time, unless it is already there."""
        if entry.queued_for is not None or self._entries.get(entry.trigger.key) is not entry:
            return
        due = self.next_due(entry)
        entry.queued_for = due
        heapq.heappush(self._due, (due, next(self._order), entry))
        if due < self._wake_at:
            self._wake.set()

    def due(self) -> list[MetricEntry]:
        """Entries whose pollingInterval has passed, or will within the batch window, taken
        off the heap; an entry read since it was queued (by a request) goes back at its new time."""
        soon = self.clock() + self.batch_window
        found: list[MetricEntry] = []
        while self._due and self._due[0][0] <= soon:
            at, _, entry = heapq.heappop(self._due)
            if entry.queued_for != at:
                continue  # removed, or queued again under another time
            entry.queued_for = None
            if entry.inflight is not None:
                continue  # queued again when that read lands
            if self.next_due(entry) > soon:
                self.schedule(entry)
            else:
                found.append(entry)
        return found

    def next_poll_in(self) -> float:
        """Seconds until the next entry is due (at most `tick`), so polls keep their interval."""
        next_due = self._due[0][0] if self._due else float("inf")
        return min(self.tick, max(0.01, next_due - self.clock()))

    async def poll_forever(self) -> None:
        """Read what is due, for as long as it runs; with `probe_interval`, probe beside it."""
        probes = None if self.probe_interval <= 0 else asyncio.create_task(self.probe_forever(), name="probes")
        try:
            await self._poll()
        finally:
            if probes is not None:
                probes.cancel()

    async def _poll(self) -> None:
        while True:
            for entry in self.due():  # requested now, so they are in flight before the next look
                self._server(entry.trigger).request(entry)
            delay = self.next_poll_in()
            self._wake_at = self.clock() + delay
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake_at = float("inf")

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` as a task this store owns (awaited by `aclose`)."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stats(self) -> dict[str, int]:
        return {
            "entries": len(self._entries),
            "servers": len(self._servers),
            "clients": sum(1 for s in self._servers.values() if s.client is not None),
            "reads": sum(s.reads for s in self.read_stats.values()),
        }

    def open_clients(self) -> dict[str, int]:
        """Open scaler clients by scaler type."""
        found: dict[str, int] = {}
        for server in self._servers.values():
            if server.client is not None:
                found[server.name] = found.get(server.name, 0) + 1
        return found

    async def aclose(self) -> None:
        servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            if server.worker is not None:
                server.worker.cancel()
            await server.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

