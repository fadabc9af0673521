"""Memory per ScaledObject in each process, in-process: where the bytes go, and what stays resident.

10,000 idle Redis ScaledObjects (with their StatefulSets and HPAs, shaped as kube-apiserver
serves them: tests/harness/served_objects.py) go through the code paths of the real processes,
a list page of 500 at a time as the Reflector hands them over:

* adapter: the KubernetesSource's transforms and cache, the catalog (parse, resolve), the
  metric store following it, one read recorded and rendered per trigger, the controller's report
  of every target at zero, the activity feed's full document, the `/metrics` per-object series;
* controller: the watches' transforms into the typed caches, and the activity view decoding
  the adapter's full document (the one the adapter above produced).

Each process is measured in a subprocess of its own, twice: once with tracemalloc (bytes per
object by structure and by allocating line) and once without (resident memory above the empty
process, after `gc.collect()`, and after `malloc_trim(0)`).

    python -m tests.bench memory
    python -m tests.bench.memory_per_object adapter 10000 doc.json --trace   # one process, one way

(the adapter writes its activity document to the file given, the controller decodes it from there).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OBJECTS = 10_000
PAGE = 500
TOP = 30


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _trim() -> None:
    ctypes.CDLL("libc.so.6").malloc_trim(0)


class Phases:
    """Bytes (tracemalloc) or resident MB after each phase, from the same start."""

    def __init__(self, trace: bool) -> None:
        self.trace = trace
        self.found: dict[str, float] = {}
        gc.collect()
        if trace:
            tracemalloc.start(1)
            self._start = tracemalloc.take_snapshot()
        else:
            _trim()
            self._rss = rss_mb()

    def mark(self, phase: str) -> None:
        gc.collect()
        if self.trace:
            self.found[phase] = float(tracemalloc.get_traced_memory()[0])
        else:
            self.found[phase] = rss_mb() - self._rss

    def finish(self) -> dict[str, Any]:
        if not self.trace:
            gc.collect()
            _trim()
            self.found["after malloc_trim"] = rss_mb() - self._rss
            return {"rss_mb": self.found}
        stats = tracemalloc.take_snapshot().compare_to(self._start, "lineno")
        tracemalloc.stop()
        top = [(s.size_diff, s.count_diff, str(s.traceback[0])) for s in stats[:TOP]]
        return {"traced": self.found, "top": top}


def _served(made: dict[Any, Callable[[int], dict[str, Any]]], n: int, where: Path) -> dict[Any, list[Path]]:
    """The list pages of `n` objects of each resource as kube-apiserver serves them, 500 to a
    page, written to files before measuring: read back, a page is one block of bytes, as off
    the network, not the dicts that made it."""
    from tests.harness.served_objects import page
    where.mkdir(exist_ok=True)
    pages: dict[Any, list[Path]] = {resource: [] for resource in made}
    for resource, make in made.items():
        for first in range(0, n, PAGE):
            body = where / f"{resource.plural}-{first}.json"
            body.write_bytes(page(make, first, min(n, first + PAGE)))
            pages[resource].append(body)
    return pages


def _listed(pages: list[Path], transform: Callable[[Any], Any]) -> list[Any]:
    """Objects listed as the Reflector lists them: each item transformed as it is decoded."""
    from adapter.kube.json_walk import decode_members
    kept: list[Any] = []
    for body in pages:
        decode_members(body.read_bytes(), {"items": lambda raw: kept.append(transform(raw))})
    return kept


# -- the adapter --------------------------------------------------------------------------------

async def adapter(n: int, trace: bool, document: Path) -> dict[str, Any]:
    from adapter.api.activity_feed import ActivityFeed
    from adapter.api.metrics_endpoint import Exposition
    from adapter.catalog.catalog import Catalog
    from adapter.catalog.kubernetes_source import KubernetesSource
    from adapter.keda.activity import TargetsReport, TargetState
    from adapter.keda.names import SCALED_OBJECTS
    from adapter.kube.client import KubeApi
    from adapter.kube.credentials import Credentials
    from adapter.kube.resources import STATEFUL_SETS
    from adapter.store.store import MetricStore
    from scalers import ScalerRegistry
    from tests.harness.served_objects import scaled_object, stateful_set

    catalog, store = Catalog(ScalerRegistry()), MetricStore(timeout=5)
    store.follow(catalog)
    api = KubeApi(Credentials("https://127.0.0.1:1"))  # never called: the lists are fed by hand
    source = KubernetesSource(api, catalog)
    pages = _served({SCALED_OBJECTS: scaled_object, STATEFUL_SETS: stateful_set}, n, document.parent / "adapter-pages")
    phases = Phases(trace)
    feed = ActivityFeed(catalog, store)
    exposition = Exposition(store)
    exposition.render()
    await feed.document()
    for reflector in source.reflectors:
        source.listed(reflector.resource, _listed(pages.get(reflector.resource, []), reflector._transform))
    phases.mark("source cache")
    source.sync()
    phases.mark("catalog + store")
    now = store.clock()
    keys = set()
    for entry in store.entries():
        entry.record(0.0, now)
        entry.render(store.target(entry.object_key))
        keys.add(entry.object_key)
    store.notify(keys)
    phases.mark("one read per trigger")
    store.set_targets(TargetsReport(tuple(TargetState(*key, at_zero=True) for key in sorted(keys)), complete=True))
    del keys
    phases.mark("targets at zero")
    body = await feed.document()
    document.write_bytes(body)
    del body
    phases.mark("activity feed")
    exposition.render()
    phases.mark("/metrics series")
    assert len(list(catalog.scaled_objects())) == n, "every ScaledObject resolved"
    assert sum(1 for _ in store.entries()) == n
    found = phases.finish()
    await store.aclose()
    await api.aclose()
    return found


# -- the controller -----------------------------------------------------------------------------

async def controller(n: int, trace: bool, document: Path) -> dict[str, Any]:
    from adapter.controller.activity_client import ActivityClient
    from adapter.controller.object_cache import SCALED_OBJECT_RESOURCES, ObjectCache, transform_for
    from adapter.keda.activity import decode_document
    from adapter.keda.names import SCALED_OBJECTS
    from adapter.kube.resources import DEPLOYMENTS, HPAS, STATEFUL_SETS
    from tests.harness.served_objects import hpa, scaled_object, stateful_set

    cache = ObjectCache(lambda resource, old, new: None)
    activity = ActivityClient("http://127.0.0.1:1", lambda keys: None)
    pages = _served({SCALED_OBJECTS: scaled_object, HPAS: hpa, STATEFUL_SETS: stateful_set}, n,
                    document.parent / "controller-pages")
    phases = Phases(trace)
    for resource in (*SCALED_OBJECT_RESOURCES, HPAS, DEPLOYMENTS, STATEFUL_SETS):
        cache.listed(resource, _listed(pages.get(resource, []), transform_for(resource)))
    phases.mark("typed caches")
    raw = document.read_bytes()
    activity.update(decode_document(raw))
    del raw
    phases.mark("activity view")
    assert len(activity.objects) == n and cache.count(HPAS) == n
    found = phases.finish()
    await activity.aclose()
    return found


PROCESSES = {"adapter": adapter, "controller": controller}


def measure(which: str, n: int, trace: bool, document: Path, warm: Path | None = None) -> dict[str, Any]:
    """One process's figures, in a fresh interpreter (first warmed with 20 objects and the
    document `warm`, if given: imports and first-use tables are then not counted per object)."""
    command = [sys.executable, "-m", "tests.bench.memory_per_object", which, str(n), str(document),
               *(["--trace"] if trace else []), *(["--warm", str(warm)] if warm else [])]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True, timeout=900)
    found: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return found


def run(n: int = OBJECTS) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:  # the document, and the list pages written beside it
        document = Path(tmp) / "activity-document.json"
        results: dict[str, Any] = {"objects": n}
        for which in PROCESSES:  # the adapter first: it writes the document the controller decodes
            began = time.monotonic()
            results[which] = {**measure(which, n, False, document), **measure(which, n, True, document),
                              "seconds": time.monotonic() - began}
        return results


def print_report(results: dict[str, Any]) -> None:
    n = results["objects"]
    print(f"memory per ScaledObject, in-process, {n:,} idle Redis ScaledObjects (StatefulSet, HPA) as served")
    for which in PROCESSES:
        r = results[which]
        traced, rss = r["traced"], r["rss_mb"]
        print(f"  {which}:")
        before = 0.0
        for phase, total in traced.items():
            print(f"    {phase:24s} {(total - before) / n / 1024:6.2f} KB traced per object")
            before = total
        print(f"    {'total':24s} {before / n / 1024:6.2f} KB traced; resident "
              + ", ".join(f"{phase} {1024 * mb / n:.2f} KB" for phase, mb in rss.items()))
        for size, count, where in r["top"]:
            print(f"      {size / n:8.0f} B {count / n:6.1f} blocks  {where}")


def main(argv: list[str]) -> int:
    which, n, document = argv[0], int(argv[1]), Path(argv[2])
    if "--warm" in argv:
        asyncio.run(PROCESSES[which](20, "--trace" in argv, Path(argv[argv.index("--warm") + 1])))
    found = asyncio.run(PROCESSES[which](n, "--trace" in argv, document))
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
