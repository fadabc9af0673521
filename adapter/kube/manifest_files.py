"""Kubernetes manifests in a directory: the files, their documents, and a stamp to see changes.

Standalone mode reads objects from YAML (or JSON) files instead of a cluster: the adapter's
catalog (`adapter.catalog.directory_source`) and the interceptor's routes both do. Every
`*.yaml`, `*.yml` and `*.json` file below the directory may hold several documents (`---`) or a
`List`. Changes are found by comparing names, sizes and modification times, which is cheap at
this scale and needs no inotify support from the filesystem.

What a file holds is untrusted: a file larger than `MAX_FILE_BYTES`, or a document whose YAML
aliases would expand past `MAX_ALIAS_NODES` extra nodes (a "billion laughs"), is refused with
`UnsafeDocument` before anything is built.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_ALIAS_NODES = 10_000  # nodes that aliases may add to a document, beyond those written out


class UnsafeDocument(ValueError):
    """A document refused before it is built (alias expansion past the bound, recursive aliases)."""

Stamp = tuple[tuple[str, int, int], ...]


def manifest_files(directory: Path) -> list[Path]:
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


def documents(path: Path) -> Iterator[Any]:
    """The documents of one file, the items of a `List` one by one; `yaml.YAMLError` if it does not
    parse, `UnsafeDocument` if it is too large or its aliases expand past the bound."""
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
