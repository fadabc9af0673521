"""The fields KEDA's objects may have, so that standalone mode refuses a misspelt one as
`kubectl apply` does against the CRDs (strict field validation) instead of ignoring it.

A shape maps each known field to None (any value: a scalar, a map such as trigger `metadata`,
or a part the CRD leaves open), to the shape of an object, or to a one-element list holding the
shape of a list's items. The shapes are those of manifests/crds (a test derives them from the
CRD schemas and compares).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Union

Shape = Mapping[str, Union["Shape", list["Shape"], None]]

_OBJECT = {"apiVersion": None, "kind": None, "metadata": None, "status": None}
_POLICY: Shape = {"type": None, "value": None, "periodSeconds": None}
_SCALING_RULES: Shape = {"stabilizationWindowSeconds": None, "selectPolicy": None, "tolerance": None,
                         "policies": [_POLICY]}

SCALED_OBJECT: Shape = {**_OBJECT, "spec": {
    "scaleTargetRef": {"apiVersion": None, "kind": None, "name": None, "envSourceContainerName": None},
    "pollingInterval": None, "cooldownPeriod": None, "initialCooldownPeriod": None, "idleReplicaCount": None,
    "minReplicaCount": None, "maxReplicaCount": None,
    "fallback": {"failureThreshold": None, "replicas": None, "behavior": None},
    "advanced": {
        "restoreToOriginalReplicaCount": None,
        "horizontalPodAutoscalerConfig": {"name": None, "behavior": {"scaleUp": _SCALING_RULES,
                                                                     "scaleDown": _SCALING_RULES}},
        "scalingModifiers": {"formula": None, "target": None, "activationTarget": None, "metricType": None},
    },
    "triggers": [{"type": None, "name": None, "metadata": None, "metricType": None, "useCachedMetrics": None,
                  "authenticationRef": {"name": None, "kind": None}}],
}}

_TARGET_REF: Shape = {"parameter": None, "name": None, "key": None}
TRIGGER_AUTHENTICATION: Shape = {**_OBJECT, "spec": {
    "secretTargetRef": [_TARGET_REF], "configMapTargetRef": [_TARGET_REF],
    "env": [{"parameter": None, "name": None, "containerName": None}],
    "podIdentity": None, "filePath": None, "hashiCorpVault": None, "azureKeyVault": None, "awsSecretManager": None,
    "gcpSecretManager": None, "boundServiceAccountToken": [{"parameter": None, "serviceAccountName": None}],
}}

SCALED_JOB: Shape = {**_OBJECT, "spec": {
    "jobTargetRef": None, "envSourceContainerName": None, "pollingInterval": None,
    "successfulJobsHistoryLimit": None, "failedJobsHistoryLimit": None,
    "minReplicaCount": None, "maxReplicaCount": None,
    "rollout": {"strategy": None, "propagationPolicy": None}, "rolloutStrategy": None,
    "scalingStrategy": {"strategy": None, "customScalingQueueLengthDeduction": None,
                        "customScalingRunningJobPercentage": None, "pendingPodConditions": None,
                        "multipleScalersCalculation": None},
    "triggers": [{"type": None, "name": None, "metadata": None, "useCachedMetrics": None,
                  "authenticationRef": {"name": None, "kind": None}}],
}}

SHAPES: Mapping[str, Shape] = {  # by kind, for keda.sh/v1alpha1 objects
    "ScaledObject": SCALED_OBJECT,
    "ScaledJob": SCALED_JOB,
    "TriggerAuthentication": TRIGGER_AUTHENTICATION,
    "ClusterTriggerAuthentication": TRIGGER_AUTHENTICATION,
}


def unknown_fields(obj: Mapping[str, Any], shape: Shape, path: str = "") -> Iterator[str]:
    """Every field of `obj` that `shape` does not know, as kubectl names them (`spec.triggers[0].metdata`).

    A value of the wrong type is left to the parser, which says what it must be.
    """
    for key, value in obj.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in shape:
            yield where
            continue
        known = shape[key]
        if isinstance(known, Mapping) and isinstance(value, Mapping):
            yield from unknown_fields(value, known, where)
        elif isinstance(known, list) and isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    yield from unknown_fields(item, known[0], f"{where}[{i}]")
