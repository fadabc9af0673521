"""The number of Jobs a ScaledJob creates: KEDA's own test tables, then whole polls."""

from __future__ import annotations

import pytest

from adapter.controller.job_count import Demand, TriggerLoad, demand, effective_max, jobs_to_create
from adapter.keda.scaled_job import ScalingStrategy

DEFAULT = ScalingStrategy()
CUSTOM = ScalingStrategy("custom", queue_length_deduction=1, running_job_percentage="0.5")
CUSTOM_UNSET = ScalingStrategy("custom")
CUSTOM_NO_DEDUCTION = ScalingStrategy("custom", running_job_percentage="0.5")
CUSTOM_ZERO = ScalingStrategy("custom", queue_length_deduction=2, running_job_percentage="0")
CUSTOM_NEGATIVE = ScalingStrategy("custom", queue_length_deduction=-2, running_job_percentage="0")
ACCURATE = ScalingStrategy("accurate")
EAGER = ScalingStrategy("eager")


@pytest.mark.parametrize(("strategy", "asked", "running", "pending", "max_jobs", "scale_to", "expected"), [
    (DEFAULT, 3, 2, 0, 5, 1, (1, 1)),
    (DEFAULT, 2, 0, 0, 5, 1, (2, 1)),
    (CUSTOM, 3, 2, 0, 5, 1, (1, 1)),
    (CUSTOM, 10, 0, 0, 10, 1, (9, 1)),
    (CUSTOM_UNSET, 3, 2, 0, 5, 1, (1, 1)),  # no percentage: default
    (CUSTOM_UNSET, 2, 0, 0, 5, 1, (2, 1)),
    (CUSTOM_NO_DEDUCTION, 10, 2, 0, 100, 1, (9, 1)),
    (CUSTOM_NO_DEDUCTION, 10, 0, 0, 100, 1, (10, 1)),
    (CUSTOM_ZERO, 3, 2, 0, 5, 1, (1, 1)),
    (CUSTOM_NEGATIVE, 3, 2, 0, 4, 1, (4, 1)),  # capped at the maximum
    (ACCURATE, 3, 2, 0, 5, 1, (3, 1)),
    (ACCURATE, 5, 2, 0, 5, 1, (3, 1)),
    (ACCURATE, 3, 4, 2, 10, 1, (1, 1)),
    (ACCURATE, 5, 4, 2, 5, 1, (1, 1)),
    (ACCURATE, 3, 3, 3, 5, 1, (0, 1)),
    (ACCURATE, 15, 15, 15, 20, 1, (0, 1)),
    (ACCURATE, 10, 10, 10, 15, 1, (0, 1)),
    (ACCURATE, 20, 15, 10, 20, 1, (5, 1)),
    (EAGER, 4, 3, 0, 10, 1, (4, 10)),
    (EAGER, 4, 0, 3, 10, 1, (4, 10)),
    (EAGER, 4, 7, 0, 10, 1, (3, 10)),
    (EAGER, 4, 1, 6, 10, 1, (3, 10)),
    (EAGER, 15, 0, 0, 10, 1, (10, 10)),
])
def test_effective_max_matches_kedas_tables(strategy: ScalingStrategy, asked: int, running: int, pending: int,
                                            max_jobs: int, scale_to: int, expected: tuple[int, int]) -> None:
    assert effective_max(strategy, asked, running, pending, max_jobs, scale_to) == expected


A3 = TriggerLoad(3, 1, True)
A10_2 = TriggerLoad(10, 2, True)
IDLE = TriggerLoad(7, 1, False)


@pytest.mark.parametrize(("loads", "calculation", "min_jobs", "max_jobs", "expected"), [
    ([A3, A10_2], "max", 0, 100, Demand(True, 10, 5)),
    ([A3, A10_2], "min", 0, 100, Demand(True, 3, 3)),
    ([A3, A10_2], "avg", 0, 100, Demand(True, 7, 4)),  # (3 + 10) / 2, (3 + 5) / 2
    ([A3, A10_2], "sum", 0, 100, Demand(True, 13, 8)),
    ([A3, A10_2], "sum", 0, 4, Demand(True, 13, 4)),  # capped at the maximum
    ([IDLE], "max", 0, 100, Demand(False, 0, 0)),  # inactive triggers count for nothing
    ([IDLE], "max", 2, 100, Demand(True, 0, 0)),  # a minimum makes the ScaledJob active
    ([TriggerLoad(0, 1, True)], "max", 0, 100, Demand(False, 0, 0)),
    ([TriggerLoad(2.5, 1, True)], "max", 0, 100, Demand(True, 3, 3)),  # rounded up
])
def test_demand_joins_active_triggers(loads: list[TriggerLoad], calculation: str, min_jobs: int, max_jobs: int,
                                      expected: Demand) -> None:
    assert demand(loads, calculation, min_jobs, max_jobs) == expected


@pytest.mark.parametrize(("strategy", "value", "running", "pending", "min_jobs", "max_jobs", "expected"), [
    (DEFAULT, 12, 0, 0, 0, 5, 5),  # 12 messages, 1 per Job, at most 5
    (DEFAULT, 12, 5, 5, 0, 5, 0),  # all running: none more
    (DEFAULT, 2, 1, 0, 0, 5, 1),
    (DEFAULT, 0, 0, 0, 0, 5, 0),
    (DEFAULT, 0, 0, 0, 2, 5, 2),  # the minimum, whatever the triggers
    (DEFAULT, 0, 1, 0, 2, 5, 1),
    (ACCURATE, 3, 3, 3, 0, 10, 0),  # the queue's messages are already taken by pending Jobs
    (EAGER, 3, 0, 0, 0, 10, 3),
    (EAGER, 3, 2, 0, 0, 10, 3),  # free slots, as many as the queue asks
    (EAGER, 3, 8, 1, 0, 10, 1),
])
def test_jobs_to_create_in_one_poll(strategy: ScalingStrategy, value: float, running: int, pending: int,
                                    min_jobs: int, max_jobs: int, expected: int) -> None:
    wanted = demand([TriggerLoad(value, 1, value > 0)], strategy.multiple_scalers_calculation, min_jobs, max_jobs)
    assert jobs_to_create(strategy, wanted, running, pending, min_jobs, max_jobs) == expected
