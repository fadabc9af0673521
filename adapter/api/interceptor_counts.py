"""`POST /interceptor/counts`: where interceptors push their per-route request counts.

The body is the report of `scalers.http.report`. It goes into the `http` scaler's table, and the
triggers whose totals changed are woken in the metric store (`MetricStore.wake`), so a request
held at zero replicas reaches the controller's long poll within milliseconds. When a report's
ttl runs out without a newer one (the interceptor stopped), its counts are dropped and the
triggers woken the same way.

The path is served on the TLS port like every other, so a push is authenticated (a
ServiceAccount token by TokenReview, or a client certificate) and authorized as kube-apiserver
would authorize it: verb `post` on the non-resource URL `/interceptor/counts` (the
interceptor's ClusterRole grants exactly that). The network between pods is not trusted.
"""

from __future__ import annotations

import asyncio
import logging

from adapter.store.store import MetricStore
from scalers.http.http_trigger_config import HttpTriggerConfig, RouteKey
from scalers.http.report import decode_report
from scalers.http.table import CountsTable

log = logging.getLogger("eventscale.interceptor-counts")

PATH = "/interceptor/counts"


class CountsReceiver:
    def __init__(self, table: CountsTable, store: MetricStore) -> None:
        self.table, self.store = table, store
        self._lapses: dict[str, asyncio.TimerHandle] = {}  # per interceptor: when its last report runs out

    def receive(self, body: bytes) -> int:
        """Keep one report; the number of routes whose totals changed. `ValueError` if malformed."""
        report = decode_report(body)
        changed = self.table.update(report)
        self._wake(changed)
        timer = self._lapses.pop(report.interceptor, None)
        if timer is not None:
            timer.cancel()
        self._lapses[report.interceptor] = asyncio.get_running_loop().call_later(
            report.ttl + 0.01, self._lapse, report.interceptor, report.sequence)
        return len(changed)

    def _lapse(self, interceptor: str, sequence: int) -> None:
        """An interceptor's report ran out unreplaced (it stopped, or cannot reach us): its counts go."""
        self._lapses.pop(interceptor, None)
        changed = self.table.lapse(interceptor, sequence)
        if changed:
            log.info("interceptor=%s stopped reporting; its counts of %d routes dropped", interceptor, len(changed))
        self._wake(changed)

    def _wake(self, changed: set[RouteKey]) -> None:
        if changed:
            self.store.wake(self._keys(changed))

    def _keys(self, routes: set[RouteKey]) -> list[tuple[str, str, str]]:
        return [entry.trigger.key for entry in self.store.entries()
                if isinstance(entry.trigger.config, HttpTriggerConfig) and entry.trigger.config.route in routes]
