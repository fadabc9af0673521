"""`python -m adapter convert`: 2019 ScaledObjects rewritten as keda.sh, read the same by the catalog."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapter.convert import ConversionError, convert_documents, run
from adapter.keda.objects import parse_scaled_object
from adapter.keda.scaled_job import parse_scaled_job


def legacy(spec: dict[str, Any], name: str = "jobs") -> dict[str, Any]:
    return {"apiVersion": "keda.k8s.io/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": "shop"}, "spec": spec}


REDIS = {"type": "redis", "metadata": {"address": "REDIS_ADDRESS", "password": "REDIS_PASSWORD", "listName": "jobs",
                                       "listLength": "5"}}


@pytest.mark.parametrize("spec, expected", [
    ({"scaleTargetRef": {"deploymentName": "worker"}, "triggers": [REDIS]},
     {"scaleTargetRef": {"name": "worker"},
      "triggers": [{"type": "redis", "metadata": {"addressFromEnv": "REDIS_ADDRESS",
                                                  "passwordFromEnv": "REDIS_PASSWORD", "listName": "jobs",
                                                  "listLength": "5"}}]}),
    ({"scaleTargetRef": {"deploymentName": "worker", "containerName": "app"}, "pollingInterval": 5,
      "cooldownPeriod": 60, "minReplicaCount": 1, "maxReplicaCount": 7,
      "triggers": [{"type": "rabbitmq", "metadata": {"host": "AMQP_URL", "queueName": "orders"},
                    "authenticationRef": {"name": "amqp"}}]},
     {"scaleTargetRef": {"name": "worker", "envSourceContainerName": "app"}, "pollingInterval": 5,
      "cooldownPeriod": 60, "minReplicaCount": 1, "maxReplicaCount": 7,
      "triggers": [{"type": "rabbitmq", "metadata": {"hostFromEnv": "AMQP_URL", "queueName": "orders"},
                    "authenticationRef": {"name": "amqp"}}]}),
    ({"scaleTargetRef": {"deploymentName": "w"},
      "triggers": [{"type": "azure-servicebus", "metadata": {"connection": "SB", "queueName": "q"}},
                   {"type": "redis", "metadata": {"hosts": "H", "ports": "P", "addresses": "A", "username": "U"}}]},
     {"scaleTargetRef": {"name": "w"},
      "triggers": [{"type": "azure-servicebus", "metadata": {"connectionFromEnv": "SB", "queueName": "q"}},
                   {"type": "redis", "metadata": {"hostsFromEnv": "H", "portsFromEnv": "P", "addressesFromEnv": "A",
                                                  "usernameFromEnv": "U"}}]}),
])
def test_rewrites_2019_scaled_objects(spec: dict[str, Any], expected: dict[str, Any]) -> None:
    result = convert_documents([legacy(spec)], "in.yaml")
    assert result.documents == ({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                                 "metadata": {"name": "jobs", "namespace": "shop"}, "spec": expected},)


TEMPLATE = {"backoffLimit": 0, "template": {"spec": {"containers": [
    {"name": "work", "image": "worker:1", "env": [{"name": "REDIS_ADDRESS", "value": "redis:6379"}]}]}}}
JOB_NOTE = ("ScaledObject shop/jobs: becomes ScaledJob jobs; its Jobs are labelled scaledjob.keda.sh/name "
            "(the 2019 object's Jobs, labelled scaledobject, are not counted: delete it with --cascade=orphan "
            "to let them finish)")


@pytest.mark.parametrize("spec, expected, note", [
    ({"scaleType": "job", "jobTargetRef": TEMPLATE, "triggers": [REDIS]},
     {"jobTargetRef": TEMPLATE, "rollout": {"strategy": "gradual"},
      "triggers": [{"type": "redis", "metadata": {"addressFromEnv": "REDIS_ADDRESS",
                                                  "passwordFromEnv": "REDIS_PASSWORD", "listName": "jobs",
                                                  "listLength": "5"}}]}, JOB_NOTE),
    ({"scaleType": "job", "jobTargetRef": TEMPLATE, "pollingInterval": 5, "maxReplicaCount": 8, "cooldownPeriod": 60,
      "minReplicaCount": 1, "triggers": [{"type": "rabbitmq", "metadata": {"host": "AMQP_URL", "queueName": "q"},
                                          "authenticationRef": {"name": "amqp"}}]},
     {"jobTargetRef": TEMPLATE, "pollingInterval": 5, "maxReplicaCount": 8, "rollout": {"strategy": "gradual"},
      "triggers": [{"type": "rabbitmq", "metadata": {"hostFromEnv": "AMQP_URL", "queueName": "q"},
                    "authenticationRef": {"name": "amqp"}}]},
     JOB_NOTE + "; cooldownPeriod and minReplicaCount left out (KEDA 1.x did not use them for Jobs)"),
])
def test_rewrites_2019_scale_type_job_objects_as_scaled_jobs(spec: dict[str, Any], expected: dict[str, Any],
                                                             note: str) -> None:
    result = convert_documents([legacy(spec)], "in.yaml")
    assert result.documents == ({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob",
                                 "metadata": {"name": "jobs", "namespace": "shop"}, "spec": expected},)
    assert result.notes == (note,)


def test_the_converted_scaled_job_reads_like_the_2019_object() -> None:
    spec = {"scaleType": "job", "jobTargetRef": TEMPLATE, "pollingInterval": 3, "maxReplicaCount": 4,
            "triggers": [REDIS]}
    old = parse_scaled_job(legacy(spec))
    new = parse_scaled_job(convert_documents([legacy(spec)], "in.yaml").documents[0])
    assert new.triggers == old.triggers and new.job_spec == old.job_spec
    assert (new.polling_interval, new.max_jobs, new.min_jobs, new.rollout_strategy) == \
        (old.polling_interval, old.max_jobs, old.min_jobs, old.rollout_strategy)
    assert old.legacy and not new.legacy


@pytest.mark.parametrize("spec, error", [
    ({"scaleTargetRef": {"deploymentName": "w"}, "scaleType": "job", "triggers": [REDIS]},
     "ScaledObject shop/jobs: spec.scaleTargetRef is not a field of the 2019 format"),
    ({"scaleTargetRef": {"deploymentName": "w"}, "scaleType": "statefulset", "triggers": [REDIS]},
     'spec.scaleType "statefulset" must be deployment or job'),
    ({"scaleType": "job", "triggers": [REDIS]}, "spec.jobTargetRef must be an object"),
    ({"scaleType": "job", "jobTargetRef": TEMPLATE, "triggers": [REDIS], "successfulJobsHistoryLimit": 1},
     "spec.successfulJobsHistoryLimit is not a field of the 2019 format"),
    ({"scaleTargetRef": {"name": "w"}, "triggers": [REDIS]}, "spec.scaleTargetRef.name is not a field"),
    ({"scaleTargetRef": {}, "triggers": [REDIS]}, "spec.scaleTargetRef.deploymentName is required"),
    ({"scaleTargetRef": {"deploymentName": "w"}, "triggers": []}, "spec.triggers must be a non-empty list"),
    ({"scaleTargetRef": {"deploymentName": "w"}, "triggers": [{"type": "redis", "metadata": {}, "name": "x"}]},
     "spec.triggers[0].name is not a field"),
    ({"scaleTargetRef": {"deploymentName": "w"},
      "triggers": [{"type": "redis", "metadata": {"host": "H", "hostFromEnv": "H2"}}]},
     "spec.triggers[0].metadata: both host and hostFromEnv are set"),
])
def test_refuses_what_it_cannot_rewrite_faithfully(spec: dict[str, Any], error: str) -> None:
    with pytest.raises(ConversionError, match=error.replace("[", r"\[").replace("]", r"\]")):
        convert_documents([legacy(spec)], "in.yaml")


def test_catalog_reads_the_converted_object_like_the_original() -> None:
    spec = {"scaleTargetRef": {"deploymentName": "jobs", "containerName": "app"}, "pollingInterval": 7,
            "triggers": [REDIS, {"type": "cron", "metadata": {"timezone": "UTC", "start": "0 8 * * *",
                                                              "end": "0 18 * * *", "desiredReplicas": "2"}}]}
    old = parse_scaled_object(legacy(spec))
    new = parse_scaled_object(convert_documents([legacy(spec)], "in.yaml").documents[0])
    assert new.triggers == old.triggers
    assert (new.target, new.polling_interval, new.hpa_name) == (old.target, old.polling_interval, old.hpa_name)
    assert not new.legacy and new.route == ("scaledobject.keda.sh/name", "jobs")


def test_other_objects_pass_through_and_lists_are_unpacked() -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "worker"}}
    auth = {"apiVersion": "keda.k8s.io/v1alpha1", "kind": "TriggerAuthentication",
            "metadata": {"name": "a", "uid": "1", "resourceVersion": "9"},
            "spec": {"secretTargetRef": [{"parameter": "password", "name": "s", "key": "k"}]}}
    listed = {"apiVersion": "v1", "kind": "List", "items": [legacy({"scaleTargetRef": {"deploymentName": "worker"},
                                                                     "triggers": [REDIS]})]}
    result = convert_documents([deployment, None, auth, listed], "in.yaml")
    kinds = [(d["apiVersion"], d["kind"]) for d in result.documents]
    assert kinds == [("apps/v1", "Deployment"), ("keda.sh/v1alpha1", "TriggerAuthentication"),
                     ("keda.sh/v1alpha1", "ScaledObject")]
    assert result.documents[0] is deployment
    assert result.documents[1]["metadata"] == {"name": "a"} and result.documents[1]["spec"] == auth["spec"]
    assert result.notes == ("ScaledObject shop/jobs: the HPA becomes keda-hpa-jobs (was keda-hpa-worker) and selects "
                            "its metrics by scaledobject.keda.sh/name=jobs (was deploymentName=worker)",)


def test_what_the_server_set_is_left_behind() -> None:
    obj = legacy({"scaleTargetRef": {"deploymentName": "jobs"}, "triggers": [REDIS]})
    obj["metadata"].update({"uid": "u", "resourceVersion": "3", "generation": 2, "finalizers": ["finalizer.keda.sh"],
                            "labels": {"team": "a"}, "annotations": {
                                "kubectl.kubernetes.io/last-applied-configuration": "{}"}})
    obj["status"] = {"conditions": []}
    converted = convert_documents([obj], "in.yaml").documents[0]
    assert converted["metadata"] == {"name": "jobs", "namespace": "shop", "labels": {"team": "a"}}
    assert "status" not in converted


def test_run_reads_files_and_stdin_and_writes_nothing_on_error(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(legacy({"scaleTargetRef": {"deploymentName": "jobs"}, "triggers": [REDIS]})))
    stdin = io.StringIO(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}))
    out, err = io.StringIO(), io.StringIO()
    assert run([str(path), "-"], stdin=stdin, stdout=out, stderr=err) == 0
    assert [d["kind"] for d in yaml.safe_load_all(out.getvalue())] == ["ScaledObject", "ConfigMap"]
    assert err.getvalue() == ""  # same name as the Deployment: nothing changes for the HPA

    out, err = io.StringIO(), io.StringIO()
    assert run([str(path), str(tmp_path / "missing.yaml")], stdout=out, stderr=err) == 1
    assert out.getvalue() == "" and "missing.yaml" in err.getvalue()
