"""Objects shaped as kube-apiserver serves them at scale, for in-process memory measurements.

Memory per ScaledObject depends on what a watch hands over, not on what a test would write by
hand: managedFields of every writer, the `last-applied-configuration` annotation `kubectl apply`
leaves, the status the controller wrote, the defaults the API server fills into a pod template.
These builders give one Redis ScaledObject, its StatefulSet target (at 0 replicas) and its HPA
as a list page carries them (as the controller bench `redis_objects` creates them, after the
controller's writes), each call building fresh containers and strings, as decoding a page does.
"""

from __future__ import annotations

import json
from typing import Any

NAMESPACE = "bench-scale"
REDIS = "127.0.0.1:6379"


def name_of(i: int) -> str:
    return f"so-{i:05d}"


def _uid(i: int, salt: int) -> str:
    return f"{salt:08x}-{i:04x}-4b7e-9f35-{i:012x}"


def _managed(manager: str, operation: str, fields: dict[str, Any], subresource: str = "",
             api_version: str = "keda.sh/v1alpha1") -> dict[str, Any]:
    entry = {"manager": manager, "operation": operation, "apiVersion": api_version, "time": "2026-01-01T00:00:00Z",
             "fieldsType": "FieldsV1", "fieldsV1": fields}
    return {**entry, "subresource": subresource} if subresource else entry


def _metadata(name: str, i: int, salt: int, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": NAMESPACE, "uid": _uid(i, salt), "resourceVersion": str(100000 + 3 * i + salt),
            "generation": 1, "creationTimestamp": "2026-01-01T00:00:00Z", **extra}


def scaled_object(i: int) -> dict[str, Any]:
    """A Redis ScaledObject after `kubectl apply` and the controller's label and status writes."""
    name = name_of(i)
    metric = f"s0-redis-{NAMESPACE}-{name}"
    spec = {"scaleTargetRef": {"name": name, "kind": "StatefulSet"}, "pollingInterval": 30, "cooldownPeriod": 300,
            "maxReplicaCount": 10, "triggers": [{"type": "redis", "metadata": {
                "address": REDIS, "listName": f"{NAMESPACE}-{name}", "listLength": "5"}}]}
    applied = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
               "metadata": {"annotations": {}, "name": name, "namespace": NAMESPACE}, "spec": spec}
    spec_fields: dict[str, Any] = {
        "f:spec": {".": {}, "f:cooldownPeriod": {}, "f:maxReplicaCount": {}, "f:pollingInterval": {},
                   "f:scaleTargetRef": {".": {}, "f:kind": {}, "f:name": {}}, "f:triggers": {}},
        "f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}}}}
    status_fields: dict[str, Any] = {"f:status": {".": {}, **{f"f:{k}": {} for k in (
        "conditions", "externalMetricNames", "health", "hpaName", "originalReplicaCount", "scaleTargetGVKR",
        "scaleTargetKind", "triggersActivity")}}}
    conditions = [{"type": kind, "status": status, "reason": reason, "message": message}
                  for kind, status, reason, message in (
        ("Ready", "True", "ScaledObjectReady", "ScaledObject is defined correctly and is ready for scaling"),
        ("Active", "False", "ScalerNotActive", "Scaling is not performed because triggers are not active"),
        ("Fallback", "False", "NoFallbackFound", "No fallbacks are active on this scaled object"),
        ("Paused", "Unknown", "", ""))]
    metadata = _metadata(name, i, 1, labels={"scaledobject.keda.sh/name": name},
                         annotations={"kubectl.kubernetes.io/last-applied-configuration":
                                      json.dumps(applied, separators=(",", ":")) + "\n"},
                         managedFields=[
                             _managed("kubectl-client-side-apply", "Update", spec_fields),
                             _managed("eventscale-controller", "Update",
                                      {"f:metadata": {"f:labels": {".": {}, "f:scaledobject.keda.sh/name": {}}}}),
                             _managed("eventscale-controller", "Update", status_fields, "status")])
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": metadata, "spec": spec,
            "status": {"scaleTargetKind": "apps/v1.StatefulSet", "originalReplicaCount": 0,
                       "scaleTargetGVKR": {"group": "apps", "version": "v1", "kind": "StatefulSet",
                                           "resource": "statefulsets"},
                       "externalMetricNames": [metric], "hpaName": f"keda-hpa-{name}",
                       "health": {metric: {"numberOfFailures": 0, "status": "Happy"}},
                       "triggersActivity": {metric: {"isActive": False}}, "conditions": conditions}}


