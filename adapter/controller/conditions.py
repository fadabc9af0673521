"""ScaledObject status conditions, with KEDA's types, reasons and messages.

Users and dashboards match on these exact strings, so they are constants here and nowhere
else (the `Condition` type and KEDA's ordering are in `adapter.keda.scaled_object_status`).
"""

from __future__ import annotations

from adapter.keda.scaled_object_status import Condition

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
