"""external and external-push against a real gRPC external scaler, through the catalog and store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from adapter.catalog.catalog import Catalog
from adapter.store.store import MetricStore
from scalers.external.grpc_scaler import ExternalScaler
from tests.harness.external_scaler import ExternalScalerServer
from tests.harness.rabbitmq_server import tcp_connections_to
from tests.harness.tls_material import TLSMaterial
from tests.integration.triggers import NAMESPACE, catalog_and_store, key, scaled_object, secret, trigger_auth


async def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout}s"
        await asyncio.sleep(0.01)


@pytest.fixture
async def scaler_server() -> AsyncIterator[ExternalScalerServer]:
    async with ExternalScalerServer() as server:
        yield server


def served(catalog: Catalog, name: str) -> str | None:
    """The served metric name of ScaledObject `name`'s trigger, once it resolved."""
    resolved = catalog.scaled_object(NAMESPACE, name)
    if resolved is None or resolved.triggers[0].error is not None:
        return None
    return resolved.triggers[0].metric_name


async def test_spec_value_and_activity_come_from_the_scaler(scaler_server: ExternalScalerServer) -> None:
    scaler_server.set(NAMESPACE, "orders", metric_name="orders-backlog", target_size=2.5, value=12, active=True)
    objects = [scaled_object("orders", "external", {"scalerAddress": scaler_server.address, "queue": "orders",
                                                    "passwordFromEnv": "UNRESOLVED"})]
    async with catalog_and_store([ExternalScaler(timeout=2)], objects) as (catalog, store):
        first = catalog.scaled_object(NAMESPACE, "orders")
        assert first is not None and "waiting for the metric spec (GetMetricSpec)" in (first.triggers[0].error or "")
        await wait_for(lambda: served(catalog, "orders") is not None, what="the spec")
        resolved = catalog.scaled_object(NAMESPACE, "orders")
        assert resolved is not None and resolved.triggers[0].metric_name == "s0-orders-backlog"
        assert resolved.triggers[0].metric is not None and resolved.triggers[0].metric.target == 2.5
        entry = await store.read(key("orders", "s0-orders-backlog"))
        assert entry is not None and (entry.value, entry.active) == (12.0, True)
        scaler_server.set(NAMESPACE, "orders", value=0, active=False)
        await store.refresh([entry])
        assert (entry.value, entry.active) == (0.0, False)
    ref = scaler_server.refs[-1]
    assert (ref.name, ref.namespace) == ("orders", NAMESPACE)
    assert dict(ref.scalerMetadata) == {"scalerAddress": scaler_server.address, "queue": "orders"}
    assert scaler_server.calls["GetMetricSpec"] == 1  # resolving again found it known


async def test_the_activity_is_the_scalers_not_a_threshold(scaler_server: ExternalScalerServer) -> None:
    scaler_server.set(NAMESPACE, "quiet", value=50, active=False)
    objects = [scaled_object("quiet", "external", {"scalerAddress": scaler_server.address})]
    async with catalog_and_store([ExternalScaler(timeout=2)], objects) as (catalog, store):
        await wait_for(lambda: served(catalog, "quiet") is not None)
        entry = await store.read(key("quiet", "s0-queue-length"))
        assert entry is not None and entry.value == 50.0 and not entry.active


async def test_integer_sizes(scaler_server: ExternalScalerServer) -> None:
    scaler_server.integer_sizes = True
    scaler_server.set(NAMESPACE, "ints", target_size=3, value=7)
    async with catalog_and_store([ExternalScaler(timeout=2)],
                                 [scaled_object("ints", "external", {"scalerAddress": scaler_server.address})]) as (
            catalog, store):
        await wait_for(lambda: served(catalog, "ints") is not None)
        resolved = catalog.scaled_object(NAMESPACE, "ints")
        assert resolved is not None
        trigger = resolved.triggers[0]
        assert trigger.metric is not None and trigger.metric.target == 3.0
        entry = await store.read(key("ints", "s0-queue-length"))
        assert entry is not None and entry.value == 7.0


