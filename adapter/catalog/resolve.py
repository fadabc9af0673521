"""From a ScaledObject to ready-to-poll triggers: auth params, container env, scaler configs.

This is the only place that reads Secrets, ConfigMaps, TriggerAuthentications and the target's
pod template. Scalers get plain strings (`TriggerParams`) and never see an object. A failure in
one trigger is recorded on that trigger (and so on the ScaledObject's status); the others are
still served. Messages name objects and keys, never values.

The objects read here are whatever their authors wrote, so every field is checked for its shape
before use (a Deployment whose `spec` is a string, env entries that are strings, a Secret whose
`stringData` is a list): a wrong shape is a `ResolveError` naming the object and field. Values are
read as scalars only; a nested value is refused rather than turned into text, since a YAML alias
graph can make that text exponentially large. A scaler that raises anything other than
`ParameterError` while parsing fails that one trigger, not the ScaledObject.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from adapter.keda.activity import SCALED_OBJECT_KIND, Key, object_key
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

MetricKey = tuple[str, str, str]  # namespace, owner (the second part of its object_key), lowercase metric name

UTILIZATION_UNSUPPORTED = ("'Utilization' metric type is unsupported for external metrics, allowed values are "
                           "'Value' or 'AverageValue'")


class ObjectLookup(Protocol):
    """Read access to the objects a ScaledObject depends on."""

    def get(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None: ...


class ResolveError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
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
    kind: str = SCALED_OBJECT_KIND  # of the object the trigger belongs to: ScaledObject or ScaledJob
    # (namespace, owner, metric name in lower case): made once, as the store and catalog keep it per trigger
    key: MetricKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lower = self.metric_name.lower()
        lower = self.metric_name if lower == self.metric_name else lower  # one string, not two equal ones
        object.__setattr__(self, "key", (self.namespace, self.owner_key[1], lower))

    @property
    def owner_key(self) -> Key:
        """The key of the object the trigger belongs to (`adapter.keda.activity.object_key`)."""
        return object_key(self.kind, self.namespace, self.scaled_object)

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
            f"{self.kind} {self.namespace}/{self.scaled_object} trigger {self.spec.index}"
            f" ({self.spec.type}{', ' + self.spec.name if self.spec.name else ''})"
        )


@dataclass(frozen=True, slots=True)
class ResolvedScaledObject:
    so: ScaledObject
    triggers: tuple[ResolvedTrigger, ...]
    by_metric: Mapping[str, ResolvedTrigger]
    error: str | None = None  # object-level problem (duplicate metric names, conflicting route)

    @property
    def trigger_errors(self) -> list[str]:
        return [f"trigger {t.spec.index} ({t.spec.type}): {t.error}" for t in self.triggers if t.error]


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ResolveError(f"{where} must be an object")
    return value


def _mappings(value: Any, where: str) -> list[Mapping[str, Any]]:
    """A list of objects (None is empty)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise ResolveError(f"{where} must be a list of objects")
    return value


def _scalar(value: Any, where: str) -> str:
    """A scalar field as text; a nested value is refused (its text may be huge), never converted."""
    if isinstance(value, bool):
        return str(value).lower()
    if not isinstance(value, (str, int, float)):
        raise ResolveError(f"{where} must be a string")
    return str(value)


def _shown(value: Any) -> str:
    """A name for a message: the value when it is text, else its type (never a nested value's text)."""
    return value[:100] if isinstance(value, str) else f"<{type(value).__name__}>"


def _name(value: Any, where: str) -> str:
    text = _scalar(value, where) if value is not None else ""
    if not text:
        raise ResolveError(f"{where} is required")
    return text


def _data(obj: Mapping[str, Any], field_name: str, where: str) -> Mapping[str, Any]:
    return _mapping(obj.get(field_name), f"{field_name} of {where}")


