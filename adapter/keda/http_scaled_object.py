"""KEDA http-add-on's HTTPScaledObject (`http.keda.sh/v1alpha1`), served as a ScaledObject.

The http-add-on's operator answers an HTTPScaledObject by creating a ScaledObject for it; we do
the same, with our `http` trigger in it, so an HTTPScaledObject takes the one path every
ScaledObject takes (catalog, metric store, HPA, controller, interceptor routes). In a cluster the
controller keeps that ScaledObject (same namespace and name, owned by the HTTPScaledObject, so
deleting one deletes the other); in standalone mode the directory source serves it directly.

    spec.hosts, spec.pathPrefixes                  -> trigger hosts, pathPrefixes
    spec.scaleTargetRef.{name,kind,apiVersion}     -> scaleTargetRef (name from `deployment` in old objects)
    spec.scaleTargetRef.{service, port|portName}   -> trigger service, port
    spec.replicas.{min,max}                        -> minReplicaCount (0), maxReplicaCount (100)
    spec.scalingMetric.concurrency.targetValue     -> targetPendingRequests (100)
    spec.scalingMetric.requestRate.{targetValue, window, granularity}
                                                   -> targetRequestRate, window, granularity
    spec.targetPendingRequests (deprecated)        -> targetPendingRequests
    spec.scaledownPeriod, initialCooldownPeriod    -> cooldownPeriod (300), initialCooldownPeriod
    spec.timeouts.conditionWait                    -> holdTimeout

Header matching (`spec.headers`) and `coldStartTimeoutFailoverRef` are not served; an object
using them is refused with that reason rather than routed differently than it asks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapter.keda.names import KEDA_GROUP, KEDA_VERSION
from adapter.keda.objects import InvalidObject, mapping
from adapter.kube.resources import Resource

HTTP_GROUP = "http.keda.sh"
HTTP_VERSION = "v1alpha1"
HTTP_SCALED_OBJECT_KIND = "HTTPScaledObject"
HTTP_SCALED_OBJECTS = Resource(HTTP_GROUP, HTTP_VERSION, "httpscaledobjects", HTTP_SCALED_OBJECT_KIND)
OWNER_LABEL = "http.keda.sh/httpscaledobject"  # on the ScaledObject made for an HTTPScaledObject


def _strings(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidObject(f"{where} must be a list of strings")
    return list(value)


def _number(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidObject(f"{where} must be a number")
    return str(value)


def _metric(spec: Mapping[str, Any]) -> dict[str, str]:
    scaling = mapping(spec.get("scalingMetric"), "spec.scalingMetric")
    rate = mapping(scaling.get("requestRate"), "spec.scalingMetric.requestRate")
    if scaling.get("requestRate") is not None:
        found = {"targetRequestRate": _number(rate.get("targetValue"), "requestRate.targetValue") or "100",
                 "window": str(rate.get("window") or "1m"), "granularity": str(rate.get("granularity") or "1s")}
        return found
    concurrency = mapping(scaling.get("concurrency"), "spec.scalingMetric.concurrency")
    target = _number(concurrency.get("targetValue"), "concurrency.targetValue") \
        or _number(spec.get("targetPendingRequests"), "spec.targetPendingRequests") or "100"
    return {"targetPendingRequests": target}


def _trigger_metadata(spec: Mapping[str, Any], ref: Mapping[str, Any]) -> dict[str, str]:
    service = ref.get("service")
    if not isinstance(service, str) or not service:
        raise InvalidObject("spec.scaleTargetRef.service is required")
    port, port_name = ref.get("port"), ref.get("portName")
    if (port is None) == (port_name is None):
        raise InvalidObject("spec.scaleTargetRef must define either port or portName")
    metadata = {"hosts": ",".join(_strings(spec.get("hosts"), "spec.hosts")),
                "pathPrefixes": ",".join(_strings(spec.get("pathPrefixes"), "spec.pathPrefixes")) or "/",
                "service": service, "port": str(port if port is not None else port_name), **_metric(spec)}
    wait = mapping(spec.get("timeouts"), "spec.timeouts").get("conditionWait")
    if wait:
        metadata["holdTimeout"] = str(wait)
    return metadata


def scaled_object_for(hso: Mapping[str, Any]) -> dict[str, Any]:
    """The ScaledObject standing for `hso`; `InvalidObject` naming the field that is wrong."""
    meta = mapping(hso.get("metadata"), "metadata")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidObject("metadata.name is required")
    spec = mapping(hso.get("spec"), "spec")
    for unsupported in ("headers", "coldStartTimeoutFailoverRef"):
        if spec.get(unsupported):
            raise InvalidObject(f"spec.{unsupported} is not supported by eventscale's interceptor")
    ref = mapping(spec.get("scaleTargetRef"), "spec.scaleTargetRef")
    target_name = ref.get("name") or ref.get("deployment")
    if not isinstance(target_name, str) or not target_name:
        raise InvalidObject("spec.scaleTargetRef.name is required")
    replicas = mapping(spec.get("replicas"), "spec.replicas")
    body: dict[str, Any] = {
        "scaleTargetRef": {"name": target_name, "kind": str(ref.get("kind") or "Deployment"),
                           "apiVersion": str(ref.get("apiVersion") or "apps/v1")},
        "minReplicaCount": replicas.get("min", 0), "maxReplicaCount": replicas.get("max", 100),
        "cooldownPeriod": spec.get("scaledownPeriod", 300),
        "triggers": [{"type": "http", "metadata": _trigger_metadata(spec, ref)}],
    }
    if spec.get("initialCooldownPeriod") is not None:
        body["initialCooldownPeriod"] = spec["initialCooldownPeriod"]
    namespace = str(meta.get("namespace") or "default")
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": {OWNER_LABEL: name}}
    if meta.get("uid"):
        metadata["ownerReferences"] = [{"apiVersion": f"{HTTP_GROUP}/{HTTP_VERSION}", "kind": HTTP_SCALED_OBJECT_KIND,
                                        "name": name, "uid": meta["uid"], "controller": True,
                                        "blockOwnerDeletion": True}]
    if meta.get("creationTimestamp"):
        metadata["creationTimestamp"] = meta["creationTimestamp"]
    return {"apiVersion": f"{KEDA_GROUP}/{KEDA_VERSION}", "kind": "ScaledObject", "metadata": metadata, "spec": body}
