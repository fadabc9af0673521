"""Per-route counts: requests pending (held or forwarded, not yet answered), held, and the rate.

The rate is kept in a ring of `window / granularity` buckets of arrivals, so it costs one
integer increment per request and a short sum per report, and memory does not grow with the
request rate. `Counters.report` is the document pushed to the adapter, every route included
(zeros too), so a route that went quiet is seen to.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable

from adapter.interceptor.routing import Route
from scalers.http.http_trigger_config import RouteKey
from scalers.http.report import CountsReport, RouteCounts

Clock = Callable[[], float]


class RouteCounter:
    def __init__(self, route: Route, clock: Clock = time.monotonic) -> None:
        self.route, self.clock = route, clock
        self.pending = 0
        self.held = 0
        self.total = 0  # arrivals since start, for /metrics
        self.turn = 0  # round-robin position among endpoints
        self._size = max(1, math.ceil(route.window / route.granularity))
        self._counts = [0] * self._size
        self._buckets = [-1] * self._size

    def begin(self) -> None:
        self.pending += 1
        self.total += 1
        bucket = int(self.clock() / self.route.granularity)
        slot = bucket % self._size
        if self._buckets[slot] != bucket:
            self._buckets[slot], self._counts[slot] = bucket, 0
        self._counts[slot] += 1

    def end(self) -> None:
        self.pending -= 1

    def hold(self) -> bool:
        """One more request waits for an endpoint; True when it is the first one."""
        self.held += 1
        return self.held == 1

    def release(self) -> None:
        self.held -= 1

    def rate(self) -> float:
        """Requests per second over the route's window."""
        oldest = int(self.clock() / self.route.granularity) - self._size
        arrivals = sum(c for c, b in zip(self._counts, self._buckets, strict=True) if b > oldest)
        return arrivals / self.route.window


class Counters:
    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._by_route: dict[RouteKey, RouteCounter] = {}

    def set_routes(self, routes: Iterable[Route]) -> None:
        """Keep the counters of routes that stay (same key and window), start the new ones."""
        kept: dict[RouteKey, RouteCounter] = {}
        for route in routes:
            old = self._by_route.get(route.key)
            if old is not None and (old.route.window, old.route.granularity) == (route.window, route.granularity):
                old.route = route
                kept[route.key] = old
            else:
                kept[route.key] = RouteCounter(route, self.clock)
        self._by_route = kept

    def of(self, route: Route) -> RouteCounter:
        found = self._by_route.get(route.key)
        if found is None:  # a route replaced while its request was in flight: counted apart
            found = RouteCounter(route, self.clock)
        return found

    def counters(self) -> Iterable[RouteCounter]:
        return self._by_route.values()

    def report(self, interceptor: str, sequence: int, ttl: float) -> CountsReport:
        routes = tuple(RouteCounts(c.route.key, max(c.pending, 0), max(c.held, 0), c.rate())
                       for c in self._by_route.values())
        return CountsReport(interceptor, sequence, ttl, routes)