async def test_many_triggers_share_one_connection(scaler_server: ExternalScalerServer) -> None:
    objects = [scaled_object(f"so{i}", "external-push" if i % 2 else "external",
                             {"scalerAddress": scaler_server.address}) for i in range(50)]
    for i in range(50):
        scaler_server.set(NAMESPACE, f"so{i}", value=i)
    scaler = ExternalScaler(timeout=2)
    async with catalog_and_store([scaler], objects) as (catalog, store):
        await wait_for(lambda: all(served(catalog, f"so{i}") for i in range(50)), what="every spec")
        entries = [store.entry(key(f"so{i}", "s0-queue-length")) for i in range(50)]
        await store.refresh([e for e in entries if e is not None])
        assert [e.value for e in entries if e is not None] == [float(i) for i in range(50)]
        await wait_for(lambda: sum(scaler_server.open_streams(NAMESPACE, f"so{i}") for i in range(50)) == 25,
                       what="one stream per external-push trigger")
        assert scaler.channels.open_count() == 1
        assert tcp_connections_to(scaler_server.port) == 1
        assert store.open_clients() == {"external": 1}
    assert scaler_server.calls["GetMetricSpec"] == 50


async def test_push_wakes_activation_at_once(scaler_server: ExternalScalerServer) -> None:
    objects = [scaled_object("pushed", "external-push", {"scalerAddress": scaler_server.address},
                             polling_interval=300)]
    async with catalog_and_store([ExternalScaler(timeout=2)], objects) as (catalog, store):
        poller = asyncio.create_task(store.poll_forever())
        try:
            await wait_for(lambda: served(catalog, "pushed") is not None)
            entry = store.entry(key("pushed", "s0-queue-length"))
            assert entry is not None
            await wait_for(lambda: entry.read_at > float("-inf")
                           and scaler_server.open_streams(NAMESPACE, "pushed") == 1, what="first poll and the stream")
            assert not entry.active
            heard: list[float] = []
            store.subscribe(lambda changed: heard.append(time.monotonic()))
            scaler_server.set(NAMESPACE, "pushed", value=3, active=True)
            pushed_at = time.monotonic()
            await wait_for(lambda: entry.active, timeout=5, what="pushed activity")
            assert heard and heard[0] - pushed_at < 1.0  # not the 300 s pollingInterval
            assert entry.value == 3.0
            scaler_server.set(NAMESPACE, "pushed", active=False)
            await wait_for(lambda: not entry.active, timeout=5, what="pushed inactivity")
        finally:
            poller.cancel()


async def test_a_stream_ended_by_the_scaler_is_opened_again(scaler_server: ExternalScalerServer) -> None:
    objects = [scaled_object("again", "external-push", {"scalerAddress": scaler_server.address})]
    async with catalog_and_store([ExternalScaler(timeout=2)], objects) as (catalog, store):
        await wait_for(lambda: served(catalog, "again") is not None)
        entry = store.entry(key("again", "s0-queue-length"))
        assert entry is not None
        await store.refresh([entry])
        await wait_for(lambda: scaler_server.open_streams(NAMESPACE, "again") == 1)
        scaler_server.end_streams()
        await wait_for(lambda: scaler_server.open_streams(NAMESPACE, "again") == 0)
        await wait_for(lambda: scaler_server.open_streams(NAMESPACE, "again") == 1, timeout=10,
                       what="the stream opened again after KEDA's 2 s backoff")
        assert scaler_server.calls["StreamIsActive"] == 2


async def test_tls_and_mutual_tls(tls_material: TLSMaterial) -> None:
    for mutual in (False, True):
        async with ExternalScalerServer(tls=tls_material, require_client_cert=mutual) as server:
            server.set(NAMESPACE, "tls", value=4)
            auth = {"caCert": tls_material.ca_pem}
            if mutual:
                auth |= {"tlsClientCert": tls_material.client_cert_pem, "tlsClientKey": tls_material.client_key_pem}
            objects = [secret("tls", **auth), trigger_auth("tls", "tls", *auth),
                       scaled_object("tls", "external", {"scalerAddress": f"localhost:{server.port}"}, "tls")]
            async with catalog_and_store([ExternalScaler(timeout=2)], objects) as (catalog, store):
                await wait_for(lambda: served(catalog, "tls") is not None, what=f"spec over TLS (mutual={mutual})")
                entry = await store.read(key("tls", "s0-queue-length"))
                assert entry is not None and entry.value == 4.0


