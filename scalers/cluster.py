"""What a scaler may know of the cluster itself: pods and service endpoints, as the catalog sees them.

Two scalers read the cluster rather than a broker: `kubernetes-workload` counts pods, and
`metrics-api` with `aggregateFromKubeServiceEndpoints` calls every ready endpoint of a Service.
KEDA lists them from the API server on every poll. Here the catalog already watches them (cluster
mode) or reads their manifests (standalone mode), so a scaler is handed this small read-only
view and never makes a Kubernetes call. `scalers` cannot import `adapter`: the view is defined
here and implemented by the catalog.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Endpoint:
    """One ready address behind a Service, with the ports its EndpointSlice lists."""

    address: str
    ports: tuple[int, ...] = ()


class ClusterView(Protocol):
    def selector_problem(self, selector: str) -> str | None:
        """Why `selector` is not a valid label selector (Kubernetes' grammar), or None."""

    def count_pods(self, namespace: str, selector: str, *, group_by_node: bool = False) -> int:
        """Pods of `namespace` matching `selector` that are not Succeeded or Failed
        (with `group_by_node`, the number of distinct nodes they run on)."""

    def service_endpoints(self, namespace: str, service: str) -> Sequence[Endpoint]:
        """The ready endpoint addresses of Service `namespace/service`, each address once."""
