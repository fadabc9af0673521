"""`scaffold`: a first workload's manifests (KEDA's `func kubernetes deploy` in one command).

It writes a Deployment, a ScaledObject with one trigger and, when credentials are given, a
Secret and the TriggerAuthentication that hands them to the trigger, as one YAML stream that
`kubectl apply -f` takes. Before writing, the objects are resolved by the catalog exactly as the
adapter will resolve them, so an unknown trigger type, a missing or misspelt parameter or a bad
value is refused here, with the trigger's own message, instead of surfacing later as a 404 to
the HPA. Credentials never go into the ScaledObject: only into the Secret.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from adapter.catalog.catalog import Catalog
from scalers.registry import ScalerRegistry

RawObject = dict[str, Any]


@dataclass(frozen=True)
class Workload:
    name: str
    image: str
    trigger: str
    metadata: dict[str, str]
    auth: dict[str, str]
    namespace: str = "default"
    min_replicas: int = 0
    max_replicas: int = 10
    polling_interval: int = 30

    @property
    def auth_name(self) -> str:
        return f"{self.name}-trigger-auth"


def pairs(values: Sequence[str], flag: str) -> dict[str, str]:
    """`KEY=VALUE` arguments as a mapping; ValueError naming the flag for one without `=`."""
    found: dict[str, str] = {}
    for value in values:
        key, equals, rest = value.partition("=")
        if not equals or not key:
            raise ValueError(f"{flag} {value!r}: expected KEY=VALUE")
        found[key] = rest
    return found


def manifests(workload: Workload) -> list[RawObject]:
    """The Deployment, ScaledObject and (with credentials) Secret and TriggerAuthentication."""
    meta = {"name": workload.name, "namespace": workload.namespace}
    labels = {"app": workload.name}  # copied where used: YAML output without anchors
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {**meta, "labels": dict(labels)},
        "spec": {"replicas": max(workload.min_replicas, 1), "selector": {"matchLabels": dict(labels)},
                 "template": {"metadata": {"labels": dict(labels)},
                              "spec": {"containers": [{"name": workload.name, "image": workload.image}]}}},
    }
    trigger: RawObject = {"type": workload.trigger, "metadata": dict(workload.metadata)}
    if workload.auth:
        trigger["authenticationRef"] = {"name": workload.auth_name}
    scaled_object = {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": dict(meta),
        "spec": {"scaleTargetRef": {"name": workload.name}, "pollingInterval": workload.polling_interval,
                 "minReplicaCount": workload.min_replicas, "maxReplicaCount": workload.max_replicas,
                 "triggers": [trigger]},
    }
    if not workload.auth:
        return [deployment, scaled_object]
    auth_meta = {"name": workload.auth_name, "namespace": workload.namespace}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": auth_meta, "type": "Opaque",
              "stringData": dict(workload.auth)}
    authentication = {
        "apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication", "metadata": dict(auth_meta),
        "spec": {"secretTargetRef": [{"parameter": key, "name": workload.auth_name, "key": key}
                                     for key in workload.auth]},
    }
    return [deployment, secret, authentication, scaled_object]


def problems(objects: list[RawObject], workload: Workload) -> list[str]:
    """What the adapter would say about these objects: the object's problem or the trigger's error."""
    registry = ScalerRegistry()
    if workload.trigger not in registry.types:
        return [f"unknown trigger type {workload.trigger!r}; known: {', '.join(registry.types)}"]
    catalog = Catalog(registry, workload.namespace)
    logging.getLogger("eventscale.catalog").setLevel(logging.ERROR)  # its warnings are what we print
    catalog.replace_all([(obj, "scaffold") for obj in objects])
    found = [problem.message for problem in catalog.problems]
    resolved = catalog.scaled_object(workload.namespace, workload.name)
    if resolved is not None:
        found += [error for error in (resolved.error, *resolved.trigger_errors) if error]
    return list(dict.fromkeys(found))


def run(args: argparse.Namespace) -> int:
    try:
        workload = Workload(args.name, args.image, args.trigger, pairs(args.metadata, "--metadata"),
                            pairs(args.auth, "--auth"), args.namespace, args.min_replicas, args.max_replicas,
                            args.polling_interval)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    objects = manifests(workload)
    found = problems(objects, workload)
    if found:
        print("\n".join(f"scaffold: {problem}" for problem in found), file=sys.stderr)
        return 2
    text = yaml.safe_dump_all(objects, sort_keys=False)
    if args.out:
        Path(args.out).write_text(text)
        written = ", ".join(f"{obj['kind']} {obj['metadata']['name']}" for obj in objects)
        print(f"wrote {written} to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
