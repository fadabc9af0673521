"""How many Jobs a ScaledJob creates this poll: KEDA's arithmetic, with no I/O.

Each trigger gives a queue length (its value) and, divided by its target, a number of Jobs
it asks for (capped at the ScaledJob's maximum). `multipleScalersCalculation` joins the active
triggers (max, min, avg, sum); the scaling strategy then takes the Jobs still running (and,
for accurate and eager, those whose pods are pending) off that number:

* default: asked for - running;
* custom: asked for - `customScalingQueueLengthDeduction` - running x
  `customScalingRunningJobPercentage`, at most the maximum (default when the percentage is no
  number, as KEDA does);
* accurate: maximum - running when asked for + running - pending exceeds the maximum, else
  asked for - pending (pending Jobs are taken to hold messages already counted);
* eager: the free slots (maximum - running - pending), at most asked for.

Below `minReplicaCount` running Jobs, the missing ones are made whatever the triggers say.
The numbers match KEDA's own tests (tests/unit/controller/test_job_count.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from adapter.keda.scaled_job import ScalingStrategy


@dataclass(frozen=True, slots=True)
class TriggerLoad:
    """One trigger's last reading: its value, its target per Job, whether it is active."""

    value: float
    target: float
    active: bool


@dataclass(frozen=True, slots=True)
class Demand:
    """The triggers joined: whether any is active, the queue length and the Jobs asked for."""

    active: bool
    queue_length: int
    asked: int


def demand(loads: Sequence[TriggerLoad], calculation: str, min_jobs: int, max_jobs: int) -> Demand:
    """KEDA's IsScaledJobActive: the active triggers joined by `multipleScalersCalculation`."""
    per = [(load.value, min(load.value / load.target, max_jobs) if load.target else 0.0)
           for load in loads if load.active]
    queue, asked = 0.0, 0.0
    if per and calculation == "min":
        queue, asked = min(per, key=lambda p: p[0])
    elif per and calculation == "avg":
        queue, asked = sum(p[0] for p in per) / len(per), sum(p[1] for p in per) / len(per)
    elif per and calculation == "sum":
        queue, asked = sum(p[0] for p in per), sum(p[1] for p in per)
    elif per:
        queue, asked = max(per, key=lambda p: p[0])
    active = (bool(per) and (calculation != "max" or queue > 0)) or min_jobs > 0
    return Demand(active, math.ceil(queue), math.ceil(min(asked, max_jobs)))


def effective_max(strategy: ScalingStrategy, asked: int, running: int, pending: int, max_jobs: int,
                  scale_to: int) -> tuple[int, int]:
    """KEDA's GetEffectiveMaxScale: (the most Jobs to create, the number wanted)."""
    if strategy.strategy == "custom" and _percentage(strategy.running_job_percentage) is not None:
        deduction = strategy.queue_length_deduction or 0
        share = int(running * (_percentage(strategy.running_job_percentage) or 0.0))
        return min(asked - deduction - share, max_jobs), scale_to
    if strategy.strategy == "accurate":
        if asked + running - pending > max_jobs:
            return max_jobs - running, scale_to
        return asked - pending, scale_to
    if strategy.strategy == "eager":
        return min(max_jobs - running - pending, asked), max_jobs
    return asked - running, scale_to


def jobs_to_create(strategy: ScalingStrategy, wanted: Demand, running: int, pending: int,
                   min_jobs: int, max_jobs: int) -> int:
    """The Jobs to create now, given what the triggers ask for and the Jobs not finished."""
    if not wanted.active:
        return 0
    if running < min_jobs:
        return min_jobs - running
    most, scale_to = effective_max(strategy, wanted.asked, running - min_jobs, pending, max_jobs,
                                   wanted.queue_length)
    return max(0, min(scale_to, most))


def _percentage(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
