"""Which pods count as ready for a Value fallback (the HPA's rule: phase Running, Ready True),
and the count a target's pod watch keeps as pods come, change and go."""

from __future__ import annotations

from typing import Any

import pytest

from adapter.controller.ready_pods import ReadyCount, readiness, running_and_ready
from adapter.kube.resources import PODS


def pod(phase: str | None, *conditions: tuple[str, str], name: str = "p") -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [{"type": kind, "status": value} for kind, value in conditions]}
    if phase is not None:
        status["phase"] = phase
    return {"metadata": {"name": name}, "status": status}


@pytest.mark.parametrize("found, ready", [
    (pod("Running", ("Ready", "True")), True),
    (pod("Running", ("PodScheduled", "True"), ("Ready", "True")), True),
    (pod("Running", ("Ready", "False")), False),
    (pod("Running"), False),  # no Ready condition yet
    (pod("Pending", ("Ready", "True")), False),  # Ready but not Running: the HPA does not count it
    (pod("Succeeded", ("Ready", "True")), False),
    (pod(None), False),
    ({"metadata": {"name": "p"}}, False),  # no status at all
], ids=str)
def test_ready_means_running_with_ready_true(found: dict[str, Any], ready: bool) -> None:
    assert running_and_ready(found) is ready


def test_the_watch_sink_counts_ready_pods_through_lists_and_events() -> None:
    told: list[int] = []
    count = ReadyCount(told.append)
    ready, pending = pod("Running", ("Ready", "True"), name="a"), pod("Pending", name="b")
    count.listed(PODS, [readiness(ready), readiness(pending)])
    count.changed(PODS, readiness(pod("Running", ("Ready", "True"), name="b")), deleted=False)  # b got ready
    count.changed(PODS, readiness(pod("Running", ("Ready", "False"), name="a")), deleted=False)  # a is not
    count.changed(PODS, readiness(pod("Running", ("Ready", "True"), name="b")), deleted=True)  # b deleted
    count.changed(PODS, readiness(pending), deleted=True)  # deleting what was never ready changes nothing
    assert told == [1, 2, 1, 0, 0]
