"""A work queue of ScaledObject keys and a token bucket for API calls (client-go's two helpers).

The queue holds each key at most once, hands it to one worker at a time (a key added while a
worker holds it is queued again when the worker is done), and has two lanes: urgent keys (a
change a user made, an activity change) always go before routine ones (a timer that came due,
a target scaled), so one change reaches its HPA in milliseconds even while a thousand routine
looks wait. Delayed adds go into one deadline queue (a heap, one loop timer for its earliest
deadline): a key has at most one deadline, a newer one replaces the older, and the cost of
timers is proportional to the objects that have one, not to all objects.

The token bucket bounds the calls the controller makes to kube-apiserver (`qps`, with `burst`
allowed at once); waiters are served in order.
"""

from __future__ import annotations

import asyncio
import heapq
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
        self._queued: dict[K, bool] = {}  # queued keys: urgent?
        self._busy: set[K] = set()
        self._again: dict[K, bool] = {}  # added while busy: queue again when done (urgent?)
        self._deadlines: dict[K, float] = {}  # loop time each key is due
        self._heap: list[tuple[float, int, K]] = []  # the deadlines, with stale entries skipped
        self._order = 0
        self._timer: asyncio.TimerHandle | None = None  # fires at the earliest deadline
        self._timer_at = float("inf")
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queued)

    def add(self, key: K, urgent: bool = False) -> None:
        if key in self._busy:
            self._again[key] = self._again.get(key, False) or urgent
            return
        queued_urgent = self._queued.get(key)
        if queued_urgent is not None:
            if urgent and not queued_urgent:  # promoted: its place in the routine lane is skipped
                self._queued[key] = True
                self._urgent.append(key)
            return
        self._queued[key] = urgent
        (self._urgent if urgent else self._routine).append(key)
        self._ready.set()

    def add_after(self, key: K, delay: float) -> None:
        """Add `key` (routine) after `delay` seconds; replaces an earlier deadline of it."""
        loop = asyncio.get_running_loop()
        at = loop.time() + max(0.0, delay)
        self._deadlines[key] = at
        self._order += 1
        heapq.heappush(self._heap, (at, self._order, key))
        if at < self._timer_at:
            self._arm(loop, at)

    @property
    def timed(self) -> int:
        return len(self._deadlines)

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = loop.call_at(at, self._fire), at

    def _fire(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer, self._timer_at = None, float("inf")
        now = loop.time()
        while self._heap and self._heap[0][0] <= now:
            at, _, key = heapq.heappop(self._heap)
            if self._deadlines.get(key) == at:
                del self._deadlines[key]
                self.add(key)
        while self._heap and self._deadlines.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # stale: replaced by an earlier deadline, or forgotten
        if self._heap:
            self._arm(loop, self._heap[0][0])

    def forget(self, key: K) -> None:
        """Drop `key`'s deadline (its heap entry is skipped when it comes up)."""
        self._deadlines.pop(key, None)

    async def get(self) -> K:
        while (key := self._next()) is None:
            self._ready.clear()
            await self._ready.wait()
        del self._queued[key]
        self._busy.add(key)
        return key

    def _next(self) -> K | None:
        """The next queued key, skipping the places keys promoted to urgent left behind (removing
        them from the deque instead scanned it: O(N) per promotion, and at 100,000 objects an
        activity update promoting thousands held the loop for minutes)."""
        while self._urgent:
            key = self._urgent.popleft()
            if self._queued.get(key) is True:
                return key
        while self._routine:
            key = self._routine.popleft()
            if self._queued.get(key) is False:
                return key
        return None

    def done(self, key: K) -> None:
        self._busy.discard(key)
        if key in self._again:
            self.add(key, self._again.pop(key))

    def clear_timers(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, float("inf")
        self._deadlines.clear()
        self._heap.clear()
