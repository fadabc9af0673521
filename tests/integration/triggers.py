"""Kubernetes objects for the integration tests that go through the catalog and metric store.

A test builds Secrets, TriggerAuthentications and ScaledObjects as the API server would hand
them over, puts them in a real `Catalog` and reads values through a real `MetricStore`, so a
trigger's errors come out worded as the HPA would see them (naming the ScaledObject and trigger).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from adapter.catalog.catalog import Catalog
from adapter.store.store import MetricStore
from scalers.base import Scaler
from scalers.registry import ScalerRegistry

NAMESPACE = "default"


def secret(name: str, **values: str) -> dict[str, Any]:
    data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    return {"kind": "Secret", "metadata": {"name": name, "namespace": NAMESPACE}, "data": data}


def trigger_auth(name: str, secret_name: str, *parameters: str) -> dict[str, Any]:
    refs = [{"parameter": p, "name": secret_name, "key": p} for p in parameters]
    return {"kind": "TriggerAuthentication", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"secretTargetRef": refs}}


def scaled_object(name: str, trigger_type: str, metadata: dict[str, str], auth: str | None = None,
                  polling_interval: int = 30) -> dict[str, Any]:
    trigger: dict[str, Any] = {"type": trigger_type, "metadata": metadata}
    if auth is not None:
        trigger["authenticationRef"] = {"name": auth}
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"scaleTargetRef": {"name": name}, "pollingInterval": polling_interval, "triggers": [trigger]}}


@asynccontextmanager
async def catalog_and_store(scalers: Sequence[Scaler[Any]], objects: Sequence[dict[str, Any]],
                            *, timeout: float = 5.0) -> AsyncIterator[tuple[Catalog, MetricStore]]:
    """A catalog holding `objects` (scalers given, the rest from the registry) and a store following it."""
    catalog = Catalog(ScalerRegistry(scalers=scalers))
    store = MetricStore(timeout=timeout)
    store.follow(catalog)
    catalog.replace_all([(obj, "test") for obj in objects])
    try:
        yield catalog, store
    finally:
        await store.aclose()


def key(name: str, metric: str) -> tuple[str, str, str]:
    """The store key of ScaledObject `name`'s metric `metric` (e.g. s0-postgresql)."""
    return NAMESPACE, name, metric.lower()
