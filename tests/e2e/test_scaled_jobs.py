"""ScaledJobs end to end: real kube-apiserver, the real Job controller, a real Redis and RabbitMQ.

One adapter + controller pair (see `controller_stack`) reads a Redis list (or a RabbitMQ queue)
per ScaledJob and creates Jobs. There is no kubelet: the Job controller creates each Job's pod and the test
plays the kubelet by setting pod phases through the status subresource; the Job controller
then marks the Job Complete, as on a real node. Polling is 1 s. The controller logs its API
calls every second, so a test can count what a poll costs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_adapter import apply, rabbitmq_auth
from controller_stack import (
    Stack,
    condition,
    controller_stats,
    events,
    get,
    reasons,
    stats_after,
    wait_condition,
)
from controlplane import ControlPlane, wait_for

from tests.harness.rabbitmq_server import PASSWORD, USER, RabbitMQServer
from tests.harness.redis_servers import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.stack(1, "--stats-interval", "1")]

ROOT = Path(__file__).resolve().parents[2]
SJ = "scaledjob.keda.sh"


def scaled_job(name: str, triggers: list[dict[str, Any]], annotations: dict[str, str] | None = None,
               **spec: Any) -> dict[str, Any]:
    template = {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "work", "image": "registry.invalid/worker:1"}]}}
    metadata: dict[str, Any] = {"name": name, "labels": {"team": "batch"}}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob", "metadata": metadata,
            "spec": {"jobTargetRef": {"template": template, "backoffLimit": 0}, "pollingInterval": 1,
                     "triggers": triggers, **spec}}


def redis_list(server: RedisServer, key: str) -> dict[str, Any]:
    return {"type": "redis", "metadata": {"address": server.address, "listName": key, "listLength": "1"}}


def jobs(cp: ControlPlane, namespace: str, name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cp.kubectl_json("get", "jobs", "-n", namespace, "-l",
                                                  f"scaledjob.keda.sh/name={name}")["items"]
    return found


def legacy_jobs(cp: ControlPlane, namespace: str, name: str) -> list[dict[str, Any]]:
    """The Jobs of a 2019 `scaleType: job` ScaledObject: labelled as KEDA 1.x did."""
    found: list[dict[str, Any]] = cp.kubectl_json("get", "jobs", "-n", namespace, "-l", f"scaledobject={name}")["items"]
    return found


def pods_of(cp: ControlPlane, namespace: str, job: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cp.kubectl_json("get", "pods", "-n", namespace, "-l", f"job-name={job}")["items"]
    return found


def set_phase(cp: ControlPlane, namespace: str, pod: str, phase: str) -> None:
    """What a kubelet reports: the pod's phase (and, once finished, its container's end)."""
    status: dict[str, Any] = {"phase": phase}
    if phase in ("Succeeded", "Failed"):
        code = 0 if phase == "Succeeded" else 1
        status["containerStatuses"] = [{"name": "work", "image": "registry.invalid/worker:1", "imageID": "",
                                        "ready": False, "restartCount": 0,
                                        "state": {"terminated": {"exitCode": code, "reason": "Completed"}}}]
    cp.kubectl("patch", "pod", pod, "-n", namespace, "--subresource=status", "--type=merge",
               "-p", json.dumps({"status": status}))


def finish(cp: ControlPlane, namespace: str, job: str, phase: str = "Succeeded") -> None:
    pod = wait_for(lambda: pods_of(cp, namespace, job), timeout=20, what=f"a pod of job {job}")[0]
    set_phase(cp, namespace, pod["metadata"]["name"], phase)


def finished(job: dict[str, Any]) -> str | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
            return str(cond["type"])
    return None


def outcomes(cp: ControlPlane, namespace: str, name: str) -> list[str]:
    return sorted(finished(j) or "running" for j in jobs(cp, namespace, name))


def count_stays(cp: ControlPlane, namespace: str, name: str, expected: int, seconds: float) -> None:
    """The number of Jobs is `expected` at every look for `seconds` (several 1 s polls)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert len(jobs(cp, namespace, name)) == expected
        time.sleep(0.3)


def wait_reasons(cp: ControlPlane, namespace: str, name: str, *wanted: str, kind: str = "ScaledJob") -> list[str]:
    found: list[str] = wait_for(lambda: (r := reasons(cp, namespace, name, kind)) and set(wanted) <= set(r) and r,
                                timeout=20, what=f"Events {wanted} on {name}")
    return found


