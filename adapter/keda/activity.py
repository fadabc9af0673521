"""The activity document: what the adapter tells the controller sidecar, defined once.

The adapter owns broker connections and the metric cache; the controller reads what the store
already knows over loopback (`adapter.api.activity_feed` serves it, `adapter.controller.
activity_client` reads it). Both sides use these types and the `encode_*`/`decode_*` pairs, so
the document cannot drift between the two processes.

A document is either full (every ScaledObject: the first answer, or after the adapter
restarted) or a delta (the objects that changed since the version the reader named, and the
keys of those deleted), so a long poll costs what changed, not what exists. Objects are
encoded one by one (`encode_object`) and a document is those bytes joined, so the adapter
encodes an object once per change however many documents carry it.

`decode_*` validate what they read and raise `ValueError` with the offending field; the
encoded names are camelCase, as in Kubernetes objects, since people read them with curl.

ScaledJobs are in the same document, each with `"kind": "ScaledJob"` (a ScaledObject has no
`kind`): they read triggers like ScaledObjects and the controller needs the same per-trigger
view to count the Jobs to create. `object_key` keys both kinds in one key space.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from adapter.kube.json_walk import decode_members

Key = tuple[str, str]  # namespace, name (a ScaledJob's name prefixed "ScaledJob/": see object_key)
SCALED_OBJECT_KIND = "ScaledObject"


def object_key(kind: str, namespace: str, name: str) -> Key:
    """The key of an object that reads triggers, in both processes: (namespace, name) for a
    ScaledObject (of either API group, and a 2019 `scaleType: job` one), (namespace,
    "<kind>/<name>") for a ScaledJob, so that a ScaledObject and a ScaledJob of one name never
    share a key (no Kubernetes name contains a slash)."""
    return (namespace, name) if kind == SCALED_OBJECT_KIND else (namespace, f"{kind}/{name}")


def split_key(key: Key) -> tuple[str, str, str]:
    """(kind, namespace, name) of an `object_key`."""
    namespace, name = key
    kind, slash, plain = name.partition("/")
    return (kind, namespace, plain) if slash else (SCALED_OBJECT_KIND, namespace, name)


@dataclass(frozen=True, slots=True)
class ResourceMetric:
    """A cpu or memory trigger: the HPA's own Resource (or ContainerResource) metric, never read."""

    resource: str  # cpu | memory
    target_type: str  # Utilization | AverageValue
    value: str  # a whole percent, or a canonical quantity
    container: str = ""


@dataclass(frozen=True, slots=True)
class TriggerActivity:
    index: int
    type: str
    metric_name: str
    metric_type: str
    target: float | None
    activation: float | None
    resolved: bool  # False: the adapter could not build it (unknown type, bad parameter, missing secret)
    value: float | None
    active: bool
    error: str | None
    failures: int
    fallback: bool
    name: str = ""
    read_at: str | None = field(default=None, compare=False)
    resource: ResourceMetric | None = None

    @property
    def read(self) -> bool:
        return self.read_at is not None

    @property
    def polled(self) -> bool:
        """Read by the adapter; cpu and memory are not (the HPA measures them)."""
        return self.resolved and self.resource is None


@dataclass(frozen=True, slots=True)
class CompositeActivity:
    """The composite metric of `advanced.scalingModifiers`: what the HPA is given instead of the
    triggers' metrics, and what decides activity (value > activation target, as KEDA does)."""

    metric_name: str
    metric_type: str
    target: float
    activation: float
    value: float | None  # None: not every trigger read yet, or an error
    active: bool
    error: str | None
    fallback: bool  # the value is the fallback's


@dataclass(frozen=True, slots=True)
class ObjectActivity:
    namespace: str
    name: str
    uid: str
    generation: int
    error: str | None
    triggers: tuple[TriggerActivity, ...]
    api_version: str = ""
    kind: str = SCALED_OBJECT_KIND  # or ScaledJob
    composite: CompositeActivity | None = None

    @property
    def key(self) -> Key:
        return object_key(self.kind, self.namespace, self.name)

    @property
    def active(self) -> bool:
        """The composite is above its activation target (with scalingModifiers); or a trigger is
        active; or every trigger is cpu or memory, which KEDA holds always active."""
        if self.composite is not None:
            return self.composite.active
        if any(t.active for t in self.triggers):
            return True
        return bool(self.triggers) and all(t.resource is not None for t in self.triggers)

    @property
    def failing(self) -> bool:
        """A trigger failed (or the formula did): never a reason to scale down."""
        composite_failed = self.composite is not None and self.composite.error is not None
        return composite_failed or any(t.error is not None for t in self.triggers if t.resolved and t.read)

    @property
    def known(self) -> bool:
        """Every polled trigger has been read (or one is active): enough to decide on."""
        return self.active or (bool(self.triggers) and all(t.read for t in self.triggers if t.polled))

    @property
    def resolve_errors(self) -> list[str]:
        return [f"trigger {t.index} ({t.type}): {t.error}" for t in self.triggers if not t.resolved]


