"""Kubernetes resources both processes read, named once.

A `Resource` is what a list or watch needs (group, version, plural, namespacing, optional
field and label selectors); the core and apps resources either process watches are defined here, KEDA's
own in `adapter.keda.names`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    namespace: str = ""  # watch one namespace only
    field_selector: str = ""
    label_selector: str = ""  # e.g. `scaledjob.keda.sh/name`: only the objects carrying that label

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def path(self) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        return f"{base}/namespaces/{self.namespace}/{self.plural}" if self.namespace else f"{base}/{self.plural}"

    def within(self, namespace: str) -> Resource:
        """This resource in one namespace (cluster-scoped resources stay as they are)."""
        return replace(self, namespace=namespace) if self.namespaced else self

    def object_path(self, name: str, namespace: str = "") -> str:
        return f"{self.within(namespace).path}/{name}"

    def __str__(self) -> str:
        name = f"{self.plural}.{self.group}" if self.group else self.plural
        return f"{name}[{self.label_selector}]" if self.label_selector else name


SECRETS = Resource("", "v1", "secrets", "Secret", field_selector="type!=helm.sh/release.v1")
CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")
PODS = Resource("", "v1", "pods", "Pod")
SERVICES = Resource("", "v1", "services", "Service")
ENDPOINT_SLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
STATEFUL_SETS = Resource("apps", "v1", "statefulsets", "StatefulSet")
HPAS = Resource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler")

# Workloads whose replica count is read from a watch rather than GET /scale, by (apiVersion, kind).
WORKLOADS = {(r.api_version, r.kind): r for r in (DEPLOYMENTS, STATEFUL_SETS)}
