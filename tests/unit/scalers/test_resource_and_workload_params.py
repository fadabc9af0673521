"""Parsing of cpu, memory and kubernetes-workload triggers, from KEDA's cpu_memory_scaler_test.go and
kubernetes_workload_scaler_test.go, and Kubernetes quantities as the API server writes them."""

from __future__ import annotations

from typing import Any

import pytest

from adapter.catalog.cluster_objects import ClusterObjects
from scalers.base import ResourceTarget
from scalers.cpu_memory import CpuMemoryScaler
from scalers.kubernetes_workload import KubernetesWorkloadScaler
from scalers.params import ParameterError, TriggerParams
from scalers.quantity import QuantityError, canonical, quantity_value

CPU = CpuMemoryScaler()
WORKLOAD = KubernetesWorkloadScaler()


@pytest.mark.parametrize("trigger_type, metric_type, metadata, expected", [
    ("cpu", "Utilization", {"value": "50"}, ResourceTarget(resource="cpu", target_type="Utilization", value="50")),
    ("cpu", "AverageValue", {"value": "50"}, ResourceTarget(resource="cpu", target_type="AverageValue", value="50")),
    ("memory", "AverageValue", {"value": "512Mi"}, ResourceTarget(resource="memory", target_type="AverageValue",
                                                                  value="512Mi")),
    ("memory", "AverageValue", {"value": "1024Mi"}, ResourceTarget(resource="memory", target_type="AverageValue",
                                                                   value="1Gi")),
    ("cpu", "AverageValue", {"value": "0.5"}, ResourceTarget(resource="cpu", target_type="AverageValue", value="500m")),
    ("cpu", "Utilization", {"value": "50", "containerName": "foo"},
     ResourceTarget(resource="cpu", target_type="Utilization", value="50", container="foo")),
    # `type` in metadata, removed by KEDA 2.18: still read when metricType is not set
    ("cpu", None, {"type": "Utilization", "value": "60"}, ResourceTarget(resource="cpu", target_type="Utilization",
                                                                         value="60")),
    ("cpu", "AverageValue", {"type": "Utilization", "value": "60"},
     ResourceTarget(resource="cpu", target_type="AverageValue", value="60")),
])
def test_cpu_memory(trigger_type: str, metric_type: str | None, metadata: dict[str, str],
                    expected: ResourceTarget) -> None:
    config = CPU.parse(trigger_type, TriggerParams(metadata=metadata, metric_type=metric_type))
    spec = CPU.metric(config)
    assert spec.resource == expected and spec.name == trigger_type


@pytest.mark.parametrize("metric_type, metadata, error", [  # testCPUMemoryMetadata
    (None, {}, 'missing required parameter "value"'),
    ("Value", {"value": "50"}, "unknown metric type: Value, allowed values are 'Utilization' or 'AverageValue'"),
    (None, {"value": ""}, 'missing required parameter "value"'),
    (None, {"value": "50"}, "unknown metric type: , allowed values"),
    ("Utilization", {"value": "50.5"}, "must be a whole percent greater than 0"),
    ("Utilization", {"value": "0"}, "must be a whole percent greater than 0"),
    ("AverageValue", {"value": "lots"}, 'parameter "value": "lots" is not a quantity'),
])
def test_cpu_memory_errors(metric_type: str | None, metadata: dict[str, str], error: str) -> None:
    with pytest.raises(ParameterError) as raised:
        CPU.parse("cpu", TriggerParams(metadata=metadata, metric_type=metric_type))
    assert error in str(raised.value)


@pytest.mark.parametrize("text, written, value", [
    ("50", "50", 50.0), ("1500", "1500", 1500.0), ("2000", "2k", 2000.0), ("0.5", "500m", 0.5), ("1.5", "1500m", 1.5),
    ("100m", "100m", 0.1), ("1k", "1k", 1000.0), ("1.5k", "1500", 1500.0), ("1e3", "1e3", 1000.0),
    ("512Mi", "512Mi", 512 * 2**20), ("1024Mi", "1Gi", 2**30), ("1.5Gi", "1536Mi", 1.5 * 2**30),
    ("0.5Ki", "512", 512.0), ("1Ki", "1Ki", 1024.0), ("0", "0", 0.0), ("1n", "1n", 1e-9), ("+3", "3", 3.0),
    ("-2", "-2", -2.0), ("1.", "1", 1.0), (".5", "500m", 0.5),
])
def test_quantities(text: str, written: str, value: float) -> None:
    assert canonical(text) == written and quantity_value(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "lots", "1.2.3", "1Kb", "Mi", "1 Mi", "NaN"])
