"""The rabbitmq scaler's HTTP client: one management API queue listing per vhost per read.

KEDA asks the API for one page of `pageSize` matches per config and fails when there are more.
Here ONE `GET /api/queues/<vhost>` per vhost, with only the columns needed, answers every config
of that vhost: exact names by lookup, `useRegex` patterns by matching the listing (and failing,
like KEDA, past `pageSize` matches), so a poll costs one request per vhost, not one per trigger.
Each broker gets one httpx pool of at most `HTTP_MAX_CONNECTIONS` connections.

A queue the broker has not measured yet is not empty: for a few seconds after a node starts,
the listing names its queues without `messages` (statistics are collected once a second or so),
and reading that as 0 could scale a busy workload down. Such a queue answers an error naming it,
as does a `useRegex` match that includes one; the store's fallback rules then apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from scalers.base import ScalerClient, ScalerError, ask_once
from scalers.rabbitmq.queue_config import (
    Broker,
    QueueStats,
    RabbitMQConfig,
    RequestHook,
    aggregate,
    describe,
    metric_value,
    queue_pattern,
)
from scalers.tls import client_context

HTTP_MAX_CONNECTIONS = 4
LISTING_COLUMNS = (
    "name,messages,messages_ready,"
    "message_stats.publish_details.rate,message_stats.deliver_get_details.rate"
)

Listing = dict[str, QueueStats | None]  # None: listed, but its message count not measured yet


class ManagementClient(ScalerClient[RabbitMQConfig]):
    """One httpx pool per broker; one queue listing per vhost per read."""

    def __init__(self, broker: Broker, request_hooks: Sequence[RequestHook] = ()) -> None:
        self._broker = broker
        self._hooks = list(request_hooks)
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            b = self._broker
            host = f"[{b.host}]" if ":" in b.host else b.host
            self._http = httpx.AsyncClient(
                base_url=f"{b.scheme}://{host}:{b.port}{b.path}",
                auth=(b.username, b.password or "") if b.username else None,
                timeout=b.timeout,
                verify=client_context(b.tls) if b.tls else False,  # plain http: nothing to verify
                limits=httpx.Limits(max_connections=HTTP_MAX_CONNECTIONS),
                event_hooks={"request": self._hooks},
                trust_env=False,
            )
        return self._http

    async def read(self, configs: Sequence[RabbitMQConfig]) -> list[float | ScalerError]:
        listings = await ask_once((c.vhost for c in configs), self._list)
        matches: dict[tuple[str, str], list[QueueStats]] = {}
        return [self._answer(c, listings[c.vhost], matches) for c in configs]

    async def _get_listing(self, vhost: str) -> httpx.Response:
        """GET the vhost's queues; a 5xx (the management database busy) is retried once."""
        path = f"/api/queues/{quote(vhost, safe='')}"
        try:
            response = await self._client().get(path, params={"columns": LISTING_COLUMNS})
            if response.status_code >= 500:
                response = await self._client().get(path, params={"columns": LISTING_COLUMNS})
        except httpx.HTTPError as exc:
            raise self._broker.error(describe(exc)) from None
        return response

    async def _list(self, vhost: str) -> Listing | ScalerError:
        response = await self._get_listing(vhost)
        if response.status_code == 200:
            try:
                return _listing(response.json())
            except (ValueError, TypeError, KeyError, AttributeError):
                raise self._broker.error("the queue listing is not JSON from RabbitMQ") from None
        reason = response.text[:200].strip()
        error = self._broker.error(f'listing vhost "{vhost}" answered HTTP {response.status_code}: {reason}')
        if response.status_code == 401:
            raise error
        return error

    def _answer(
        self, config: RabbitMQConfig, listing: Listing | ScalerError,
        matches: dict[tuple[str, str], list[QueueStats]],
    ) -> float | ScalerError:
        if isinstance(listing, ScalerError):
            return listing
        if not config.use_regex:
            if config.queue_name not in listing:
                return self._broker.error(f'queue "{config.queue_name}" not found in vhost "{config.vhost}"')
            stats = listing[config.queue_name]
            if stats is None:
                return self._not_measured(config, config.queue_name)
            return metric_value(config, stats)
        key = (config.vhost, config.queue_name)
        if key not in matches:
            pattern = queue_pattern(config.queue_name)
            matched = [name for name in listing if pattern.search(name)]
            unmeasured = [name for name in matched if listing[name] is None]
            if unmeasured:
                return self._not_measured(config, unmeasured[0])
            matches[key] = [s for name in matched if (s := listing[name]) is not None]
        found = matches[key]
        if len(found) > config.page_size:
            return self._broker.error(
                f'queue regex "{config.queue_name}" matches {len(found)} queues in vhost "{config.vhost}", '
                f"more than pageSize {config.page_size}"
            )
        return metric_value(config, aggregate(found, config.operation))

    def _not_measured(self, config: RabbitMQConfig, queue: str) -> ScalerError:
        return self._broker.error(f'queue "{queue}" in vhost "{config.vhost}" has no message count yet '
                                  "(the broker has not measured it since it started)")

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def _listing(items: list[dict[str, Any]]) -> Listing:
    listing: Listing = {}
    for item in items:
        if item.get("messages") is None or item.get("messages_ready") is None:
            listing[item["name"]] = None
            continue
        stats = item.get("message_stats") or {}
        listing[item["name"]] = QueueStats(
            messages=int(item.get("messages") or 0),
            ready=int(item.get("messages_ready") or 0),
            publish_rate=float((stats.get("publish_details") or {}).get("rate") or 0.0),
            deliver_rate=float((stats.get("deliver_get_details") or {}).get("rate") or 0.0),
        )
    return listing
