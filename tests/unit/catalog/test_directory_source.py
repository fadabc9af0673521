"""Reading a directory of manifests: what a file may hold, and what it may not make the reader do."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from adapter.catalog.directory_source import read_directory
from adapter.kube.manifest_files import MAX_ALIAS_NODES


def laughs(levels: int, width: int = 10) -> str:
    """A "billion laughs" ConfigMap: each level lists the previous one `width` times, by alias."""
    lines = ["  l0: &l0 [" + ", ".join(['"lol"'] * width) + "]"]
    lines += [f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels + 1)]
    return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: laughs}\ndata:\n" + "\n".join(lines) + "\n"


GOOD = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\ndata: {a: b}\n"


@pytest.mark.parametrize("text, problem", [
    ("kind: [ConfigMap]\nmetadata: {name: a}\n", "document 0 has a kind that is not a string"),
    ("kind: {ConfigMap: 1}\nmetadata: {name: a}\n", "document 0 has a kind that is not a string"),
    ("kind: ConfigMap\nmetadata: {name: [a]}\n", "document 0 has no metadata.name string"),
    ("kind: ConfigMap\nmetadata: {name: a, namespace: {x: 1}}\n", "metadata.namespace that is not a string"),
    ("kind: ConfigMap\nmetadata: oops\n", "document 0 is not a Kubernetes object"),
    ("kind: List\nitems: 5\n", "the items of a List must be a list"),
    ("&a [*a]\n", "cannot parse"),
    (laughs(7), f"more than {MAX_ALIAS_NODES}"),
    ("a: [" * 100_000, "cannot parse"),
    ("key: \"unterminated\n", "cannot parse"),
])
def test_a_bad_file_is_its_own_problem(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    (tmp_path / "good.yaml").write_text(GOOD)
    started = time.monotonic()
    objects, problems = read_directory(tmp_path)
    assert time.monotonic() - started < 2.0
    assert [source for _, source in objects] == ["file:good.yaml"]
    (found,) = problems
    assert found.source == "file:bad.yaml" and problem in found.message, found.message


def test_a_few_aliases_are_fine(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(laughs(2) + "---\n" + GOOD)
    objects, problems = read_directory(tmp_path)
    assert not problems and len(objects) == 2
    laughs_map = objects[0][0]
    assert laughs_map["data"]["l2"][0][0] == ["lol"] * 10
