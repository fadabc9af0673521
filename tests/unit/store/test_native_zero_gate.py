"""What the store answers for an object whose HPA owns 0 <-> N (native scale-to-zero): an
inactive object's value is 0 from the controller's `zero_from` and at least 1m before it;
activity, errors and fallback values pass unchanged; objects not reported native are untouched.

The counter scaler of test_store (activation threshold 1, target 5) reads values from a dict.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from test_store import World, key, scaled_object, setup, with_fallback

from adapter.keda.activity import TargetsReport, TargetState

PAST, FUTURE = -5.0, 60.0  # zero_from relative to now


def answered(status_body: tuple[int, bytes] | None) -> tuple[int, str]:
    assert status_body is not None
    status, body = status_body
    return status, json.loads(body)["items"][0]["value"] if status == 200 else json.loads(body)["reason"]


@pytest.mark.parametrize("value, state, fail, expected", [
    (0, None, False, (200, "0")),  # not reported: untouched
    (0, {"native": False}, False, (200, "0")),
    (0, {"native": True, "zero_from": FUTURE}, False, (200, "1m")),  # cooling down: the HPA keeps 1
    (1, {"native": True, "zero_from": FUTURE}, False, (200, "1")),  # at the activation threshold: inactive
    (1, {"native": True, "zero_from": PAST}, False, (200, "0")),  # cooled down: the HPA goes to 0, stays there
    (0, {"native": True, "zero_from": None}, False, (200, "1m")),  # forced active / scale-in paused: never 0
    (3, {"native": True, "zero_from": PAST}, False, (200, "3")),  # active: the real value
    (3, {"native": True, "zero_from": PAST}, True, (200, "15")),  # fallback: 5 x 3 replicas keeps it up
], ids=str)
async def test_the_served_value(value: float, state: dict[str, Any] | None, fail: bool,
                                expected: tuple[int, str]) -> None:
    world = World(values={"a": value}, fail=fail)
    _, store = setup(world, with_fallback(scaled_object("x", "s1", "a"), threshold=0, replicas=3), max_age=0)
    if state is not None:
        zero = state.get("zero_from")
        store.set_targets(TargetsReport((TargetState("default", "x", native=state["native"],
                                                     zero_from=None if zero is None else time.time() + zero),),
                                        complete=True))
    assert answered(await store.answer(key("x", "a"))) == expected


async def test_an_error_without_fallback_stays_an_error() -> None:
    world = World(values={"a": 0}, fail=True)
    _, store = setup(world, scaled_object("x", "s1", "a"), max_age=0)
    store.set_targets(TargetsReport((TargetState("default", "x", native=True, zero_from=time.time() - 5),), True))
    assert answered(await store.answer(key("x", "a"))) == (500, "InternalError")


async def test_one_active_trigger_keeps_every_metric_of_the_object_real() -> None:
    world = World(values={"a": 1, "b": 4})  # a at its activation threshold (inactive), b above it
    obj = scaled_object("x", "s1", "a")
    obj["spec"]["triggers"].append({"type": "counter", "metadata": {"server": "s1", "key": "b"}})
    _, store = setup(world, obj, max_age=0)
    store.set_targets(TargetsReport((TargetState("default", "x", native=True, zero_from=time.time() - 5),), True))
    await store.read(("default", "x", "s1-counter-b"))
    assert answered(await store.answer(key("x", "a"))) == (200, "1")  # the object is active: a's real value
    world.values["b"] = 0
    await store.read(("default", "x", "s1-counter-b"))
    assert answered(await store.answer(key("x", "a"))) == (200, "0")  # now inactive past zero_from: gated
