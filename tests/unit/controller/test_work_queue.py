"""The work queue (one holder per key, urgent lane, delayed adds) and the token bucket."""

from __future__ import annotations

import asyncio
import time

from adapter.controller.work_queue import RateLimiter, WorkQueue


async def test_urgent_keys_go_first_and_duplicates_collapse() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in ("a", "b", "c", "a"):
        queue.add(key)
    queue.add("c", urgent=True)
    queue.add("d", urgent=True)
    assert len(queue) == 4
    assert [await queue.get() for _ in range(4)] == ["c", "d", "a", "b"]


async def test_promoting_queued_keys_costs_no_scan_of_the_queue() -> None:
    """100,000 queued objects, then an activity update promoting some of them to urgent: with a
    scan of the queue per promotion, 1,000 took 6 s here under load (all of them, hours: found as
    a controller stalled for minutes at 100,000); without, a few milliseconds."""
    queue: WorkQueue[tuple[str, str, str]] = WorkQueue()
    keys = [("keda.sh", "bench", f"so-{i:06d}") for i in range(100_000)]
    for key in keys:
        queue.add(key)
    promoted = keys[:-6_000:-2]  # from the back: the worst place to find
    started = time.process_time()
    for key in promoted:
        queue.add(key, urgent=True)
    assert time.process_time() - started < 2.0
    order = [await queue.get() for _ in keys]
    urgent = set(promoted)
    assert order == [*promoted, *(k for k in keys if k not in urgent)] and len(queue) == 0


async def test_a_key_promoted_taken_and_queued_again_is_handed_out_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in ("a", "b"):
        queue.add(key)
    queue.add("a", urgent=True)  # its routine place stays behind, to be skipped
    queue.done(await queue.get())
    queue.add("a")
    assert len(queue) == 2 and sorted([await queue.get() for _ in range(2)]) == ["a", "b"]
    assert len(queue) == 0 and queue._next() is None


async def test_a_key_added_while_held_comes_back_once_after_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    held = await queue.get()
    queue.add("a", urgent=True)
    queue.add("a")
    assert len(queue) == 0  # not handed to a second worker meanwhile
    queue.done(held)
    assert len(queue) == 1 and await queue.get() == "a"


async def test_delayed_add_replaces_the_earlier_timer() -> None:
    queue: WorkQueue[str] = WorkQueue()
    scheduled = time.monotonic()
    queue.add_after("a", 0.05)
    queue.add_after("a", 0.5)
    await asyncio.sleep(0.1)
    assert len(queue) == 0  # the 0.05 s timer was replaced
    assert await asyncio.wait_for(queue.get(), 2) == "a"
    assert time.monotonic() - scheduled >= 0.5
    queue.add_after("b", 0.01)
    queue.forget("b")
    await asyncio.sleep(0.05)
    assert len(queue) == 0


async def test_rate_limiter_allows_burst_then_qps() -> None:
    limiter = RateLimiter(qps=50, burst=5)
    started = time.monotonic()
    for _ in range(5):
        await limiter.acquire()
    assert time.monotonic() - started < 0.05
    for _ in range(10):
        await limiter.acquire()
    assert 0.17 < time.monotonic() - started < 0.4  # 10 more at 50/s