async def test_a_client_without_its_certificate_is_refused(tls_material: TLSMaterial) -> None:
    async with ExternalScalerServer(tls=tls_material, require_client_cert=True) as server:
        objects = [secret("ca", caCert=tls_material.ca_pem), trigger_auth("ca", "ca", "caCert"),
                   scaled_object("nocert", "external", {"scalerAddress": f"localhost:{server.port}"}, "ca")]
        async with catalog_and_store([ExternalScaler(timeout=2)], objects) as (catalog, _):
            def error() -> str:
                resolved = catalog.scaled_object(NAMESPACE, "nocert")
                return (resolved.triggers[0].error or "") if resolved else ""
            await wait_for(lambda: "GetMetricSpec failed: UNAVAILABLE" in error(), what="a refused handshake")
            assert "external scaler at localhost:" in error()


async def test_a_scaler_down_at_first_is_asked_again_until_it_answers() -> None:
    server = ExternalScalerServer()
    objects = [scaled_object("late", "external", {"scalerAddress": server.address})]
    async with catalog_and_store([ExternalScaler(timeout=1)], objects) as (catalog, store):
        def error() -> str:
            resolved = catalog.scaled_object(NAMESPACE, "late")
            return (resolved.triggers[0].error or "") if resolved else ""
        await wait_for(lambda: "GetMetricSpec failed: UNAVAILABLE" in error() or "did not answer" in error(),
                       what="the failure in the trigger's error")
        assert error().startswith(f"external scaler at {server.address}: GetMetricSpec")
        async with server:
            server.set(NAMESPACE, "late", value=6)
            await wait_for(lambda: served(catalog, "late") is not None, timeout=15, what="the retried spec")
            entry = await store.read(key("late", "s0-queue-length"))
            assert entry is not None and entry.value == 6.0


async def test_failing_calls_name_the_trigger_and_recover(scaler_server: ExternalScalerServer) -> None:
    objects = [scaled_object("flaky", "external", {"scalerAddress": scaler_server.address})]
    async with catalog_and_store([ExternalScaler(timeout=1)], objects) as (catalog, store):
        await wait_for(lambda: served(catalog, "flaky") is not None)
        scaler_server.fail["IsActive"] = __import__("grpc").StatusCode.INTERNAL
        entry = await store.read(key("flaky", "s0-queue-length"))
        assert entry is not None and entry.status == 500
        body = entry.body.decode()
        assert "ScaledObject default/flaky trigger 0 (external)" in body
        assert "IsActive failed: INTERNAL: IsActive refused by the test scaler" in body
        del scaler_server.fail["IsActive"]
        scaler_server.delay = 2.0
        await store.refresh([entry])
        assert "did not answer in time" in (entry.error or "") or "DEADLINE_EXCEEDED" in (entry.error or "")
        scaler_server.delay = 0.0
        await store.refresh([entry])
        assert entry.error is None and entry.status == 200


async def test_store_and_scaler_close_the_channel(scaler_server: ExternalScalerServer) -> None:
    scaler = ExternalScaler(timeout=2)
    scaler.channels._idle_close = 0.05
    objects = [scaled_object("bye", "external-push", {"scalerAddress": scaler_server.address})]
    store: MetricStore
    async with catalog_and_store([scaler], objects) as (catalog, store):
        await wait_for(lambda: served(catalog, "bye") is not None)
        entry = store.entry(key("bye", "s0-queue-length"))
        assert entry is not None
        await store.refresh([entry])
        await wait_for(lambda: scaler_server.open_streams(NAMESPACE, "bye") == 1)
    await wait_for(lambda: scaler.channels.open_count() == 0 and tcp_connections_to(scaler_server.port) == 0,
                   what="the channel closed once no trigger uses it")
    assert scaler_server.open_streams(NAMESPACE, "bye") == 0
