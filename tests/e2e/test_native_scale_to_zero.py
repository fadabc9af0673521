"""Native scale-to-zero end to end: the real HPA controller of v1.37.2 takes the workload 0 <-> N.

The seed story (created at 0 -> work arrives -> 1 -> N -> work drains -> cooldown -> 0, twice)
runs on the controller path (`--native-scale-to-zero=false`) and natively (`auto`: the
controller probes the cluster), with real Redis and the real HPA (sync period 1 s), and the two
replica timelines must agree within one HPA sync period. The first round of the native story
is the v1.37.2 finding: a Deployment created at 0 is left alone by the HPA (ScalingDisabled), so
the controller makes the one step to 1; the second round starts from the HPA's own zero
(ScaledToZero) and the HPA scales up itself. A cluster without the gate refuses the probe.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster_adapter import apply, metric_value
from controller_stack import (
    ReplicaLog,
    Stack,
    condition,
    deployment,
    events,
    get,
    reasons,
    scaled_object,
    wait_condition,
)
from controlplane import ControlPlane, ensure_binaries, wait_for

from adapter.controller.native_zero import PROBE_NAME, probe
from adapter.kube.client import KubeApi
from tests.harness.redis_servers import RedisServer

pytestmark = pytest.mark.e2e

SYNC = 1.0  # the control plane's --horizontal-pod-autoscaler-sync-period
SLACK = 0.5  # beyond it: one adapter read and one API write on a loaded 2-core machine
ITEMS, TARGET = 10, 5
N = math.ceil(ITEMS / TARGET)


class Modes:
    """One stack at a time (the cluster has one APIService), in the mode a test asks for."""

    def __init__(self, cp: ControlPlane, work: Path) -> None:
        self.cp, self.work = cp, work
        self.mode: str | None = None
        self.stack: Stack | None = None
        self.started = 0

    def use(self, mode: str) -> Stack:
        if self.mode != mode:
            self.stop()
            self.started += 1
            work = self.work / f"{self.started}-{mode}"
            work.mkdir()
            self.stack = Stack(self.cp, work).start(2, "--native-scale-to-zero", mode)
            self.mode = mode
        assert self.stack is not None
        return self.stack

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.stop()
        self.stack, self.mode = None, None


@pytest.fixture(scope="module")
def modes(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Modes]:
    running = Modes(control_plane, tmp_path_factory.mktemp("native-zero"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with RedisServer(extra_args=["--notify-keyspace-events", "Kl"]) as server:  # activation by push, both ways
        yield server


def worker(redis: RedisServer, name: str, activation: int = 0, **spec: Any) -> list[dict[str, Any]]:
    trigger = {"type": "redis", "metadata": {"address": redis.address, "listName": name, "listLength": str(TARGET),
                                             "activationListLength": str(activation)}}
    return [deployment(name, 0), scaled_object(name, [trigger], **spec)]


def first(log: ReplicaLog, matches: Callable[[int], bool], after: float, what: str, timeout: float = 30) -> float:
    """The first moment after `after` the Deployment's count matched."""
    def found() -> float | None:
        return next((at for at, count in log.changes if at >= after and matches(count)), None)

    at: float = wait_for(found, timeout=timeout, what=what, interval=0.05)
    return at


def hpa_condition(cp: ControlPlane, ns: str, name: str, kind: str) -> tuple[str, str]:
    found: tuple[str, str] = condition((get(cp, "hpa", ns, f"keda-hpa-{name}") or {}).get("status") or {}, kind)
    return found


