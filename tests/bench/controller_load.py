"""Controller benchmark: activation, propagation, and steady cost and start-up at scale.

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
  Goal: under 5 s for one change. Also printed: time to the 1,000th HPA from the first create
  (goal < 45 s), and the API calls the controller made per new ScaledObject, by kind, from its
  own counters (goal: one HPA write and one status write).
* Scale: for 1,000 and 10,000 idle Redis ScaledObjects (pollingInterval 30, one Redis server)
  on a fresh adapter + controller pair: steady CPU of both processes over a minute, as % of
  one core, with the busiest second, against the same pair with no ScaledObjects (the idle
  floor, measured first in the same run); resident memory of each, and memory per object; then
  both restarted to measure start-up from empty caches to ready (adapter: /readyz; controller:
  every ScaledObject looked at once). The objects are created with the API at a high rate and
  the controller builds their HPAs with a raised rate limit (setup, not measured); the
  measured controller runs with the defaults. The HPA controller runs with its default 15 s
  sync. Goals: steady CPU at 1,000 < 4 % of a core, at 10,000 < 15 %; RSS at 10,000 < 300 MB.
  `BENCH_SCALES=1000,10000,100000` adds 100,000 (last: above 10,000 kube-controller-manager is
  stopped, HPA controller included, whose 100,000 HPAs every 15 s would be the load measured);
  the setup's creates go through the Go load generator. Goals at 100,000: RSS < 1.5 GB, ready < 60 s.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import re
import statistics
import subprocess
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

from adapter.kube.client import ApiStatusError, KubeApi  # noqa: E402
from tests.bench.loadgen import build_loadgen  # noqa: E402
from tests.harness.redis_servers import RedisServer  # noqa: E402

ACTIVATION_OBJECTS, SHORT_ROUNDS = 10, 3
OBJECTS, SINGLE_CHANGES, BURST = 1000, 20, 100
CHUNK = 250
SCALES = tuple(int(n) for n in os.environ.get("BENCH_SCALES", "1000,10000").split(","))
LARGEST_WITH_HPA_CONTROLLER = 10_000  # above it, the HPA controller is stopped
STEADY_SECONDS = 60
SETUP_FLAGS = ("--qps", "2000", "--burst", "2000", "--workers", "64")
DEFAULT_LEASE = ("--lease-duration", "15", "--renew-deadline", "10", "--retry-period", "2")


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
                events = watch.Watch().stream(list_fn, namespace, **kwargs)  # type: ignore[no-untyped-call]  # kubernetes.watch is unannotated
                for event in events:
                    version = event["object"].metadata.resource_version
                    with self._lock:
                        self.events.append((time.time(), event["object"].metadata.name, event["object"]))

    def names(self) -> set[str]:
        with self._lock:
            return {name for _, name, _ in self.events}

    def first(self, name: str, after: float, test: Callable[[Any], bool]) -> float | None:
        with self._lock:
            return next((at for at, seen, obj in self.events if seen == name and at >= after and test(obj)), None)

    def first_where(self, after: float, test: Callable[[Any], bool]) -> float | None:
        """The time of the first event after `after`, of any object, that passes `test`."""
        with self._lock:
            return next((at for at, _, obj in self.events if at >= after and test(obj)), None)

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


def pushes_across_a_poll(redis: RedisServer, ns: str, names: list[str], interval: int) -> dict[str, float]:
    """One item pushed to each object's list, at every phase of the poll; when each was pushed."""
    admin, started, pushed = redis.admin(), time.time(), {}
    for i, name in enumerate(names):
        time.sleep(max(0.0, started + i * interval / len(names) - time.time()))
        admin.rpush(f"{ns}-{name}", 1)
        pushed[name] = time.time()
    return pushed


