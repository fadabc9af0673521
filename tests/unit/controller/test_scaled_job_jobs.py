"""What the ScaledJob poll makes of Jobs and pods: the Job it creates, what it prunes, what is pending."""

from __future__ import annotations

from typing import Any

import pytest

from adapter.controller.job_cache import CachedJob, CachedPod, job_outcome, parse_job, parse_pod
from adapter.controller.job_creation import beyond_history, job_manifest, pending_jobs, types_of
from adapter.keda.scaled_job import parse_scaled_job

LABEL = "scaledjob.keda.sh/name"


def raw_job(name: str, outcome: str | None = None, completed: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {}
    if outcome:
        status = {"conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                                 {"type": outcome, "status": "True"}], "completionTime": completed}
    return {"metadata": {"name": name, "namespace": "n", "labels": {LABEL: "sj"}}, "status": status}


def job(name: str, outcome: str | None = None, completed: str = "") -> CachedJob:
    return parse_job(raw_job(name, outcome, completed), LABEL)


def pod(job_name: str, phase: str, conditions: tuple[str, ...] = ()) -> CachedPod:
    return parse_pod({"metadata": {"name": f"{job_name}-x", "namespace": "n",
                                   "labels": {"job-name": job_name, LABEL: "sj"}},
                      "status": {"phase": phase, "conditions": [{"type": c, "status": "True"} for c in conditions]}},
                     LABEL)


def test_the_job_made_from_the_template() -> None:
    sj = parse_scaled_job({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob",
        "metadata": {"name": "encode", "namespace": "n", "uid": "u1", "generation": 4,
                     "labels": {"team": "a", "secret-ish": "x"},
                     "annotations": {"scaledjob.keda.sh/job-excluded-labels": "secret-ish", "note": "y"}},
        "spec": {"jobTargetRef": {"parallelism": 2, "template": {"spec": {"containers": [{"name": "w"}]}}},
                 "triggers": [{"type": "cron", "metadata": {}}]}})
    made = job_manifest(sj)
    meta = made["metadata"]
    assert meta["generateName"] == "encode-" and meta["namespace"] == "n"
    assert meta["labels"]["scaledjob.keda.sh/name"] == "encode" and meta["labels"]["team"] == "a"
    assert "secret-ish" not in meta["labels"]
    assert meta["annotations"]["scaledjob.keda.sh/generation"] == "4" and meta["annotations"]["note"] == "y"
    assert meta["ownerReferences"] == [{"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob", "name": "encode",
                                        "uid": "u1", "controller": True, "blockOwnerDeletion": True}]
    assert made["spec"]["parallelism"] == 2
    assert made["spec"]["template"]["metadata"]["labels"] == {"scaledjob.keda.sh/name": "encode"}
    assert made["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    assert "metadata" not in sj.job_spec["template"]  # the parsed ScaledJob is not changed


@pytest.mark.parametrize(("jobs", "successful", "failed", "expected"), [
    ([job("a", "Complete", "2026-01-01T00:00:03Z"), job("b", "Complete", "2026-01-01T00:00:01Z"),
      job("c", "Complete", "2026-01-01T00:00:02Z"), job("d")], 1, 1, ["b", "c"]),  # oldest first, running kept
    ([job("a", "Failed", "2026-01-01T00:00:01Z"), job("b", "Failed", "2026-01-01T00:00:02Z"),
      job("c", "Complete", "2026-01-01T00:00:01Z")], 5, 1, ["a"]),
    ([job("a", "Complete", "t1")], 0, 0, ["a"]),
    ([job("a", "Complete", "t1"), job("b")], 100, 100, []),
])
def test_history_limits(jobs: list[CachedJob], successful: int, failed: int, expected: list[str]) -> None:
    assert [j.name for j in beyond_history(jobs, successful, failed)] == expected


@pytest.mark.parametrize(("pods", "conditions", "expected"), [
    ([], (), 2),  # no pod yet: both pending
    ([pod("a", "Running")], (), 1),
    ([pod("a", "Succeeded"), pod("b", "Pending")], (), 1),
    ([pod("a", "Running"), pod("b", "Running")], (), 0),
    ([pod("a", "Running", ("PodScheduled",)), pod("b", "Pending", ("PodScheduled", "Ready"))],
     ("PodScheduled", "Ready"), 1),  # with pendingPodConditions, all of them must be True
])
def test_pending_jobs(pods: list[CachedPod], conditions: tuple[str, ...], expected: int) -> None:
    jobs = [job("a"), job("b"), job("done", "Complete", "t")]
    assert pending_jobs(jobs, pods, conditions) == expected


@pytest.mark.parametrize(("found", "expected"), [
    (raw_job("a"), None), (raw_job("a", "Complete", "t"), "Complete"), (raw_job("a", "Failed", "t"), "Failed"),
    ({"metadata": {"name": "a"}, "status": {"conditions": [{"type": "Complete", "status": "False"}]}}, None),
])
def test_job_outcome(found: dict[str, Any], expected: str | None) -> None:
    assert job_outcome(found.get("status") or {}) == expected
    assert parse_job(found, LABEL).finished == expected


@pytest.mark.parametrize(("triggers", "expected"), [
    ([{"type": "redis", "metadata": {}}], {"triggersTypes": "redis", "authenticationsTypes": ""}),
    ([{"type": "redis", "metadata": {}, "authenticationRef": {"name": "a"}},
      {"type": "rabbitmq", "metadata": {}, "authenticationRef": {"name": "b"}},
      {"type": "redis", "metadata": {}, "authenticationRef": {"name": "a"}}],
     {"triggersTypes": "redis,rabbitmq", "authenticationsTypes": "a,b"}),  # each once, in order, as KEDA
])
def test_triggers_and_authentications_types(triggers: list[dict[str, Any]], expected: dict[str, str]) -> None:
    sj = parse_scaled_job({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob",
                           "metadata": {"name": "t", "namespace": "n"},
                           "spec": {"jobTargetRef": {"template": {"spec": {}}}, "triggers": triggers}})
    assert types_of(sj) == expected
