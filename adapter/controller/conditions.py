"""ScaledObject status conditions, with KEDA's types, reasons and messages.

KEDA's conditions carry type, status, reason and message (no transition time), always in the
order Ready, Active, Fallback, Paused, starting Unknown. Users and dashboards match on these
exact strings, so they are constants here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["True", "False", "Unknown"]
TYPES = ("Ready", "Active", "Fallback", "Paused")


@dataclass(frozen=True)
class Condition:
    type: str
    status: Status
    reason: str = ""
    message: str = ""

    def as_dict(self) -> dict[str, str]:
        found = {"type": self.type, "status": self.status}
        if self.reason:
            found["reason"] = self.reason
        if self.message:
            found["message"] = self.message
        return found


READY = Condition("Ready", "True", "ScaledObjectReady", "ScaledObject is defined correctly and is ready for scaling")
TRIGGER_ERROR = Condition("Ready", "False", "TriggerError",
                          "Triggers defined in ScaledObject are not working correctly")
PARTIAL_TRIGGER_ERROR = Condition("Ready", "Unknown", "PartialTriggerError",
                                  "Some triggers defined in ScaledObject are not working correctly")


def check_failed(message: str) -> Condition:
    return Condition("Ready", "False", "ScaledObjectCheckFailed", message)


ACTIVE = Condition("Active", "True", "ScalerActive", "Scaling is performed because triggers are active")
FORCED_ACTIVE = Condition("Active", "True", "ScalerActive",
                          "Scaling is performed because activation is being forced by annotation")
NOT_ACTIVE = Condition("Active", "False", "ScalerNotActive", "Scaling is not performed because triggers are not active")
COOLDOWN = Condition("Active", "False", "ScalerCooldown", "Scaler cooling down because triggers are not active")
ACTIVE_UNKNOWN = Condition("Active", "Unknown", "UnknownState", "ScaledObject check failed")

FALLBACK = Condition("Fallback", "True", "FallbackExists", "At least one trigger is falling back on this scaled object")
NO_FALLBACK = Condition("Fallback", "False", "NoFallbackFound", "No fallbacks are active on this scaled object")

PAUSED = Condition("Paused", "True", "ScaledObjectPaused", "ScaledObject is paused")
UNPAUSED = Condition("Paused", "False", "ScaledObjectUnpaused", "pause annotation removed for ScaledObject")


def observed(status: Mapping[str, Any] | None) -> dict[str, Condition]:
    """The conditions a status holds, by type (unknown types and malformed entries dropped)."""
    found: dict[str, Condition] = {}
    for raw in (status or {}).get("conditions") or []:
        if isinstance(raw, Mapping) and raw.get("type") in TYPES and raw.get("status") in ("True", "False", "Unknown"):
            found[raw["type"]] = Condition(raw["type"], raw["status"], raw.get("reason") or "",
                                           raw.get("message") or "")
    return found


def merged(current: Mapping[str, Condition], updates: Iterable[Condition]) -> list[dict[str, str]]:
    """All four conditions in KEDA's order: updates over current, Unknown where neither says."""
    by_type = dict(current)
    for condition in updates:
        by_type[condition.type] = condition
    return [by_type.get(t, Condition(t, "Unknown")).as_dict() for t in TYPES]
