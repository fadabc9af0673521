"""Standalone mode's object source: YAML manifests in a directory, re-read when they change.

Every `*.yaml`, `*.yml` and `*.json` file below the directory may hold several documents
(`---`) or a `List`. Kinds we do not know are ignored. A file that does not parse is reported by
name and reason; everything read from the other files keeps serving. Changes are found by
polling file names, sizes and modification times, which is cheap at this scale and needs no
inotify support from the filesystem.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from adapter.catalog.catalog import Catalog, Problem, RawObject
from adapter.keda.objects import ObjectRef

log = logging.getLogger("eventscale.directory")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

KINDS = frozenset({
    "ScaledObject", "TriggerAuthentication", "ClusterTriggerAuthentication", "Secret", "ConfigMap",
    "Deployment", "StatefulSet", "ReplicaSet", "DaemonSet", "Job", "Rollout", "Pod", "EndpointSlice",
})
SUFFIXES = (".yaml", ".yml", ".json")


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix in SUFFIXES and p.is_file())


def _documents(path: Path) -> Iterator[Any]:
    for doc in yaml.load_all(path.read_text(), Loader=_Loader):
        if isinstance(doc, Mapping) and doc.get("kind") == "List":
            yield from doc.get("items") or []
        elif doc is not None:
            yield doc


def read_directory(directory: Path) -> tuple[list[tuple[RawObject, str]], list[Problem]]:
    objects: list[tuple[RawObject, str]] = []
    problems: list[Problem] = []
    for path in _files(directory):
        name = str(path.relative_to(directory))
        try:
            docs = list(_documents(path))
        except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
            problems.append(Problem(ObjectRef("File", "", name), f"cannot parse: {_first_line(exc)}", f"file:{name}"))
            continue
        for i, doc in enumerate(docs):
            if not isinstance(doc, Mapping) or not isinstance(doc.get("metadata"), Mapping):
                message = f"document {i} is not a Kubernetes object"
                problems.append(Problem(ObjectRef("File", "", name), message, f"file:{name}"))
            elif doc.get("kind") in KINDS:
                objects.append((doc, f"file:{name}"))
    return objects, problems


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


class DirectorySource:
    """Feeds a catalog from a directory and keeps it current."""

    def __init__(self, directory: Path, catalog: Catalog, interval: float = 1.0) -> None:
        self.directory = directory
        self.catalog = catalog
        self.interval = interval
        self._stamp: tuple[tuple[str, int, int], ...] | None = None

    def _current_stamp(self) -> tuple[tuple[str, int, int], ...]:
        stamps = []
        for path in _files(self.directory):
            try:
                stat = path.stat()
            except OSError:
                continue
            stamps.append((str(path), stat.st_size, stat.st_mtime_ns))
        return tuple(stamps)

    def _read_if_changed(self) -> tuple[list[tuple[RawObject, str]], list[Problem]] | None:
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        return read_directory(self.directory)

    def _apply(self, found: tuple[list[tuple[RawObject, str]], list[Problem]]) -> None:
        objects, problems = found
        self.catalog.replace_all(objects, problems)
        log.info("directory=%s objects=%d problems=%d", self.directory, len(objects), len(problems))

    def load(self) -> None:
        """Read the directory now (at start-up, before serving)."""
        found = self._read_if_changed()
        if found is not None:
            self._apply(found)

    async def run(self) -> None:
        """Poll for changes; reading and parsing happen off the event loop."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                found = await asyncio.to_thread(self._read_if_changed)
            except Exception:  # a transient filesystem error must not stop watching
                log.exception("directory=%s reload failed", self.directory)
                continue
            if found is not None:
                self._apply(found)
