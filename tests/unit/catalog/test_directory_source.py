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


SCALED_OBJECT = """apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: orders, namespace: shop}
spec:
  scaleTargetRef: {name: worker}
  triggers:
    - type: cron
      metadata: {timezone: UTC, start: "0 0 1 1 *", end: "59 23 31 12 *", desiredReplicas: "2"}
"""


@pytest.mark.parametrize("text, ref, problem", [
    (SCALED_OBJECT.replace("  triggers:", "  pollingIntervall: 5\n  minReplicaCont: 1\n  triggers:")
     .replace("      metadata:", "      metdata: {}\n      metadata:"),
     "ScaledObject shop/orders",
     "unknown fields: spec.pollingIntervall, spec.minReplicaCont, spec.triggers[0].metdata"),
    (SCALED_OBJECT.replace("scaleTargetRef: {name: worker}", "scaleTargetRef: {name: worker, knd: Deployment}"),
     "ScaledObject shop/orders", "unknown fields: spec.scaleTargetRef.knd"),
    (SCALED_OBJECT.replace("scaleTargetRef: {name: worker}", "scaleTargetRef: {nme: worker}"),
     "ScaledObject shop/orders", "unknown fields: spec.scaleTargetRef.nme; spec.scaleTargetRef.name is required"),
    (SCALED_OBJECT.replace("kind: ScaledObject", "kind: ScaledObjekt"), "ScaledObjekt shop/orders",
     "kind ScaledObjekt of keda.sh/v1alpha1 is not served"),
    (SCALED_OBJECT.replace("kind: ScaledObject", "kind: ScaledJob"), "ScaledJob shop/orders",
     "unknown fields: spec.scaleTargetRef; spec.jobTargetRef is required"),
    ("apiVersion: keda.sh/v1alpha1\nkind: TriggerAuthentication\nmetadata: {name: creds}\n"
     "spec: {secretTargetRef: [{parameter: password, name: s, key: k, optional: true}], vault: {}}\n",
     "TriggerAuthentication default/creds", "unknown fields: spec.secretTargetRef[0].optional, spec.vault"),
    ("apiVersion: keda.sh/v1alpha1\nkind: ClusterTriggerAuthentication\nmetadata: {name: creds}\nspek: {}\n",
     "ClusterTriggerAuthentication /creds", "unknown fields: spek"),
])
def test_what_kubectl_apply_would_refuse_is_a_problem_naming_it(tmp_path: Path, text: str, ref: str,
                                                                problem: str) -> None:
    (tmp_path / "objects.yaml").write_text(text + "---\n" + GOOD)
    objects, problems = read_directory(tmp_path)
    assert [obj["kind"] for obj, _ in objects] == ["ConfigMap"]
    (found,) = problems
    assert (str(found.ref), found.message.split(" (")[0], found.source) == (ref, problem, "file:objects.yaml")


@pytest.mark.parametrize("text", [
    SCALED_OBJECT,
    SCALED_OBJECT.replace("apiVersion: keda.sh/v1alpha1", "apiVersion: keda.k8s.io/v1alpha1")
    .replace("{name: worker}", "{deploymentName: worker}"),
    SCALED_OBJECT + "status: {conditions: []}\n",
    "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n",  # nothing reads it
])
def test_known_fields_and_other_groups_kinds_are_no_problem(tmp_path: Path, text: str) -> None:
    (tmp_path / "objects.yaml").write_text(text)
    assert read_directory(tmp_path)[1] == []
