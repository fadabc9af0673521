"""The watch-fed Jobs and pods of ScaledJobs: indexed by owner, our own writes seen at once, stale events ignored."""

from __future__ import annotations

from typing import Any

from adapter.controller.job_cache import JOB_RESOURCES, POD_RESOURCES, JobCache, transform_for
from adapter.keda.activity import object_key

NEW, OLD = JOB_RESOURCES  # scaledjob.keda.sh/name, then KEDA 1.x's scaledobject
ENCODE = object_key("ScaledJob", "n", "encode")


def raw(name: str, version: int, owner: str = "encode", label: str = "scaledjob.keda.sh/name",
        **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "n", "uid": f"uid-{name}", "resourceVersion": str(version),
                         "labels": {label: owner}, "annotations": {"scaledjob.keda.sh/generation": "1"}},
            "status": status}


def cached(resource: Any, body: dict[str, Any]) -> Any:
    return transform_for(resource)(body)


def test_jobs_are_indexed_by_their_scaled_job_and_a_2019_object_of_one_name_is_another_owner() -> None:
    cache = JobCache()
    cache.listed(NEW, [cached(NEW, raw("encode-a", 1)), cached(NEW, raw("other-a", 2, owner="other"))])
    cache.listed(OLD, [cached(OLD, raw("encode-b", 3, label="scaledobject"))])
    assert [j.name for j in cache.jobs_of(ENCODE)] == ["encode-a"]
    assert [j.name for j in cache.jobs_of(object_key("ScaledObject", "n", "encode"))] == ["encode-b"]
    assert cache.jobs_of(object_key("ScaledJob", "other-ns", "encode")) == []
    assert cache.ready(pods=False) and not cache.ready(pods=True)
    for resource in POD_RESOURCES:
        cache.listed(resource, [])
    assert cache.ready(pods=True)


def test_a_relist_replaces_and_reindexes() -> None:
    cache = JobCache()
    cache.listed(NEW, [cached(NEW, raw("encode-a", 1)), cached(NEW, raw("encode-b", 2))])
    cache.listed(NEW, [cached(NEW, raw("encode-b", 5, conditions=[{"type": "Complete", "status": "True"}]))])
    assert [(j.name, j.finished) for j in cache.jobs_of(ENCODE)] == [("encode-b", "Complete")]


def test_our_create_counts_at_once_and_an_older_event_does_not_undo_a_newer_state() -> None:
    cache = JobCache()
    cache.listed(NEW, [])
    cache.created(raw("encode-a", 7, conditions=[{"type": "Failed", "status": "True"}]), "scaledjob.keda.sh/name")
    cache.changed(NEW, cached(NEW, raw("encode-a", 6)), deleted=False)  # in flight before our write
    assert [(j.name, j.finished) for j in cache.jobs_of(ENCODE)] == [("encode-a", "Failed")]


def test_a_job_we_deleted_stays_gone_whatever_events_were_in_flight() -> None:
    cache = JobCache()
    cache.listed(NEW, [cached(NEW, raw("encode-a", 1))])
    [job] = cache.jobs_of(ENCODE)
    cache.deleted(job)
    cache.changed(NEW, cached(NEW, raw("encode-a", 9)), deleted=False)  # a status update sent before the delete
    assert cache.jobs_of(ENCODE) == []
    cache.changed(NEW, cached(NEW, raw("encode-a", 10)), deleted=True)
    cache.changed(NEW, cached(NEW, {**raw("encode-a", 11), "metadata": {
        **raw("encode-a", 11)["metadata"], "uid": "uid-new"}}), deleted=False)  # a new Job of that name counts
    assert [j.uid for j in cache.jobs_of(ENCODE)] == ["uid-new"]


def test_jobs_being_deleted_do_not_count() -> None:
    cache = JobCache()
    body = raw("encode-a", 1)
    body["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    cache.listed(NEW, [cached(NEW, body)])
    assert cache.jobs_of(ENCODE) == []


def test_pods_by_owner_with_their_job_phase_and_true_conditions() -> None:
    cache = JobCache()
    pod = raw("encode-a-x", 1, phase="Pending", conditions=[{"type": "PodScheduled", "status": "True"},
                                                           {"type": "Ready", "status": "False"}])
    pod["metadata"]["labels"]["job-name"] = "encode-a"
    cache.listed(POD_RESOURCES[0], [cached(POD_RESOURCES[0], pod)])
    [found] = cache.pods_of(ENCODE)
    assert (found.job_name, found.phase, found.true_conditions) == ("encode-a", "Pending", frozenset({"PodScheduled"}))
