"""http: scale on requests seen by the interceptor (pending requests, or a request rate).

Nothing is polled over the network: interceptors push their counts to the adapter, which keeps
them in a `CountsTable`, and this scaler's one client reads that table. The metric store then
treats an `http` trigger like any other (cached, batched, fallback), and the push handler wakes
the store for the triggers whose counts changed, so a request held at zero replicas reaches the
controller at once rather than at the next `pollingInterval`.

Activity: a held request always activates (it waits for an endpoint that only a scale-up brings);
otherwise the value must exceed `activationValue`. A route no interceptor reports is 0, not an
error: no interceptor seeing traffic is what an idle route looks like.
"""

from __future__ import annotations

from collections.abc import Sequence

from scalers.base import Reading, ScalerClient, Served, ServedScaler
from scalers.http.http_trigger_config import HttpTriggerConfig, parse_config
from scalers.http.table import CountsTable
from scalers.params import TriggerParams


def reading(config: HttpTriggerConfig, table: CountsTable) -> Reading:
    total = table.total(config.route)
    value = total.rate if config.metric == "requestRate" else float(total.pending)
    return Reading(value, active=total.held > 0 or value > config.activation_value)


class HttpCountsClient(ScalerClient[HttpTriggerConfig]):
    def __init__(self, table: CountsTable) -> None:
        self.table = table

    async def read(self, configs: Sequence[HttpTriggerConfig]) -> list[Reading]:
        return [reading(config, self.table) for config in configs]


class HttpScaler(ServedScaler[HttpTriggerConfig, str]):
    types = ("http",)

    def __init__(self, table: CountsTable | None = None) -> None:
        self.table = table or CountsTable()

    def parse(self, trigger_type: str, params: TriggerParams) -> HttpTriggerConfig:
        return parse_config(params)

    def served(self, config: HttpTriggerConfig) -> Served[str]:
        host = config.hosts[0] if config.hosts else "any"
        suffix = "-rate" if config.metric == "requestRate" else ""
        return Served("interceptor-counts", f"http-{host}{suffix}", config.target, config.activation_value)

    def open_client(self, config: HttpTriggerConfig) -> HttpCountsClient:
        return HttpCountsClient(self.table)
