"""A work queue of ScaledObject keys and a token bucket for API calls (client-go's two helpers).

The queue holds each key at most once, hands it to one worker at a time (a key added while a
worker holds it is queued again when the worker is done), and has two lanes: urgent keys (a
change a user made, an activity change) always go before routine ones (the pollingInterval
re-check of each object), so one change reaches its HPA in milliseconds even while a thousand
routine checks wait. Delayed adds keep one timer per key; a newer one replaces the older.

The token bucket bounds the calls the controller makes to kube-apiserver (`qps`, with `burst`
allowed at once); waiters are served in order.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class RateLimiter:
    def __init__(self, qps: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.qps, self.burst, self.clock = qps, burst, clock
        self._tokens = float(burst)
        self._at = clock()
        self._lock = asyncio.Lock()
        self.waited = 0.0  # total seconds callers spent waiting, for logs and benchmarks

    async def acquire(self) -> None:
        async with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.qps)
            self._at = now
            self._tokens -= 1
            if self._tokens < 0:
                delay = -self._tokens / self.qps
                self.waited += delay
                await asyncio.sleep(delay)


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._urgent: deque[K] = deque()
        self._routine: deque[K] = deque()
        self._queued: set[K] = set()
        self._busy: set[K] = set()
        self._again: dict[K, bool] = {}  # added while busy: queue again when done (urgent?)
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queued)

    def add(self, key: K, urgent: bool = False) -> None:
        if key in self._busy:
            self._again[key] = self._again.get(key, False) or urgent
            return
        if key in self._queued:
            if urgent and key in self._routine:
                self._routine.remove(key)
                self._urgent.append(key)
            return
        self._queued.add(key)
        (self._urgent if urgent else self._routine).append(key)
        self._ready.set()

    def add_after(self, key: K, delay: float) -> None:
        """Add `key` (routine) after `delay` seconds; replaces an earlier timer for it."""
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        self._timers[key] = asyncio.get_running_loop().call_later(max(0.0, delay), self._fire, key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def forget(self, key: K) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    async def get(self) -> K:
        while not (self._urgent or self._routine):
            self._ready.clear()
            await self._ready.wait()
        key = self._urgent.popleft() if self._urgent else self._routine.popleft()
        self._queued.discard(key)
        self._busy.add(key)
        return key

    def done(self, key: K) -> None:
        self._busy.discard(key)
        if key in self._again:
            self.add(key, self._again.pop(key))

    def clear_timers(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
