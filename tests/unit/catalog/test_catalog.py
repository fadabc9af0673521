"""Resolution through the catalog: auth params, container env, routes, problems."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from adapter.catalog.catalog import Catalog
from adapter.catalog.directory_source import read_directory
from scalers.cron import CronConfig
from scalers.kubernetes_workload import WorkloadConfig
from scalers.registry import REGISTRY

CRON_META = {"timezone": "UTC", "start": "0 6 * * *", "end": "0 20 * * *"}


def obj(kind: str, name: str, namespace: str = "default", **body: Any) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name, "namespace": namespace}, **body}


def scaled_object(name: str, trigger: dict[str, Any], namespace: str = "default", api: str = "keda.sh/v1alpha1",
                  target: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"apiVersion": api, **obj("ScaledObject", name, namespace),
            "spec": {"scaleTargetRef": target or {"name": "web"}, "triggers": [trigger]}}


def secret(name: str, **data: str) -> dict[str, Any]:
    return obj("Secret", name, data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()})


def deployment(env: list[dict[str, Any]], name: str = "web") -> dict[str, Any]:
    return obj("Deployment", name, spec={"template": {"spec": {"containers": [{"name": "main", "env": env}]}}})


def load(*objects: dict[str, Any]) -> Catalog:
    catalog = Catalog(REGISTRY)
    catalog.replace_all([(o, "test") for o in objects])
    return catalog


def desired(catalog: Catalog, name: str = "so") -> int:
    resolved = catalog.scaled_object("default", name)
    assert resolved is not None, catalog.problems
    (trigger,) = resolved.triggers
    assert trigger.error is None, trigger.error
    assert isinstance(trigger.config, CronConfig)
    return trigger.config.desired_replicas


def test_value_from_trigger_authentication_secret() -> None:
    catalog = load(
        scaled_object("so", {"type": "cron", "metadata": CRON_META, "authenticationRef": {"name": "auth"}}),
        obj("TriggerAuthentication", "auth", spec={"secretTargetRef": [
            {"parameter": "desiredReplicas", "name": "s", "key": "n"}]}),
        secret("s", n="7"),
    )
    assert desired(catalog) == 7


def test_from_env_with_secret_and_config_map_refs() -> None:
    catalog = load(
        scaled_object("so", {"type": "cron", "metadata": {**CRON_META, "desiredReplicasFromEnv": "N"}}),
        deployment([{"name": "N", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "count"}}}]),
        obj("ConfigMap", "cm", data={"count": "4"}),
    )
    assert desired(catalog) == 4


def test_metadata_wins_over_auth_and_env() -> None:
    catalog = load(
        scaled_object("so", {"type": "cron", "metadata": {**CRON_META, "desiredReplicas": "1",
                                                          "desiredReplicasFromEnv": "N"},
                             "authenticationRef": {"name": "auth"}}),
        obj("TriggerAuthentication", "auth", spec={"env": [{"parameter": "desiredReplicas", "name": "N"}]}),
        deployment([{"name": "N", "value": "9"}]),
    )
    assert desired(catalog) == 1


def test_cluster_trigger_authentication_reads_the_cluster_namespace() -> None:
    catalog = Catalog(REGISTRY, cluster_namespace="ops")
    catalog.replace_all([(o, "t") for o in (
        scaled_object("so", {"type": "cron", "metadata": CRON_META,
                             "authenticationRef": {"name": "shared", "kind": "ClusterTriggerAuthentication"}}),
        {"kind": "ClusterTriggerAuthentication", "metadata": {"name": "shared"},
         "spec": {"secretTargetRef": [{"parameter": "desiredReplicas", "name": "s", "key": "n"}]}},
        {**secret("s", n="5"), "metadata": {"name": "s", "namespace": "ops"}},
    )])
    assert desired(catalog) == 5


@pytest.mark.parametrize("objects, problem", [
    ([scaled_object("so", {"type": "cron", "metadata": CRON_META, "authenticationRef": {"name": "nope"}})],
     "TriggerAuthentication default/nope not found"),
    ([scaled_object("so", {"type": "cron", "metadata": CRON_META, "authenticationRef": {"name": "a"}}),
      obj("TriggerAuthentication", "a", spec={"secretTargetRef": [{"parameter": "desiredReplicas", "name": "s",
                                                                   "key": "missing"}]}),
      secret("s", n="5")],
     'key "missing" not found in Secret default/s'),
    ([scaled_object("so", {"type": "pulsar", "metadata": {}})], 'unknown trigger type "pulsar"'),
    ([scaled_object("so", {"type": "cron", "metadata": CRON_META})], 'missing required parameter "desiredReplicas"'),
    ([scaled_object("so", {"type": "cron", "metadata": CRON_META},
                    target={"name": "web", "envSourceContainerName": "sidecar"}), deployment([])],
     'container "sidecar" not found'),
])
def test_problems_are_reported_and_name_no_values(objects: list[dict[str, Any]], problem: str) -> None:
    catalog = load(*objects, scaled_object("fine", {"type": "cron", "metadata": {**CRON_META, "desiredReplicas": "3"}}))
    (found,) = catalog.problems
    assert problem in found.message and "5" not in found.message.replace("default/s", "")
    assert desired(catalog, "fine") == 3


def test_legacy_env_names_and_route() -> None:
    catalog = load(
        scaled_object("old", {"type": "cron", "metadata": CRON_META | {"desiredReplicas": "2"}},
                      api="keda.k8s.io/v1alpha1", target={"deploymentName": "worker"}),
    )
    resolved = catalog.route("default", "deploymentName", "worker")
    assert resolved is not None and resolved.so.name == "old"


def test_route_conflict_and_recovery_on_delete() -> None:
    first = scaled_object("a", {"type": "cron", "metadata": CRON_META | {"desiredReplicas": "1"}},
                          api="keda.k8s.io/v1alpha1", target={"deploymentName": "w"})
    second = scaled_object("b", {"type": "cron", "metadata": CRON_META | {"desiredReplicas": "2"}},
                           api="keda.k8s.io/v1alpha1", target={"deploymentName": "w"})
    catalog = load(first, second)
    assert [p.message for p in catalog.problems] == ["selector deploymentName=w is already used by a"]
    catalog.apply(first, deleted=True)
    resolved = catalog.route("default", "deploymentName", "w")
    assert resolved is not None and resolved.so.name == "b" and not catalog.problems


def test_apply_re_resolves_dependents_and_notifies() -> None:
    catalog = load(
        scaled_object("so", {"type": "cron", "metadata": CRON_META, "authenticationRef": {"name": "a"}}),
        obj("TriggerAuthentication", "a", spec={"secretTargetRef": [{"parameter": "desiredReplicas", "name": "s",
                                                                     "key": "n"}]}),
    )
    calls: list[int] = []
    catalog.subscribe(lambda changed: calls.append(catalog.generation))
    assert catalog.problems
    catalog.apply(secret("s", n="6"))
    assert desired(catalog) == 6 and not catalog.problems and calls


def test_a_secret_read_by_three_scaled_objects_re_resolves_the_ones_still_reading_it() -> None:
    auth = obj("TriggerAuthentication", "a", spec={"secretTargetRef": [{"parameter": "desiredReplicas", "name": "s",
                                                                        "key": "n"}]})
    readers = [scaled_object(name, {"type": "cron", "metadata": CRON_META, "authenticationRef": {"name": "a"}},
                             target={"name": name}) for name in ("one", "two", "three")]
    catalog = load(*readers, auth, secret("s", n="2"))
    catalog.apply(readers[1], deleted=True)
    catalog.apply(secret("s", n="7"))
    assert sorted(so.so.name for so in catalog.scaled_objects()) == ["one", "three"]
    assert desired(catalog, "one") == desired(catalog, "three") == 7
    catalog.apply(readers[0], deleted=True)
    catalog.apply(readers[2], deleted=True)
    catalog.apply(secret("s", n="8"))
    assert list(catalog.scaled_objects()) == []


def test_shipped_examples_resolve_without_problems() -> None:
    from pathlib import Path

    from adapter.catalog.directory_source import read_directory

    root = Path(__file__).resolve().parents[3] / "manifests" / "examples"
    for directory in (root / "local", root / "brokers"):
        found, problems = read_directory(directory)
        catalog = Catalog(REGISTRY)
        catalog.replace_all(found, problems)
        assert not catalog.problems, (directory, catalog.problems)
        assert list(catalog.triggers()), directory


# -- cpu/memory, kubernetes-workload: what is served and what the scalers see ------------------------


def test_cpu_is_resolved_but_never_served_and_utilization_is_refused_for_external_metrics() -> None:
    cpu = {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "50"}}
    cron = {"type": "cron", "metricType": "Utilization", "metadata": {**CRON_META, "desiredReplicas": "1"}}
    so = {**scaled_object("so", cpu), "spec": {"scaleTargetRef": {"name": "web"}, "triggers": [cpu, cron]}}
    catalog = load(so)
    resolved = catalog.scaled_object("default", "so")
    assert resolved is not None
    first, second = resolved.triggers
    assert first.error is None and first.metric is not None and first.metric.resource is not None
    assert not first.served and list(catalog.triggers()) == []
    assert second.error == ("'Utilization' metric type is unsupported for external metrics, allowed values are "
                            "'Value' or 'AverageValue'")


def test_pods_and_endpoint_slices_feed_the_cluster_view_without_re_resolving() -> None:
    workload = {"type": "kubernetes-workload", "metadata": {"podSelector": "app=web", "value": "2"}}
    pod: dict[str, Any]
    pod = {"kind": "Pod", "metadata": {"name": "p1", "namespace": "default", "labels": {"app": "web"}},
           "status": {"phase": "Running"}}
    catalog = load(scaled_object("so", workload), pod)
    generation = catalog.generation
    assert catalog.cluster.count_pods("default", "app=web") == 1
    catalog.apply({**pod, "metadata": {**pod["metadata"], "name": "p2"}})
    assert catalog.cluster.count_pods("default", "app=web") == 2 and catalog.generation == generation
    catalog.apply(pod, deleted=True)
    assert catalog.cluster.count_pods("default", "app=web") == 1
    (trigger,) = catalog.triggers()
    assert isinstance(trigger.config, WorkloadConfig)
    assert trigger.metric_name == "s0-workload-default" and trigger.config.namespace == "default"


def test_standalone_mode_reads_pods_from_the_directory(tmp_path: Any) -> None:
    (tmp_path / "objects.yaml").write_text("""
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: so}
spec:
  scaleTargetRef: {name: web}
  triggers: [{type: kubernetes-workload, metadata: {podSelector: "app in (web, api)", value: "1"}}]
---
apiVersion: v1
kind: Pod
metadata: {name: a, labels: {app: web}}
status: {phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: b, labels: {app: api}}
status: {phase: Succeeded}
""")
    objects, problems = read_directory(tmp_path)
    catalog = Catalog(REGISTRY)
    catalog.replace_all(objects, problems)
    assert not catalog.problems and catalog.cluster.count_pods("default", "app in (web, api)") == 1
