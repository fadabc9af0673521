"""Standalone mode's object source: YAML manifests in a directory, re-read when they change.

Files are read as `adapter.kube.manifest_files` reads them (and polled for changes). Kinds we
do not know are ignored; an HTTPScaledObject is served as the ScaledObject it stands for
(`adapter.keda.http_scaled_object`). A file that does not parse is reported by name and
reason; everything read from the other files keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path

import yaml

from adapter.catalog.catalog import Catalog, Problem, RawObject
from adapter.keda.http_scaled_object import HTTP_SCALED_OBJECT_KIND, scaled_object_for
from adapter.keda.objects import InvalidObject, ObjectRef
from adapter.kube.manifest_files import documents, manifest_files, stamp

log = logging.getLogger("eventscale.directory")

KINDS = frozenset({
    "ScaledObject", "TriggerAuthentication", "ClusterTriggerAuthentication", "Secret", "ConfigMap",
    "Deployment", "StatefulSet", "ReplicaSet", "DaemonSet", "Job", "Rollout",
})


def read_directory(directory: Path) -> tuple[list[tuple[RawObject, str]], list[Problem]]:
    objects: list[tuple[RawObject, str]] = []
    problems: list[Problem] = []
    for path in manifest_files(directory):
        name = str(path.relative_to(directory))
        try:
            docs = list(documents(path))
        except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
            problems.append(Problem(ObjectRef("File", "", name), f"cannot parse: {_first_line(exc)}", f"file:{name}"))
            continue
        for i, doc in enumerate(docs):
            if not isinstance(doc, Mapping) or not isinstance(doc.get("metadata"), Mapping):
                message = f"document {i} is not a Kubernetes object"
                problems.append(Problem(ObjectRef("File", "", name), message, f"file:{name}"))
            elif doc.get("kind") in KINDS:
                objects.append((doc, f"file:{name}"))
            elif doc.get("kind") == HTTP_SCALED_OBJECT_KIND:  # served as the ScaledObject it stands for
                try:
                    objects.append((scaled_object_for(doc), f"file:{name}"))
                except InvalidObject as exc:
                    ref = ObjectRef(HTTP_SCALED_OBJECT_KIND, str(doc["metadata"].get("namespace") or "default"),
                                    str(doc["metadata"].get("name")))
                    problems.append(Problem(ref, str(exc), f"file:{name}"))
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

    def _read_if_changed(self) -> tuple[list[tuple[RawObject, str]], list[Problem]] | None:
        current = stamp(self.directory)
        if current == self._stamp:
            return None
        self._stamp = current
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
