"""kubernetes-workload: the number of pods matching a label selector (KEDA's `kubernetes-workload`).

Keys from metadata: `podSelector` (required, Kubernetes' label selector grammar), `value`
(required, > 0), `activationValue` (0), `groupByNode` (count distinct nodes instead). Pods of the
ScaledObject's own namespace are counted, except Succeeded and Failed ones. The metric is
`s<index>-workload-<namespace>` against `value`.

KEDA lists pods from the API server on every poll of every trigger. Here the count comes from the
catalog's view of pods (`scalers.cluster`): the pod watch in cluster mode, Pod manifests in
standalone mode. A poll makes no API call; each distinct selector of a namespace is one pass over
that namespace's pods.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from scalers.base import ScalerClient, ScalerError, Served, ServedScaler
from scalers.cluster import ClusterView
from scalers.params import ParameterError, TriggerParams, param, parse_params
from scalers.sources import METADATA_ONLY


@dataclass(frozen=True, kw_only=True)
class _RawParams:
    pod_selector: str = param("podSelector", required=True, sources=METADATA_ONLY)
    value: float = param("value", default=0.0, sources=METADATA_ONLY)
    activation_value: float = param("activationValue", default=0.0, sources=METADATA_ONLY)
    group_by_node: bool = param("groupByNode", default=False, sources=METADATA_ONLY)


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkloadConfig:
    namespace: str
    pod_selector: str
    value: float
    activation_value: float = 0.0
    group_by_node: bool = False
    cluster: ClusterView = field(repr=False)


def parse_config(params: TriggerParams) -> WorkloadConfig:
    raw = parse_params(_RawParams, params)
    if raw.value <= 0:
        raise ParameterError("value must be a float greater than 0")
    if params.cluster is None:
        raise ParameterError("kubernetes-workload needs the cluster's pods, which this adapter does not watch")
    problem = params.cluster.selector_problem(raw.pod_selector)
    if problem is not None:
        raise ParameterError(f"error parsing pod selector: {problem}")
    return WorkloadConfig(namespace=params.namespace, pod_selector=raw.pod_selector, value=raw.value,
                          activation_value=raw.activation_value, group_by_node=raw.group_by_node,
                          cluster=params.cluster)


class WorkloadClient(ScalerClient[WorkloadConfig]):
    """Counts from the catalog's pods, each distinct (namespace, selector) once per read; no connection."""

    async def read(self, configs: Sequence[WorkloadConfig]) -> list[float | ScalerError]:
        counts: dict[tuple[str, str, bool], float] = {}
        for c in configs:
            key = (c.namespace, c.pod_selector, c.group_by_node)
            if key not in counts:
                counts[key] = float(c.cluster.count_pods(c.namespace, c.pod_selector, group_by_node=c.group_by_node))
        return [counts[(c.namespace, c.pod_selector, c.group_by_node)] for c in configs]


class KubernetesWorkloadScaler(ServedScaler[WorkloadConfig, Hashable]):
    types = ("kubernetes-workload",)

    def parse(self, trigger_type: str, params: TriggerParams) -> WorkloadConfig:
        return parse_config(params)

    def served(self, config: WorkloadConfig) -> Served[Hashable]:
        one_per_catalog = ("pods", id(config.cluster))
        return Served(one_per_catalog, f"workload-{config.namespace}", config.value, config.activation_value)

    def open_client(self, config: WorkloadConfig) -> WorkloadClient:
        return WorkloadClient()