def _decode_secret(secret: Mapping[str, Any], key: str, where: str) -> str | None:
    string_data = _data(secret, "stringData", where)
    if key in string_data:
        return _scalar(string_data[key], f'key "{key}" of {where}')
    data = _data(secret, "data", where)
    if key not in data:
        return None
    try:
        return base64.b64decode(_scalar(data[key], f'key "{key}" of {where}'), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ResolveError(f'key "{key}" of {where} is not valid base64 UTF-8') from None


class Resolver:
    def __init__(self, objects: ObjectLookup, registry: ScalerRegistry, cluster_namespace: str,
                 resolve_again: Callable[[str, str], None] | None = None, cluster: ClusterView | None = None) -> None:
        self._objects = objects
        self._registry = registry
        self._cluster_namespace = cluster_namespace
        self._resolve_again = resolve_again  # (namespace, owner of the object_key): a scaler learnt its metric spec
        self._cluster = cluster

    def resolve(self, so: ScaledObject, pod_containers: Any = None,
                kind: str = SCALED_OBJECT_KIND) -> ResolvedScaledObject:
        """`pod_containers`: the containers whose env the triggers read, when they are not the
        scale target's (a ScaledJob's are in its own jobTargetRef); `kind`: of the object the
        triggers belong to, when it is not a ScaledObject."""
        try:
            containers: list[Mapping[str, Any]] | ResolveError = (
                self._containers(so) if pod_containers is None else
                _mappings(pod_containers, f"the containers of {so.target.kind} {so.namespace}/{so.target.name}"))
        except ResolveError as exc:  # every trigger reports it: each would read this pod template
            containers = exc
        triggers = tuple(self._trigger(so, spec, containers, kind) for spec in so.triggers)
        by_metric: dict[str, ResolvedTrigger] = {}
        duplicates: list[str] = []
        for trigger in triggers:
            if trigger.served:
                if trigger.key[2] in by_metric:
                    duplicates.append(trigger.metric_name)
                by_metric[trigger.key[2]] = trigger
        error = f"triggers produce the same metric name: {', '.join(duplicates)}" if duplicates else None
        return ResolvedScaledObject(so, triggers, by_metric, error)

    def _trigger(self, so: ScaledObject, spec: TriggerSpec,
                 containers: list[Mapping[str, Any]] | ResolveError, kind: str) -> ResolvedTrigger:
        base = ResolvedTrigger(so.namespace, so.name, spec, f"s{spec.index}-{spec.type}", so.polling_interval,
                               fallback=so.fallback, kind=kind)
        scaler = self._registry.get(spec.type)
        if scaler is None:
            return _failed(base, f'unknown trigger type "{spec.type}"')
        try:
            if isinstance(containers, ResolveError):
                raise containers
            env = self._env(so, containers, so.target.env_source_container)
            auth, identity = self._auth_params(so, spec.auth_ref, containers) if spec.auth_ref else ({}, "")
            again = (functools.partial(self._resolve_again, *object_key(kind, so.namespace, so.name))
                     if self._resolve_again else None)
            params = TriggerParams(spec.metadata, auth, env, so.namespace, so.name, again, identity,
                                   metric_type=spec.declared_metric_type, cluster=self._cluster)
            config = scaler.parse(spec.type, params)
            metric = scaler.metric(config)
        except (ParameterError, ResolveError, InvalidObject) as exc:
            return _failed(base, str(exc), scaler)
        except Exception as exc:  # a scaler's parser that did not expect this input: this trigger fails
            return _failed(base, f"the {spec.type} scaler cannot use these parameters ({type(exc).__name__})", scaler)
        if spec.metric_type == "Utilization" and metric.resource is None:
            return _failed(base, UTILIZATION_UNSUPPORTED, scaler)
        return ResolvedTrigger(
            so.namespace, so.name, spec, metric_name(spec.index, metric.name), so.polling_interval,
            scaler, config, metric, fallback=so.fallback, kind=kind,
        )

    def _containers(self, so: ScaledObject) -> list[Mapping[str, Any]]:
        workload = self._objects.get(so.target.kind, so.namespace, so.target.name) or {}
        where = f"{so.target.kind} {so.namespace}/{so.target.name}"
        spec = _mapping(workload.get("spec"), f"spec of {where}")
        template = _mapping(_mapping(spec.get("template"), f"spec.template of {where}").get("spec"),
                            f"spec.template.spec of {where}")
        return _mappings(template.get("containers"), f"spec.template.spec.containers of {where}")

    def _env(self, so: ScaledObject, containers: list[Mapping[str, Any]], name: str | None) -> dict[str, str]:
        container = next((c for c in containers if c.get("name") == name), None) if name else None
        if container is None:
            if name and containers:
                raise ResolveError(f'container "{name}" not found in {so.target.kind} {so.target.name}')
            container = containers[0] if containers else {}
        where = f'container "{_shown(container.get("name"))}" of {so.target.kind} {so.namespace}/{so.target.name}'
        env: dict[str, str] = {}
        for source in _mappings(container.get("envFrom"), f"envFrom of {where}"):
            env.update(self._env_from(so.namespace, source))
        for var in _mappings(container.get("env"), f"env of {where}"):
            value = self._env_value(so.namespace, var, where)
            if value is not None:
                env[_name(var.get("name"), f"an env name of {where}")] = value
        return env

    def _env_from(self, namespace: str, source: Mapping[str, Any]) -> dict[str, str]:
        prefix = _scalar(source.get("prefix") or "", "envFrom prefix")
        for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
            ref = _mapping(source.get(key), f"envFrom {key}")
            if ref:
                name = _name(ref.get("name"), f"envFrom {key}.name")
                obj = self._objects.get(kind, namespace, name)
                if obj is None:
                    if ref.get("optional") is True:
                        return {}
                    raise ResolveError(f"{kind} {namespace}/{name} (envFrom) not found")
                where = f"{kind} {namespace}/{name}"
                keys = {str(k) for field_name in ("data", "stringData") for k in _data(obj, field_name, where)}
                return {prefix + k: self._object_value(kind, namespace, name, obj, k) or "" for k in keys}
        return {}

    def _env_value(self, namespace: str, var: Mapping[str, Any], where: str) -> str | None:
        if "value" in var:
            return _scalar(var["value"], f"an env value of {where}") if var["value"] is not None else ""
        value_from = _mapping(var.get("valueFrom"), f"an env valueFrom of {where}")
        for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
            ref = _mapping(value_from.get(key), f"an env {key} of {where}")
            if ref:
                name, key = _name(ref.get("name"), f"{key}.name"), _name(ref.get("key"), f"{key}.key")
                return self._lookup(kind, namespace, name, key, ref.get("optional") is True)
        return None

    def _lookup(self, kind: str, namespace: str, name: str, key: str, optional: bool = False) -> str | None:
        obj = self._objects.get(kind, namespace, name)
        if obj is None:
            if optional:
                return None
            raise ResolveError(f"{kind} {namespace}/{name} not found")
        value = self._object_value(kind, namespace, name, obj, key)
        if value is None and not optional:
            raise ResolveError(f'key "{key}" not found in {kind} {namespace}/{name}')
        return value

    @staticmethod
    def _object_value(kind: str, namespace: str, name: str, obj: Mapping[str, Any], key: str) -> str | None:
        where = f"{kind} {namespace}/{name}"
        if kind == "Secret":
            return _decode_secret(obj, key, where)
        data = _data(obj, "data", where)
        return _scalar(data[key], f'key "{key}" of {where}') if key in data else None

    def _auth_params(self, so: ScaledObject, ref: AuthRef,
                     containers: list[Mapping[str, Any]]) -> tuple[dict[str, str], str]:
        """The TriggerAuthentication's parameters, and the pod identity provider it names."""
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
        return params, auth.pod_identity


def _failed(base: ResolvedTrigger, error: str, scaler: Scaler[Any] | None = None) -> ResolvedTrigger:
    return ResolvedTrigger(
        base.namespace, base.scaled_object, base.spec, base.metric_name, base.polling_interval,
        scaler, None, None, error, base.fallback, base.kind,
    )
