"""The activation decision: from activity, replicas and time to "scale to N" (or nothing).

Pure and table-tested. It follows KEDA's scale executor: 1..N belongs to the HPA, and this
only moves a target across 0 (or `idleReplicaCount`) and up to `minReplicaCount`:

* active (or forced) and at 0, or below min with idle set: scale to max(min, 1);
* inactive with a trigger error: never scale down (Ready False TriggerError, unless a fallback
  is configured, whose answer the HPA is already using);
* inactive above idle (or above 0 with min 0): scale to idle (or 0) once `cooldownPeriod` has
  passed since the last activity, or `initialCooldownPeriod` since creation when never active;
  until then Active is False with reason ScalerCooldown and the time to look again is returned;
* inactive below min without idle: scale up to min.

Pause annotations are read here too: `paused`/`paused-replicas` stop everything (the caller
removes the HPA), `paused-scale-in`/`paused-scale-out` block one direction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from adapter.controller.conditions import (
    ACTIVE,
    COOLDOWN,
    FORCED_ACTIVE,
    NOT_ACTIVE,
    PARTIAL_TRIGGER_ERROR,
    TRIGGER_ERROR,
)
from adapter.keda.names import (
    PAUSED,
    PAUSED_REPLICAS,
    PAUSED_SCALE_IN,
    PAUSED_SCALE_OUT,
)
from adapter.keda.scaled_object_status import Condition

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_bool(value: str) -> bool | None:
    """Go's strconv.ParseBool, which KEDA uses for its annotations (None: not a boolean)."""
    return True if value in _TRUE else False if value in _FALSE else None


def flag(annotations: Mapping[str, str], key: str) -> bool:
    return parse_bool(annotations.get(key, "")) is True


@dataclass(frozen=True)
class Pause:
    """What the pause annotations ask for."""

    stopped: bool = False  # paused or paused-replicas: no HPA, no activation
    replicas: int | None = None  # paused-replicas: hold the target at this count
    scale_in: bool = False  # paused-scale-in: no scale-down (HPA scaleDown Disabled)
    scale_out: bool = False  # paused-scale-out: no scale-up (HPA scaleUp Disabled)

    @property
    def any(self) -> bool:
        return self.stopped or self.scale_in or self.scale_out


def pause_of(annotations: Mapping[str, str]) -> Pause:
    """KEDA's reading: paused-replicas wins; a `paused` value that is not a boolean pauses."""
    replicas_text = annotations.get(PAUSED_REPLICAS)
    if replicas_text is not None:
        return Pause(stopped=True, replicas=int(replicas_text))  # validated by `annotation_errors`
    paused = annotations.get(PAUSED)
    stopped = paused is not None and parse_bool(paused) is not False
    return Pause(stopped=stopped, scale_in=flag(annotations, PAUSED_SCALE_IN),
                 scale_out=flag(annotations, PAUSED_SCALE_OUT))


def annotation_errors(annotations: Mapping[str, str]) -> str | None:
    text = annotations.get(PAUSED_REPLICAS)
    if text is not None and not (text.strip().isdigit() and int(text) >= 0):
        return f'annotation {PAUSED_REPLICAS} must be a non-negative integer, got "{text}"'
    return None


@dataclass(frozen=True)
class Inputs:
    min_replicas: int
    idle_replicas: int | None
    cooldown: float
    initial_cooldown: float
    created_at: float  # epoch seconds
    last_active: float | None  # epoch seconds; None: never active
    current: int  # the target's spec.replicas
    active: bool  # any trigger's value > its activation threshold
    error: bool  # any trigger failed on its last read
    fallback: bool  # a fallback with replicas != 0 is configured
    forced: bool = False
    pause_scale_in: bool = False
    pause_scale_out: bool = False


Action = Literal["activate", "deactivate", "minimum"]


@dataclass(frozen=True)
class Decision:
    active: Condition
    scale_to: int | None = None
    action: Action | None = None
    ready: Condition | None = None  # TriggerError / PartialTriggerError; None: Ready as checked
    last_active: float | None = None
    recheck_at: float | None = None  # when the cooldown ends


def decide(inputs: Inputs, now: float) -> Decision:
    if inputs.active or inputs.forced:
        return _when_active(inputs, now)
    return _when_inactive(inputs, now)


def _when_active(i: Inputs, now: float) -> Decision:
    condition = FORCED_ACTIVE if i.forced else ACTIVE
    ready = PARTIAL_TRIGGER_ERROR if i.error else None
    below = i.current == 0 or (i.idle_replicas is not None and i.current < i.min_replicas)
    if below and not i.pause_scale_out:
        return Decision(condition, max(i.min_replicas, 1), "activate", ready, now)
    return Decision(condition, ready=ready, last_active=now)


def _when_inactive(i: Inputs, now: float) -> Decision:
    if i.error:
        return Decision(NOT_ACTIVE, ready=None if i.fallback else TRIGGER_ERROR, last_active=i.last_active)
    idle = i.idle_replicas
    if (idle is not None and i.current > idle) or (i.current > 0 and i.min_replicas == 0):
        return _cool_down(i, now, idle if idle is not None else 0)
    if idle is None and i.current < i.min_replicas:
        return Decision(NOT_ACTIVE, i.min_replicas, "minimum", last_active=i.last_active)
    return Decision(NOT_ACTIVE, last_active=i.last_active)


def _cool_down(i: Inputs, now: float, to: int) -> Decision:
    if i.pause_scale_in:
        return Decision(NOT_ACTIVE, last_active=i.last_active)
    ends = i.created_at + i.initial_cooldown if i.last_active is None else i.last_active + i.cooldown
    if now >= ends:
        return Decision(NOT_ACTIVE, to, "deactivate", last_active=i.last_active)
    return Decision(COOLDOWN, last_active=i.last_active, recheck_at=ends)
