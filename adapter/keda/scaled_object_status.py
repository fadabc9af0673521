"""A ScaledObject's status, typed: what the controller reads back of what it wrote.

KEDA's fields (`scaleTargetKind`, `scaleTargetGVKR`, `originalReplicaCount`, `lastActiveTime`,
`externalMetricNames`, `hpaName`, `compositeScalerName`, `health`, `triggersActivity`, `pausedReplicaCount`,
`conditions`) parsed once when the object arrives; a malformed field reads as absent, so the
controller writes it again rather than failing. `as_json` gives the fields back in KEDA's JSON,
which is what a merge patch is computed against.

Conditions carry type, status, reason and message (no transition time), always in the order
Ready, Active, Fallback, Paused, starting Unknown, as KEDA writes them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

ConditionStatus = Literal["True", "False", "Unknown"]
CONDITION_TYPES = ("Ready", "Active", "Fallback", "Paused")


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: ConditionStatus
    reason: str = ""
    message: str = ""

    def as_dict(self) -> dict[str, str]:
        found = {"type": self.type, "status": self.status}
        if self.reason:
            found["reason"] = self.reason
        if self.message:
            found["message"] = self.message
        return found


def merged(current: Mapping[str, Condition], updates: Iterable[Condition]) -> list[dict[str, str]]:
    """All four conditions in KEDA's order: updates over current, Unknown where neither says."""
    by_type = dict(current)
    for condition in updates:
        by_type[condition.type] = condition
    return [by_type.get(t, Condition(t, "Unknown")).as_dict() for t in CONDITION_TYPES]


@dataclass(frozen=True, slots=True)
class TriggerHealth:
    failures: int
    status: str  # Happy | Failing


@dataclass(frozen=True, slots=True)
class ScaledObjectStatus:
    scale_target_kind: str | None = None
    scale_target_gvkr: Mapping[str, str] | None = None
    original_replica_count: int | None = None
    last_active_time: str | None = None
    external_metric_names: tuple[str, ...] | None = None
    hpa_name: str | None = None
    composite_scaler_name: str | None = None
    health: Mapping[str, TriggerHealth] | None = None
    triggers_activity: Mapping[str, bool] | None = None
    paused_replica_count: int | None = None
    conditions: Mapping[str, Condition] = field(default_factory=dict)

    def condition(self, kind: str) -> Condition | None:
        return self.conditions.get(kind)

    def is_true(self, kind: str) -> bool:
        found = self.conditions.get(kind)
        return found is not None and found.status == "True"

    def as_json(self) -> dict[str, Any]:
        """KEDA's JSON of the fields that are set."""
        found: dict[str, Any] = {
            "scaleTargetKind": self.scale_target_kind,
            "scaleTargetGVKR": dict(self.scale_target_gvkr) if self.scale_target_gvkr is not None else None,
            "originalReplicaCount": self.original_replica_count,
            "lastActiveTime": self.last_active_time,
            "externalMetricNames": list(self.external_metric_names) if self.external_metric_names is not None
            else None,
            "hpaName": self.hpa_name,
            "compositeScalerName": self.composite_scaler_name,
            "health": {k: {"numberOfFailures": h.failures, "status": h.status} for k, h in self.health.items()}
            if self.health is not None else None,
            "triggersActivity": {k: {"isActive": v} for k, v in self.triggers_activity.items()}
            if self.triggers_activity is not None else None,
            "pausedReplicaCount": self.paused_replica_count,
        }
        found = {k: v for k, v in found.items() if v is not None}
        if self.conditions:
            found["conditions"] = [c.as_dict() for t in CONDITION_TYPES if (c := self.conditions.get(t))]
        return found


def _str(value: Any) -> str | None:
    return sys.intern(value) if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _mapping(value: Any) -> Mapping[str, Any] | None:
    return value if type(value) is dict or isinstance(value, Mapping) else None  # dict: the common case, fast


_SHARED: dict[Any, Any] = {}  # most objects hold the same few conditions, GVKR, health: one copy of each
_SHARED_MAX = 4096


def _shared(key: Any, make: Any) -> Any:
    """The one `make(key)` kept for equal keys (at most _SHARED_MAX kinds of them), read-only by
    convention: a ScaledObjectStatus is never changed, only replaced."""
    found = _SHARED.get((make, key))
    if found is None:
        found = make(key)
        if len(_SHARED) < _SHARED_MAX:
            _SHARED[(make, key)] = found
    return found


def _condition(key: tuple[str, ConditionStatus, str, str]) -> Condition:
    return Condition(*key)


def _health_of(key: tuple[int, str]) -> TriggerHealth:
    return TriggerHealth(*key)


def _read_only(items: tuple[tuple[str, Any], ...]) -> Mapping[str, Any]:
    return MappingProxyType(dict(items))


def _conditions(raw: Any) -> Mapping[str, Condition]:
    found: dict[str, Condition] = {}
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, Mapping) and item.get("type") in CONDITION_TYPES and \
                item.get("status") in ("True", "False", "Unknown"):
            key = (item["type"], item["status"], str(item.get("reason") or ""), str(item.get("message") or ""))
            found[item["type"]] = _shared(key, _condition)
    shared: Mapping[str, Condition] = _shared(tuple(found.items()), _read_only)
    return shared


def _health(raw: Any) -> dict[str, TriggerHealth] | None:
    found = _mapping(raw)
    if found is None:
        return None
    return {sys.intern(str(k)): _shared((_int(v.get("numberOfFailures")) or 0, str(v.get("status") or "")), _health_of)
            for k, v in found.items() if isinstance(v, Mapping)}


def parse_status(raw: Any) -> ScaledObjectStatus:
    status = _mapping(raw) or {}
    gvkr = _mapping(status.get("scaleTargetGVKR"))
    names = status.get("externalMetricNames")
    activity = _mapping(status.get("triggersActivity"))
    return ScaledObjectStatus(
        scale_target_kind=_str(status.get("scaleTargetKind")),
        scale_target_gvkr=_shared(tuple((str(k), str(v)) for k, v in gvkr.items()), _read_only)
        if gvkr is not None else None,
        original_replica_count=_int(status.get("originalReplicaCount")),
        last_active_time=_str(status.get("lastActiveTime")),
        external_metric_names=tuple(sys.intern(str(n)) for n in names) if isinstance(names, list) else None,
        hpa_name=_str(status.get("hpaName")),
        composite_scaler_name=_str(status.get("compositeScalerName")),
        health=_health(status.get("health")),
        triggers_activity={sys.intern(str(k)): bool(v.get("isActive")) for k, v in activity.items()
                           if isinstance(v, Mapping)} if activity is not None else None,
        paused_replica_count=_int(status.get("pausedReplicaCount")),
        conditions=_conditions(status.get("conditions")),
    )
