"""`advanced.scalingModifiers` over real HTTPS: the composite metric as the HPA reads it.

The objects are written into the adapter's directory: cron triggers whose values are known at
any time of day, and a Redis trigger on a port where nothing listens, so it fails on every read.
The composite is asked for by its name `composite-metric`, routed by the ScaledObject label as
any metric; the activity feed on the internal listener shows what the controller is told.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.test_contract import assert_status, metric_url, selector
from tests.harness.adapter_process import AdapterProcess

ALWAYS = {"timezone": "UTC", "start": "0 0 1 1 *", "end": "59 23 31 12 *"}
NEVER = {"timezone": "UTC", "start": "0 0 1 1 *", "end": "1 0 1 1 *"}
DEAD_REDIS = {"address": "127.0.0.1:1", "listName": "jobs", "listLength": "5"}


def scaled_object(name: str, triggers: list[dict[str, Any]], modifiers: dict[str, str],
                  fallback: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"scaleTargetRef": {"name": name}, "triggers": triggers,
                            "advanced": {"scalingModifiers": modifiers}}
    if fallback is not None:
        spec["fallback"] = fallback
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def cron(name: str, window: dict[str, str], replicas: int) -> dict[str, Any]:
    return {"type": "cron", "name": name, "metadata": {**window, "desiredReplicas": str(replicas)}}


OBJECTS = [
    # busy = 12, quiet = 0: (12 + 0) / 4 = 3, above the activation target 2
    scaled_object("averaged", [cron("busy", ALWAYS, 12), cron("quiet", NEVER, 7)],
                  {"formula": "(busy + quiet) / 4", "target": "5", "activationTarget": "2", "metricType": "Value"}),
    # dead fails on every read: past failureThreshold 1 it is nil, and `??` gives 3
    scaled_object("guarded", [cron("busy", ALWAYS, 12), {"type": "redis", "name": "dead", "metadata": DEAD_REDIS}],
                  {"formula": "busy > 10 ? busy + (dead ?? 3) : 1", "target": "5"},
                  {"failureThreshold": 1, "replicas": 4, "behavior": "scalingModifiers"}),
    # the default fallback behaviour: past the threshold the composite is target x replicas = 5 x 4
    scaled_object("static", [cron("busy", ALWAYS, 12), {"type": "redis", "name": "dead", "metadata": DEAD_REDIS}],
                  {"formula": "busy + dead", "target": "5"}, {"failureThreshold": 1, "replicas": 4}),
    # metricType Value: past the threshold, target x replicas / the ready pods the controller reports
    scaled_object("valued", [cron("busy", ALWAYS, 12), {"type": "redis", "name": "dead", "metadata": DEAD_REDIS}],
                  {"formula": "busy + dead", "target": "5", "metricType": "Value"},
                  {"failureThreshold": 1, "replicas": 4}),
    # the same failing trigger without `??`: the composite fails, naming the trigger
    scaled_object("unguarded", [cron("busy", ALWAYS, 12), {"type": "redis", "name": "dead", "metadata": DEAD_REDIS}],
                  {"formula": "busy + dead", "target": "5"}),
    # the formula reads a name that is no trigger's: refused at load, with its column
    scaled_object("misspelt", [cron("busy", ALWAYS, 12)], {"formula": "bussy * 2", "target": "5"}),
]


@pytest.fixture(scope="module")
def objects(local_dir: Path, admin: httpx.Client) -> Iterator[None]:
    written = local_dir / "scaling-modifiers.yaml"
    written.write_text("\n---\n".join(json.dumps(o) for o in OBJECTS))
    try:
        eventually(lambda: admin.get(composite_url("averaged")), lambda r: r.status_code == 200)
        yield
    finally:
        written.unlink()


@pytest.fixture(scope="module")
def admin(adapter: AdapterProcess) -> httpx.Client:
    return adapter.client("admin")


def composite_url(name: str) -> str:
    return metric_url("default", "composite-metric", selector(name))


def eventually(call: Callable[[], httpx.Response], done: Callable[[httpx.Response], bool],
               timeout: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = call()
        if done(response) or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_composite_metric_is_the_formula_of_the_triggers(admin: httpx.Client, objects: None) -> None:
    body = admin.get(composite_url("averaged")).json()
    assert body["kind"] == "ExternalMetricValueList"
    (item,) = body["items"]
    assert item["metricName"] == "composite-metric" and item["value"] == "3"
    # the triggers' own metrics stay served, as in KEDA
    assert admin.get(metric_url("default", "s0-cron-UTC-0011x-59233112x", selector("averaged"))).status_code == 200


def test_failing_trigger_is_nil_past_its_threshold(admin: httpx.Client, objects: None) -> None:
    passed = eventually(lambda: admin.get(composite_url("guarded")), lambda r: r.status_code == 200)
    assert passed.status_code == 200, passed.text
    assert passed.json()["items"][0]["value"] == "15"  # 12 + (nil ?? 3)


def test_static_fallback_gives_target_times_replicas(admin: httpx.Client, objects: None) -> None:
    passed = eventually(lambda: admin.get(composite_url("static")), lambda r: r.status_code == 200)
    assert passed.status_code == 200, passed.text
    assert passed.json()["items"][0]["value"] == "20"


def test_value_fallback_divides_by_the_ready_pods(admin: httpx.Client, internal_port: int, objects: None) -> None:
    """KEDA 2.20: the HPA multiplies value / target by the ready pods, so the answer is divided by
    them; none ready (or not counted yet): no answer makes the HPA compute 4, the error stands."""
    def report(ready: int) -> None:
        body = {"items": [{"namespace": "default", "name": "valued", "readyReplicas": ready}]}
        assert httpx.post(f"http://127.0.0.1:{internal_port}/replicas", json=body, timeout=5).status_code == 204

    waiting = eventually(lambda: admin.get(composite_url("valued")), lambda r: "Running and Ready" in r.text)
    assert_status(waiting, 500, "InternalError", "unable to get external metric composite-metric of ScaledObject "
                  "default/valued: in fallback with metricType Value: no pod of the target is Running and Ready")
    report(3)
    assert admin.get(composite_url("valued")).json()["items"][0]["value"] == "6666m"  # ceil(6.666 / 5 x 3) = 4
    report(2)
    assert admin.get(composite_url("valued")).json()["items"][0]["value"] == "10"
    report(0)
    assert admin.get(composite_url("valued")).status_code == 500


def test_failing_trigger_without_default_fails_the_composite(admin: httpx.Client, objects: None) -> None:
    assert_status(admin.get(composite_url("unguarded")), 500, "InternalError",
                  "unable to get external metric composite-metric of ScaledObject default/unguarded: "
                  "trigger 1 (dead)")


def test_invalid_formula_is_reported_with_its_column(admin: httpx.Client, objects: None) -> None:
    assert_status(admin.get(composite_url("misspelt")), 500, "InternalError",
                  'spec.advanced.scalingModifiers.formula uses "bussy" at column 1, which is not the name of a trigger')


def test_activity_feed_carries_the_composite(internal_port: int, objects: None) -> None:
    document = httpx.get(f"http://127.0.0.1:{internal_port}/activity/default/averaged", timeout=5).json()
    assert document["composite"] == {"metricName": "composite-metric", "metricType": "Value", "target": 5.0,
                                     "activation": 2.0, "value": 3.0, "active": True, "error": None,
                                     "fallback": False}
