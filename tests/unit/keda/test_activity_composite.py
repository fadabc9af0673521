"""The composite part of the activity document: what the adapter encodes, the controller decodes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapter.keda.activity import CompositeActivity, ObjectActivity, TriggerActivity, decode_object, encode_object

TRIGGER = TriggerActivity(0, "redis", "s0-redis-jobs", "AverageValue", 5.0, 0.0, True, 3.0, True, None, 0, False,
                          name="jobs")


@pytest.mark.parametrize("composite", [
    None,
    CompositeActivity("composite-metric", "AverageValue", 5.0, 2.0, 14.0, True, None, False),
    CompositeActivity("composite-metric", "Value", 5.0, 0.0, None, False, "trigger 1 (dead): refused", False),
    CompositeActivity("composite-metric", "AverageValue", 5.0, 0.0, 20.0, True, None, True),
])
def test_round_trip(composite: CompositeActivity | None) -> None:
    sent = ObjectActivity("ns", "worker", "uid-1", 3, None, (TRIGGER,), "keda.sh/v1alpha1",
                          composite=composite)
    encoded = json.loads(encode_object(sent))
    assert ("composite" in encoded) == (composite is not None)
    assert decode_object(encoded) == sent


def test_the_composite_decides_activity_and_failure() -> None:
    idle = CompositeActivity("composite-metric", "AverageValue", 5.0, 2.0, 2.0, False, None, False)
    failing = CompositeActivity("composite-metric", "AverageValue", 5.0, 2.0, None, False, "gave nil", False)
    with_idle = ObjectActivity("ns", "worker", "uid-1", 3, None, (TRIGGER,), composite=idle)
    assert TRIGGER.active and not with_idle.active and not with_idle.failing  # a trigger alone does not activate
    assert ObjectActivity("ns", "worker", "uid-1", 3, None, (TRIGGER,), composite=failing).failing


@pytest.mark.parametrize("raw, error", [
    ({"metricName": "composite-metric", "activation": 0}, "composite target and activation must be numbers"),
    ("composite", "composite"),
])
def test_malformed_composite_is_refused(raw: Any, error: str) -> None:
    sent = json.loads(encode_object(ObjectActivity("ns", "worker", "uid-1", 3, None, (TRIGGER,))))
    with pytest.raises(ValueError) as raised:
        decode_object({**sent, "composite": raw})
    assert error in str(raised.value)