def activation_round(redis: RedisServer, ns: str, names: list[str], interval: int, log: WatchLog) -> list[float]:
    admin, pushed = redis.admin(), pushes_across_a_poll(redis, ns, names, interval)
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
            calls_before = stack_calls(stack)
            started = time.time()
            apply(cp, ns, [deployment(n, 0) for n in names] + [scaled_object(n, IDLE_CRON, 30, 300) for n in names])
            created = time.time() - started
            wait_for(lambda: len(log.names()) == OBJECTS, 600, "1,000 HPAs", 1.0)
            synced = time.time() - started
            time.sleep(5)  # let the start-up work drain: what is measured next is the steady state
            calls = settled_calls(stack, calls_before)
            cpu_before = cpu_seconds(stack)
            with cp.api_client() as api:
                objects = client.CustomObjectsApi(api)
                singles = [change(objects, ns, random.choice(names), 20 + k, log) for k in range(SINGLE_CHANGES)]
                burst = burst_change(objects, ns, random.sample(names, BURST), log)
            return {"created_s": created, "all_hpas_s": synced, "single_s": singles, "burst_s": burst,
                    "cpu_s": cpu_seconds(stack) - cpu_before, "rss_mb": rss_mb(stack),
                    "calls_per_object": {k: v / OBJECTS for k, v in calls.items()}}
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


def _pid(stack: Stack, which: str) -> int:
    pod = stack.pods[0]
    process = pod.controller.process if which == "controller" else pod.adapter.process
    assert process is not None
    pid: int = process.pid
    return pid


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def process_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def cpu_seconds(stack: Stack) -> float:
    return process_cpu(_pid(stack, "controller"))


def rss_mb(stack: Stack) -> float:
    return process_rss_mb(_pid(stack, "controller"))


CALLS = re.compile(r"stats .* calls=(\S+)")


def stack_calls(stack: Stack) -> dict[str, int]:
    """The controller's API calls by kind, from its latest stats line."""
    found = CALLS.findall(stack.pods[0].controller.log())
    if not found or found[-1] == "-":
        return {}
    return {k: int(v) for k, v in (item.rsplit("=", 1) for item in found[-1].split(","))}


def settled_calls(stack: Stack, before: dict[str, int]) -> dict[str, int]:
    """Calls since `before`, once the controller has logged a stats line after the work."""
    lines = len(CALLS.findall(stack.pods[0].controller.log()))
    wait_for(lambda: len(CALLS.findall(stack.pods[0].controller.log())) > lines, 90, "a stats line", 1.0)
    after = stack_calls(stack)
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


# -- steady cost and start-up at scale -----------------------------------------------------------

def steady(stack: Stack, seconds: float) -> dict[str, float]:
    """CPU of adapter and controller over `seconds`, % of one core, and the busiest second."""
    pids = {which: _pid(stack, which) for which in ("adapter", "controller")}
    start = {w: process_cpu(p) for w, p in pids.items()}
    busiest, last, began = 0.0, sum(start.values()), time.monotonic()
    while time.monotonic() - began < seconds:
        time.sleep(1.0)
        now = sum(process_cpu(p) for p in pids.values())
        busiest, last = max(busiest, now - last), now
    elapsed = time.monotonic() - began
    found = {f"{w}_cpu_pct": 100 * (process_cpu(p) - start[w]) / elapsed for w, p in pids.items()}
    found.update({f"{w}_rss_mb": process_rss_mb(p) for w, p in pids.items()})
    found["busiest_second_pct"] = 100 * busiest
    return found


async def create_all(cp: ControlPlane, namespace: str, objects: list[tuple[str, dict[str, Any]]],
                     concurrency: int = 64) -> None:
    """POST every (collection path, object), `concurrency` at a time: a faster setup than kubectl."""
    api = KubeApi.connect(cp.kubeconfig)
    gate = asyncio.Semaphore(concurrency)

    async def create(path: str, body: dict[str, Any]) -> None:
        async with gate:
            for attempt in range(5):
                try:
                    await api.post(path, body)
                    return
                except ApiStatusError as exc:
                    if exc.code == 409:
                        return
                    if (exc.code < 500 and exc.code != 429) or attempt == 4:
                        raise
                    await asyncio.sleep(1)

    try:
        await asyncio.gather(*(create(path, body) for path, body in objects))
    finally:
        await api.aclose()


def create_quickly(cp: ControlPlane, objects: list[tuple[str, dict[str, Any]]], workers: int = 8) -> dict[str, Any]:
    """POST every (collection path, object) with the Go load generator: kube-apiserver's pace, not a
    Python client's (httpx spends about 7 ms of CPU per create here, the load generator a tenth)."""
    lines = "".join(f"{path}\t{json.dumps(body, separators=(',', ':'))}\n" for path, body in objects)
    done = subprocess.run([str(build_loadgen()), "-create", cp.server, "-c", str(workers), "-ca", str(cp.ca_file),
                           "-cert", str(cp.admin_cert), "-key", str(cp.admin_key)],
                          input=lines, capture_output=True, text=True, check=True, timeout=7200)
    found: dict[str, Any] = json.loads(done.stdout)
    if found["errors"]:
        raise RuntimeError(f"{found['errors']} creates failed: {done.stderr[-2000:]}")
    return found


