"""Only HTTP reaches the routes: a websocket (or any other) scope is closed before anything runs."""

from __future__ import annotations

from typing import Any

import pytest

from adapter.api.app import AdapterApp
from adapter.auth.authentication import AuthConfig, Authenticator
from adapter.auth.authorization import AllowAuthenticated
from adapter.catalog.catalog import Catalog
from adapter.store.store import MetricStore
from scalers.registry import REGISTRY


@pytest.mark.parametrize("scope_type, sent", [
    ("websocket", [{"type": "websocket.close", "code": 1008}]),
    ("lifespan", []),
    ("something-new", []),
])
async def test_non_http_scopes_never_reach_the_routes(scope_type: str, sent: list[dict[str, Any]]) -> None:
    reached: list[dict[str, Any]] = []

    async def routes(scope: dict[str, Any], receive: Any, send: Any) -> None:
        reached.append(scope)

    app = AdapterApp(routes, Catalog(REGISTRY), MetricStore(), Authenticator(AuthConfig()), AllowAuthenticated())
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app({"type": scope_type, "path": "/apis", "headers": []}, receive, send)
    assert reached == [] and messages == sent
