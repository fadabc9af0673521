"""Redis keyspace notifications: a write to a watched key wakes its triggers at once.

Redis publishes `__keyspace@<db>__:<key>` with the command's name (`rpush`, `xadd`, ...) when
`notify-keyspace-events` holds `K` and the class of the command (`l` lists, `t` streams; `A`
is every class). One pub/sub connection per server subscribes to the keys of the triggers the
store names (those of objects at zero: the client is `activation_only`), so a message to an
idle queue is read within milliseconds instead of at the next poll, and a busy queue of a
scaled-up workload costs no notification at all.

Whether Redis publishes is the server's configuration. Per trigger, `keyspaceNotifications`:

* `use` (the default): subscribe; never change the server. When the flags are missing, one
  warning says so and what to set, and nothing is subscribed (100,000 subscriptions to channels
  nobody publishes on cost seconds of CPU at every reconnect): activation waits for the next
  probe, and the configuration is looked at again every `CONFIG_RECHECK` seconds and whenever
  the watched set changes, so flags set later are used without a restart.
* `enable`: also add the missing flags with `CONFIG SET` (the user allows eventscale to change
  the server's configuration; a refused CONFIG is logged, and polls go on).
* `off`: no subscription for that trigger.

A Redis Cluster publishes keyspace events on the node that holds the key only; subscribing to
every master is not done here: on a cluster, activation waits for probes and polls (logged once).
The subscription reconnects with a backoff after any failure; reads are never affected by it.
Subscribing to many keys yields the event loop between slices of `SUBSCRIBE_SLICE` channels and
every `YIELD_EVERY` confirmations read: redis-py reads buffered replies without suspending, and
100,000 confirmations read in one go held the adapter's loop for seconds, long enough for the
reads waiting behind it to time out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, Literal, Protocol, TypeVar

from redis.asyncio.client import PubSub
from redis.exceptions import RedisError, ResponseError

from scalers.params import mask, secret_values
from scalers.redis.connection import RedisHandle

log = logging.getLogger("eventscale.scalers.redis")

Notifications = Literal["use", "enable", "off"]

LISTEN_TIMEOUT = 0.25  # seconds a wait for a message lasts before subscriptions are brought up to date
FIRST_RETRY, LAST_RETRY = 0.5, 30.0
EVERY_CLASS = "A"  # notify-keyspace-events alias for every command class but key-miss and new-key
CONFIG_RECHECK = 30.0  # seconds between looks at a server that does not publish what is needed
SUBSCRIBE_SLICE = 2_000  # channels per SUBSCRIBE command
YIELD_EVERY = 200  # messages read (confirmations included) between yields to the event loop


class Watched(Hashable, Protocol):
    """A config the watcher can subscribe for: its key, the event class it needs, and the user's choice."""

    def notified_key(self) -> tuple[str, str]: ...  # (key, event class: "l" lists, "t" streams)

    @property
    def keyspace_notifications(self) -> Notifications: ...


W = TypeVar("W", bound=Watched)


def missing_flags(current: str, needed: set[str]) -> str:
    """The flags `notify-keyspace-events` lacks for keyspace events of these classes."""
    missing = "" if "K" in current else "K"
    if EVERY_CLASS not in current:
        missing += "".join(sorted(c for c in needed if c not in current))
    return missing