def test_bad_quantities(text: str) -> None:
    with pytest.raises(QuantityError):
        canonical(text)


def workload(metadata: dict[str, str], namespace: str = "test", cluster: Any = None) -> Any:
    return WORKLOAD.parse("kubernetes-workload", TriggerParams(
        metadata=metadata, namespace=namespace, cluster=ClusterObjects() if cluster is None else cluster))


@pytest.mark.parametrize("metadata, namespace, name", [  # parseWorkloadMetadataTestDataset (successes)
    ({"value": "1", "podSelector": "app=demo"}, "test", "workload-test"),
    ({"value": "1", "podSelector": "app=demo"}, "default", "workload-default"),
    ({"value": "1", "podSelector": "app in (demo1, demo2)"}, "test", "workload-test"),
    ({"value": "1", "podSelector": "app in (demo1, demo2),deploy in (deploy1, deploy2)"}, "test", "workload-test"),
    ({"value": "1", "podSelector": "app=demo", "groupByNode": "true"}, "test", "workload-test"),
])
def test_workload(metadata: dict[str, str], namespace: str, name: str) -> None:
    config = workload({**metadata, "activationValue": "2"}, namespace)
    spec = WORKLOAD.metric(config)
    assert (spec.name, spec.target, spec.activation) == (name, 1.0, 2.0)
    assert config.namespace == namespace and config.group_by_node == ("groupByNode" in metadata)


@pytest.mark.parametrize("metadata, error", [  # parseWorkloadMetadataTestDataset (failures)
    ({"podSelector": "app=demo"}, "value must be a float greater than 0"),
    ({"value": "1"}, 'missing required parameter "podSelector"'),
    ({"value": "a", "podSelector": "app=demo"}, 'parameter "value" value "a" must be a number'),
    ({"value": "0", "podSelector": "app=demo"}, "value must be a float greater than 0"),
    ({"value": "1", "activationValue": "aa", "podSelector": "app=demo"}, 'parameter "activationValue" value "aa"'),
    ({"value": "1", "podSelector": "app=demo", "groupByNode": "invalid"}, 'parameter "groupByNode" value "invalid"'),
    ({"value": "1", "podSelector": "app in (a"}, "error parsing pod selector"),
])
def test_workload_errors(metadata: dict[str, str], error: str) -> None:
    with pytest.raises(ParameterError) as raised:
        workload(metadata)
    assert error in str(raised.value)


def test_workload_needs_the_catalogs_pods() -> None:
    with pytest.raises(ParameterError, match="needs the cluster's pods"):
        WORKLOAD.parse("kubernetes-workload", TriggerParams(metadata={"value": "1", "podSelector": "a=b"}))


def pod(name: str, labels: dict[str, str], phase: str = "Running", node: str = "n1",
        namespace: str = "test") -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"nodeName": node}, "status": {"phase": phase}}


async def test_workload_counts_the_catalogs_pods() -> None:
    """KEDA's TestWorkloadIsActive and groupByNode: terminated pods do not count, other namespaces neither."""
    cluster = ClusterObjects()
    cluster.replace_all([pod("a", {"app": "demo"}), pod("b", {"app": "demo"}, node="n2"),
                         pod("c", {"app": "demo"}, node="n2"), pod("d", {"app": "demo"}, phase="Succeeded"),
                         pod("e", {"app": "demo"}, phase="Failed"), pod("f", {"app": "other"}),
                         pod("g", {"app": "demo"}, namespace="elsewhere")])
    configs = [workload({"value": "1", "podSelector": "app=demo"}, cluster=cluster),
               workload({"value": "1", "podSelector": "app=demo", "groupByNode": "true"}, cluster=cluster),
               workload({"value": "1", "podSelector": "app notin (demo)"}, cluster=cluster),
               workload({"value": "1", "podSelector": "app=demo"}, "nowhere", cluster=cluster)]
    client = WORKLOAD.open_client(configs[0])
    assert await client.read(configs) == [3.0, 2.0, 1.0, 0.0]
    cluster.apply(pod("b", {}), deleted=True)
    cluster.apply(pod("h", {"app": "demo"}))
    assert await client.read(configs[:1]) == [3.0]
