"""The HPA a ScaledObject asks for, and whether the one in the cluster already matches it.

Built as KEDA builds it: name `keda-hpa-<name>` (or
`advanced.horizontalPodAutoscalerConfig.name`), minReplicas max(1, min) (0 with native scale-to-
zero), maxReplicas, one External metric per trigger selected by the label the adapter routes on
(`scaledobject.keda.sh/name=<name>`, or `deploymentName=<deployment>` for the 2019 format; with
`advanced.scalingModifiers`, the one `composite-metric` instead), the trigger's target as
AverageValue or Value, a Resource (or ContainerResource) metric for each cpu and memory trigger,
the metrics ordered by type as KEDA orders them, `behavior` copied (with the paused direction's
selectPolicy set to Disabled), the ScaledObject's labels and annotations copied, and the
ScaledObject as controlling owner so the garbage collector removes the HPA with it.

The server fills defaults into what we send (behavior policies, selectPolicy, ...), so "up to
date" is KEDA's DeepDerivative: every field we set has our value; fields we leave out may hold
anything. That alone misses removals (a behavior deleted from the ScaledObject, a pause lifted:
KEDA's 2.18.2 fix), so the HPA also carries a hash of what we asked for, and a different hash
means an update. An update is a merge patch computed against the HPA as cached (`hpa_patch`),
so the cache keeps a small typed view of each HPA rather than the whole object.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adapter.controller.status import replacing_patch
from adapter.keda.activity import ObjectActivity, ResourceMetric
from adapter.keda.names import SCALED_OBJECT_LABEL
from adapter.keda.objects import ScaledObject
from adapter.kube.autoscaling import Hpa
from adapter.kube.wire import format_quantity

MANAGED_BY = "eventscale"
VERSION = "0.1.0"
SPEC_HASH = "eventscale.io/hpa-spec-hash"


@dataclass(frozen=True)
class HpaMetric:
    name: str
    metric_type: str  # AverageValue | Value
    target: float
    resource: ResourceMetric | None = None  # cpu or memory: a Resource metric instead of an External one


@dataclass(frozen=True)
class TargetKind:
    """The scale target as the HPA names it (group/version and kind)."""

    api_version: str
    kind: str


def hpa_metrics(activity: ObjectActivity) -> list[HpaMetric]:
    """A Resource metric per cpu or memory trigger, and an External metric per other resolved
    trigger, or with scalingModifiers only the composite one (KEDA keeps cpu and memory beside it)."""
    resources = [HpaMetric(t.metric_name, t.metric_type, 0.0, t.resource) for t in activity.triggers
                 if t.resolved and t.resource is not None]
    if activity.composite is not None:
        c = activity.composite
        return [*resources, HpaMetric(c.metric_name, c.metric_type, c.target)]
    return [*resources, *(HpaMetric(t.metric_name, t.metric_type, t.target) for t in activity.triggers
                          if t.resolved and t.resource is None and t.target is not None)]


def owner_reference(so: ScaledObject) -> dict[str, Any]:
    return {"apiVersion": so.api_version, "kind": "ScaledObject", "name": so.name, "uid": so.uid,
            "controller": True, "blockOwnerDeletion": True}


def behavior(so: ScaledObject, pause_scale_in: bool, pause_scale_out: bool) -> dict[str, Any] | None:
    found = copy.deepcopy(dict(so.hpa_behavior)) if so.hpa_behavior else {}
    if pause_scale_in:
        found.setdefault("scaleDown", {})["selectPolicy"] = "Disabled"
    if pause_scale_out:
        found.setdefault("scaleUp", {})["selectPolicy"] = "Disabled"
    return found or None


def external_metric(so: ScaledObject, metric: HpaMetric) -> dict[str, Any]:
    label, value = so.route
    quantity = format_quantity(metric.target)
    target = ({"type": "Value", "value": quantity} if metric.metric_type == "Value"
              else {"type": "AverageValue", "averageValue": quantity})
    return {"type": "External", "external": {
        "metric": {"name": metric.name, "selector": {"matchLabels": {label: value}}}, "target": target}}


def resource_metric(resource: ResourceMetric) -> dict[str, Any]:
    """KEDA's cpu/memory metric: Resource, or ContainerResource with a container name."""
    target: dict[str, Any] = {"type": resource.target_type}
    if resource.target_type == "Utilization":
        target["averageUtilization"] = int(resource.value)
    else:
        target["averageValue"] = resource.value
    if resource.container:
        return {"type": "ContainerResource", "containerResource": {
            "name": resource.resource, "container": resource.container, "target": target}}
    return {"type": "Resource", "resource": {"name": resource.resource, "target": target}}