def count(cp: ControlPlane, namespace: str, resource: str) -> int:
    found = cp.kubectl("get", resource, "-n", namespace, "-o", "name", timeout=300, check=False).stdout
    return len(found.split())


def redis_objects(namespace: str, redis: RedisServer, n: int) -> list[tuple[str, dict[str, Any]]]:
    """StatefulSets as targets (no controller acts on them here, unlike Deployments and their
    ReplicaSets: a lighter setup; the controller watches both kinds the same way)."""
    statefulsets = f"/apis/apps/v1/namespaces/{namespace}/statefulsets"
    scaled_objects = f"/apis/keda.sh/v1alpha1/namespaces/{namespace}/scaledobjects"
    objects = []
    for i in range(n):
        name = f"so-{i:05d}"
        trigger = {"type": "redis", "metadata": {"address": redis.address, "listName": f"{namespace}-{name}",
                                                 "listLength": "5"}}
        target = {**deployment(name, 0), "kind": "StatefulSet"}
        target["spec"]["serviceName"] = name
        so = scaled_object(name, trigger, 30, 300)
        so["spec"]["scaleTargetRef"]["kind"] = "StatefulSet"
        objects.append((statefulsets, target))
        objects.append((scaled_objects, {**so, "metadata": {"name": name, "namespace": namespace}}))
    return objects


def wait_gone(cp: ControlPlane, namespace: str) -> None:
    wait_for(lambda: cp.kubectl("get", "namespace", namespace, check=False).returncode != 0, 900,
             f"namespace {namespace} deleted", 2.0)


def at_scale(cp: ControlPlane, redis: RedisServer, work: Path, n: int) -> dict[str, Any]:
    ns = f"bench-scale-{n}"
    if n > LARGEST_WITH_HPA_CONTROLLER:
        cp.stop_controller_manager()  # 100,000 HPAs every 15 s would be its load, not ours
    stack, found = scale_setup(cp, redis, work, n)
    try:
        return {**found, **scale_measure(stack)}
    finally:
        stack.stop()
        cp.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        if n <= LARGEST_WITH_HPA_CONTROLLER:  # without the namespace controller nothing deletes it
            wait_gone(cp, ns)


def scale_setup(cp: ControlPlane, redis: RedisServer, work: Path, n: int) -> tuple[Stack, dict[str, Any]]:
    """A fresh pair's idle floor, then `n` ScaledObjects with their StatefulSets created with the
    controller stopped (the creates at the API server's pace), then every HPA made by the
    controller at a raised rate limit and with many workers (each HPA waits on two writes)."""
    ns = f"bench-scale-{n}"
    (work / f"scale-{n}").mkdir(parents=True, exist_ok=True)
    stack = Stack(cp, work / f"scale-{n}").start(1, *DEFAULT_LEASE, *SETUP_FLAGS)
    time.sleep(10)  # start-up work done: the floor is what an empty pair costs
    floor = steady(stack, STEADY_SECONDS / 2)
    controller = stack.pods[0].controller
    controller.stop()
    cp.kubectl("create", "namespace", ns)
    started = time.monotonic()
    create_quickly(cp, redis_objects(ns, redis, n))
    created = time.monotonic() - started
    controller.start()
    wait_for(lambda: count(cp, ns, "hpa") >= n, 3600, f"{n} HPAs", 5.0 if n <= 10_000 else 30.0)
    return stack, {"floor": floor, "created_s": created, "setup_s": time.monotonic() - started}


def scale_measure(stack: Stack) -> dict[str, Any]:
    """Start-up of both processes from empty caches (the controller at the default limits), then
    their steady cost over `STEADY_SECONDS`."""
    restart = restart_pair(stack)
    time.sleep(20)  # the first pass and the adapter's first reads are over
    return {**restart, "steady": steady(stack, STEADY_SECONDS)}