def test_an_idle_scaled_job_is_polled_with_no_api_call(stack: Stack, redis: RedisServer, namespace: str) -> None:
    """First in the module: no other ScaledJob is active to make calls while this one is watched."""
    cp = stack.cp
    apply(cp, namespace, scaled_job("idle", [redis_list(redis, f"{namespace}-idle")]))
    status = wait_condition(cp, namespace, "idle", "Active", ("False", "ScalerNotActive"), resource=SJ)
    assert condition(status, "Ready") == ("True", "ScaledJobReady")
    assert condition(status, "Fallback") == ("Unknown", "") and condition(status, "Paused") == ("False", "")
    assert (status["triggersTypes"], status["authenticationsTypes"]) == ("redis", "")
    assert "redis" in cp.kubectl("get", "sj", "idle", "-n", namespace).stdout  # KEDA's Triggers column
    assert wait_reasons(cp, namespace, "idle", "ScaledJobReady") == ["ScaledJobReady"]

    first_polls, first_calls = stats_after(stack, controller_stats(stack)[0] + 2)  # logged after what was seen
    polls, calls = stats_after(stack, first_polls + 4)
    assert calls == first_calls, f"{polls - first_polls} idle polls made calls"
    assert not [k for k in calls if k.startswith(("GET:jobs", "GET:pods"))]  # Jobs and pods come from watches

    cp.kubectl("delete", SJ, "idle", "-n", namespace)
    wait_reasons(cp, namespace, "idle", "ScaledJobDeleted")


def test_a_refused_create_is_an_event_and_the_poll_goes_on(stack: Stack, redis: RedisServer, namespace: str) -> None:
    """A ResourceQuota of one Job: kube-apiserver's quota admission refuses the second, and KEDA's
    KEDAJobCreateFailed says why. The test plays the quota controller (not run here) by writing the
    quota's first status; admission counts from there."""
    cp, key = stack.cp, f"{namespace}-quota"
    hard = {"count/jobs.batch": "1"}
    apply(cp, namespace, {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "one-job"},
                          "spec": {"hard": hard}})
    cp.kubectl("patch", "resourcequota", "one-job", "-n", namespace, "--subresource=status", "--type=merge",
               "-p", json.dumps({"status": {"hard": hard, "used": {"count/jobs.batch": "0"}}}))
    apply(cp, namespace, scaled_job("capped", [redis_list(redis, key)], maxReplicaCount=3))
    redis.admin().rpush(key, 1, 2, 3)
    wait_reasons(cp, namespace, "capped", "KEDAJobsCreated", "KEDAJobCreateFailed")
    assert len(jobs(cp, namespace, "capped")) == 1
    failed = [m for _, r, m, _ in events(cp, namespace, "capped", "ScaledJob") if r == "KEDAJobCreateFailed"]
    assert failed and "exceeded quota" in failed[0]


