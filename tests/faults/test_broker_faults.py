"""The broker fault matrix: steady reads of 50 ScaledObjects while each broker fault happens in turn.

The adapter process serves every scaler (cron, Redis lists plain and TLS, Redis streams, RabbitMQ
over AMQP and HTTP, the Service Bus stand-in) from brokers of this module's own. Faults, one at
a time (tests/harness/fault_world.py): kill -9 and restart, SIGSTOP/SIGCONT, a password changed on
the broker, a TLS CA mismatch. For every request: answered within --scaler-timeout + 1 s, with
the true value or a Status naming the trigger. For every fault: only the triggers of the faulty
broker fail, and they are correct again within one polling interval of the fault clearing.
Afterwards the adapter's file descriptors, broker connections and RSS are back to their baseline.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scalers.rabbitmq.queue_config import CONNECTION_NAME
from scalers.redis.connection import CLIENT_NAME
from tests.harness.adapter_process import AdapterProcess, running_adapter
from tests.harness.fault_run import SteadyReader, report, run_faults, violations
from tests.harness.fault_world import POLLING, FaultWorld
from tests.harness.redis_servers import clients

pytestmark = pytest.mark.brokers

TIMEOUT = 2.0
BOUND = TIMEOUT + 1.0
HOLD = 4.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultWorld]:
    with FaultWorld(tmp_path_factory.mktemp("faults")) as built:
        yield built


@pytest.fixture(scope="module")
def adapter(world: FaultWorld) -> Iterator[AdapterProcess]:
    with running_adapter(world.objects, world.work / "certs", world.work / "adapter.log",
                         "--scaler-timeout", str(TIMEOUT), "--metric-max-age", "0.5",
                         "--internal-port", "0") as process:
        yield process


def resources(adapter: AdapterProcess, world: FaultWorld) -> dict[str, float]:
    assert adapter.process is not None
    pid = adapter.process.pid
    rss = next(int(line.split()[1]) / 1024 for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    return {"fds": len(list(Path(f"/proc/{pid}/fd").iterdir())), "rss_mb": rss,
            "redis_clients": len(clients(world.redis, CLIENT_NAME)),
            "rabbitmq_connections": len(world.rabbitmq.connections(CONNECTION_NAME))}


def settled(adapter: AdapterProcess, world: FaultWorld, baseline: dict[str, float],
            timeout: float = 20.0) -> dict[str, float]:
    """Poll until resources are back near `baseline`; return the last reading."""
    deadline = time.monotonic() + timeout
    while True:
        now = resources(adapter, world)
        ok = (now["fds"] <= baseline["fds"] + 5 and now["rss_mb"] <= baseline["rss_mb"] + 40
              and now["redis_clients"] <= baseline["redis_clients"]
              and now["rabbitmq_connections"] <= baseline["rabbitmq_connections"])
        if ok or time.monotonic() > deadline:
            return now
        time.sleep(0.5)


def test_every_request_and_every_fault(adapter: AdapterProcess, world: FaultWorld) -> None:
    with SteadyReader(adapter, world.targets) as reader:
        deadline = time.monotonic() + 30  # every target answers its truth before the first fault
        while not {a.target.name for a in reader.since(time.monotonic() - 3) if a.correct} >= \
                {t.name for t in world.targets}:
            assert time.monotonic() < deadline, [a for a in reader.since(time.monotonic() - 3) if not a.correct][:5]
            time.sleep(0.5)
        baseline = resources(adapter, world)
        started = time.monotonic()
        results = run_faults(reader, world.faults(), HOLD, recovery_timeout=60)
        after = settled(adapter, world, baseline)
        answers = reader.since(started)
    print("\n" + report(results, answers, BOUND))
    assert violations(answers, BOUND) == []
    for result in results:
        assert result.recovery_seconds is not None, f"{result.name}: not recovered"
        assert result.recovery_seconds <= POLLING, (result.name, result.recovery_seconds)
        fault = next(f for f in world.faults() if f.name == result.name)
        collateral = [a for a in result.answers if a.target.group not in fault.groups and not a.correct]
        assert collateral == [], (result.name, collateral[:3])
        assert result.failed > 0, f"{result.name}: the fault did not show; the test would not catch anything"
    for start, end in zip([r.recovered for r in results], [r.injected for r in results[1:]], strict=False):
        assert start is not None
        between = [a for a in answers if start < a.started < end and not a.correct]
        assert between == [], between[:3]
    assert after["fds"] <= baseline["fds"] + 5, (baseline, after)
    assert after["rss_mb"] <= baseline["rss_mb"] + 40, (baseline, after)
    assert after["redis_clients"] <= baseline["redis_clients"], (baseline, after)
    assert after["rabbitmq_connections"] <= baseline["rabbitmq_connections"], (baseline, after)
    assert "Traceback" not in adapter.log()
