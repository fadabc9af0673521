"""The controller tells its adapter what changed of the targets, not every target at each change.

Found at 100,000 ScaledObjects whose targets sit at zero: every change (a new object, a target
scaled) sent all 100,000 states, at most every 0.5 s, and the adapter spent a whole core
decoding them while the controller made HPAs. Now the first report to an adapter process is
complete and later ones list the changes; an adapter that restarted refuses a report based on
its predecessor (409), and is then told everything.

The controller is the real one (its API pointed at a port nothing listens on: reports need no
Kubernetes), the adapter's real loopback app over httpx's in-process transport, swapped for a
fresh one to play a restart. Every POST /replicas is recorded as sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx

from adapter.api.activity_feed import ActivityFeed, build_internal_app
from adapter.catalog.catalog import Catalog
from adapter.controller.controller import Controller, ControllerOptions
from adapter.kube.client import KubeApi
from adapter.kube.credentials import Credentials
from adapter.store.store import MetricStore
from scalers.registry import REGISTRY
from tests.harness.ports import free_port

TARGETS = 100


class Adapter(httpx.AsyncBaseTransport):
    """The adapter's loopback app, replaceable by a new process's, recording each report and answer."""

    def __init__(self) -> None:
        self.reports: list[tuple[dict[str, Any], int]] = []
        self.restart()

    def restart(self) -> None:
        self.store = MetricStore()
        self.feed = ActivityFeed(Catalog(REGISTRY), self.store)
        self.app = httpx.ASGITransport(app=build_internal_app(self.feed))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.app.handle_async_request(request)
        if request.url.path == "/replicas":
            self.reports.append((json.loads(request.content), response.status_code))
        return response


async def wait_until(probe: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not probe():
            await asyncio.sleep(0.01)


async def test_changes_are_reported_alone_and_a_restarted_adapter_is_told_everything() -> None:
    adapter = Adapter()
    api = KubeApi(Credentials(f"https://127.0.0.1:{free_port()}"), timeout=5)
    controller = Controller(api, ControllerOptions(identity="reports", activity_wait=0), activity_transport=adapter)
    keys = [("default", f"so-{i:03d}") for i in range(TARGETS)]
    for key in keys:
        controller._note_target(key, at_zero=True)
    reporting = asyncio.create_task(controller._report_targets())
    try:
        await wait_until(lambda: len(adapter.reports) == 1)
        first, status = adapter.reports[0]
        assert status == 204 and first["complete"] and len(first["items"]) == TARGETS
        assert all(adapter.store.at_zero(key) for key in keys)

        controller._note_target(keys[5], at_zero=False)  # scaled up: nothing left to say of it
        await wait_until(lambda: len(adapter.reports) == 2)
        delta, status = adapter.reports[1]
        assert status == 204 and not delta["complete"] and delta["base"] == adapter.feed.boot
        assert [(i["name"], i["atZero"]) for i in delta["items"]] == [("so-005", False)]
        assert not adapter.store.at_zero(keys[5]) and adapter.store.target(keys[5]) is None
        assert all(adapter.store.at_zero(key) for key in keys if key != keys[5])

        adapter.restart()
        controller._note_target(keys[6], at_zero=False)
        await wait_until(lambda: len(adapter.reports) == 4)
        (refused, refused_status), (resent, resent_status) = adapter.reports[2:]
        assert refused_status == 409 and len(refused["items"]) == 1
        assert resent_status == 204 and resent["complete"] and len(resent["items"]) == TARGETS - 2
        assert {key for key in keys if adapter.store.at_zero(key)} == set(keys) - {keys[5], keys[6]}
        await asyncio.sleep(0.6)  # past the reports' 0.5 s spacing: nothing more to say
        assert len(adapter.reports) == 4
    finally:
        reporting.cancel()
        await controller.activity.aclose()
        await adapter.store.aclose()
        await api.aclose()
