"""ScaledObject status conditions (and the Ready ones of a ScaledJob), with KEDA's types, reasons
and messages.

Users and dashboards match on these exact strings, so they are constants here and nowhere
else (the `Condition` type and KEDA's ordering are in `adapter.keda.scaled_object_status`).
"""

from __future__ import annotations

from adapter.keda.scaled_object_status import Condition


def ready_conditions(kind: str) -> tuple[Condition, Condition, Condition]:
    """Ready, TriggerError and PartialTriggerError: KEDA's words name the object's kind
    (ScaledObject or ScaledJob) and are otherwise the same for both."""
    return (Condition("Ready", "True", f"{kind}Ready", f"{kind} is defined correctly and is ready for scaling"),
            Condition("Ready", "False", "TriggerError", f"Triggers defined in {kind} are not working correctly"),
            Condition("Ready", "Unknown", "PartialTriggerError",
                      f"Some triggers defined in {kind} are not working correctly"))


def check_failed(message: str, kind: str = "ScaledObject") -> Condition:
    return Condition("Ready", "False", f"{kind}CheckFailed", message)


READY, TRIGGER_ERROR, PARTIAL_TRIGGER_ERROR = ready_conditions("ScaledObject")

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
