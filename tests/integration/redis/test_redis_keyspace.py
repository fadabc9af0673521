"""Keyspace notifications on a real Redis: a push to a watched key wakes its triggers at once.

Servers of this module's own: whether Redis publishes is its configuration, which these tests
set (`notify-keyspace-events` at start, or CONFIG SET through `keyspaceNotifications: enable`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from scalers.redis import keyspace
from scalers.redis.keyspace import missing_flags
from tests.harness.redis_servers import RedisServer

pytestmark = pytest.mark.brokers

Parse = Callable[..., Any]
Open = Callable[[Any], Any]
DEADLINE = 5.0


@pytest.fixture(scope="module")
def notifying() -> Iterator[RedisServer]:
    """A server that publishes list and stream events, as a user would configure it."""
    with RedisServer(extra_args=["--notify-keyspace-events", "Klt"]) as server:
        yield server


@pytest.fixture
def silent() -> Iterator[RedisServer]:
    """A server as installed: no keyspace events (a fresh one per test, since `enable` changes it)."""
    with RedisServer() as server:
        yield server


class Woken:
    """What `watch` called back with, awaited with a deadline."""

    def __init__(self) -> None:
        self.calls: list[Sequence[Any]] = []
        self._event = asyncio.Event()

    def __call__(self, configs: Sequence[Any]) -> None:
        self.calls.append(list(configs))
        self._event.set()

    async def next(self, timeout: float = DEADLINE) -> Sequence[Any]:
        async with asyncio.timeout(timeout):
            await self._event.wait()
        self._event.clear()
        return self.calls[-1]


async def subscribed(server: RedisServer, channel: str, count: int) -> None:
    """Wait until the server counts `count` subscribers on `channel`."""
    deadline = time.monotonic() + DEADLINE
    while (found := dict(server.admin().pubsub_numsub(channel)).get(channel.encode(), 0)) != count:
        assert time.monotonic() < deadline, f"{channel}: {found} subscribers, expected {count}"
        await asyncio.sleep(0.02)


async def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def config_gets(server: RedisServer) -> int:
    """CONFIG GET calls the server has answered (how often the watch looked at its flags)."""
    stats = server.admin().info("commandstats")
    return int((stats.get("cmdstat_config|get") or {}).get("calls", 0))


@pytest.mark.parametrize(("current", "classes", "missing"), [
    ("", {"l"}, "Kl"),
    ("K", {"l", "t"}, "lt"),
    ("Kl", {"l"}, ""),
    ("KA", {"l", "t"}, ""),
    ("El", {"l"}, "K"),
    ("Et", {"l"}, "Kl"),
])
def test_missing_flags(current: str, classes: set[str], missing: str) -> None:
    assert missing_flags(current, classes) == missing


async def test_a_push_to_a_list_or_a_stream_wakes_its_configs(notifying: RedisServer, prefix: str, parse: Parse,
                                                               open_client: Open) -> None:
    queue = parse("redis", {"address": notifying.address, "listName": f"{prefix}q"})
    same = parse("redis", {"address": notifying.address, "listName": f"{prefix}q", "listLength": "9"})
    stream = parse("redis-streams", {"address": notifying.address, "stream": f"{prefix}s", "consumerGroup": "g"})
    other = parse("redis", {"address": notifying.address, "listName": f"{prefix}other"})
    lists, streams = open_client(queue), open_client(stream)
    woken, woken_streams = Woken(), Woken()
    lists.watch([queue, same, other], woken)
    streams.watch([stream], woken_streams)
    await subscribed(notifying, f"__keyspace@0__:{prefix}q", 1)
    await subscribed(notifying, f"__keyspace@0__:{prefix}s", 1)
    started = time.monotonic()
    notifying.admin().lpush(f"{prefix}q", "job")
    assert await woken.next() == [queue, same]
    assert time.monotonic() - started < 1.0
    notifying.admin().xadd(f"{prefix}s", {"job": "1"})
    assert await woken_streams.next() == [stream]
    assert await lists.read([queue]) == [1.0]  # the reads share the server with the subscription


async def test_watching_fewer_keys_unsubscribes(notifying: RedisServer, prefix: str, parse: Parse,
                                                open_client: Open) -> None:
    first = parse("redis", {"address": notifying.address, "listName": f"{prefix}a"})
    second = parse("redis", {"address": notifying.address, "listName": f"{prefix}b"})
    off = parse("redis", {"address": notifying.address, "listName": f"{prefix}c", "keyspaceNotifications": "off"})
    client, woken = open_client(first), Woken()
    client.watch([first, second, off], woken)
    await subscribed(notifying, f"__keyspace@0__:{prefix}b", 1)
    await subscribed(notifying, f"__keyspace@0__:{prefix}c", 0)
    client.watch([first], woken)  # the object of `second` scaled up
    await subscribed(notifying, f"__keyspace@0__:{prefix}b", 0)
    await subscribed(notifying, f"__keyspace@0__:{prefix}a", 1)
    client.watch([], woken)
    await subscribed(notifying, f"__keyspace@0__:{prefix}a", 0)


async def test_a_silent_server_is_left_alone_and_said_so(silent: RedisServer, prefix: str, parse: Parse,
                                                         open_client: Open, caplog: pytest.LogCaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keyspace, "CONFIG_RECHECK", 0.2)
    config = parse("redis", {"address": silent.address, "listName": f"{prefix}q"})
    client, woken = open_client(config), Woken()
    channel = f"__keyspace@0__:{prefix}q"
    with caplog.at_level(logging.WARNING, logger="eventscale.scalers.redis"):
        client.watch([config], woken)
        await until(lambda: "keyspace notifications are off" in caplog.text)
    assert 'needs "Kl"' in caplog.text
    assert silent.admin().config_get("notify-keyspace-events")["notify-keyspace-events"] == ""
    looks = config_gets(silent)
    await until(lambda: config_gets(silent) >= looks + 2)  # looked twice more: still nothing subscribed
    assert dict(silent.admin().pubsub_numsub(channel)).get(channel.encode(), 0) == 0
    assert caplog.text.count("keyspace notifications are off") == 1
    silent.admin().lpush(f"{prefix}q", "job")
    with pytest.raises(TimeoutError):
        await woken.next(timeout=0.5)
    silent.admin().config_set("notify-keyspace-events", "Kl")  # the operator turns them on later
    await subscribed(silent, channel, 1)
    silent.admin().lpush(f"{prefix}q", "job")
    assert await woken.next() == [config]


async def test_enable_sets_the_flags_it_needs(silent: RedisServer, prefix: str, parse: Parse,
                                              open_client: Open) -> None:
    config = parse("redis-streams", {"address": silent.address, "stream": f"{prefix}s", "consumerGroup": "g",
                                     "keyspaceNotifications": "enable"})
    client, woken = open_client(config), Woken()
    client.watch([config], woken)
    await subscribed(silent, f"__keyspace@0__:{prefix}s", 1)
    flags = silent.admin().config_get("notify-keyspace-events")["notify-keyspace-events"]
    assert isinstance(flags, str) and set(flags) == {"K", "t"}
    silent.admin().xadd(f"{prefix}s", {"job": "1"})
    assert await woken.next() == [config]


async def test_the_subscription_comes_back_after_its_connection_is_killed(
        notifying: RedisServer, prefix: str, parse: Parse, open_client: Open) -> None:
    config = parse("redis", {"address": notifying.address, "listName": f"{prefix}q"})
    client, woken = open_client(config), Woken()
    client.watch([config], woken)
    channel = f"__keyspace@0__:{prefix}q"
    await subscribed(notifying, channel, 1)
    notifying.admin().client_kill_filter(_type="pubsub")
    await subscribed(notifying, channel, 0)
    await subscribed(notifying, channel, 1)
    notifying.admin().rpush(f"{prefix}q", "job")
    assert await woken.next() == [config]
