"""Metric specs of external triggers: asked of the scaler (GetMetricSpec) while triggers resolve.

An external trigger's metric name and HPA target are not in its metadata: KEDA asks the scaler
when it builds the HPA. Resolving a trigger here is synchronous and does no I/O, so the first
resolve starts the GetMetricSpec call and answers "waiting"; when the answer (or a failure)
arrives, the trigger's `resolve_again` callback makes the catalog resolve its ScaledObject
again, which now finds the spec. A failure is retried with KEDA's stream backoff (2 s doubling
to a minute) for as long as the catalog keeps resolving the trigger; a known spec is asked
again when the trigger is resolved after `SPEC_MAX_AGE` (the ScaledObject or what it reads
changed), as KEDA asks again when it reconciles.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from scalers.base import MetricSpec

SPEC_MAX_AGE = 30.0
FIRST_RETRY, LAST_RETRY = 2.0, 60.0
MAX_KNOWN = 20_000  # least recently resolved specs are forgotten past this


class SpecError(Exception):
    """GetMetricSpec failed or answered nothing usable; the message says why, without secrets."""


Fetch = Callable[[Any], Awaitable[MetricSpec]]


@dataclass
class _Known:
    spec: MetricSpec | None = None
    error: str | None = None
    at: float = 0.0  # monotonic time of the last answer
    retry_in: float = FIRST_RETRY
    task: asyncio.Task[None] | None = None
    again: Callable[[], None] | None = field(default=None, repr=False)


class SpecCache:
    """What each config's GetMetricSpec said, and the calls in flight."""

    def __init__(self, fetch: Fetch, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._known: OrderedDict[Any, _Known] = OrderedDict()

    def want(self, config: Any, again: Callable[[], None] | None) -> None:
        """The catalog is resolving `config`: make sure its spec is (being) asked for."""
        known = self._known.get(config)
        if known is None:
            known = self._known[config] = _Known()
            while len(self._known) > MAX_KNOWN:
                self._known.popitem(last=False)
        self._known.move_to_end(config)
        known.again = again
        if known.task is not None and not known.task.done():
            return
        age = self._clock() - known.at
        if known.spec is not None and age < SPEC_MAX_AGE:
            return
        delay = max(0.0, known.retry_in - age) if known.error is not None else 0.0
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # resolved outside the event loop (a unit test): nobody can ask
            return
        known.task = loop.create_task(self._ask(config, known, delay))

    def spec(self, config: Any) -> MetricSpec | None:
        """The spec known for `config`; raises SpecError if the last ask failed, None while waiting."""
        known = self._known.get(config)
        if known is None or (known.spec is None and known.error is None):
            return None
        if known.spec is None:
            raise SpecError(known.error)
        return known.spec

    def forget(self, config: Any) -> None:
        known = self._known.pop(config, None)
        if known is not None and known.task is not None:
            known.task.cancel()

    async def _ask(self, config: Any, known: _Known, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        before = (known.spec, known.error)
        try:
            known.spec, known.error = await self._fetch(config), None
            known.retry_in = FIRST_RETRY
        except SpecError as exc:
            known.error = str(exc)
            known.retry_in = min(known.retry_in * 2, LAST_RETRY) if before[1] is not None else FIRST_RETRY
        known.at = self._clock()
        # a failure is always told (the catalog's next resolve schedules the retry); a success only if it changed
        if known.again is not None and (known.error is not None or before != (known.spec, known.error)):
            known.again()
