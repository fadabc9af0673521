"""The shipped CRDs: every schema field described (what `kubectl explain` prints), KEDA's names."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_FILES = (
    "manifests/crds/keda.sh_scaledobjects.yaml",
    "manifests/crds/keda.sh_scaledjobs.yaml",
    "manifests/crds/keda.sh_triggerauthentications.yaml",
    "manifests/crds/keda.sh_clustertriggerauthentications.yaml",
    "manifests/components/legacy-keda-k8s-io/keda.k8s.io_scaledobjects.yaml",
)


def undescribed(schema: dict[str, Any], path: str) -> Iterator[str]:
    """Paths of schema nodes (the root, properties, items, additionalProperties) without a description.

    The root's `metadata` is the exception: kube-apiserver forbids describing it and publishes
    ObjectMeta's own description there.
    """
    if not str(schema.get("description") or "").strip():
        yield path
    for name, child in (schema.get("properties") or {}).items():
        if not (name == "metadata" and "." not in path):
            yield from undescribed(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from undescribed(schema[key], f"{path}[{key}]")


@pytest.mark.parametrize("path", CRD_FILES)
def test_every_field_has_a_description(path: str) -> None:
    crd = yaml.safe_load((ROOT / path).read_text())
    for version in crd["spec"]["versions"]:
        missing = list(undescribed(version["schema"]["openAPIV3Schema"], crd["spec"]["names"]["kind"]))
        assert not missing, f"{path}: no description at {missing}"


@pytest.mark.parametrize("path, short_names, columns", [
    (CRD_FILES[0], ["so"], ["ScaleTargetKind", "ScaleTargetName", "Min", "Max", "Ready", "Active", "Fallback",
                            "Paused", "Triggers", "Authentications", "Age"]),
    (CRD_FILES[1], ["sj"], ["Min", "Max", "Ready", "Active", "Paused", "Triggers", "Authentications", "Age"]),
    (CRD_FILES[2], ["ta", "triggerauth"], ["PodIdentity", "Secret", "Env", "VaultAddress", "ScaledObjects",
                                           "ScaledJobs"]),
    (CRD_FILES[3], ["cta", "clustertriggerauth"], ["PodIdentity", "Secret", "Env", "FilePath", "VaultAddress",
                                                   "ScaledObjects", "ScaledJobs"]),
])
def test_names_and_printer_columns_are_kedas(path: str, short_names: list[str], columns: list[str]) -> None:
    crd = yaml.safe_load((ROOT / path).read_text())
    assert crd["spec"]["names"]["shortNames"] == short_names
    assert [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]] == columns


def test_the_2019_crd_is_not_in_the_default_install() -> None:
    listed = yaml.safe_load((ROOT / "manifests/crds/kustomization.yaml").read_text())["resources"]
    assert not [name for name in listed if "keda.k8s.io" in name]


def shape_of(schema: dict[str, Any]) -> Any:
    """The adapter.keda.fields shape a CRD schema node stands for."""
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        return {name: shape_of(child) for name, child in schema["properties"].items()}
    if schema.get("type") == "array" and "properties" in schema.get("items", {}):
        return [shape_of(schema["items"])]
    return None


@pytest.mark.parametrize("path, kind", [(CRD_FILES[0], "ScaledObject"), (CRD_FILES[1], "ScaledJob"),
                                        (CRD_FILES[2], "TriggerAuthentication"),
                                        (CRD_FILES[3], "ClusterTriggerAuthentication")])
def test_standalone_modes_field_shapes_are_the_crds(path: str, kind: str) -> None:
    from adapter.keda.fields import SHAPES

    crd = yaml.safe_load((ROOT / path).read_text())
    (version,) = crd["spec"]["versions"]
    expected = shape_of(version["schema"]["openAPIV3Schema"])
    expected["metadata"] = None  # ObjectMeta: kube-apiserver's own, never in the CRD schema
    assert SHAPES[kind] == expected