def hpas_for_new(cp: ControlPlane, stack: Stack, redis: RedisServer, n: int) -> dict[str, float]:
    """`n` ScaledObjects created while the controller is stopped, then the controller started
    with the default rate limits: seconds until every one has its HPA, apart from how fast the
    API server takes the creates."""
    ns = f"bench-new-{n}"
    pod = stack.pods[0]
    pod.controller.stop()
    cp.kubectl("create", "namespace", ns)
    try:
        asyncio.run(create_all(cp, ns, redis_objects(ns, redis, n)))
        started = time.monotonic()
        pod.controller.start()
        wait_for(lambda: count(cp, ns, "hpa") >= n, 600, f"{n} HPAs", 0.5)
        return {"objects": n, "all_hpas_s": time.monotonic() - started}
    finally:
        cp.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def restart_pair(stack: Stack) -> dict[str, float]:
    """Both processes restarted from empty caches, the controller with default rate limits:
    seconds to the adapter's /readyz, and to the controller having looked at every object."""
    pod = stack.pods[0]
    pod.controller.stop()
    pod.adapter.stop()
    started = time.monotonic()
    pod.adapter.start(timeout=600)
    adapter_ready = time.monotonic() - started
    pod.controller.flags = pod.controller.flags[:-len(SETUP_FLAGS)]
    since = pod.controller.log_size()
    controller_started = time.monotonic()
    pod.controller.start()
    wait_for(lambda: "ready in " in pod.controller.log(since), 900, "the controller ready", 0.2)
    return {"adapter_ready_s": adapter_ready, "controller_ready_s": time.monotonic() - controller_started}


# -- the controller's start-up work at 100,000, in-process ------------------------------------------

def cache_cost(n: int) -> dict[str, float]:
    """What start-up costs the controller per object before any reconcile, at `n` objects: the
    watches' transforms into the typed caches (objects shaped as kube-apiserver serves them),
    and decoding the adapter's full activity document: CPU seconds, and resident memory added."""
    import gc

    from adapter.controller.object_cache import ObjectCache, transform_for
    from adapter.keda.activity import ObjectActivity, TriggerActivity, decode_document, encode_document, encode_object
    from adapter.keda.names import SCALED_OBJECTS
    from adapter.kube.resources import HPAS, STATEFUL_SETS
    from tests.unit.controller.test_cache_memory import deployment as workload
    from tests.unit.controller.test_cache_memory import hpa
    from tests.unit.controller.test_cache_memory import scaled_object as cached_scaled_object

    cache = ObjectCache(lambda resource, old, new: None)
    gc.collect()
    rss_before, cached_s = process_rss_mb(os.getpid()), 0.0
    for resource, make in ((SCALED_OBJECTS, cached_scaled_object), (HPAS, hpa), (STATEFUL_SETS, workload)):
        transform, items = transform_for(resource), []
        for first in range(0, n, 500):  # a list page at a time, as the Reflector hands them over
            page = [json.loads(json.dumps(make(i))) for i in range(first, min(n, first + 500))]
            began = time.process_time()
            items += [transform(raw) for raw in page]
            cached_s += time.process_time() - began
        began = time.process_time()
        cache.listed(resource, items)
        cached_s += time.process_time() - began
    gc.collect()
    cache_mb = process_rss_mb(os.getpid()) - rss_before
    trigger = TriggerActivity(index=0, type="redis", metric_name="s0-redis-jobs", metric_type="AverageValue",
                              target=5.0, activation=0.0, resolved=True, value=0.0, active=False, error=None,
                              failures=0, fallback=False, read_at="2026-01-01T00:00:00.000000Z")
    body = encode_document("bench-1", True, (encode_object(ObjectActivity("bench", f"so-{i:05d}", f"u-{i}", 1, None,
                                                                         (trigger,))) for i in range(n)))
    began = time.process_time()
    decoded = decode_document(body)
    decoded_s = time.process_time() - began
    assert len(decoded.objects) == n
    return {"objects": n, "cache_s": cached_s, "cache_mb": cache_mb, "activity_s": decoded_s,
            "activity_doc_mb": len(body) / 2**20}


# -- the part -------------------------------------------------------------------------------------

