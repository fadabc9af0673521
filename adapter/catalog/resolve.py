"""From a ScaledObject to ready-to-poll triggers: auth params, container env, scaler configs.

This is the only place that reads Secrets, ConfigMaps, TriggerAuthentications and the target's
pod template. Scalers get plain strings (`TriggerParams`) and never see an object. A failure in
one trigger is recorded on that trigger (and so on the ScaledObject's status); the others are
still served. Messages name objects and keys, never values.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from adapter.keda.objects import (
    AuthRef,
    Fallback,
    InvalidObject,
    ScaledObject,
    TriggerAuthentication,
    TriggerSpec,
    parse_trigger_authentication,
)
from scalers import MetricSpec, ParameterError, Scaler, ScalerRegistry, TriggerParams, metric_name
from scalers.cluster import ClusterView

MetricKey = tuple[str, str, str]  # namespace, ScaledObject name, lowercase metric name

UTILIZATION_UNSUPPORTED = ("'Utilization' metric type is unsupported for external metrics, allowed values are "
                           "'Value' or 'AverageValue'")


class ObjectLookup(Protocol):
    """Read access to the objects a ScaledObject depends on."""

    def get(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None: ...


class ResolveError(ValueError):
    pass


@dataclass(frozen=True)
class ResolvedTrigger:
    """A trigger ready to be polled (or, with `error`, the reason it cannot be)."""

    namespace: str
    scaled_object: str
    spec: TriggerSpec
    metric_name: str
    polling_interval: int
    scaler: Scaler[Any] | None = field(default=None, compare=False)
    config: Hashable | None = None
    metric: MetricSpec | None = None
    error: str | None = None
    fallback: Fallback | None = None  # the ScaledObject's, applied per metric by the store

    @property
    def key(self) -> MetricKey:
        return self.namespace, self.scaled_object, self.metric_name.lower()

    @property
    def served(self) -> bool:
        """Polled and served as an external metric (cpu and memory are the HPA's own)."""
        return self.error is None and self.metric is not None and self.metric.resource is None

    @property
    def server(self) -> tuple[str, Hashable]:
        assert self.scaler is not None and self.config is not None
        return self.scaler.types[0], self.scaler.server_key(self.config)

    def describe(self) -> str:
        """How logs and errors name this trigger."""
        return (
            f"ScaledObject {self.namespace}/{self.scaled_object} trigger {self.spec.index}"
            f" ({self.spec.type}{', ' + self.spec.name if self.spec.name else ''})"
        )


@dataclass(frozen=True)
class ResolvedScaledObject:
    so: ScaledObject
    triggers: tuple[ResolvedTrigger, ...]
    by_metric: Mapping[str, ResolvedTrigger]
    error: str | None = None  # object-level problem (duplicate metric names, conflicting route)

    @property
    def trigger_errors(self) -> list[str]:
        return [f"trigger {t.spec.index} ({t.spec.type}): {t.error}" for t in self.triggers if t.error]


def _decode_secret(secret: Mapping[str, Any], key: str) -> str | None:
    string_data = secret.get("stringData") or {}
    if key in string_data:
        return str(string_data[key])
    data = secret.get("data") or {}
    if key not in data:
        return None
    try:
        return base64.b64decode(str(data[key]), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ResolveError(f'key "{key}" of a Secret is not valid base64 UTF-8') from None


class Resolver:
    def __init__(self, objects: ObjectLookup, registry: ScalerRegistry, cluster_namespace: str,
                 cluster: ClusterView | None = None) -> None:
        self._objects = objects
        self._registry = registry
        self._cluster_namespace = cluster_namespace
        self._cluster = cluster

    def resolve(self, so: ScaledObject) -> ResolvedScaledObject:
        containers = self._containers(so)
        triggers = tuple(self._trigger(so, spec, containers) for spec in so.triggers)
        by_metric: dict[str, ResolvedTrigger] = {}
        duplicates: list[str] = []
        for trigger in triggers:
            if trigger.served:
                if trigger.key[2] in by_metric:
                    duplicates.append(trigger.metric_name)
                by_metric[trigger.key[2]] = trigger
        error = f"triggers produce the same metric name: {', '.join(duplicates)}" if duplicates else None
        return ResolvedScaledObject(so, triggers, by_metric, error)

    def _trigger(self, so: ScaledObject, spec: TriggerSpec, containers: list[Mapping[str, Any]]) -> ResolvedTrigger:
        base = ResolvedTrigger(so.namespace, so.name, spec, f"s{spec.index}-{spec.type}", so.polling_interval,
                               fallback=so.fallback)
        scaler = self._registry.get(spec.type)
        if scaler is None:
            return _failed(base, f'unknown trigger type "{spec.type}"')
        try:
            env = self._env(so, containers, so.target.env_source_container)
            auth = self._auth_params(so, spec.auth_ref, containers) if spec.auth_ref else {}
            params = TriggerParams(spec.metadata, auth, env, namespace=so.namespace,
                                   metric_type=spec.declared_metric_type, cluster=self._cluster)
            config = scaler.parse(spec.type, params)
            metric = scaler.metric(config)
        except (ParameterError, ResolveError, InvalidObject) as exc:
            return _failed(base, str(exc), scaler)
        if spec.metric_type == "Utilization" and metric.resource is None:
            return _failed(base, UTILIZATION_UNSUPPORTED, scaler)
        return ResolvedTrigger(
            so.namespace, so.name, spec, metric_name(spec.index, metric.name), so.polling_interval,
            scaler, config, metric, fallback=so.fallback,
        )

    def _containers(self, so: ScaledObject) -> list[Mapping[str, Any]]:
        workload = self._objects.get(so.target.kind, so.namespace, so.target.name) or {}
        template = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
        return list(template.get("containers") or [])

    def _env(self, so: ScaledObject, containers: list[Mapping[str, Any]], name: str | None) -> dict[str, str]:
        container = next((c for c in containers if c.get("name") == name), None) if name else None
        if container is None:
            if name and containers:
                raise ResolveError(f'container "{name}" not found in {so.target.kind} {so.target.name}')
            container = containers[0] if containers else {}
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            env.update(self._env_from(so.namespace, source))
        for var in container.get("env") or []:
            value = self._env_value(so.namespace, var)
            if value is not None:
                env[str(var.get("name"))] = value
        return env

    def _env_from(self, namespace: str, source: Mapping[str, Any]) -> dict[str, str]:
        prefix = str(source.get("prefix") or "")
        for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
            ref = source.get(key)
            if ref:
                obj = self._objects.get(kind, namespace, str(ref.get("name")))
                if obj is None:
                    if ref.get("optional"):
                        return {}
                    raise ResolveError(f"{kind} {namespace}/{ref.get('name')} (envFrom) not found")
                keys = set(obj.get("data") or {}) | set(obj.get("stringData") or {})
                return {prefix + k: self._object_value(kind, namespace, obj, k) or "" for k in keys}
        return {}

    def _env_value(self, namespace: str, var: Mapping[str, Any]) -> str | None:
        if "value" in var:
            return str(var["value"])
        value_from = var.get("valueFrom") or {}
        for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
            ref = value_from.get(key)
            if ref:
                name, key = str(ref.get("name")), str(ref.get("key"))
                return self._lookup(kind, namespace, name, key, bool(ref.get("optional")))
        return None

    def _lookup(self, kind: str, namespace: str, name: str, key: str, optional: bool = False) -> str | None:
        obj = self._objects.get(kind, namespace, name)
        if obj is None:
            if optional:
                return None
            raise ResolveError(f"{kind} {namespace}/{name} not found")
        value = self._object_value(kind, namespace, obj, key)
        if value is None and not optional:
            raise ResolveError(f'key "{key}" not found in {kind} {namespace}/{name}')
        return value

    @staticmethod
    def _object_value(kind: str, namespace: str, obj: Mapping[str, Any], key: str) -> str | None:
        if kind == "Secret":
            return _decode_secret(obj, key)
        data = obj.get("data") or {}
        return str(data[key]) if key in data else None

    def _auth_params(self, so: ScaledObject, ref: AuthRef, containers: list[Mapping[str, Any]]) -> dict[str, str]:
        cluster = ref.kind == "ClusterTriggerAuthentication"
        raw = self._objects.get(ref.kind, "" if cluster else so.namespace, ref.name)
        if raw is None:
            where = ref.name if cluster else f"{so.namespace}/{ref.name}"
            raise ResolveError(f"{ref.kind} {where} not found")
        auth: TriggerAuthentication = parse_trigger_authentication(raw)
        secrets_namespace = self._cluster_namespace if cluster else so.namespace
        params: dict[str, str] = {}
        for target in auth.secret_refs:
            value = self._lookup("Secret", secrets_namespace, target.name, target.key)
            params[target.parameter] = value or ""
        for target in auth.config_map_refs:
            value = self._lookup("ConfigMap", secrets_namespace, target.name, target.key)
            params[target.parameter] = value or ""
        for target in auth.env_refs:
            env = self._env(so, containers, target.key or so.target.env_source_container)
            if target.name in env:
                params[target.parameter] = env[target.name]
        return params


def _failed(base: ResolvedTrigger, error: str, scaler: Scaler[Any] | None = None) -> ResolvedTrigger:
    return ResolvedTrigger(
        base.namespace, base.scaled_object, base.spec, base.metric_name, base.polling_interval,
        scaler, None, None, error, base.fallback,
    )
