"""Memory per ScaledObject in the adapter, measured and bounded.

Each ScaledObject costs the adapter what its watch cache keeps of it and of its target, its
parsed and resolved form in the catalog, its metric store entry with one read rendered, and its
encoding in the activity feed. The objects are shaped as kube-apiserver serves them and go
through the same transforms, cache, catalog, store and feed the process uses
(tests/bench/memory_per_object.py, which also says where the bytes go); tracemalloc counts what
stays allocated, in a fresh interpreter: tables shared by all objects (the interned names, the
shared pod templates and status parts, bounded in count) are then not already filled by other tests.
"""

from __future__ import annotations

from pathlib import Path

from tests.bench.memory_per_object import measure

OBJECTS = 1000
BOUND_BYTES = 8 * 1024  # through the activity feed; 7.1 KB measured in a fresh interpreter after one warm-up


def test_memory_per_scaled_object_is_bounded(tmp_path: Path) -> None:
    traced = measure("adapter", OBJECTS, True, tmp_path / "document.json", warm=tmp_path / "warm.json")["traced"]
    per_object = traced["activity feed"] / OBJECTS
    print(f"\nadapter: {per_object / 1024:.1f} KB per ScaledObject (with its StatefulSet), "
          f"{traced['/metrics series'] / OBJECTS / 1024:.1f} KB once /metrics is scraped")
    assert per_object < BOUND_BYTES
