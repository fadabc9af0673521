"""Status: conditions in KEDA's order, health and activity per metric, the minimal merge patch."""

from __future__ import annotations

from typing import Any

import pytest

from adapter.controller import conditions as c
from adapter.controller.status import health, merge_patch, newly_failing, triggers_activity
from adapter.keda.activity import TriggerActivity
from adapter.keda.scaled_object_status import merged, parse_status
from adapter.kube.wire import parse_timestamp, timestamp


def trigger(name: str, *, active: bool = False, error: str | None = None, failures: int = 0,
            resolved: bool = True, read: bool = True) -> TriggerActivity:
    return TriggerActivity(index=0, type="redis", metric_name=name, metric_type="AverageValue", target=5.0,
                           activation=0.0, resolved=resolved, value=None if error else 3.0, active=active, error=error,
                           failures=failures, fallback=False, read_at="2026-01-01T00:00:00.000Z" if read else None)


def test_conditions_start_unknown_and_keep_keda_order() -> None:
    assert merged({}, [c.ACTIVE]) == [
        {"type": "Ready", "status": "Unknown"}, c.ACTIVE.as_dict(),
        {"type": "Fallback", "status": "Unknown"}, {"type": "Paused", "status": "Unknown"}]
    written = parse_status({"conditions": merged({}, [c.READY, c.PAUSED])})
    assert written.conditions["Paused"] == c.PAUSED
    assert merged(written.conditions, [c.UNPAUSED])[3] == c.UNPAUSED.as_dict()


def test_status_reads_back_as_written_and_tolerates_malformed_fields() -> None:
    raw = {"scaleTargetKind": "apps/v1.Deployment", "originalReplicaCount": 3, "hpaName": "keda-hpa-x",
           "externalMetricNames": ["s0-a"], "health": {"s0-a": {"numberOfFailures": 2, "status": "Failing"}},
           "triggersActivity": {"s0-a": {"isActive": False}}, "lastActiveTime": "2026-01-01T00:00:00Z",
           "scaleTargetGVKR": {"group": "apps", "version": "v1", "kind": "Deployment", "resource": "deployments"},
           "conditions": merged({}, [c.READY])}
    assert parse_status(raw).as_json() == raw
    odd = parse_status({"originalReplicaCount": "3", "health": [1], "conditions": [{"type": "Ready"}, 7]})
    assert odd.original_replica_count is None and odd.health is None and odd.conditions == {}


def test_health_and_activity_per_metric() -> None:
    triggers = [trigger("s0-a", active=True), trigger("s1-b", error="down", failures=4),
                trigger("s2-c", read=False), trigger("s3-d", resolved=False, error="unknown trigger type")]
    assert health(triggers) == {"s0-a": {"numberOfFailures": 0, "status": "Happy"},
                                "s1-b": {"numberOfFailures": 4, "status": "Failing"}}
    assert triggers_activity(triggers) == {"s0-a": {"isActive": True}, "s1-b": {"isActive": False},
                                           "s2-c": {"isActive": False}}


def test_failure_events_only_on_the_way_into_failing() -> None:
    triggers = [trigger("s0-a", error="down", failures=1), trigger("s1-b", error="down", failures=5)]
    status = parse_status({"health": {"s1-b": {"numberOfFailures": 4, "status": "Failing"}}})
    assert [t.metric_name for t in newly_failing(triggers, status)] == ["s0-a"]


@pytest.mark.parametrize("current, wanted, patch", [
    ({"a": 1}, {"a": 1}, {}),
    ({"a": 1}, {"a": 2}, {"a": 2}),
    ({"a": 1}, {"a": None}, {"a": None}),
    ({}, {"a": None}, {}),
    ({"h": {"x": {"n": 1}, "y": {"n": 0}}}, {"h": {"x": {"n": 2}}}, {"h": {"x": {"n": 2}, "y": None}}),
    ({"l": [1, 2]}, {"l": [1]}, {"l": [1]}),
    ({"keep": "me"}, {"new": {"k": 1}}, {"new": {"k": 1}}),
])
def test_merge_patch(current: dict[str, Any], wanted: dict[str, Any], patch: dict[str, Any]) -> None:
    assert merge_patch(current, wanted) == patch


def test_times_are_whole_seconds_in_utc() -> None:
    assert timestamp(1767225600.9) == "2026-01-01T00:00:00Z"
    assert parse_timestamp("2026-01-01T00:00:00Z") == 1767225600.0
    assert parse_timestamp("nonsense") is None and parse_timestamp(None) is None
