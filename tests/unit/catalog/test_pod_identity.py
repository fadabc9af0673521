"""A TriggerAuthentication's podIdentity provider reaches the scaler, which refuses it by name."""

from __future__ import annotations

from adapter.catalog.catalog import Catalog
from scalers.registry import ScalerRegistry


def test_pod_identity_reaches_the_scaler_and_is_refused() -> None:
    catalog = Catalog(ScalerRegistry())
    auth = {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
            "metadata": {"name": "irsa", "namespace": "default"}, "spec": {"podIdentity": {"provider": "aws"}}}
    so = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "q", "namespace": "default"},
          "spec": {"scaleTargetRef": {"name": "q"}, "triggers": [{
              "type": "aws-sqs-queue", "authenticationRef": {"name": "irsa"},
              "metadata": {"queueURL": "https://sqs.eu-west-1.amazonaws.com/1/q", "awsRegion": "eu-west-1"}}]}}
    catalog.replace_all([(auth, "t"), (so, "t")])
    resolved = catalog.scaled_object("default", "q")
    assert resolved is not None
    assert resolved.triggers[0].error is not None
    assert 'pod identity "aws" is not supported' in resolved.triggers[0].error