def stateful_set(i: int) -> dict[str, Any]:
    """The scale target at 0 replicas, with the defaults the API server fills in."""
    name = name_of(i)
    labels = {"app": name}
    container = {"name": "worker", "image": "registry.invalid/worker:1", "resources": {},
                 "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                 "imagePullPolicy": "IfNotPresent"}
    managed = [_managed("python-httpx", "Update", {"f:spec": {"f:podManagementPolicy": {}, "f:replicas": {},
                                                              "f:selector": {}, "f:serviceName": {},
                                                              "f:template": {"f:metadata": {"f:labels": {}}}}},
                        api_version="apps/v1"),
               _managed("kube-controller-manager", "Update", {"f:status": {"f:availableReplicas": {},
                                                                           "f:collisionCount": {},
                                                                           "f:currentRevision": {},
                                                                           "f:observedGeneration": {},
                                                                           "f:updateRevision": {}}},
                        "status", api_version="apps/v1")]
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": _metadata(name, i, 2, labels=labels, managedFields=managed),
            "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "serviceName": name,
                     "template": {"metadata": {"creationTimestamp": None, "labels": labels},
                                  "spec": {"containers": [container], "restartPolicy": "Always",
                                           "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                                           "securityContext": {}, "schedulerName": "default-scheduler"}},
                     "podManagementPolicy": "OrderedReady",
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                     "revisionHistoryLimit": 10,
                     "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"}},
            "status": {"observedGeneration": 1, "replicas": 0, "currentRevision": f"{name}-7d9f8c6b5",
                       "updateRevision": f"{name}-7d9f8c6b5", "collisionCount": 0, "availableReplicas": 0}}


def hpa(i: int) -> dict[str, Any]:
    """The HPA the controller made for `scaled_object(i)`, as the HPA controller leaves it."""
    name = name_of(i)
    metric = f"s0-redis-{NAMESPACE}-{name}"
    owner = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": name, "uid": _uid(i, 1),
             "controller": True, "blockOwnerDeletion": True}
    labels = {"app.kubernetes.io/name": f"keda-hpa-{name}", "app.kubernetes.io/version": "0.1.0",
              "app.kubernetes.io/part-of": name, "app.kubernetes.io/managed-by": "eventscale",
              "scaledobject.keda.sh/name": name}
    managed = [_managed("eventscale-controller", "Update", {"f:metadata": {"f:labels": {}, "f:ownerReferences": {}},
                                                            "f:spec": {"f:behavior": {}, "f:maxReplicas": {},
                                                                       "f:metrics": {}, "f:minReplicas": {},
                                                                       "f:scaleTargetRef": {}}},
                        api_version="autoscaling/v2"),
               _managed("kube-controller-manager", "Update", {"f:status": {"f:conditions": {},
                                                                           "f:currentMetrics": {},
                                                                           "f:desiredReplicas": {}}},
                        "status", api_version="autoscaling/v2")]
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": _metadata(f"keda-hpa-{name}", i, 3, labels=labels, ownerReferences=[owner],
                                  annotations={"eventscale.io/hpa-spec-hash": "0123456789abcdef"},
                                  managedFields=managed),
            "spec": hpa_spec("StatefulSet", name, metric),
            "status": {"currentReplicas": 0, "desiredReplicas": 0, "currentMetrics": None, "conditions": [
                {"type": t, "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z",
                 "reason": "ScalingDisabled",
                 "message": "scaling is disabled since the replica count of the target is zero"}
                for t in ("AbleToScale", "ScalingActive", "ScalingLimited")]}}


def hpa_spec(target_kind: str, name: str, metric: str) -> dict[str, Any]:
    """The spec of the HPA the controller makes for ScaledObject `name` (one external metric),
    with the behavior the API server defaults."""
    return {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": target_kind, "name": name},
            "minReplicas": 1, "maxReplicas": 10,
            "metrics": [{"type": "External", "external": {
                "metric": {"name": metric, "selector": {"matchLabels": {"scaledobject.keda.sh/name": name}}},
                "target": {"type": "AverageValue", "averageValue": "5"}}}],
            "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                                     "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                                                  {"type": "Percent", "value": 100, "periodSeconds": 15}]},
                         "scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Max",
                                       "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}}}


def page(make: Any, first: int, last: int) -> bytes:
    """Objects `first` to `last` (excluded) as one list page's body, as kube-apiserver serves it."""
    return json.dumps({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1000", "continue": "x"},
                       "items": [make(i) for i in range(first, last)]}, separators=(",", ":")).encode()
