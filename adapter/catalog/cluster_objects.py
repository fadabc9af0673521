"""Pods and EndpointSlices as the scalers see them: the catalog's implementation of `scalers.cluster.ClusterView`.

The kubernetes-workload scaler counts pods and the metrics-api scaler calls a Service's
endpoints; KEDA lists both from the API server on every poll. Here the sources feed them in like
any other object (the pod and EndpointSlice watches in cluster mode, Pod and EndpointSlice
manifests in standalone mode) and a poll only reads this index.

They are kept apart from the catalog's other objects on purpose: pods change all the time and no
ScaledObject's resolution depends on them, so an event updates this index and nothing else
(no re-resolution, no listener). Only what is read is kept: a pod's labels, phase and node; a
slice's service, ready addresses and ports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from adapter.kube.selectors import SelectorError, parse_selector
from scalers.cluster import Endpoint

KINDS = frozenset({"Pod", "EndpointSlice"})
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
TERMINATED_PHASES = frozenset({"Succeeded", "Failed"})

RawObject = Mapping[str, Any]


@dataclass(frozen=True)
class PodFacts:
    labels: Mapping[str, str]
    phase: str
    node: str


@dataclass(frozen=True)
class SliceFacts:
    service: str
    addresses: tuple[str, ...]  # of ready endpoints
    ports: tuple[int, ...]


def _meta(obj: RawObject) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta.get("name") or "")


def pod_facts(obj: RawObject) -> PodFacts:
    meta = obj.get("metadata") or {}
    return PodFacts(labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
                    phase=str((obj.get("status") or {}).get("phase") or ""),
                    node=str((obj.get("spec") or {}).get("nodeName") or ""))


def slice_facts(obj: RawObject) -> SliceFacts:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    addresses: list[str] = []
    for endpoint in obj.get("endpoints") or []:
        ready = (endpoint.get("conditions") or {}).get("ready")
        if ready is not False:  # KEDA: skipped only when ready is set and false
            addresses += [str(a) for a in endpoint.get("addresses") or []]
    ports = tuple(int(p["port"]) for p in obj.get("ports") or [] if isinstance(p.get("port"), int))
    return SliceFacts(service=str(labels.get(SERVICE_NAME_LABEL) or ""), addresses=tuple(addresses), ports=ports)


class ClusterObjects:
    """Pods and EndpointSlices by namespace; what `ClusterView` answers from."""

    def __init__(self) -> None:
        self._pods: dict[str, dict[str, PodFacts]] = {}
        self._slices: dict[str, dict[str, SliceFacts]] = {}

    # -- fed by the sources, through the catalog --------------------------------------------------

    def apply(self, obj: RawObject, deleted: bool = False) -> None:
        namespace, name = _meta(obj)
        index, facts = (self._pods, pod_facts) if obj.get("kind") == "Pod" else (self._slices, slice_facts)
        bucket: dict[str, Any] = index.setdefault(namespace, {})
        if deleted:
            bucket.pop(name, None)
        else:
            bucket[name] = facts(obj)

    def replace_all(self, objects: Iterable[RawObject]) -> None:
        self._pods, self._slices = {}, {}
        for obj in objects:
            self.apply(obj)

    # -- scalers.cluster.ClusterView -------------------------------------------------------------

    def selector_problem(self, selector: str) -> str | None:
        try:
            parse_selector(selector)
        except SelectorError as exc:
            return str(exc)
        return None

    def count_pods(self, namespace: str, selector: str, *, group_by_node: bool = False) -> int:
        matches = parse_selector(selector).matches
        running = [p for p in self._pods.get(namespace, {}).values()
                   if p.phase not in TERMINATED_PHASES and matches(p.labels)]
        if group_by_node:
            return len({p.node for p in running if p.node})
        return len(running)

    def service_endpoints(self, namespace: str, service: str) -> list[Endpoint]:
        found: dict[str, Endpoint] = {}
        for facts in self._slices.get(namespace, {}).values():
            if facts.service == service:
                for address in facts.addresses:
                    found.setdefault(address, Endpoint(address, facts.ports))
        return list(found.values())