@dataclass(frozen=True)
class ActivityDocument:
    """One answer of `GET /activity`: everything (`full`), or what changed since `since`."""

    generation: str  # "<adapter process>-<version>": what the next request names as `since`
    full: bool
    objects: tuple[ObjectActivity, ...]
    deleted: tuple[Key, ...] = ()


@dataclass(frozen=True, slots=True)
class TargetState:
    """What the controller knows of one ScaledObject's target, told to the adapter beside it.

    `replicas` is the HPA's current count (the currentReplicas* fallback behaviours need it);
    `ready` the target's pods Running and Ready, counted only while the object is in fallback
    with a Value metric (its fallback answer divides by it, see adapter/keda/fallback.py);
    `at_zero` says the target is at 0 (or at its idleReplicaCount), so the adapter probes its
    triggers for activity on a short interval and listens to their sources' pushes.
    `native` says the HPA itself takes the target to 0 (native scale-to-zero): the adapter then
    serves an inactive object's metrics as 0 from `zero_from` (epoch seconds; None: never, as
    while forced active), and as at least 1m before it, so the HPA keeps 1 replica during the
    cooldown.
    """

    namespace: str
    name: str
    replicas: int | None = None
    at_zero: bool = False
    native: bool = False
    zero_from: float | None = None
    ready: int | None = None

    @property
    def key(self) -> Key:
        return self.namespace, self.name

    @property
    def reported(self) -> bool:
        """It says something: a state that says nothing is left out of a report."""
        return self.at_zero or self.native or self.replicas is not None or self.ready is not None


@dataclass(frozen=True)
class TargetsReport:
    """One POST /replicas: some objects' states, or (`complete`) every object the controller
    reports, objects left out having nothing to report (scaled up, no fallback).

    A report that is not complete changes the objects it lists: one that says nothing drops
    what the adapter held of it. `base` names the adapter process its sender last told
    everything (`ADAPTER_HEADER` of that answer): an adapter that is another process refuses
    the report with 409, and the controller sends a complete one. So the controller sends what
    changed, not every object at every change.
    """

    items: tuple[TargetState, ...]
    complete: bool = False
    base: str | None = None


ADAPTER_HEADER = "X-Eventscale-Adapter"  # POST /replicas answers: the adapter process that took it


# -- encoding ------------------------------------------------------------------------------------


def _trigger_fields(t: TriggerActivity) -> dict[str, Any]:
    fields = {"index": t.index, "type": t.type, "name": t.name, "metricName": t.metric_name,
              "metricType": t.metric_type, "target": t.target, "activation": t.activation,
              "resolved": t.resolved, "value": t.value, "active": t.active, "error": t.error,
              "consecutiveFailures": t.failures, "readAt": t.read_at, "fallback": t.fallback}
    if t.resource is not None:
        r = t.resource
        fields["resource"] = {"name": r.resource, "targetType": r.target_type, "value": r.value,
                              "container": r.container}
    return fields


def _composite_fields(c: CompositeActivity | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"metricName": c.metric_name, "metricType": c.metric_type, "target": c.target,
            "activation": c.activation, "value": c.value, "active": c.active, "error": c.error,
            "fallback": c.fallback}


def object_fields(o: ObjectActivity) -> dict[str, Any]:
    kind = {} if o.kind == SCALED_OBJECT_KIND else {"kind": o.kind}
    fields: dict[str, Any] = {"namespace": o.namespace, "name": o.name, **kind, "apiVersion": o.api_version,
                              "uid": o.uid, "generation": o.generation, "error": o.error,
                              "triggers": [_trigger_fields(t) for t in o.triggers]}
    if o.composite is not None:
        fields["composite"] = _composite_fields(o.composite)
    return fields


def _deleted_fields(key: Key) -> dict[str, str]:
    kind, namespace, name = split_key(key)
    return {"namespace": namespace, "name": name, **({} if kind == SCALED_OBJECT_KIND else {"kind": kind})}


def encode_object(o: ObjectActivity) -> bytes:
    return json.dumps(object_fields(o), separators=(",", ":")).encode()


def encode_document(generation: str, full: bool, encoded_objects: Iterable[bytes],
                    deleted: Iterable[Key] = ()) -> bytes:
    """A document from objects already encoded with `encode_object`."""
    head = json.dumps({"generation": generation, "full": full, "deleted": [_deleted_fields(k) for k in deleted]},
                      separators=(",", ":")).encode()
    return head[:-1] + b',"scaledObjects":[' + b",".join(encoded_objects) + b"]}"


def encode_targets(report: TargetsReport) -> dict[str, Any]:
    base = {} if report.base is None else {"base": report.base}
    return {"complete": report.complete, **base,
            "items": [{"namespace": t.namespace, "name": t.name, "replicas": t.replicas, "atZero": t.at_zero,
                       "native": t.native, "zeroFrom": t.zero_from, "readyReplicas": t.ready} for t in report.items]}


