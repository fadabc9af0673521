"""Fault figures: the broker fault matrix at a higher rate and longer holds, and a TLS burst.

The world of tests/harness/fault_world.py (50 ScaledObjects of every scaler on brokers of their
own) is read at 50 requests/s while each fault is held 8 s. Printed: the request count, the share
answered within --scaler-timeout + 1 s, and per fault its answers, those that were not a value,
p99 and recovery time after the fault cleared. Then the adapter's RSS before, at the peak of and
after a burst of 1,000 TLS connections (each making one request, held, then closed).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from tests.harness.adapter_process import running_adapter
from tests.harness.fault_run import (
    SteadyReader,
    open_tls_connections,
    report,
    rss_mb,
    run_faults,
    settled_rss,
    violations,
)
from tests.harness.fault_world import FaultWorld

TIMEOUT = 2.0
BOUND = TIMEOUT + 1.0
HOLD = 8.0
RATE = 50.0
BURST = 1000


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, FaultWorld(Path(tmp)) as world, \
            running_adapter(world.objects, world.work / "certs", world.work / "adapter.log",
                            "--scaler-timeout", str(TIMEOUT), "--metric-max-age", "0.5",
                            "--internal-port", "0") as adapter:
        assert adapter.process is not None
        with SteadyReader(adapter, world.targets, rate=RATE, threads=12) as reader:
            time.sleep(5)
            started = time.monotonic()
            results = run_faults(reader, world.faults(), HOLD, recovery_timeout=60)
            answers = reader.since(started)
        request = b"GET /apis/external.metrics.k8s.io/v1beta1 HTTP/1.1\r\nhost: x\r\n\r\n"
        for conn in open_tls_connections(adapter, 50, request):
            conn.close()
        time.sleep(2)
        before = rss_mb(adapter.process.pid)
        held = open_tls_connections(adapter, BURST, request)
        peak = rss_mb(adapter.process.pid)
        for conn in held:
            conn.close()
        after = settled_rss(adapter.process.pid, before + 10, timeout=15)
    return {"report": report(results, answers, BOUND), "violations": violations(answers, BOUND),
            "rss": (before, peak, after)}


def print_report(summary: dict[str, Any]) -> None:
    print(f"Faults: 50 ScaledObjects read at {RATE:g}/s, each fault held {HOLD:g}s, bound {BOUND:g}s")
    print(summary["report"])
    print(f"  rule violations: {len(summary['violations'])}")
    for violation in summary["violations"][:10]:
        print(f"    {violation}")
    before, peak, after = summary["rss"]
    print(f"  RSS around {BURST} TLS connections: before {before:.0f} MB, peak {peak:.0f} MB, after {after:.0f} MB")
