"""Which pods count as ready for a Value fallback: the HPA's rule (phase Running, Ready True)."""

from __future__ import annotations

from typing import Any

import pytest

from adapter.controller.ready_pods import ready_count


def pod(phase: str | None, *conditions: tuple[str, str]) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [{"type": kind, "status": value} for kind, value in conditions]}
    if phase is not None:
        status["phase"] = phase
    return {"metadata": {"name": "p"}, "status": status}


@pytest.mark.parametrize("found, ready", [
    (pod("Running", ("Ready", "True")), 1),
    (pod("Running", ("PodScheduled", "True"), ("Ready", "True")), 1),
    (pod("Running", ("Ready", "False")), 0),
    (pod("Running"), 0),  # no Ready condition yet
    (pod("Pending", ("Ready", "True")), 0),  # Ready but not Running: the HPA does not count it
    (pod("Succeeded", ("Ready", "True")), 0),
    (pod(None), 0),
    ({"metadata": {"name": "p"}}, 0),  # no status at all
], ids=str)
def test_ready_means_running_with_ready_true(found: dict[str, Any], ready: int) -> None:
    assert ready_count({"items": [found]}) == ready


def test_a_list_counts_its_ready_pods() -> None:
    pods = [pod("Running", ("Ready", "True")), pod("Pending"), pod("Running", ("Ready", "True"))]
    assert ready_count({"items": pods}) == 2
    assert ready_count({"items": None}) == 0
