"""cron: a fixed replica count between two cron times in a time zone (KEDA's `cron` trigger).

The value is `desiredReplicas` inside the window and 0 outside, against a target of 1, so the
HPA computes exactly `desiredReplicas`. Nothing is polled over the network; one client serves
every cron trigger.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from scalers.base import ScalerClient, ScalerError, Served, ServedScaler
from scalers.params import ParameterError, TriggerParams, param, parse_params


@dataclass(frozen=True, kw_only=True)
class CronConfig:
    timezone: str = param("timezone", required=True)
    start: str = param("start", required=True)
    end: str = param("end", required=True)
    desired_replicas: int = param("desiredReplicas", required=True)


def parse_config(params: TriggerParams) -> CronConfig:
    config = parse_params(CronConfig, params)
    try:
        ZoneInfo(config.timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file name
        shown = config.timezone if len(config.timezone) <= 64 else f"{config.timezone[:64]}..."
        raise ParameterError(f'parameter "timezone" value "{shown}" is not an IANA time zone') from None
    for key, expression in (("start", config.start), ("end", config.end)):
        if not croniter.is_valid(expression) or len(expression.split()) != 5:
            raise ParameterError(f'parameter "{key}" value "{expression}" is not a 5-field cron expression')
    if config.start == config.end:
        raise ParameterError('parameters "start" and "end" must not be the same')
    if config.desired_replicas < 0:
        raise ParameterError('parameter "desiredReplicas" must not be negative')
    return config


def _compact(expression: str) -> str:
    """KEDA's spelling of a cron expression inside a metric name."""
    return expression.replace(" ", "").replace("*", "x").replace("/", "Sl").replace("?", "Qm")


def is_within_window(config: CronConfig, now: dt.datetime) -> bool:
    """True between a start and the following end: the next end comes before the next start."""
    local = now.astimezone(ZoneInfo(config.timezone))
    next_start = croniter(config.start, local).get_next(dt.datetime)
    next_end = croniter(config.end, local).get_next(dt.datetime)
    return bool(next_end < next_start)


class CronClient(ScalerClient[CronConfig]):
    def __init__(self, clock: Callable[[], dt.datetime]) -> None:
        self._clock = clock

    async def read(self, configs: Sequence[CronConfig]) -> list[float | ScalerError]:
        now = self._clock()
        return [float(c.desired_replicas) if is_within_window(c, now) else 0.0 for c in configs]


class CronScaler(ServedScaler[CronConfig, str]):
    types = ("cron",)

    def __init__(self, clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self._clock = clock

    def parse(self, trigger_type: str, params: TriggerParams) -> CronConfig:
        return parse_config(params)

    def served(self, config: CronConfig) -> Served[str]:
        name = f"cron-{config.timezone}-{_compact(config.start)}-{_compact(config.end)}"
        return Served("cron", name, target=1.0)

    def open_client(self, config: CronConfig) -> CronClient:
        return CronClient(self._clock)
