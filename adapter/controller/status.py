"""The ScaledObject status the controller writes, and the smallest merge patch that gets it there.

Fields are KEDA's: `scaleTargetKind`, `scaleTargetGVKR`, `originalReplicaCount`,
`lastActiveTime`, `externalMetricNames`, `hpaName`, `health` (per metric: numberOfFailures and
Happy/Failing), `triggersActivity` (per metric: isActive), `pausedReplicaCount`, `conditions`.
A write happens only when something differs, so an idle object costs no writes; an active one
costs one per pollingInterval (its lastActiveTime), as with KEDA.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from adapter.keda.activity import TriggerActivity
from adapter.keda.scaled_object_status import ScaledObjectStatus


def health(triggers: Sequence[TriggerActivity]) -> dict[str, dict[str, Any]]:
    return {t.metric_name: {"numberOfFailures": t.failures, "status": "Failing" if t.error else "Happy"}
            for t in triggers if t.resolved and t.read}


def triggers_activity(triggers: Sequence[TriggerActivity]) -> dict[str, dict[str, bool]]:
    return {t.metric_name: {"isActive": t.active} for t in triggers if t.polled}


def newly_failing(triggers: Sequence[TriggerActivity], status: ScaledObjectStatus) -> list[TriggerActivity]:
    """Triggers failing now that the written status still shows as happy (or not at all)."""
    written = status.health or {}
    return [t for t in triggers if t.resolved and t.error and
            (t.metric_name not in written or written[t.metric_name].status != "Failing")]


def merge_patch(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386 patch turning `current` into `current` updated with `wanted`.

    A None in `wanted` removes the field; nested objects are patched key by key (keys gone
    from a wanted object are set to null); lists and scalars are replaced when they differ.
    """
    patch: dict[str, Any] = {}
    for key, value in wanted.items():
        old = current.get(key)
        if old == value and value is not None:
            continue  # most fields of a status rewritten as it was: settled at C speed
        if value is None:
            if key in current:
                patch[key] = None
        elif isinstance(value, Mapping) and isinstance(old, Mapping):
            inner = merge_patch(old, value)
            inner.update({k: None for k in old if k not in value})
            if inner:
                patch[key] = inner
        elif old != value:
            patch[key] = value
    return patch


def replacing_patch(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386 patch turning `current` into exactly `wanted` (top-level keys gone are removed too)."""
    patch = merge_patch(current, wanted)
    patch.update({k: None for k in current if k not in wanted})
    return patch