def metric_specs(so: ScaledObject, metrics: Sequence[HpaMetric]) -> list[dict[str, Any]]:
    """The HPA's metrics, sorted by type as KEDA sorts them (so the order never flips an update)."""
    specs = [resource_metric(m.resource) if m.resource else external_metric(so, m) for m in metrics]
    return sorted(specs, key=lambda spec: str(spec["type"]))


def desired_hpa(so: ScaledObject, target: TargetKind, metrics: Sequence[HpaMetric], *,
                pause_scale_in: bool = False, pause_scale_out: bool = False,
                native_zero: bool = False) -> dict[str, Any]:
    """The HPA for `so`; with `native_zero` (HPAScaleToZero, see native_zero.py) minReplicas is 0."""
    labels = {
        "app.kubernetes.io/name": so.hpa_name, "app.kubernetes.io/version": VERSION,
        "app.kubernetes.io/part-of": so.name, "app.kubernetes.io/managed-by": MANAGED_BY,
        SCALED_OBJECT_LABEL: so.name, **so.labels,
    }
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": target.api_version, "kind": target.kind, "name": so.target.name},
        "minReplicas": 0 if native_zero else max(1, so.min_replica_count),
        "maxReplicas": so.max_replica_count,
        "metrics": metric_specs(so, metrics),
    }
    wanted_behavior = behavior(so, pause_scale_in, pause_scale_out)
    if wanted_behavior:
        spec["behavior"] = wanted_behavior
    metadata: dict[str, Any] = {"name": so.hpa_name, "namespace": so.namespace, "labels": labels,
                                "ownerReferences": [owner_reference(so)]}
    fingerprint = hashlib.sha256(json.dumps([spec, labels, dict(so.annotations)], sort_keys=True).encode())
    metadata["annotations"] = {**so.annotations, SPEC_HASH: fingerprint.hexdigest()[:16]}
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": metadata, "spec": spec}


def derivative(wanted: Any, found: Any) -> bool:
    """True when every field set in `wanted` has the same value in `found` (KEDA's DeepDerivative).

    Equal values are derivative, whatever they hold: that C-level comparison settles most fields
    at once (100,000 HPAs are compared at start-up), and only the rest are walked."""
    if wanted == found:
        return True
    if isinstance(wanted, Mapping):
        return isinstance(found, Mapping) and all(derivative(v, found.get(k)) for k, v in wanted.items())
    if isinstance(wanted, list):
        return (isinstance(found, list) and len(wanted) == len(found)
                and all(derivative(w, f) for w, f in zip(wanted, found, strict=True)))
    return False


def up_to_date(wanted: Mapping[str, Any], found: Hpa) -> bool:
    meta = wanted["metadata"]
    return (found.owned_by(meta["ownerReferences"][0]["uid"])
            and derivative(meta["labels"], found.labels)
            and derivative(meta["annotations"], found.annotations)
            and derivative(wanted["spec"], found.spec))


def hpa_patch(wanted: Mapping[str, Any], found: Hpa) -> dict[str, Any]:
    """The merge patch that gives `found` our spec (as a PUT would: fields we do not set are
    removed and defaulted again by the server), labels, annotations and controlling owner,
    conditional on the version read."""
    others = [o.as_dict() for o in found.owners if not o.controller]
    meta = wanted["metadata"]
    return {"metadata": {"resourceVersion": found.resource_version, "labels": meta["labels"],
                         "annotations": meta["annotations"], "ownerReferences": [*meta["ownerReferences"], *others]},
            "spec": replacing_patch(found.spec, wanted["spec"])}
