"""The composite metric of `advanced.scalingModifiers`, computed from the triggers' entries.

A ScaledObject with scalingModifiers gives the HPA one metric, `composite-metric`, whose value
is its formula over the values of its named triggers, as the store holds them. The rules are
KEDA 2.20's (pkg/scaling: GetScaledObjectMetrics, the modifiers and fallback packages):

* a trigger that failed more than `fallback.failureThreshold` times in a row, with a fallback
  KEDA deems valid (the target a positive whole number), puts the composite in fallback: its
  value is the one from which the HPA computes the fallback behaviour's replica count, whatever
  the other triggers say (`target x replicas`; with `metricType: Value`, divided by the target's
  ready pods: adapter/keda/fallback.py); with `behavior: scalingModifiers` that trigger is nil
  in the formula instead (`a ?? b`), and a formula that gives nil answers the value for
  `fallback.replicas` (KEDA answers `target x fallback.replicas` there for Value too, from which
  the HPA computes `fallback.replicas` times the ready pods; here the HPA computes `replicas`);
* otherwise any failing trigger fails the composite (a 500 naming it), and so does a formula
  that cannot compute on these values (nil in arithmetic, a division by zero);
* the object is active when the composite value is above `activationTarget` (default 0).

Nothing here talks to a scaler: `answer_composite` asks the store to refresh the object's stale
entries (batched per server, like any metric GET), then computes; the activity feed computes
from the entries as they are.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from adapter.catalog.resolve import ResolvedScaledObject
from adapter.keda.activity import CompositeActivity
from adapter.keda.fallback import fallback_replicas, fallback_value, valid_fallback, value_for
from adapter.keda.formula import EvaluationError
from adapter.keda.objects import COMPOSITE_METRIC, Fallback, ScalingModifiers
from adapter.kube.wire import internal_error, render_value_list
from adapter.store.store import MetricEntry, MetricStore

WAITING_FOR_CURRENT = "in fallback, waiting for the target's current replica count"
WAITING_FOR_READY = ("in fallback with metricType Value: no pod of the target is Running and Ready "
                     "(or none counted yet), so no value makes the HPA compute the fallback replicas")


@dataclass(frozen=True)
class Composite:
    value: float | None = None  # None with no error: a trigger has not been read yet
    error: str | None = None
    fallback: bool = False

    def active(self, modifiers: ScalingModifiers) -> bool:
        return self.error is None and self.value is not None and self.value > modifiers.activation_target


def compute(resolved: ResolvedScaledObject, store: MetricStore) -> Composite:
    so = resolved.so
    modifiers = so.scaling_modifiers
    assert modifiers is not None
    fallback = valid_fallback(so)
    values: dict[str, float | None] = {}
    errors: list[str] = []
    in_fallback = unread = False
    for trigger in resolved.triggers:
        if trigger.spec.resource:
            continue
        label = f"trigger {trigger.spec.index} ({trigger.spec.name or trigger.spec.type})"
        entry = store.entry(trigger.key) if trigger.error is None else None
        if entry is None:
            errors.append(f"{label}: {trigger.error or 'not served'}")
        elif entry.error is not None:
            past = fallback is not None and entry.consecutive_failures > fallback.failure_threshold
            if past and fallback is not None and fallback.behavior == "scalingModifiers":
                values[trigger.spec.name] = None  # a trigger without a name is in no formula
            elif past:
                in_fallback = True
            else:
                errors.append(f"{label}: {entry.error}")
        elif entry.value is None:
            unread = True
        else:
            values[trigger.spec.name] = entry.value
    state = store.target((so.namespace, so.name))
    current, ready = (state.replicas, state.ready) if state is not None else (None, None)
    if in_fallback:
        assert fallback is not None
        value = fallback_value(fallback, modifiers.target, current, modifiers.metric_type, ready)
        return _fallback_answer(value, WAITING_FOR_CURRENT if fallback_replicas(fallback, current) is None
                                else WAITING_FOR_READY)
    if errors:
        return Composite(error="; ".join(errors))
    if unread:
        return Composite()
    return _evaluate(modifiers, values, fallback, ready)


def _evaluate(modifiers: ScalingModifiers, values: dict[str, float | None], fallback: Fallback | None,
              ready: int | None) -> Composite:
    try:
        result = modifiers.formula.evaluate(values)
    except EvaluationError as exc:
        return Composite(error=f"the formula cannot be computed: {exc}")
    if result is not None:
        return Composite(result)
    if fallback is None:
        return Composite(error="the formula gave nil and no fallback is configured")
    return _fallback_answer(value_for(fallback.replicas, modifiers.target, modifiers.metric_type, ready),
                            WAITING_FOR_READY)


def _fallback_answer(value: float | None, waiting: str) -> Composite:
    return Composite(error=waiting) if value is None else Composite(value, fallback=True)


def activity(resolved: ResolvedScaledObject, store: MetricStore) -> CompositeActivity | None:
    """The composite's part of the activity document (None without scalingModifiers)."""
    modifiers = resolved.so.scaling_modifiers
    if modifiers is None:
        return None
    found = compute(resolved, store)
    return CompositeActivity(COMPOSITE_METRIC, modifiers.metric_type, modifiers.target, modifiers.activation_target,
                             found.value, found.active(modifiers), found.error, found.fallback)


async def answer_composite(resolved: ResolvedScaledObject, store: MetricStore) -> tuple[int, bytes]:
    """Status and body of a GET of `composite-metric`: the object's stale entries are refreshed
    first (batched per server), within the store's timeout counted from now."""
    entries = store.entries_of(resolved.so.namespace, resolved.so.name)
    late: list[MetricEntry] = []
    try:
        async with asyncio.timeout(store.timeout):
            await asyncio.gather(*(store.read(e.trigger.key) for e in entries))
    except TimeoutError:
        late = [e for e in entries if e.inflight is not None]
    found = compute(resolved, store)
    where = f"ScaledObject {resolved.so.namespace}/{resolved.so.name}"
    if late and not found.fallback:
        names = ", ".join(e.trigger.describe() for e in late)
        return _failed(where, f"no answer within {store.timeout:g}s from {names}")
    if found.error is not None:
        return _failed(where, found.error)
    if found.value is None:
        return _failed(where, "its triggers have not been read yet")
    return 200, render_value_list(COMPOSITE_METRIC, found.value, time.time())


def _failed(where: str, message: str) -> tuple[int, bytes]:
    return 500, internal_error(f"unable to get external metric {COMPOSITE_METRIC} of {where}: {message}").body()
