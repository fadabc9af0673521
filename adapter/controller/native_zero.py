"""Native scale-to-zero: the HPA itself takes a workload 0 <-> N (Kubernetes 1.37, HPAScaleToZero).

With the gate on, an HPA with an External metric may have `minReplicas: 0`. Whether the cluster
allows it is found out, not assumed: a server-side dry-run create of such an HPA (`probe`), once
at start. When it does (and `--native-scale-to-zero` is not `false`), a ScaledObject with
`minReplicaCount: 0` gets `minReplicas: 0` on its HPA and the HPA does 0 <-> 1. KEDA's semantics
are kept by what the adapter serves (see `adapter.store.store`, "native zero"):

* activation thresholds: while the object is inactive the served value is 0, so the HPA
  computes 0 (and from 0 stays there);
* cooldownPeriod: until `zero_from` the served value of an inactive object is at least 1m, so
  the HPA computes at least 1; from `zero_from` it is 0. `zero_from` is the end of the cooldown
  minus the HPA's scale-down stabilization window, since the HPA only acts on a 0 once every
  recommendation in the window says 0: the workload reaches 0 when the cooldown ends;
* fallback and errors: passed through (an error never lets the HPA scale down; a fallback value
  keeps it up);
* pause annotations: `paused`/`paused-replicas` remove the HPA as before; `paused-scale-in`
  disables the HPA's scale-down (and zero is never served); `paused-scale-out` its scale-up.

What native mode cannot express keeps the controller path for that object (`not_native`):
`idleReplicaCount` (the HPA knows no resting count but 0), `scalingModifiers` (the composite is
computed per GET, not gated), cpu/memory triggers (no pod metrics at 0), a scale-down window
longer than the cooldown (the HPA would reach 0 later than the cooldown says), and a scale-down
`selectPolicy: Disabled` the user set (the HPA would never reach 0).

Found on v1.37.2: the HPA scales up from 0 only when its own ScaledToZero condition says it put
the target there; a workload created at 0, or scaled to 0 by someone else, is left alone
(`ScalingActive=False ScalingDisabled`). For those the controller makes the one step to 1
(`native_step`); from then on the HPA owns the target.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

import httpx

from adapter.controller.decide import Decision, flag, pause_of
from adapter.keda.names import FORCE_ACTIVATION
from adapter.keda.objects import ScaledObject
from adapter.kube.client import ApiStatusError, KubeApi
from adapter.kube.wire import parse_timestamp

log = logging.getLogger("eventscale.native_zero")

Mode = Literal["auto", "true", "false"]
DEFAULT_SCALE_DOWN_WINDOW = 300.0  # the HPA's default scaleDown.stabilizationWindowSeconds
PROBE_NAME = "eventscale-scale-to-zero-probe"
RESOURCE_TYPES = ("cpu", "memory")
NEVER_AT_ZERO = "minReplicaCount is not 0"  # nothing to say: such an object never rests at 0


def probe_hpa(namespace: str) -> dict[str, Any]:
    """The smallest HPA only a cluster with HPAScaleToZero accepts: minReplicas 0, one External metric."""
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": PROBE_NAME, "namespace": namespace},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": PROBE_NAME},
                     "minReplicas": 0, "maxReplicas": 1,
                     "metrics": [{"type": "External", "external": {
                         "metric": {"name": PROBE_NAME},
                         "target": {"type": "AverageValue", "averageValue": "1"}}}]}}


async def probe(api: KubeApi, namespace: str) -> tuple[bool, str]:
    """Does the cluster accept minReplicas 0? A dry-run create (nothing is stored); the reason said."""
    path = f"/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers"
    try:
        await api.request("POST", path, params={"dryRun": "All"}, body=probe_hpa(namespace))
    except ApiStatusError as exc:
        return False, f"a dry-run HPA with minReplicas 0 was refused ({exc.code}): {exc}"
    except httpx.HTTPError as exc:
        return False, f"the dry-run HPA could not be sent: {type(exc).__name__}"
    return True, "a dry-run HPA with minReplicas 0 was accepted"


async def resolve(mode: Mode, api: KubeApi, namespace: str) -> bool:
    """Native scale-to-zero on or off for this process: the flag, and in `auto` the probe."""
    if mode != "auto":
        log.info("native scale-to-zero %s (--native-scale-to-zero=%s)", "on" if mode == "true" else "off", mode)
        return mode == "true"
    supported, why = await probe(api, namespace)
    log.info("native scale-to-zero %s: %s", "on" if supported else "off (controller path)", why)
    return supported


def scale_down_window(so: ScaledObject) -> float:
    found = (so.hpa_behavior or {}).get("scaleDown") or {}
    window = found.get("stabilizationWindowSeconds") if isinstance(found, Mapping) else None
    return float(window) if isinstance(window, int | float) else DEFAULT_SCALE_DOWN_WINDOW


def not_native(so: ScaledObject) -> str | None:
    """Why this object keeps the controller path although the cluster has native scale-to-zero
    (None: it goes native). Objects with minReplicaCount > 0 never rest at 0: nothing to do."""
    if so.idle_replica_count is not None:
        return "idleReplicaCount cannot be expressed by an HPA"
    if so.min_replica_count != 0:
        return NEVER_AT_ZERO
    if so.scaling_modifiers is not None:
        return "scalingModifiers are not served gated"
    if any(t.type in RESOURCE_TYPES for t in so.triggers):
        return "cpu and memory triggers have no value at 0 replicas"
    down = (so.hpa_behavior or {}).get("scaleDown") or {}
    if isinstance(down, Mapping) and down.get("selectPolicy") == "Disabled":
        return "the HPA's scale-down is disabled"
    window = scale_down_window(so)
    if window > so.cooldown_period:
        return (f"the HPA's scale-down stabilization window ({window:g}s) is longer than cooldownPeriod "
                f"({so.cooldown_period}s); set behavior.scaleDown.stabilizationWindowSeconds <= cooldownPeriod")
    return None


def zero_from(so: ScaledObject, last_active: float | None, now: float) -> float | None:
    """From when the adapter may serve 0 for this object while it is inactive (epoch seconds):
    the end of the cooldown (or, never active, of the initial cooldown) minus the HPA's
    scale-down window; None (never) while forced active or with scale-in paused."""
    pause = pause_of(so.annotations)
    if flag(so.annotations, FORCE_ACTIVATION) or pause.scale_in:
        return None
    if last_active is None:
        ends = (parse_timestamp(so.creation_timestamp) or now) + so.initial_cooldown_period
    else:
        ends = last_active + so.cooldown_period
    return ends - scale_down_window(so)


def native_step(decision: Decision, current: int, hpa_scaled_to_zero: bool) -> Decision:
    """What of KEDA's decision the controller still does itself when the HPA owns 0 <-> N: only
    the step to 1 of a target at 0 that the HPA did not take there (it would leave it, disabled).
    Deactivation is the HPA's, from the served 0."""
    if decision.action == "activate" and current == 0 and not hpa_scaled_to_zero:
        return replace(decision, scale_to=1)
    return replace(decision, scale_to=None, action=None)
