"""Standalone mode's object source: YAML manifests in a directory, re-read when they change.

Every `*.yaml`, `*.yml` and `*.json` file below the directory may hold several documents
(`---`) or a `List`. Kinds we do not know are ignored. A file that does not parse is reported by
name and reason; everything read from the other files keeps serving. Changes are found by
polling file names, sizes and modification times, which is cheap at this scale and needs no
inotify support from the filesystem.

What a file holds is untrusted: a file larger than `MAX_FILE_BYTES`, a document whose YAML
aliases would expand past `MAX_ALIAS_NODES` extra nodes (a "billion laughs"), or one whose
`kind`, `metadata.name` or `metadata.namespace` is not a string is a problem reported by file
name, and whatever else a file throws is that file's problem too. Reading and parsing run in a
thread; the watcher task logs a failed reload and keeps watching.
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
    "Deployment", "StatefulSet", "ReplicaSet", "DaemonSet", "Job", "Rollout",
})
SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_ALIAS_NODES = 10_000  # nodes that aliases may add to a document, beyond those written out


class UnsafeDocument(ValueError):
    """A document refused before it is built (alias expansion past the bound, recursive aliases)."""


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix in SUFFIXES and p.is_file())


def expanded_size(root: yaml.Node) -> int:
    """Nodes in the document once every alias is expanded; `UnsafeDocument` when aliases recurse."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if children_done:
            on_path.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in children)
            continue
        if id(node) in on_path:
            raise UnsafeDocument("an alias refers to a node that contains it")
        on_path.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in on_path:
                raise UnsafeDocument("an alias refers to a node that contains it")
            stack.append((child, False))
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _distinct(root: yaml.Node) -> int:
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen.add(id(node))
            stack.extend(_children(node))
    return len(seen)


def load_documents(text: str) -> Iterator[Any]:
    """The documents of a YAML stream, each checked for alias expansion before it is built."""
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            added = expanded_size(node) - _distinct(node)
            if added > MAX_ALIAS_NODES:
                raise UnsafeDocument(f"YAML aliases would add {added} nodes, more than {MAX_ALIAS_NODES}")
            yield loader.construct_document(node)
    finally:
        loader.dispose()


def _documents(path: Path) -> Iterator[Any]:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise UnsafeDocument(f"the file has {size} bytes, more than {MAX_FILE_BYTES}")
    for doc in load_documents(path.read_text()):
        if isinstance(doc, Mapping) and doc.get("kind") == "List":
            items = doc.get("items")
            if items is not None and not isinstance(items, list):
                raise UnsafeDocument("the items of a List must be a list")
            yield from items or []
        elif doc is not None:
            yield doc


def read_directory(directory: Path) -> tuple[list[tuple[RawObject, str]], list[Problem]]:
    objects: list[tuple[RawObject, str]] = []
    problems: list[Problem] = []
    for path in _files(directory):
        name = str(path.relative_to(directory))
        where = ObjectRef("File", "", name)
        try:
            docs = list(_documents(path))
        except (yaml.YAMLError, UnicodeDecodeError, OSError, UnsafeDocument) as exc:
            problems.append(Problem(where, f"cannot parse: {_first_line(exc)}", f"file:{name}"))
            continue
        except Exception as exc:  # the YAML library's own failures (recursion, its bugs): this file's problem
            problems.append(Problem(where, f"cannot parse: {type(exc).__name__}", f"file:{name}"))
            continue
        for i, doc in enumerate(docs):
            problem = _shape_problem(doc)
            if problem is not None:
                problems.append(Problem(where, f"document {i} {problem}", f"file:{name}"))
            elif doc["kind"] in KINDS:
                objects.append((doc, f"file:{name}"))
    return objects, problems


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


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


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
