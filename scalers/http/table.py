"""The adapter's in-memory table of pushed counts: the `http` scaler's "server".

Each interceptor replica's latest report is kept whole, with the time it arrived; the value of a
route is the sum over the replicas whose report is still within its `ttl`, so two replicas add
up and a replica that stopped pushing drops out. `update` (and `lapse`, when a report's ttl ran
out) answer which routes' sums changed, so the caller can wake exactly those triggers in the
metric store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from scalers.http.http_trigger_config import RouteKey
from scalers.http.report import CountsReport, RouteCounts

Clock = Callable[[], float]


@dataclass(frozen=True)
class RouteTotal:
    pending: int = 0
    held: int = 0
    rate: float = 0.0
    reporters: int = 0  # interceptor replicas counting this route now


@dataclass
class _Received:
    report: CountsReport
    at: float
    routes: dict[RouteKey, RouteCounts] = field(default_factory=dict)

    def live(self, now: float) -> bool:
        return now - self.at <= self.report.ttl


class CountsTable:
    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._received: dict[str, _Received] = {}
        self.reports = 0

    def update(self, report: CountsReport) -> set[RouteKey]:
        """Keep `report` (unless older than the one held); the routes whose totals changed."""
        now = self.clock()
        previous = self._received.get(report.interceptor)
        if previous is not None and previous.live(now) and report.sequence < previous.report.sequence:
            return set()
        touched = {c.route for c in report.routes} | (set(previous.routes) if previous else set())
        before = {key: self.total(key, now) for key in touched}
        self._received[report.interceptor] = _Received(report, now, {c.route: c for c in report.routes})
        self.reports += 1
        self._forget_expired(now)
        return {key for key in touched if self.total(key, now) != before[key]}

    def lapse(self, interceptor: str, sequence: int) -> set[RouteKey]:
        """Forget `interceptor`'s report if it is still the one numbered `sequence` (its ttl has run
        out with no newer one); the routes whose totals changed."""
        received = self._received.get(interceptor)
        if received is None or received.report.sequence != sequence:
            return set()
        del self._received[interceptor]
        return {key for key, c in received.routes.items() if (c.pending, c.held, c.rate) != (0, 0, 0)}

    def total(self, key: RouteKey, now: float | None = None) -> RouteTotal:
        now = self.clock() if now is None else now
        pending = held = reporters = 0
        rate = 0.0
        for received in self._received.values():
            counts = received.routes.get(key)
            if counts is not None and received.live(now):
                pending, held, rate = pending + counts.pending, held + counts.held, rate + counts.rate
                reporters += 1
        return RouteTotal(pending, held, rate, reporters)

    def interceptors(self) -> Iterable[str]:
        now = self.clock()
        return [name for name, received in self._received.items() if received.live(now)]

    def _forget_expired(self, now: float) -> None:
        for name in [n for n, r in self._received.items() if now - r.at > 10 * r.report.ttl]:
            del self._received[name]
