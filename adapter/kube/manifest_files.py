"""Kubernetes manifests in a directory: the files, their documents, and a stamp to see changes.

Standalone mode reads objects from YAML (or JSON) files instead of a cluster: the adapter's
catalog (`adapter.catalog.directory_source`) and the interceptor's routes both do. Every
`*.yaml`, `*.yml` and `*.json` file below the directory may hold several documents (`---`) or a
`List`. Changes are found by comparing names, sizes and modification times, which is cheap at
this scale and needs no inotify support from the filesystem.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SUFFIXES = (".yaml", ".yml", ".json")

Stamp = tuple[tuple[str, int, int], ...]


def manifest_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix in SUFFIXES and p.is_file())


def documents(path: Path) -> Iterator[Any]:
    """The documents of one file, the items of a `List` one by one; `yaml.YAMLError` if it does not parse."""
    for doc in yaml.load_all(path.read_text(), Loader=_Loader):
        if isinstance(doc, Mapping) and doc.get("kind") == "List":
            yield from doc.get("items") or []
        elif doc is not None:
            yield doc


def stamp(directory: Path) -> Stamp:
    """Name, size and modification time of every manifest file: equal stamps, same contents."""
    stamps = []
    for path in manifest_files(directory):
        try:
            stat = path.stat()
        except OSError:
            continue
        stamps.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(stamps)
