"""postgresql and external-push end to end: real kube-apiserver and HPA controller, real servers.

The adapter and controller run as local processes (`controller_stack`), reading a real
PostgreSQL and a real gRPC external scaler. Each story is KEDA's: 0 -> 1 by the controller
when the trigger turns active, 1 -> N by the HPA from the served metric, N -> 1 by the HPA
when it drains, and 1 -> 0 by the controller after the cooldown. The external-push object
polls only every 60 s: its activation and deactivation arrive by the StreamIsActive stream.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from cluster_adapter import apply
from controller_stack import ReplicaLog, Stack, deployment, scaled_object, wait_condition, wait_replicas
from controlplane import ControlPlane, wait_for

from tests.harness.external_scaler import ExternalScalerServer
from tests.harness.postgres_server import USER, PostgresServer

pytestmark = [pytest.mark.e2e, pytest.mark.stack(replicas=1)]


class ThreadedScaler:
    """An ExternalScalerServer on its own event loop thread, for a synchronous test to drive."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = ExternalScalerServer()
        self._thread = threading.Thread(target=self.loop.run_forever, name="external-scaler", daemon=True)

    def __enter__(self) -> ThreadedScaler:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.__aenter__(), self.loop).result(timeout=30)
        return self

    def set(self, namespace: str, name: str, **changes: Any) -> None:
        self.loop.call_soon_threadsafe(lambda: self.server.set(namespace, name, **changes))

    def open_streams(self, namespace: str, name: str) -> int:
        async def count() -> int:
            return self.server.open_streams(namespace, name)
        return asyncio.run_coroutine_threadsafe(count(), self.loop).result(timeout=10)

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.__aexit__(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


def story(cp: ControlPlane, ns: str, name: str, fill: Callable[[], None], drain: Callable[[], None], *,
          items: int, target: int, activation_within: float) -> None:
    """0 -> 1 (controller) -> ceil(items/target) (HPA) -> 1 (HPA) -> 0 (controller, after cooldown)."""
    log = ReplicaLog(cp, ns, name)
    try:
        wait_condition(cp, ns, name, "Ready", ("True", "ScaledObjectReady"), timeout=30)
        wait_condition(cp, ns, name, "Active", ("False", "ScalerNotActive"), timeout=30)
        filled_at = time.time()
        fill()
        assert log.seen(1, after=filled_at, timeout=activation_within + 5) - filled_at < activation_within
        expected = math.ceil(items / target)
        wait_replicas(cp, ns, name, expected, timeout=45)
        drained_at = time.time()
        drain()
        log.seen(0, after=drained_at, timeout=60)
        assert log.values == [0, 1, expected, 1, 0]
    finally:
        log.stop()


def test_postgresql_story(stack: Stack, postgres_server: PostgresServer, namespace: str) -> None:
    cp, ns = stack.cp, namespace
    table = f"jobs_{uuid.uuid4().hex[:8]}"
    run(postgres_server.execute(f"CREATE TABLE {table} (id serial, state text)"))
    run(postgres_server.execute(f"ALTER TABLE {table} OWNER TO {USER}"))
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pg"},
              "stringData": {"connection": postgres_server.dsn()}}
    auth = {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication", "metadata": {"name": "pg"},
            "spec": {"secretTargetRef": [{"parameter": "connection", "name": "pg", "key": "connection"}]}}
    trigger = {"type": "postgresql", "authenticationRef": {"name": "pg"},
               "metadata": {"query": f"SELECT count(*) FROM {table} WHERE state = 'new'", "targetQueryValue": "4"}}
    apply(cp, ns, secret, auth, deployment("reports", 0), scaled_object("reports", [trigger]))
    story(cp, ns, "reports",
          lambda: run(postgres_server.execute(
              f"INSERT INTO {table} (state) SELECT 'new' FROM generate_series(1, 11)")),
          lambda: run(postgres_server.execute(f"UPDATE {table} SET state = 'done'")),
          items=11, target=4, activation_within=5)


def test_external_push_story(stack: Stack, namespace: str) -> None:
    cp, ns = stack.cp, namespace
    with ThreadedScaler() as scaler:
        scaler.set(ns, "pushed", metric_name="backlog", target_size=3)
        trigger = {"type": "external-push", "metadata": {"scalerAddress": scaler.server.address, "tenant": ns}}
        apply(cp, ns, deployment("pushed", 0), scaled_object("pushed", [trigger], pollingInterval=60))
        wait_condition(cp, ns, "pushed", "Ready", ("True", "ScaledObjectReady"), timeout=30)
        wait_for(lambda: scaler.open_streams(ns, "pushed") == 1, timeout=30, what="the StreamIsActive stream")
        story(cp, ns, "pushed", lambda: scaler.set(ns, "pushed", value=10, active=True),
              lambda: scaler.set(ns, "pushed", value=0, active=False), items=10, target=3,
              activation_within=5)  # well inside the 60 s pollingInterval: the stream woke it


def run(work: Any) -> Any:
    return asyncio.run(work)
