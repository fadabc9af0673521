"""Standalone mode's object source: YAML manifests in a directory, re-read when they change.

Files are read as `adapter.kube.manifest_files` reads them (and polled for changes). An
HTTPScaledObject is served as the ScaledObject it stands for (`adapter.keda.http_scaled_object`).
A file that does not parse is reported by name and reason; everything read from the other files
keeps serving.

Strict as `kubectl apply` is against the CRDs: a keda.sh object with fields its CRD does not
have (`pollingIntervall`, `metdata`) is a problem naming every such field at once, with what
the parser says of it, and is not served; so is a kind of KEDA's groups that standalone mode
does not read (a misspelt kind), and a TriggerAuthentication that does not parse, even while no
ScaledObject reads it.
Kinds of other groups that nothing here reads (a Service, a Namespace) are skipped.

What a file holds is untrusted: one refused by `manifest_files` (too large, aliases past the
bound), or whose `kind`, `metadata.name` or `metadata.namespace` is not a string, is a problem
reported by file name, and whatever else a file throws is that file's problem too. Reading and
parsing run in a thread; the watcher task logs a failed reload and keeps watching.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from adapter.catalog.catalog import Catalog, Problem, RawObject
from adapter.keda.fields import SHAPES, unknown_fields
from adapter.keda.http_scaled_object import HTTP_SCALED_OBJECT_KIND, scaled_object_for
from adapter.keda.names import KEDA_GROUP, KEDA_GROUPS, KEDA_VERSION
from adapter.keda.objects import InvalidObject, ObjectRef, parse_scaled_object, parse_trigger_authentication
from adapter.keda.scaled_job import parse_scaled_job
from adapter.kube.manifest_files import UnsafeDocument, documents, manifest_files, stamp

log = logging.getLogger("eventscale.directory")

AUTHENTICATION_KINDS = frozenset({"TriggerAuthentication", "ClusterTriggerAuthentication"})
PARSERS: Mapping[str, Callable[[Mapping[str, Any]], object]] = {
    "ScaledObject": parse_scaled_object, "ScaledJob": parse_scaled_job,
    **dict.fromkeys(AUTHENTICATION_KINDS, parse_trigger_authentication),
}
KINDS = frozenset({
    "ScaledObject", "ScaledJob", "TriggerAuthentication", "ClusterTriggerAuthentication", "Secret", "ConfigMap",
    "Deployment", "StatefulSet", "ReplicaSet", "DaemonSet", "Job", "Rollout", "Pod", "EndpointSlice",
})


def read_directory(directory: Path) -> tuple[list[tuple[RawObject, str]], list[Problem]]:
    objects: list[tuple[RawObject, str]] = []
    problems: list[Problem] = []
    for path in manifest_files(directory):
        name = str(path.relative_to(directory))
        where = ObjectRef("File", "", name)
        try:
            docs = list(documents(path))
        except (yaml.YAMLError, UnicodeDecodeError, OSError, UnsafeDocument) as exc:
            problems.append(Problem(where, f"cannot parse: {_first_line(exc)}", f"file:{name}"))
            continue
        except Exception as exc:  # the YAML library's own failures (recursion, its bugs): this file's problem
            problems.append(Problem(where, f"cannot parse: {type(exc).__name__}", f"file:{name}"))
            continue
        log.debug("file=%s documents=%d", name, len(docs))
        for i, doc in enumerate(docs):
            problem = _shape_problem(doc)
            if problem is not None:
                problems.append(Problem(where, f"document {i} {problem}", f"file:{name}"))
            elif (strict := _strict_problem(doc)) is not None:
                problems.append(Problem(_ref(doc), strict, f"file:{name}"))
            elif doc["kind"] in KINDS:
                objects.append((doc, f"file:{name}"))
            elif doc.get("kind") == HTTP_SCALED_OBJECT_KIND:  # served as the ScaledObject it stands for
                try:
                    objects.append((scaled_object_for(doc), f"file:{name}"))
                except InvalidObject as exc:
                    problems.append(Problem(_ref(doc), str(exc), f"file:{name}"))
    return objects, problems


def _ref(doc: Mapping[str, Any]) -> ObjectRef:
    namespace = "" if doc["kind"] == "ClusterTriggerAuthentication" else doc["metadata"].get("namespace") or "default"
    return ObjectRef(doc["kind"], namespace, doc["metadata"]["name"])


def _strict_problem(doc: Mapping[str, Any]) -> str | None:
    """What `kubectl apply` would refuse in a document of KEDA's groups: unknown fields, an unknown kind."""
    api_version, kind = str(doc.get("apiVersion", "")), doc["kind"]
    group = api_version.partition("/")[0]
    if group not in (*KEDA_GROUPS, "http." + KEDA_GROUP):
        return None
    if api_version == f"{KEDA_GROUP}/{KEDA_VERSION}" and kind in SHAPES:
        unknown = list(unknown_fields(doc, SHAPES[kind]))
        # the catalog parses what it serves; trigger authentications only when something reads them
        parse = _parse_problem(doc) if unknown or kind in AUTHENTICATION_KINDS else None
        messages = [f"unknown fields: {', '.join(unknown)}"] if unknown else []
        return "; ".join([*messages, *([parse] if parse else [])]) or None
    if kind in KINDS or kind == HTTP_SCALED_OBJECT_KIND:
        return None
    served = "ScaledObject, ScaledJob, TriggerAuthentication, ClusterTriggerAuthentication, HTTPScaledObject"
    return f"kind {kind} of {api_version} is not served (standalone mode reads {served})"


def _shape_problem(doc: Any) -> str | None:
    """Why a document cannot be an object of the catalog, or None."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("metadata"), Mapping):
        return "is not a Kubernetes object"
    meta = doc["metadata"]
    if not isinstance(doc.get("kind"), str):
        return "has a kind that is not a string"
    if not isinstance(meta.get("name"), str) or not meta["name"]:
        return "has no metadata.name string"
    if not isinstance(meta.get("namespace", ""), str):
        return "has a metadata.namespace that is not a string"
    return None


def _parse_problem(doc: Mapping[str, Any]) -> str | None:
    """What the parser says of a keda.sh object, so that one edit can fix it with its unknown fields."""
    try:
        PARSERS[doc["kind"]](doc)
    except InvalidObject as exc:
        return str(exc)
    return None


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


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
        log.info("directory=%s objects=%d problems=%d", self.directory, len(objects), len(self.catalog.problems))

    def load(self) -> None:
        """Read the directory now (at start-up, before serving)."""
        found = self._read_if_changed()
        if found is not None:
            self._apply(found)

    async def run(self) -> None:
        """Poll for changes; reading and parsing happen off the event loop. Nothing stops the watch."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                found = await asyncio.to_thread(self._read_if_changed)
                if found is not None:
                    self._apply(found)
            except Exception as exc:  # logged by type: a message may quote a file's content
                log.error("directory=%s reload failed: %s; retrying", self.directory, type(exc).__name__)
                self._stamp = None  # read again at the next look
