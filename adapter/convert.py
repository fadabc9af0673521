"""`python -m adapter convert`: rewrite 2019 ScaledObjects (keda.k8s.io) as keda.sh/v1alpha1.

The 2019 CRD is opt-in (manifests/components/legacy-keda-k8s-io) because its `scaledobjects`
resource competes with KEDA 2.x's for kubectl's names; converting the objects lets a user drop
it. The rewrite is the one the catalog applies when it reads a 2019 object, written out:
`scaleTargetRef.deploymentName` becomes `name`, `containerName` becomes
`envSourceContainerName`, and trigger metadata keys whose value names an environment variable
(`adapter.keda.objects.legacy_key`) become `<key>FromEnv`, so the converted object serves the same metric from
the same values. A `scaleType: job` object becomes a keda.sh ScaledJob with the same
`jobTargetRef`, `pollingInterval`, `maxReplicaCount` and triggers, and `rollout.strategy:
gradual` (KEDA 1.x never deleted running Jobs on a change); `cooldownPeriod` and
`minReplicaCount`, which KEDA 1.x did not use for Jobs, are left out with a note rather than
given 2.x's meaning (a minimum of Jobs always running). Fields the 2019 format does not have are
refused by name rather than dropped.
Other objects in the input (Deployments, Secrets, keda.sh objects) pass through unchanged;
`kind: List` (as `kubectl get -o yaml` writes) is unpacked.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from adapter.keda.names import KEDA_GROUP, LEGACY_GROUP
from adapter.keda.objects import legacy_key

LEGACY_API_VERSION = f"{LEGACY_GROUP}/v1alpha1"
API_VERSION = f"{KEDA_GROUP}/v1alpha1"
SPEC_KEYS = frozenset({"scaleTargetRef", "triggers", "pollingInterval", "cooldownPeriod", "minReplicaCount",
                       "maxReplicaCount"})
JOB_SPEC_KEYS = frozenset({"scaleType", "jobTargetRef", "triggers", "pollingInterval", "cooldownPeriod",
                           "minReplicaCount", "maxReplicaCount"})
JOB_UNUSED = ("cooldownPeriod", "minReplicaCount")  # read by KEDA 1.x for Deployments only
TRIGGER_KEYS = frozenset({"type", "metadata", "authenticationRef"})
TARGET_KEYS = frozenset({"deploymentName", "containerName"})
METADATA_KEPT = ("name", "namespace", "labels", "annotations")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


class ConversionError(ValueError):
    """An object that cannot be rewritten faithfully; the message names the object and the field."""


@dataclass(frozen=True)
class Converted:
    """The rewritten documents and notes for the user (behaviour that changes with the format)."""

    documents: tuple[dict[str, Any], ...]
    notes: tuple[str, ...]


def legacy_metadata(metadata: Mapping[str, Any], where: str) -> dict[str, Any]:
    """2019 trigger metadata with env-naming keys renamed `<key>FromEnv`, in the original order."""
    renamed: dict[str, Any] = {}
    for key, value in metadata.items():
        new_key = legacy_key(key)
        if new_key in renamed or (new_key != key and new_key in metadata):
            raise ConversionError(f"{where}: both {key} and {new_key} are set")
        renamed[new_key] = value
    return renamed


def convert_documents(documents: Iterable[Any], source: str) -> Converted:
    converted: list[dict[str, Any]] = []
    notes: list[str] = []
    for index, document in enumerate(documents):
        for obj in _objects(document, f"{source}: document {index + 1}"):
            new, note = _convert(obj)
            converted.append(new)
            if note:
                notes.append(note)
    return Converted(tuple(converted), tuple(notes))


def _objects(document: Any, where: str) -> Iterator[dict[str, Any]]:
    if document is None:
        return
    if not isinstance(document, dict):
        raise ConversionError(f"{where}: not a Kubernetes object")
    if document.get("kind") == "List":
        for item in document.get("items") or []:
            yield from _objects(item, where)
        return
    yield document


def _convert(obj: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    if obj.get("apiVersion") != LEGACY_API_VERSION:
        return obj, None
    meta = obj.get("metadata") or {}
    namespace, name = meta.get("namespace"), meta.get("name") or "(no name)"
    where = f"{obj.get('kind')} {namespace}/{name}" if namespace else f"{obj.get('kind')} {name}"
    if obj.get("kind") == "TriggerAuthentication":
        return {"apiVersion": API_VERSION, "kind": "TriggerAuthentication", "metadata": _metadata(meta),
                "spec": obj.get("spec") or {}}, None
    if obj.get("kind") != "ScaledObject":
        raise ConversionError(f"{where}: kind {obj.get('kind')} of {LEGACY_API_VERSION} has no keda.sh rewrite")
    return _scaled_object(obj, meta, where)


def _scaled_object(obj: dict[str, Any], meta: Mapping[str, Any], where: str) -> tuple[dict[str, Any], str | None]:
    spec = _mapping(obj.get("spec"), f"{where}: spec")
    scale_type = spec.get("scaleType", "deployment")
    if scale_type == "job":
        return _scaled_job(meta, spec, where)
    if scale_type != "deployment":
        raise ConversionError(f'{where}: spec.scaleType "{scale_type}" must be deployment or job')
    spec = {k: v for k, v in spec.items() if k != "scaleType"}
    _only(spec, SPEC_KEYS, f"{where}: spec")
    ref = _mapping(spec.get("scaleTargetRef"), f"{where}: spec.scaleTargetRef")
    _only(ref, TARGET_KEYS, f"{where}: spec.scaleTargetRef")
    deployment = ref.get("deploymentName")
    if not deployment:
        raise ConversionError(f"{where}: spec.scaleTargetRef.deploymentName is required")
    target: dict[str, Any] = {"name": deployment}
    if ref.get("containerName"):
        target["envSourceContainerName"] = ref["containerName"]
    new_spec: dict[str, Any] = {"scaleTargetRef": target}
    new_spec.update((key, value) for key, value in spec.items() if key not in ("scaleTargetRef", "triggers"))
    new_spec["triggers"] = [_trigger(trigger, f"{where}: spec.triggers[{i}]")
                            for i, trigger in enumerate(_sequence(spec.get("triggers"), f"{where}: spec.triggers"))]
    name = meta.get("name")
    note = None
    if name != deployment:
        note = (f"{where}: the HPA becomes keda-hpa-{name} (was keda-hpa-{deployment}) and selects its metrics "
                f"by scaledobject.keda.sh/name={name} (was deploymentName={deployment})")
    return {"apiVersion": API_VERSION, "kind": "ScaledObject", "metadata": _metadata(meta), "spec": new_spec}, note


def _scaled_job(meta: Mapping[str, Any], spec: Mapping[str, Any], where: str) -> tuple[dict[str, Any], str | None]:
    """A 2019 `scaleType: job` ScaledObject as the keda.sh ScaledJob that creates the same Jobs."""
    _only(spec, JOB_SPEC_KEYS, f"{where}: spec")
    job_spec = _mapping(spec.get("jobTargetRef"), f"{where}: spec.jobTargetRef")
    new_spec: dict[str, Any] = {"jobTargetRef": job_spec}
    new_spec.update((key, spec[key]) for key in ("pollingInterval", "maxReplicaCount") if key in spec)
    new_spec["rollout"] = {"strategy": "gradual"}
    new_spec["triggers"] = [_trigger(trigger, f"{where}: spec.triggers[{i}]")
                            for i, trigger in enumerate(_sequence(spec.get("triggers"), f"{where}: spec.triggers"))]
    unused = [key for key in JOB_UNUSED if key in spec]
    note = (f"{where}: becomes ScaledJob {meta.get('name')}; its Jobs are labelled scaledjob.keda.sh/name "
            f"(the 2019 object's Jobs, labelled scaledobject, are not counted: delete it with --cascade=orphan "
            f"to let them finish)")
    if unused:
        note += f"; {' and '.join(unused)} left out (KEDA 1.x did not use them for Jobs)"
    return {"apiVersion": API_VERSION, "kind": "ScaledJob", "metadata": _metadata(meta), "spec": new_spec}, note


def _trigger(raw: Any, where: str) -> dict[str, Any]:
    trigger = _mapping(raw, where)
    _only(trigger, TRIGGER_KEYS, where)
    converted = dict(trigger)
    converted["metadata"] = legacy_metadata(_mapping(trigger.get("metadata"), f"{where}.metadata"), f"{where}.metadata")
    return converted


def _metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    """What a user writes (name, namespace, labels, annotations); what the server set is left behind."""
    kept = {key: meta[key] for key in METADATA_KEPT if meta.get(key)}
    annotations = {k: v for k, v in (kept.get("annotations") or {}).items() if k != LAST_APPLIED}
    if annotations:
        kept["annotations"] = annotations
    else:
        kept.pop("annotations", None)
    return kept


def _only(mapping: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise ConversionError(f"{where}.{unknown[0]} is not a field of the 2019 format that convert knows; "
                              "rewrite it by hand")


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConversionError(f"{where} must be an object")
    return value


def _sequence(value: Any, where: str) -> Sequence[Any]:
    if not isinstance(value, list) or not value:
        raise ConversionError(f"{where} must be a non-empty list")
    return value


def _read(name: str, stdin: TextIO) -> list[Any]:
    text = stdin.read() if name == "-" else Path(name).read_text()
    try:
        return list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise ConversionError(f"{name}: not YAML: {exc}") from None


def run(files: Sequence[str], stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout,
        stderr: TextIO = sys.stderr) -> int:
    """Convert every file (`-` is standard input) and write all documents to stdout, or nothing on error."""
    documents: list[dict[str, Any]] = []
    try:
        for name in files:
            result = convert_documents(_read(name, stdin), "<stdin>" if name == "-" else name)
            documents.extend(result.documents)
            for note in result.notes:
                print(f"note: {note}", file=stderr)
    except (ConversionError, OSError) as exc:
        print(f"convert: {exc}", file=stderr)
        return 1
    yaml.safe_dump_all(documents, stdout, sort_keys=False, explicit_start=True)
    return 0
