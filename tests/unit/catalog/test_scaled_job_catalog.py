"""ScaledJobs in the catalog, the metric store and the activity document.

A real catalog with the real cron and redis scalers (the redis one is only parsed here: nothing
reads it), a real metric store and the activity feed's ASGI app over httpx's transport.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from adapter.api.activity_feed import ActivityFeed, build_internal_app
from adapter.catalog.catalog import Catalog
from adapter.keda.activity import decode_document, object_key
from adapter.store.store import MetricStore
from scalers.registry import REGISTRY

ALWAYS = {"timezone": "UTC", "start": "0 0 1 1 *", "end": "59 23 31 12 *", "desiredReplicas": "4"}
REDIS = {"type": "redis", "metadata": {"addressFromEnv": "REDIS_ADDRESS", "listName": "jobs", "listLength": "1"}}


def scaled_job(name: str, triggers: list[dict[str, Any]], containers: list[dict[str, Any]] | None = None,
               **spec: Any) -> dict[str, Any]:
    template = {"spec": {"containers": containers or [{"name": "work", "image": "registry.invalid/w:1"}]}}
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob",
            "metadata": {"name": name, "namespace": "ns", "uid": f"uid-sj-{name}", "generation": 3},
            "spec": {"jobTargetRef": {"template": template}, "triggers": triggers, **spec}}


def scaled_object(name: str, triggers: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": "ns", "uid": f"uid-so-{name}"},
            "spec": {"scaleTargetRef": {"name": name}, "triggers": triggers}}


def legacy_job(name: str) -> dict[str, Any]:
    return {"apiVersion": "keda.k8s.io/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": "ns", "uid": f"uid-legacy-{name}"},
            "spec": {"scaleType": "job", "jobTargetRef": {"template": {"spec": {"containers": [
                {"name": "first", "env": [{"name": "REDIS_HOST", "value": "redis.ns:6379"}]}]}}},
                "triggers": [{"type": "redis", "metadata": {"address": "REDIS_HOST", "listName": "old"}}]}}


@pytest.fixture
async def world() -> AsyncIterator[tuple[Catalog, MetricStore, httpx.AsyncClient]]:
    catalog, store = Catalog(REGISTRY), MetricStore()
    store.follow(catalog)
    feed = ActivityFeed(catalog, store)
    catalog.replace_all([(o, "test") for o in (
        scaled_object("same", [{"type": "cron", "metadata": ALWAYS}]),
        scaled_job("same", [{"type": "cron", "metadata": ALWAYS}]),
        scaled_job("env", [REDIS], containers=[
            {"name": "sidecar"}, {"name": "work", "env": [{"name": "REDIS_ADDRESS", "value": "redis.ns:6379"}]}],
            envSourceContainerName="work"),
        scaled_job("bad", [{"type": "cron", "metadata": ALWAYS, "metricType": "Value"}]),
        legacy_job("old"),
    )])
    transport = httpx.ASGITransport(app=build_internal_app(feed))
    async with httpx.AsyncClient(transport=transport, base_url="http://internal") as client:
        yield catalog, store, client
    await store.aclose()


async def test_a_scaled_job_is_resolved_like_a_scaled_object_but_gets_no_route(world: Any) -> None:
    catalog, store, _ = world
    job = catalog.scaled_job(object_key("ScaledJob", "ns", "env"))
    assert job is not None and job.error is None and not job.trigger_errors
    trigger = job.triggers[0]
    assert trigger.config.connection.addresses == (("redis.ns", 6379),)  # from envSourceContainerName
    assert trigger.describe() == "ScaledJob ns/env trigger 0 (redis)"
    assert catalog.route("ns", "scaledobject.keda.sh/name", "env") is None
    assert [t.scaled_object for t in catalog.triggers()] == ["same"]  # what the HPA can be served
    # a ScaledObject and a ScaledJob of one name: two sets of entries in the store
    assert set(store.objects()) >= {("ns", "same"), ("ns", "ScaledJob/same")}
    assert len(store.entries_of("ns", "ScaledJob/same")) == len(store.entries_of("ns", "same")) == 1


async def test_the_2019_scale_type_job_object_reads_env_from_its_first_container(world: Any) -> None:
    catalog, _, _ = world
    old = catalog.scaled_job(("ns", "old"))
    assert old is not None and old.job.legacy and old.job.rollout_strategy == "gradual"
    assert old.triggers[0].config.connection.addresses == (("redis.ns", 6379),)
    assert catalog.scaled_object("ns", "old") is None and catalog.problem(old.job.ref) is None


async def test_the_activity_document_carries_scaled_jobs_with_their_kind(world: Any) -> None:
    catalog, store, client = world
    await store.refresh(store.entries_of("ns", "ScaledJob/same"))
    document = decode_document((await client.get("/activity")).content)
    by_key = {o.key: o for o in document.objects}
    job = by_key[("ns", "ScaledJob/same")]
    assert (job.kind, job.uid, job.generation, job.api_version) == ("ScaledJob", "uid-sj-same", 3, "keda.sh/v1alpha1")
    assert (job.triggers[0].value, job.triggers[0].active, job.triggers[0].target) == (4.0, True, 1.0)
    assert by_key[("ns", "same")].kind == "ScaledObject" and by_key[("ns", "same")].uid == "uid-so-same"
    assert "metricType cannot be set in ScaledJob triggers" in (by_key[("ns", "ScaledJob/bad")].error or "")
    assert by_key[("ns", "old")].api_version == "keda.k8s.io/v1alpha1"
    one = await client.get("/activity/ns/same", params={"kind": "ScaledJob"})
    assert one.json()["uid"] == "uid-sj-same" and one.json()["kind"] == "ScaledJob"
    assert (await client.get("/activity/ns/same")).json()["uid"] == "uid-so-same"

    catalog.apply(scaled_job("same", []), deleted=True)
    delta = await client.get("/activity", params={"since": document.generation})
    assert {"namespace": "ns", "name": "same", "kind": "ScaledJob"} in delta.json()["deleted"]
    assert decode_document(delta.content).deleted == (("ns", "ScaledJob/same"),)
    assert store.entries_of("ns", "ScaledJob/same") == () and len(store.entries_of("ns", "same")) == 1


async def test_a_secret_change_re_resolves_the_scaled_job_that_read_it(world: Any) -> None:
    catalog, _, _ = world
    secret_ref = {"name": "work", "env": [{"name": "REDIS_ADDRESS",
                                           "valueFrom": {"secretKeyRef": {"name": "redis", "key": "address"}}}]}
    catalog.apply(scaled_job("secret", [REDIS], containers=[secret_ref]))
    key = object_key("ScaledJob", "ns", "secret")
    assert "Secret ns/redis not found" in ((catalog.scaled_job(key) or {}).trigger_errors[0])  # type: ignore[union-attr]
    catalog.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "redis", "namespace": "ns"},
                   "stringData": {"address": "other:6380"}})
    resolved = catalog.scaled_job(key)
    assert resolved is not None and resolved.triggers[0].config.connection.addresses == (("other", 6380),)