def test_jobs_are_created_for_queued_messages_up_to_the_maximum_then_pruned(
        stack: Stack, redis: RedisServer, namespace: str) -> None:
    cp, admin, key = stack.cp, redis.admin(), f"{namespace}-work"
    apply(cp, namespace, scaled_job("encode", [redis_list(redis, key)], maxReplicaCount=5,
                                    successfulJobsHistoryLimit=2, failedJobsHistoryLimit=1))
    wait_condition(cp, namespace, "encode", "Ready", ("True", "ScaledJobReady"), resource=SJ)
    assert jobs(cp, namespace, "encode") == []

    started = time.monotonic()
    admin.rpush(key, *range(12))  # 12 messages, 1 per Job, at most 5 Jobs
    created = wait_for(lambda: len(jobs(cp, namespace, "encode")) >= 5 or None, timeout=20, what="5 Jobs")
    latency = time.monotonic() - started
    print(f"\nmessage -> 5 Jobs created in {latency:.2f}s (pollingInterval 1)")
    assert created
    count_stays(cp, namespace, "encode", 5, 3.0)
    found = jobs(cp, namespace, "encode")
    sj = get(cp, SJ, namespace, "encode") or {}
    for job in found:
        meta = job["metadata"]
        assert meta["name"].startswith("encode-")
        assert meta["labels"]["team"] == "batch" and meta["labels"]["app.kubernetes.io/name"] == "encode"
        assert meta["annotations"]["scaledjob.keda.sh/generation"] == str(sj["metadata"]["generation"])
        assert meta["ownerReferences"][0]["uid"] == sj["metadata"]["uid"]
        assert job["spec"]["template"]["metadata"]["labels"]["scaledjob.keda.sh/name"] == "encode"
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
        assert job["spec"]["backoffLimit"] == 0
    assert condition(sj.get("status") or {}, "Active") == ("True", "ScalerActive")
    assert (sj.get("status") or {}).get("lastActiveTime")
    found_reasons = wait_reasons(cp, namespace, "encode", "ScaledJobReady", "ScaledJobActive", "KEDAJobsCreated")
    assert "ScaledJobInactive" not in found_reasons

    # five workers take a message each and exit: five more Jobs for the seven left
    admin.ltrim(key, 5, -1)
    for job in found:
        finish(cp, namespace, job["metadata"]["name"])
    first = {j["metadata"]["name"] for j in found}

    def refilled() -> bool:  # 5 new Jobs for the messages left; the history keeps 2 of the first 5
        now = jobs(cp, namespace, "encode")
        fresh = [j for j in now if j["metadata"]["name"] not in first]
        kept = [j for j in now if j["metadata"]["name"] in first]
        return (len(fresh) == 5 and all(finished(j) is None for j in fresh) and len(kept) == 2
                and all(finished(j) == "Complete" for j in kept))
    wait_for(lambda: refilled() or None, timeout=30, what="5 new Jobs and 2 completed ones kept")

    # the queue drains, the Jobs end (one fails): nothing new, history limits hold
    admin.delete(key)
    wait_condition(cp, namespace, "encode", "Active", ("False", "ScalerNotActive"), resource=SJ)
    wait_reasons(cp, namespace, "encode", "ScaledJobInactive")
    running = [j["metadata"]["name"] for j in jobs(cp, namespace, "encode") if finished(j) is None]
    assert len(running) == 5
    for name in running[:-1]:
        finish(cp, namespace, name)
    finish(cp, namespace, running[-1], "Failed")
    wait_for(lambda: outcomes(cp, namespace, "encode") == ["Complete", "Complete", "Failed"] or None, timeout=30,
             what="2 completed and 1 failed Job kept")
    count_stays(cp, namespace, "encode", 3, 2.0)


def test_rabbitmq_messages_become_jobs_through_a_trigger_authentication(
        stack: Stack, rabbitmq: RabbitMQServer, namespace: str) -> None:
    cp, queue = stack.cp, f"{namespace}-videos"
    broker = rabbitmq_auth("broker", f"amqp://{USER}:{PASSWORD}@127.0.0.1:{rabbitmq.amqp_port}/")
    trigger = {"type": "rabbitmq", "metadata": {"queueName": queue, "mode": "QueueLength", "value": "1"},
               "authenticationRef": {"name": "broker"}}
    rabbitmq.fill("/", {queue: 0})
    apply(cp, namespace, *broker, scaled_job("videos", [trigger], maxReplicaCount=5))
    status = wait_condition(cp, namespace, "videos", "Ready", ("True", "ScaledJobReady"), resource=SJ)
    assert (status["triggersTypes"], status["authenticationsTypes"]) == ("rabbitmq", "broker")
    assert jobs(cp, namespace, "videos") == []

    rabbitmq.fill("/", {queue: 12})  # 12 messages, 1 per Job, at most 5 Jobs
    wait_for(lambda: len(jobs(cp, namespace, "videos")) == 5 or None, timeout=20, what="5 Jobs")
    count_stays(cp, namespace, "videos", 5, 2.0)

    with rabbitmq.amqp() as channel:  # the workers take every message and finish
        channel.queue_purge(queue)
    wait_condition(cp, namespace, "videos", "Active", ("False", "ScalerNotActive"), resource=SJ)
    for job in jobs(cp, namespace, "videos"):
        finish(cp, namespace, job["metadata"]["name"])
    wait_for(lambda: outcomes(cp, namespace, "videos") == ["Complete"] * 5 or None, timeout=30,
             what="5 completed Jobs")
    count_stays(cp, namespace, "videos", 5, 2.0)  # drained: no new Jobs
    assert "s3cret" not in json.dumps(get(cp, SJ, namespace, "videos"))
    wait_reasons(cp, namespace, "videos", "ScaledJobActive", "KEDAJobsCreated", "ScaledJobInactive")