def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, ControlPlane(hpa_sync_period="15s") as cp, RedisServer() as redis:
        (Path(tmp) / "latency").mkdir()
        stack = Stack(cp, Path(tmp) / "latency").start(1)
        try:
            results: dict[str, Any] = {
                "activation": {1: activation(cp, redis, 1, SHORT_ROUNDS), 30: activation(cp, redis, 30, 1)},
                "propagation": propagation(cp, stack), "new": hpas_for_new(cp, stack, redis, OBJECTS)}
        finally:
            stack.stop()
        wait_gone(cp, "bench-propagation")
        results["scale"] = {n: at_scale(cp, redis, Path(tmp), n) for n in SCALES}
    results["cache"] = cache_cost(100_000)
    return results


def _spread(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]
    return f"p50 {statistics.median(ordered):6.2f}s  p90 {p90:6.2f}s  max {ordered[-1]:6.2f}s"


def latency_line(what: str, interval: int, samples: list[float]) -> str:
    """One report line: a latency's spread at `interval`, and how many samples met interval + 0.5 s."""
    bound = interval + 0.5
    within = sum(1 for s in samples if s <= bound)
    return (f"  {what}, pollingInterval {interval:2d}s, {len(samples):2d} pushes: {_spread(samples)}"
            f"  within {bound:g}s: {within}/{len(samples)}")


def print_report(results: dict[str, Any]) -> None:
    print("controller (real kube-apiserver and HPA controller, Redis; rate limit 50/s, burst 100)")
    for interval, samples in sorted(results["activation"].items()):
        print(latency_line("activation", interval, samples))
    p = results["propagation"]
    print(f"  propagation, {OBJECTS} ScaledObjects: created in {p['created_s']:.1f}s, every HPA made "
          f"{p['all_hpas_s']:.1f}s after the first create")
    print(f"    one change -> its HPA ({SINGLE_CHANGES} changes): {_spread(p['single_s'])}  goal < 5s: "
          f"{sum(1 for s in p['single_s'] if s < 5)}/{len(p['single_s'])}")
    print(f"    {BURST} changes at once -> all {BURST} HPAs: {p['burst_s']:.2f}s")
    print(f"    controller while measuring: {p['cpu_s']:.1f}s CPU, {p['rss_mb']:.0f} MB resident")
    calls = ", ".join(f"{k} {v:.2f}" for k, v in sorted(p["calls_per_object"].items()))
    print(f"    API calls per new ScaledObject: {calls}")
    if "new" in results:
        print(f"  {results['new']['objects']:,} ScaledObjects created with the controller stopped -> every HPA "
              f"{results['new']['all_hpas_s']:.1f}s after it starts (default limits; goal < 45s)")
    for n, r in results.get("scale", {}).items():
        f, s = r["floor"], r["steady"]
        floor = f["adapter_cpu_pct"] + f["controller_cpu_pct"]
        cpu = s["adapter_cpu_pct"] + s["controller_cpu_pct"]
        print(f"  {n:,} idle Redis ScaledObjects (pollingInterval 30): steady CPU {cpu:.1f} % of a core "
              f"(adapter {s['adapter_cpu_pct']:.1f}, controller {s['controller_cpu_pct']:.1f}; empty pair "
              f"{floor:.1f}, x{cpu / max(floor, 0.01):.1f}), busiest second {s['busiest_second_pct']:.0f} %")
        per_object = {w: 1024 * (s[f"{w}_rss_mb"] - f[f"{w}_rss_mb"]) / n for w in ("adapter", "controller")}
        print(f"    RSS adapter {s['adapter_rss_mb']:.0f} MB, controller {s['controller_rss_mb']:.0f} MB "
              f"(above the empty pair: {per_object['adapter']:.1f} KB and {per_object['controller']:.1f} KB "
              f"per ScaledObject)")
        print(f"    start-up from empty caches: adapter ready {r['adapter_ready_s']:.1f}s, controller ready "
              f"{r['controller_ready_s']:.1f}s after it; setup (create {r['created_s']:.0f}s, HPAs at a raised "
              f"limit {r['setup_s']:.0f}s)")
    if "cache" in results:
        c = results["cache"]
        print(f"  controller start-up work at {c['objects']:,} objects, in-process: typed caches of ScaledObjects, "
              f"HPAs and Scales built in {c['cache_s']:.1f}s CPU, {c['cache_mb']:.0f} MB kept "
              f"({1024 * c['cache_mb'] / c['objects']:.1f} KB per object); the adapter's full activity document "
              f"({c['activity_doc_mb']:.0f} MB) decoded in {c['activity_s']:.1f}s")
