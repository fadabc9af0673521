"""What one change costs the adapter among many objects: the activity feed and /metrics redo
only the ScaledObjects that changed (counted), and say the same as a full rendering would.

A real catalog with the real cron scaler (reads need no server) and the real metric store.
"""

from __future__ import annotations

import json
from typing import Any

from adapter.api.activity_feed import ActivityFeed
from adapter.api.metrics_endpoint import Exposition
from adapter.catalog.catalog import Catalog
from adapter.store.store import MetricStore
from scalers.registry import REGISTRY

OBJECTS = 1000
ALWAYS = {"timezone": "UTC", "start": "0 0 1 1 *", "end": "59 23 31 12 *", "desiredReplicas": "4"}


def scaled_object(name: str, replicas: str = "4") -> dict[str, Any]:
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": 1},
            "spec": {"scaleTargetRef": {"name": name},
                     "triggers": [{"type": "cron", "metadata": {**ALWAYS, "desiredReplicas": replicas}}]}}


async def test_one_change_among_many_is_encoded_and_rendered_once() -> None:
    catalog, store = Catalog(REGISTRY), MetricStore()
    store.follow(catalog)
    feed, metrics = ActivityFeed(catalog, store), Exposition(store)
    catalog.replace_all([(scaled_object(f"so-{i}"), "t") for i in range(OBJECTS)])
    await store.refresh(store.entries())
    start = json.loads(await feed.document())
    assert start["full"] and len(start["scaledObjects"]) == OBJECTS
    before = metrics.render()
    encodings, rendered = feed.encodings, metrics.objects.rendered

    catalog.apply(scaled_object("so-7", replicas="9"))
    await store.refresh(store.entries_of("ns", "so-7"))
    delta = json.loads(await feed.document(start["generation"]))
    after = metrics.render()

    assert [o["name"] for o in delta["scaledObjects"]] == ["so-7"] and not delta["full"]
    assert delta["scaledObjects"][0]["triggers"][0]["value"] == 9.0
    assert feed.encodings - encodings == 1 and metrics.objects.rendered - rendered == 1
    changed = set(after.decode().splitlines()) ^ set(before.decode().splitlines())
    per_object = [line for line in changed if line.startswith(("keda_scale", "eventscale_trigger"))]
    assert per_object and all('scaledObject="so-7"' in line for line in per_object)
    rendered = metrics.objects.rendered
    assert after.endswith(metrics.objects.render()) and metrics.objects.rendered == rendered  # nothing redone
    await store.aclose()