def test_a_paused_scaled_job_creates_nothing_until_resumed(stack: Stack, redis: RedisServer, namespace: str) -> None:
    cp, admin, key = stack.cp, redis.admin(), f"{namespace}-held"
    apply(cp, namespace, scaled_job("held", [redis_list(redis, key)], {"autoscaling.keda.sh/paused": "true"},
                                    maxReplicaCount=3))
    wait_condition(cp, namespace, "held", "Paused", ("True", "ScaledJobPaused"), resource=SJ)
    admin.rpush(key, 1, 2)
    count_stays(cp, namespace, "held", 0, 3.0)
    cp.kubectl("annotate", SJ, "held", "-n", namespace, "autoscaling.keda.sh/paused-")
    wait_for(lambda: len(jobs(cp, namespace, "held")) == 2 or None, timeout=20, what="2 Jobs once resumed")
    wait_condition(cp, namespace, "held", "Paused", ("False", "ScaledJobUnpaused"), resource=SJ)
    wait_reasons(cp, namespace, "held", "ScaledJobPaused", "ScaledJobUnpaused", "KEDAJobsCreated")


def test_accurate_counts_pending_jobs_as_holding_queued_messages(
        stack: Stack, redis: RedisServer, namespace: str) -> None:
    cp, admin, key = stack.cp, redis.admin(), f"{namespace}-acc"
    apply(cp, namespace, scaled_job("acc", [redis_list(redis, key)], maxReplicaCount=10,
                                    scalingStrategy={"strategy": "accurate"}))
    admin.rpush(key, *range(3))
    wait_for(lambda: len(jobs(cp, namespace, "acc")) == 3 or None, timeout=20, what="3 Jobs")
    first = jobs(cp, namespace, "acc")
    finish(cp, namespace, first[0]["metadata"]["name"], "Running")  # one worker took its message
    admin.lpop(key)
    admin.rpush(key, 3, 4)  # 4 waiting, 2 Jobs still pending: 2 more (default would make 1)
    wait_for(lambda: len(jobs(cp, namespace, "acc")) == 5 or None, timeout=20, what="5 Jobs")
    count_stays(cp, namespace, "acc", 5, 3.0)


def test_a_scaled_job_with_a_broken_trigger_says_so_and_creates_nothing(
        stack: Stack, redis: RedisServer, namespace: str) -> None:
    cp = stack.cp
    apply(cp, namespace, scaled_job("broken", [{"type": "no-such-scaler", "metadata": {}}]),
          scaled_job("fine", [redis_list(redis, f"{namespace}-fine")]))
    wait_condition(cp, namespace, "broken", "Ready", ("False", "TriggerError"), resource=SJ)
    wait_reasons(cp, namespace, "broken", "KEDAScalerFailed")
    wait_condition(cp, namespace, "fine", "Ready", ("True", "ScaledJobReady"), resource=SJ)
    redis.admin().rpush(f"{namespace}-fine", 1)
    wait_for(lambda: len(jobs(cp, namespace, "fine")) == 1 or None, timeout=20, what="a Job for the fine one")
    assert jobs(cp, namespace, "broken") == []


