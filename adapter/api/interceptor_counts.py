"""`POST /interceptor/counts`: where interceptors push their per-route request counts.

The body is the report of `scalers.http.report`. It goes into the `http` scaler's table, and the
triggers whose totals changed are woken in the metric store (`MetricStore.wake`), so a request
held at zero replicas reaches the controller's long poll within milliseconds.

The path is served on the TLS port like every other, so a push is authenticated (a
ServiceAccount token by TokenReview, or a client certificate) and authorized as kube-apiserver
would authorize it: verb `post` on the non-resource URL `/interceptor/counts` (the
interceptor's ClusterRole grants exactly that). The network between pods is not trusted.
"""

from __future__ import annotations

import logging

from adapter.store.store import MetricStore
from scalers.http.config import HttpTriggerConfig, RouteKey
from scalers.http.report import decode_report
from scalers.http.table import CountsTable

log = logging.getLogger("eventscale.interceptor-counts")

PATH = "/interceptor/counts"


class CountsReceiver:
    def __init__(self, table: CountsTable, store: MetricStore) -> None:
        self.table, self.store = table, store

    def receive(self, body: bytes) -> int:
        """Keep one report; the number of routes whose totals changed. `ValueError` if malformed."""
        changed = self.table.update(decode_report(body))
        if changed:
            self.store.wake(self._keys(changed))
        return len(changed)

    def _keys(self, routes: set[RouteKey]) -> list[tuple[str, str, str]]:
        return [entry.trigger.key for entry in self.store.entries()
                if isinstance(entry.trigger.config, HttpTriggerConfig) and entry.trigger.config.route in routes]
