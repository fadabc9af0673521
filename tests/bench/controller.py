"""Controller benchmark: activation latency, and ScaledObject -> HPA propagation at 1,000 objects.

Everything real: the e2e control plane (kube-apiserver, kube-controller-manager with the HPA
controller), a Redis server, one adapter and one controller as processes (`controller_stack`),
with the controller's default rate limit (50 calls/s, burst 100).

* Activation latency: time from RPUSH of one item to the first watch event showing the
  target's spec.replicas at 1. Pushes are spread over one pollingInterval so they land at
  every phase of the adapter's poll; measured with the default pollingInterval (30 s, one
  round of 10 objects) and a short one (1 s, 3 rounds of 10). Goal: <= pollingInterval + 0.5 s.
* Propagation: 1,000 Deployments and 1,000 ScaledObjects (cron triggers, idle) are created;
  once every HPA exists, `maxReplicaCount` of one object is changed (20 times, one at a time),
  then of 100 objects at once; the time until the HPA watch shows the new `maxReplicas`.
  Goal: under 5 s for one change. Also printed: time to the 1,000th HPA from the first create,
  and the controller's CPU and memory.
"""

from __future__ import annotations

import json
import math
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubernetes import client, watch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests" / "cluster"), str(ROOT / "tests" / "e2e")]

from controller_stack import Stack, deployment  # noqa: E402
from controlplane import ControlPlane, wait_for  # noqa: E402

from tests.harness.redis_servers import RedisServer  # noqa: E402

ACTIVATION_OBJECTS, SHORT_ROUNDS = 10, 3
OBJECTS, SINGLE_CHANGES, BURST = 1000, 20, 100
CHUNK = 250


class WatchLog:
    """Every watch event of one resource in one namespace: (time, name, object), in a thread."""

    def __init__(self, cp: ControlPlane, lister: Callable[[Any], Callable[..., Any]], namespace: str) -> None:
        self.events: list[tuple[float, str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(cp, lister, namespace), daemon=True)
        self._thread.start()

    def _run(self, cp: ControlPlane, lister: Callable[[Any], Callable[..., Any]], namespace: str) -> None:
        with cp.api_client() as api:
            list_fn, version = lister(api), None
            while not self._stop.is_set():
                kwargs: dict[str, Any] = {"timeout_seconds": 2, **({"resource_version": version} if version else {})}
                for event in watch.Watch().stream(list_fn, namespace, **kwargs):
                    version = event["object"].metadata.resource_version
                    with self._lock:
                        self.events.append((time.time(), event["object"].metadata.name, event["object"]))

    def names(self) -> set[str]:
        with self._lock:
            return {name for _, name, _ in self.events}

    def first(self, name: str, after: float, test: Callable[[Any], bool]) -> float | None:
        with self._lock:
            return next((at for at, seen, obj in self.events if seen == name and at >= after and test(obj)), None)

    def wait(self, name: str, after: float, test: Callable[[Any], bool], timeout: float) -> float:
        """The time of the first event of `name` after `after` that passes `test`."""
        found: float = wait_for(lambda: self.first(name, after, test), timeout, f"{name} after {after:.1f}", 0.05)
        return found

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def apply(cp: ControlPlane, namespace: str, objects: list[dict[str, Any]]) -> None:
    for i in range(0, len(objects), CHUNK):
        cp.kubectl("apply", "-n", namespace, "-f", "-", timeout=300,
                   input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects[i:i + CHUNK]}))


@contextmanager
def fresh_namespace(cp: ControlPlane, name: str) -> Iterator[str]:
    cp.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        cp.kubectl("delete", "namespace", name, "--wait=false", check=False)


def scaled_object(name: str, trigger: dict[str, Any], polling: int, cooldown: int) -> dict[str, Any]:
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"name": name}, "pollingInterval": polling, "cooldownPeriod": cooldown,
                     "maxReplicaCount": 10, "triggers": [trigger]}}


# -- activation -----------------------------------------------------------------------------------

def activation(cp: ControlPlane, redis: RedisServer, interval: int, rounds: int) -> list[float]:
    with fresh_namespace(cp, f"bench-activation-{interval}s") as ns:
        names = [f"a{i:02d}" for i in range(ACTIVATION_OBJECTS)]
        def trigger(name: str) -> dict[str, Any]:
            return {"type": "redis", "metadata": {"address": redis.address, "listLength": "5",
                                                  "listName": f"{ns}-{name}"}}

        apply(cp, ns, [deployment(n, 0) for n in names] +
              [scaled_object(n, trigger(n), interval, cooldown=1) for n in names])
        wait_for(lambda: len(cp.kubectl_json("get", "hpa", "-n", ns)["items"]) == len(names), 120, "every HPA", 0.5)
        log = WatchLog(cp, lambda api: client.AppsV1Api(api).list_namespaced_deployment, ns)
        try:
            samples: list[float] = []
            for _ in range(rounds):
                samples += activation_round(redis, ns, names, interval, log)
            return samples
        finally:
            log.stop()
            redis.admin().delete(*(f"{ns}-{n}" for n in names))