def story(cp: ControlPlane, redis: RedisServer, ns: str, name: str, rounds: int = 2) -> tuple[list[int], list[float]]:
    """The seed story, `rounds` times: the replica counts seen, and per round the seconds from
    work arriving to the first replica and to N, from the drain to 1 and to 0."""
    apply(cp, ns, *worker(redis, name))
    wait_condition(cp, ns, name, "Active", ("False", "ScalerNotActive"), timeout=30)
    log = ReplicaLog(cp, ns, name)
    figures: list[float] = []
    try:
        for _ in range(rounds):
            filled = time.time()
            redis.admin().rpush(name, *range(ITEMS))
            up = first(log, lambda count: count >= 1, filled, f"{name} above 0")
            full = first(log, lambda count: count == N, filled, f"{name} at {N}")
            drained = time.time()
            redis.admin().delete(name)
            one = first(log, lambda count: count == 1, drained, f"{name} down to 1")
            zero = first(log, lambda count: count == 0, drained, f"{name} at 0")
            figures += [up - filled, full - filled, one - drained, zero - drained]
            wait_condition(cp, ns, name, "Active", ("False", "ScalerNotActive"), timeout=30)
        return log.values, figures
    finally:
        log.stop()


def test_seed_story_has_the_same_timeline_natively_and_on_the_controller_path(
        modes: Modes, redis: RedisServer, namespace: str) -> None:
    cp, ns = modes.cp, namespace
    modes.use("false")
    keda_values, keda = story(cp, redis, ns, "keda")
    assert get(cp, "hpa", ns, "keda-hpa-keda")["spec"]["minReplicas"] == 1
    modes.use("auto")
    # round 1 is the finding: created at 0, the HPA leaves it (ScalingDisabled) until the controller's step
    apply(cp, ns, *worker(redis, "native"))
    wait_for(lambda: hpa_condition(cp, ns, "native", "ScalingActive") == ("False", "ScalingDisabled"),
             timeout=20, what="the HPA of a Deployment created at 0 disabled")
    native_values, native = story(cp, redis, ns, "native")
    assert get(cp, "hpa", ns, "keda-hpa-native")["spec"]["minReplicas"] == 0
    print(f"\n[native-zero] seconds per round (work -> >=1, -> {N}, drain -> 1, -> 0): "
          f"controller path {[round(f, 2) for f in keda]}, native {[round(f, 2) for f in native]}")
    assert keda_values == [0, 1, N, 1, 0, 1, N, 1, 0]
    assert native_values == [0, 1, N, 1, 0, N, 1, 0]  # round 2: the HPA takes its own zero straight to N
    for i, (ours, theirs) in enumerate(zip(native, keda, strict=True)):
        assert abs(ours - theirs) <= SYNC + SLACK, (f"milestone {i} of {native} against {keda}: more than one "
                                                    f"HPA sync period apart")
    # the controller made the one step of round 1 only; every other change was the HPA's
    assert [r for r in reasons(cp, ns, "native") if r.startswith("KEDA")] == ["KEDAScaleTargetActivated"]
    messages = [m for _, _, m, _ in events(cp, ns, "native")]
    assert f"Scaled apps/v1.Deployment {ns}/native from 0 to 1, triggered by s0-redis-native" in messages
    assert hpa_condition(cp, ns, "native", "ScaledToZero") == ("True", "ScaledToZero")


def test_probe_turns_native_on_and_only_eligible_objects_get_min_zero(modes: Modes, redis: RedisServer,
                                                                      namespace: str) -> None:
    stack, cp, ns = modes.use("auto"), modes.cp, namespace
    for pod in stack.pods:
        wait_for(lambda p=pod: "native scale-to-zero on: a dry-run HPA with minReplicas 0 was accepted"
                 in p.controller.log(), timeout=10, what="the probe's log line")
    assert get(cp, "hpa", "eventscale", PROBE_NAME) is None  # dry run: nothing stored
    apply(cp, ns, *worker(redis, "native"), *worker(redis, "windowed", advanced={}),
          *worker(redis, "floor", minReplicaCount=1))
    for name, minimum in (("native", 0), ("windowed", 1), ("floor", 1)):
        hpa = wait_for(lambda n=name: get(cp, "hpa", ns, f"keda-hpa-{n}"), what=f"the HPA of {name}")
        assert hpa["spec"]["minReplicas"] == minimum, name
    # no behavior: the HPA's 300 s scale-down window is longer than cooldownPeriod 6: the controller path
    wait_for(lambda: "object=" f"{ns}/windowed native scale-to-zero not used (controller path): the HPA's scale-down "
             "stabilization window (300s) is longer than cooldownPeriod (6s)" in stack.leader().log(),
             timeout=10, what="the reason windowed keeps the controller path")