# -- decoding ------------------------------------------------------------------------------------


def _str(raw: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return sys.intern(value)  # names, types and metric names: one copy in the reader's view


def _optional_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key} must be a string or null")
    return value


def _int(raw: Mapping[str, Any], key: str, default: int | None = None, minimum: int | None = None) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer")
    if minimum is not None and value < minimum:
        raise ValueError(f"{key} must be at least {minimum}")
    return value


def _number(raw: Mapping[str, Any], key: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number or null")
    return float(value)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list")
    return value


def decode_trigger(raw: Mapping[str, Any]) -> TriggerActivity:
    return TriggerActivity(
        index=_int(raw, "index", minimum=0), type=_str(raw, "type"), name=_str(raw, "name", ""),
        metric_name=_str(raw, "metricName"), metric_type=_str(raw, "metricType", "AverageValue"),
        target=_number(raw, "target"), activation=_number(raw, "activation"),
        resolved=bool(raw.get("resolved", True)), value=_number(raw, "value"), active=bool(raw.get("active")),
        error=_optional_str(raw, "error"), failures=_int(raw, "consecutiveFailures", 0, minimum=0),
        fallback=bool(raw.get("fallback")), read_at=_optional_str(raw, "readAt"),
        resource=decode_resource(raw.get("resource")),
    )


def decode_resource(raw: Any) -> ResourceMetric | None:
    if raw is None:
        return None
    raw = _mapping(raw, "resource")
    return ResourceMetric(resource=_str(raw, "name"), target_type=_str(raw, "targetType"), value=_str(raw, "value"),
                          container=_str(raw, "container", ""))


def decode_composite(raw: Any) -> CompositeActivity | None:
    if raw is None:
        return None
    raw = _mapping(raw, "composite")
    target, activation = _number(raw, "target"), _number(raw, "activation")
    if target is None or activation is None:
        raise ValueError("composite target and activation must be numbers")
    return CompositeActivity(
        metric_name=_str(raw, "metricName"), metric_type=_str(raw, "metricType", "AverageValue"), target=target,
        activation=activation, value=_number(raw, "value"), active=bool(raw.get("active")),
        error=_optional_str(raw, "error"), fallback=bool(raw.get("fallback")),
    )


def decode_object(raw: Any) -> ObjectActivity:
    raw = _mapping(raw, "scaledObject")
    return ObjectActivity(
        namespace=_str(raw, "namespace"), name=_str(raw, "name"), uid=_str(raw, "uid", ""),
        generation=_int(raw, "generation", 0), error=_optional_str(raw, "error"),
        api_version=_str(raw, "apiVersion", ""), kind=_str(raw, "kind", SCALED_OBJECT_KIND),
        triggers=tuple(decode_trigger(_mapping(t, "trigger")) for t in _list(raw.get("triggers"), "triggers")),
        composite=decode_composite(raw.get("composite")),
    )


def decode_document(body: bytes | str) -> ActivityDocument:
    """A document from its JSON text, each entry of `scaledObjects` decoded as it is reached
    (adapter.kube.json_walk: the decoded form of a full document at 100,000 objects would be
    about 400 MB at once)."""
    objects: list[ObjectActivity] = []
    members = decode_members(body, {"scaledObjects": lambda raw: objects.append(decode_object(raw))})
    objects += [decode_object(o) for o in _list(members.get("scaledObjects"), "scaledObjects")]  # null, or not a list
    deleted = tuple(object_key(_str(d, "kind", SCALED_OBJECT_KIND), _str(d, "namespace"), _str(d, "name"))
                    for d in (_mapping(item, "deleted") for item in _list(members.get("deleted"), "deleted")))
    return ActivityDocument(_str(members, "generation"), bool(members.get("full", True)), tuple(objects), deleted)


MAX_REPLICAS = 2**31 - 1  # replica counts are int32 in Kubernetes


def _replicas(raw: Mapping[str, Any], key: str = "replicas") -> int | None:
    if raw.get(key) is None:
        return None
    replicas = _int(raw, key, minimum=0)
    if replicas > MAX_REPLICAS:
        raise ValueError(f"{key} must be at most {MAX_REPLICAS}")
    return replicas


def _epoch(raw: Any) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise ValueError(f"zeroFrom must be epoch seconds, got {raw!r}")
    return float(raw)


def decode_targets(raw: Any) -> TargetsReport:
    """The body of POST /replicas; counts, when given, must be whole numbers from 0 to `MAX_REPLICAS`."""
    body = _mapping(raw, "body")
    items = []
    for item in _list(body.get("items"), "items"):
        item = _mapping(item, "item")
        items.append(TargetState(_str(item, "namespace"), _str(item, "name"), _replicas(item),
                                 at_zero=bool(item.get("atZero")), native=bool(item.get("native")),
                                 zero_from=_epoch(item.get("zeroFrom")), ready=_replicas(item, "readyReplicas")))
    return TargetsReport(tuple(items), complete=bool(body.get("complete")), base=_optional_str(body, "base"))