def activation_round(redis: RedisServer, ns: str, names: list[str], interval: int, log: WatchLog) -> list[float]:
    admin, started, pushed = redis.admin(), time.time(), {}
    for i, name in enumerate(names):  # one push at every phase of the poll
        time.sleep(max(0.0, started + i * interval / len(names) - time.time()))
        admin.rpush(f"{ns}-{name}", 1)
        pushed[name] = time.time()
    scaled = {n: log.wait(n, pushed[n], lambda d: d.spec.replicas >= 1, interval + 15) for n in names}
    admin.delete(*(f"{ns}-{n}" for n in names))
    drained = time.time()
    for name in names:
        log.wait(name, drained, lambda d: d.spec.replicas == 0, interval + 20)
    return [scaled[n] - pushed[n] for n in names]


# -- propagation ----------------------------------------------------------------------------------

IDLE_CRON = {"type": "cron", "metadata": {"timezone": "UTC", "start": "0 0 1 1 *", "end": "1 0 1 1 *",
                                          "desiredReplicas": "2"}}


def propagation(cp: ControlPlane, stack: Stack) -> dict[str, Any]:
    with fresh_namespace(cp, "bench-propagation") as ns:
        names = [f"so-{i:04d}" for i in range(OBJECTS)]
        log = WatchLog(cp, lambda api: client.AutoscalingV2Api(api).list_namespaced_horizontal_pod_autoscaler, ns)
        try:
            started = time.time()
            apply(cp, ns, [deployment(n, 0) for n in names] + [scaled_object(n, IDLE_CRON, 30, 300) for n in names])
            created = time.time() - started
            wait_for(lambda: len(log.names()) == OBJECTS, 600, "1,000 HPAs", 1.0)
            synced = time.time() - started
            time.sleep(5)  # let the start-up work drain: what is measured next is the steady state
            cpu_before = cpu_seconds(stack)
            with cp.api_client() as api:
                objects = client.CustomObjectsApi(api)
                singles = [change(objects, ns, random.choice(names), 20 + k, log) for k in range(SINGLE_CHANGES)]
                burst = burst_change(objects, ns, random.sample(names, BURST), log)
            return {"created_s": created, "all_hpas_s": synced, "single_s": singles, "burst_s": burst,
                    "cpu_s": cpu_seconds(stack) - cpu_before, "rss_mb": rss_mb(stack)}
        finally:
            log.stop()


def change(objects: client.CustomObjectsApi, ns: str, name: str, maximum: int, log: WatchLog) -> float:
    started = time.time()
    objects.patch_namespaced_custom_object("keda.sh", "v1alpha1", ns, "scaledobjects", name,
                                           {"spec": {"maxReplicaCount": maximum}})
    seen = log.wait(f"keda-hpa-{name}", started, lambda h: h.spec.max_replicas == maximum, 60)
    time.sleep(0.2)
    return seen - started


def burst_change(objects: client.CustomObjectsApi, ns: str, names: list[str], log: WatchLog) -> float:
    started = time.time()
    for name in names:
        objects.patch_namespaced_custom_object("keda.sh", "v1alpha1", ns, "scaledobjects", name,
                                               {"spec": {"maxReplicaCount": 99}})
    seen = [log.wait(f"keda-hpa-{n}", started, lambda h: h.spec.max_replicas == 99, 120) for n in names]
    return max(seen) - started


def cpu_seconds(stack: Stack) -> float:
    process = stack.pods[0].controller.process
    assert process is not None
    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def rss_mb(stack: Stack) -> float:
    process = stack.pods[0].controller.process
    assert process is not None
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


# -- the part -------------------------------------------------------------------------------------

def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, ControlPlane() as cp, RedisServer() as redis:
        stack = Stack(cp, Path(tmp)).start(1)
        try:
            return {"activation": {1: activation(cp, redis, 1, SHORT_ROUNDS), 30: activation(cp, redis, 30, 1)},
                    "propagation": propagation(cp, stack)}
        finally:
            stack.stop()


def _spread(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]
    return f"p50 {statistics.median(ordered):6.2f}s  p90 {p90:6.2f}s  max {ordered[-1]:6.2f}s"


def print_report(results: dict[str, Any]) -> None:
    print("controller (real kube-apiserver and HPA controller, Redis; rate limit 50/s, burst 100)")
    for interval, samples in sorted(results["activation"].items()):
        bound = interval + 0.5
        within = sum(1 for s in samples if s <= bound)
        print(f"  activation, pollingInterval {interval:2d}s, {len(samples):2d} pushes: {_spread(samples)}"
              f"  within {bound:g}s: {within}/{len(samples)}")
    p = results["propagation"]
    print(f"  propagation, {OBJECTS} ScaledObjects: created in {p['created_s']:.1f}s, every HPA made "
          f"{p['all_hpas_s']:.1f}s after the first create")
    print(f"    one change -> its HPA ({SINGLE_CHANGES} changes): {_spread(p['single_s'])}  goal < 5s: "
          f"{sum(1 for s in p['single_s'] if s < 5)}/{len(p['single_s'])}")
    print(f"    {BURST} changes at once -> all {BURST} HPAs: {p['burst_s']:.2f}s")
    print(f"    controller while measuring: {p['cpu_s']:.1f}s CPU, {p['rss_mb']:.0f} MB resident")