@pytest.mark.parametrize("strategy", ["default", "gradual"])
def test_a_template_change_rolls_out_by_strategy(stack: Stack, redis: RedisServer, namespace: str,
                                                 strategy: str) -> None:
    cp, key = stack.cp, f"{namespace}-roll"
    apply(cp, namespace, scaled_job("roll", [redis_list(redis, key)], rollout={"strategy": strategy}))
    redis.admin().rpush(key, 1, 2)
    wait_for(lambda: len(jobs(cp, namespace, "roll")) == 2 or None, timeout=20, what="2 Jobs")
    before = {j["metadata"]["name"] for j in jobs(cp, namespace, "roll")}
    cp.kubectl("patch", SJ, "roll", "-n", namespace, "--type=json", "-p", json.dumps([
        {"op": "add", "path": "/spec/jobTargetRef/template/spec/containers/0/env",
         "value": [{"name": "MODE", "value": "new"}]}]))
    generation = str((get(cp, SJ, namespace, "roll") or {})["metadata"]["generation"])
    if strategy == "default":  # the old Jobs go, new ones of the new template take the 2 messages
        def replaced() -> list[dict[str, Any]] | None:
            found = jobs(cp, namespace, "roll")
            names = {j["metadata"]["name"] for j in found}
            return found if len(found) == 2 and not names & before else None
        new = wait_for(replaced, timeout=30, what="the Jobs of the old template replaced")
        wait_reasons(cp, namespace, "roll", "ScaledJobRolloutCleanupStarted", "ScaledJobRolloutCleanupCompleted")
        assert all(j["metadata"]["annotations"]["scaledjob.keda.sh/generation"] == generation for j in new)
        assert all(j["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "MODE", "value": "new"}]
                   for j in new)
    else:  # gradual: the old Jobs finish their work; they already cover the queue
        count_stays(cp, namespace, "roll", 2, 3.0)
        assert {j["metadata"]["name"] for j in jobs(cp, namespace, "roll")} == before


def legacy_job_object(name: str, redis: RedisServer, key: str, maximum: int) -> dict[str, Any]:
    """A 2019 `scaleType: job` ScaledObject; its trigger names an env var of the Job's container, as in 1.x."""
    container = {"name": "work", "image": "registry.invalid/worker:1",
                 "env": [{"name": "REDIS_ADDRESS", "value": redis.address}]}
    return {
        "apiVersion": "keda.k8s.io/v1alpha1", "kind": "ScaledObject", "metadata": {"name": name},
        "spec": {"scaleType": "job", "pollingInterval": 1, "maxReplicaCount": maximum,
                 "jobTargetRef": {"template": {"spec": {"containers": [container]}}},
                 "triggers": [{"type": "redis", "metadata": {"address": "REDIS_ADDRESS", "listName": key,
                                                             "listLength": "1"}}]}}


def test_the_2019_scale_type_job_object_creates_jobs(stack: Stack, redis: RedisServer, namespace: str) -> None:
    cp, key = stack.cp, f"{namespace}-old"
    apply(cp, namespace, legacy_job_object("old", redis, key, 4))
    apply(cp, namespace, scaled_job("old", [redis_list(redis, f"{key}-new")]))  # one name, two objects
    redis.admin().rpush(key, *range(6))
    redis.admin().rpush(f"{key}-new", 1)
    made = wait_for(lambda: len(legacy_jobs(cp, namespace, "old")) == 4 or None, timeout=20, what="4 Jobs")
    assert made
    wait_for(lambda: len(jobs(cp, namespace, "old")) == 1 or None, timeout=20, what="the ScaledJob's own Job")
    found = legacy_jobs(cp, namespace, "old")
    owner = (get(cp, "scaledobject.keda.k8s.io", namespace, "old") or {})["metadata"]
    assert all("scaledjob.keda.sh/name" not in j["metadata"]["labels"] for j in found)
    assert all(j["metadata"]["ownerReferences"][0]["kind"] == "ScaledObject" and
               j["metadata"]["ownerReferences"][0]["uid"] == owner["uid"] for j in found)
    wait_condition(cp, namespace, "old", "Ready", ("True", "ScaledJobReady"), resource="scaledobject.keda.k8s.io")
    assert get(cp, "hpa", namespace, "keda-hpa-old") is None
    count_stays(cp, namespace, "old", 1, 2.0)
    assert len(legacy_jobs(cp, namespace, "old")) == 4


def test_convert_makes_a_scaled_job_of_a_2019_job_object_that_kubectl_applies(
        stack: Stack, redis: RedisServer, namespace: str) -> None:
    cp, key = stack.cp, f"{namespace}-conv"
    converted = subprocess.run([sys.executable, "-m", "adapter", "convert", "-"], cwd=ROOT, capture_output=True,
                               text=True, timeout=60, check=False,
                               input=yaml.safe_dump(legacy_job_object("conv", redis, key, 2)))
    assert converted.returncode == 0, converted.stderr
    assert "becomes ScaledJob conv" in converted.stderr
    assert "scaledjob.keda.sh/conv created" in cp.kubectl("apply", "-n", namespace, "-f", "-",
                                                          input=converted.stdout).stdout
    wait_condition(cp, namespace, "conv", "Ready", ("True", "ScaledJobReady"), resource=SJ)
    redis.admin().rpush(key, *range(3))
    made = wait_for(lambda: len(jobs(cp, namespace, "conv")) == 2 or None, timeout=20, what="2 Jobs, the maximum")
    assert made
    assert legacy_jobs(cp, namespace, "conv") == []
    assert (get(cp, SJ, namespace, "conv") or {})["status"]["triggersTypes"] == "redis"