class KeyspaceWatch(Generic[W]):
    """The keyspace subscription of one Redis server, run by a task of its own."""

    def __init__(self, handle: RedisHandle) -> None:
        self._handle = handle
        self._secrets = secret_values(handle.connection)
        self._where = handle.connection.describe()
        self._channels: dict[bytes, list[W]] = {}  # channel -> the configs woken by it
        self._wake: Callable[[Sequence[W]], None] = lambda configs: None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._told_cluster = False
        self._told_off = False  # the "notifications are off" warning was given (and not since taken back)

    @property
    def channels(self) -> set[bytes]:
        return set(self._channels)

    def update(self, configs: Sequence[W], wake: Callable[[Sequence[W]], None]) -> None:
        """Subscribe to the keys of `configs` (replacing the previous set); no I/O here."""
        connection = self._handle.connection
        wanted = [c for c in configs if c.keyspace_notifications != "off"]
        if connection.kind == "cluster":
            if wanted and not self._told_cluster:
                self._told_cluster = True
                log.info("scaler=redis server=%s keyspace notifications are not used on a cluster: activation "
                         "waits for the next probe or poll", self._where)
            return
        channels: dict[bytes, list[W]] = {}
        for config in wanted:
            key, _ = config.notified_key()
            channels.setdefault(f"__keyspace@{connection.database_index}__:{key}".encode(), []).append(config)
        self._channels, self._wake = channels, wake
        self._changed.set()
        if channels and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"redis-keyspace-{self._where}")

    async def _run(self) -> None:
        retry = FIRST_RETRY
        while self._channels:
            pubsub: PubSub | None = None
            try:
                client = await self._handle.client()
                self._changed.clear()
                publishes = await self._check_configuration(client)
                retry = FIRST_RETRY  # the server answers: a later failure starts the backoff again
                if not publishes:  # nothing would arrive: look again later, or when the watched set changes
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), CONFIG_RECHECK)
                    continue
                pubsub = client.pubsub()
                await self._listen(pubsub)
                continue  # nothing left to watch: done, unless `update` brought some back meanwhile
            except (RedisError, OSError) as exc:
                log.warning("scaler=redis server=%s keyspace subscription failed: %s retry_in=%.1fs", self._where,
                            mask(f"{type(exc).__name__}: {exc}", self._secrets), retry)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(RedisError, OSError):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(retry)
            retry = min(retry * 2, LAST_RETRY)

    async def _listen(self, pubsub: PubSub) -> None:
        subscribed: set[bytes] = set()
        self._changed.set()  # a new connection subscribes to every channel wanted now
        read = 0
        while self._channels or subscribed:
            if self._changed.is_set():
                self._changed.clear()
                wanted = set(self._channels)
                await _in_slices(pubsub.subscribe, list(wanted - subscribed))
                await _in_slices(pubsub.unsubscribe, list(subscribed - wanted))
                subscribed = wanted
                if not subscribed:
                    return
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=LISTEN_TIMEOUT)
            read += 1
            if read % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # replies already buffered are read without suspending
            if message is not None and message.get("type") == "message":
                configs = self._channels.get(message["channel"])
                if configs:
                    self._wake(configs)

    async def _check_configuration(self, client: Any) -> bool:
        """Whether the server publishes what is needed (said once when not); with `enable`, make it."""
        needed = {cls for configs in self._channels.values() for c in configs for _, cls in [c.notified_key()]}
        enable = any(c.keyspace_notifications == "enable" for cs in self._channels.values() for c in cs)
        try:
            current = str((await client.config_get("notify-keyspace-events")).get("notify-keyspace-events", ""))
        except ResponseError as exc:
            log.info("scaler=redis server=%s cannot read notify-keyspace-events (%s): subscribing anyway", self._where,
                     mask(str(exc), self._secrets))
            return True
        missing = missing_flags(current, needed)
        if missing and enable:
            missing = await self._enable(client, current, missing)
        if missing and not self._told_off:
            self._told_off = True
            log.warning('scaler=redis server=%s keyspace notifications are off (notify-keyspace-events="%s", needs '
                        '"%s"): activation waits for the next probe or poll; set keyspaceNotifications: enable on a '
                        "trigger to let eventscale add them, or configure notify-keyspace-events", self._where,
                        current, missing)
        elif not missing and self._told_off:
            self._told_off = False
            log.info('scaler=redis server=%s keyspace notifications are on now (notify-keyspace-events="%s")',
                     self._where, current)
        return not missing

    async def _enable(self, client: Any, current: str, missing: str) -> str:
        """Add the missing flags; what is still missing after (all of it if CONFIG is refused)."""
        try:
            await client.config_set("notify-keyspace-events", current + missing)
        except ResponseError as exc:
            if not self._told_off:
                log.warning("scaler=redis server=%s keyspace notifications could not be enabled (%s)", self._where,
                            mask(str(exc), self._secrets))
            return missing
        log.info('scaler=redis server=%s keyspace notifications enabled: notify-keyspace-events="%s"', self._where,
                 current + missing)
        return ""

    async def aclose(self) -> None:
        self._channels = {}
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _in_slices(command: Callable[..., Awaitable[Any]], channels: list[bytes]) -> None:
    """(Un)subscribe `channels` a slice per command, yielding the loop between slices."""
    for start in range(0, len(channels), SUBSCRIBE_SLICE):
        await command(*channels[start : start + SUBSCRIBE_SLICE])
        await asyncio.sleep(0)