def test_a_target_scaled_to_zero_by_someone_else_while_active_is_stepped_back_to_one(
        modes: Modes, redis: RedisServer, namespace: str) -> None:
    stack, cp, ns = modes.use("auto"), modes.cp, namespace
    apply(cp, ns, *worker(redis, "kicked"))
    wait_condition(cp, ns, "kicked", "Active", ("False", "ScalerNotActive"), timeout=30)
    log = ReplicaLog(cp, ns, "kicked")
    try:
        redis.admin().rpush("kicked", *range(ITEMS))
        first(log, lambda count: count == N, time.time() - 60, f"kicked at {N}")
        kicked = time.time()
        cp.kubectl("scale", "deployment/kicked", "-n", ns, "--replicas=0")
        first(log, lambda count: count == 0, kicked, "kicked at 0")
        back = first(log, lambda count: count == N, kicked, f"kicked back at {N}")
        assert log.values == [0, 1, N, 0, 1, N], stack.logs()
        assert back - kicked < 10
    finally:
        log.stop()
    assert [r for r in reasons(cp, ns, "kicked") if r.startswith("KEDA")] == ["KEDAScaleTargetActivated"] * 2


async def test_a_cluster_without_the_gate_refuses_the_probe() -> None:
    with ControlPlane(ensure_binaries(), extra_apiserver_args=["--feature-gates=HPAScaleToZero=false"]) as cp:
        api = KubeApi.connect(cp.kubeconfig)
        try:
            supported, why = await probe(api, "default")
        finally:
            await api.aclose()
    assert not supported
    assert why.startswith("a dry-run HPA with minReplicas 0 was refused (422)"), why


def test_values_under_the_activation_threshold_keep_the_hpa_at_its_own_zero(
        modes: Modes, redis: RedisServer, namespace: str) -> None:
    stack, cp, ns = modes.use("auto"), modes.cp, namespace
    apply(cp, ns, *worker(redis, "quiet", activation=3))
    wait_condition(cp, ns, "quiet", "Active", ("False", "ScalerNotActive"), timeout=30)
    log = ReplicaLog(cp, ns, "quiet")
    try:
        redis.admin().rpush("quiet", *range(ITEMS))
        first(log, lambda count: count == N, 0, f"quiet at {N}")
        drained = time.time()
        redis.admin().delete("quiet")
        first(log, lambda count: count == 0, drained, "quiet at 0")
        wait_for(lambda: hpa_condition(cp, ns, "quiet", "ScaledToZero") == ("True", "ScaledToZero"),
                 timeout=10, what="the HPA's own zero")
        redis.admin().rpush("quiet", 1, 2)  # 2 <= activationListLength 3: inactive
        served = stack.pods[0].controller.adapter_url + f"/activity/{ns}/quiet"
        wait_for(lambda: httpx.get(served).json()["triggers"][0]["value"] == 2, timeout=10,
                 what="the adapter has read 2 items")
        watched_until = time.time() + 3 * SYNC  # three HPA syncs reading the served value
        while time.time() < watched_until:
            assert metric_value(cp, ns, "s0-redis-quiet", "quiet") == "0"  # what the HPA reads
            time.sleep(0.2)
        assert log.values == [0, 1, N, 1, 0]
        woken = time.time()
        redis.admin().rpush("quiet", *range(ITEMS - 2))  # 10 in all: active
        first(log, lambda count: count == N, woken, f"quiet back at {N}")
        assert log.values == [0, 1, N, 1, 0, N]  # the HPA's own step from 0: no controller write
    finally:
        log.stop()
    assert [r for r in reasons(cp, ns, "quiet") if r.startswith("KEDA")] == ["KEDAScaleTargetActivated"]
