"""The Event sender outlives what stops an Event: a lost Lease, an unreachable API server.

Found at 100,000 ScaledObjects on a saturated kube-apiserver: the Lease renewal timed out, and
the Events still queued raised `NotLeading` out of the sender, which ended the controller.
"""

from __future__ import annotations

import asyncio

from adapter.controller.events import READY, EventRecorder, Involved
from adapter.controller.guarded_api import ControllerKube
from adapter.controller.work_queue import RateLimiter
from adapter.kube.client import KubeApi
from adapter.kube.credentials import Credentials
from tests.harness.ports import free_port

OBJECT = Involved("keda.sh/v1alpha1", "default", "orders", "uid-1", "1")


async def test_events_queued_when_the_lease_is_lost_are_dropped_and_the_sender_keeps_running() -> None:
    leading = False
    api = KubeApi(Credentials(f"https://127.0.0.1:{free_port()}"), timeout=5)  # nothing listens there
    recorder = EventRecorder(ControllerKube(api, RateLimiter(50, 100), may_write=lambda: leading), "test")
    sender = asyncio.create_task(recorder.run())
    try:
        recorder.record(OBJECT, "Normal", READY, "ready")
        recorder.record(OBJECT, "Normal", READY, "ready again")
        async with asyncio.timeout(10):
            while recorder.dropped < 2:
                await asyncio.sleep(0.01)
        assert not sender.done()
        leading = True  # leading again, the API server unreachable: logged, and still running
        recorder.record(OBJECT, "Normal", READY, "ready at last")
        async with asyncio.timeout(10):
            while recorder._queue or recorder._waiting.is_set():
                await asyncio.sleep(0.01)
        assert not sender.done() and recorder.dropped == 2
    finally:
        sender.cancel()
        await api.aclose()
