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
    """Ready when the object cannot be served (`message` says why)."""
    return Condition("Ready", "False", f"{kind}CheckFailed", message)


def active_unknown(kind: str) -> Condition:
    """Active while the object's check fails: nothing is known of its triggers."""
    return Condition("Active", "Unknown", "UnknownState", f"{kind} check failed")


def paused(kind: str) -> Condition:
    """Paused by the `autoscaling.keda.sh/paused` annotations."""
    return Condition("Paused", "True", f"{kind}Paused", f"{kind} is paused")


READY, TRIGGER_ERROR, PARTIAL_TRIGGER_ERROR = ready_conditions("ScaledObject")

ACTIVE = Condition("Active", "True", "ScalerActive", "Scaling is performed because triggers are active")
FORCED_ACTIVE = Condition("Active", "True", "ScalerActive",
                          "Scaling is performed because activation is being forced by annotation")
NOT_ACTIVE = Condition("Active", "False", "ScalerNotActive", "Scaling is not performed because triggers are not active")
COOLDOWN = Condition("Active", "False", "ScalerCooldown", "Scaler cooling down because triggers are not active")
ACTIVE_UNKNOWN = active_unknown("ScaledObject")

FALLBACK = Condition("Fallback", "True", "FallbackExists", "At least one trigger is falling back on this scaled object")
NO_FALLBACK = Condition("Fallback", "False", "NoFallbackFound", "No fallbacks are active on this scaled object")

PAUSED = paused("ScaledObject")
UNPAUSED = Condition("Paused", "False", "ScaledObjectUnpaused", "pause annotation removed for ScaledObject")
