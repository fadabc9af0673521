"""Memory per ScaledObject in the controller, caches and activity view together, measured and bounded.

Beside its typed caches (tests/unit/controller/test_cache_memory.py), each ScaledObject costs
the controller its entry in the activity view, decoded from the adapter's full document. The
objects are shaped as kube-apiserver serves them (a StatefulSet target, an HPA, a ScaledObject
with managedFields, the last-applied annotation and the controller's status) and go through the
watches' transforms, the cache and the activity client (tests/bench/memory_per_object.py), in
a fresh interpreter, so that tables other tests filled are not counted or missed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.bench.memory_per_object import adapter, measure

OBJECTS = 1000
BOUND_BYTES = 6 * 1024  # about 5.0 KB measured (9.2 before interning, shared status parts, single-key indexes)


def test_memory_per_scaled_object_is_bounded(tmp_path: Path) -> None:
    for n, document in ((20, tmp_path / "warm.json"), (OBJECTS, tmp_path / "document.json")):
        asyncio.run(adapter(n, False, document))  # the activity document the controller decodes
    traced = measure("controller", OBJECTS, True, tmp_path / "document.json", warm=tmp_path / "warm.json")["traced"]
    per_object = traced["activity view"] / OBJECTS
    print(f"\ncontroller: {per_object / 1024:.1f} KB per ScaledObject (its HPA, Scale and activity)")
    assert per_object < BOUND_BYTES


RESIDENT_OBJECTS = 5000
VIEW_RESIDENT_BOUND = 1200  # bytes per ScaledObject: 700 measured here (a few arenas at 5,000), 1,900 decoded whole


def test_the_activity_view_keeps_no_more_resident_than_it_holds(tmp_path: Path) -> None:
    """Resident memory, not traced: decoding the full document whole left most of its dicts'
    memory behind, scattered among the kept objects (1.4 KB per ScaledObject for 0.5 KB held),
    which tracemalloc does not see."""
    for n, document in ((20, tmp_path / "warm.json"), (RESIDENT_OBJECTS, tmp_path / "document.json")):
        asyncio.run(adapter(n, False, document))
    resident = measure("controller", RESIDENT_OBJECTS, False, tmp_path / "document.json",
                       warm=tmp_path / "warm.json")["rss_mb"]
    per_object = (resident["activity view"] - resident["typed caches"]) * 2**20 / RESIDENT_OBJECTS
    print(f"\ncontroller: the activity view adds {per_object:.0f} B resident per ScaledObject")
    assert per_object < VIEW_RESIDENT_BOUND
