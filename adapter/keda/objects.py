"""Typed ScaledObjects and TriggerAuthentications, parsed from the objects users write.

Both API versions land in one `ScaledObject`: KEDA 2.x `keda.sh/v1alpha1` and the 2019
`keda.k8s.io/v1alpha1` format (`scaleTargetRef.deploymentName`, metadata values that name
environment variables, HPA `keda-hpa-<deployment>`, routed by `deploymentName=<deployment>`).
Parsing validates what KEDA's admission webhook validates and raises `InvalidObject` with a
message fit for the object's status; it reads no other object. Parsing is total: whatever shape
a user wrote (a list where a name belongs, a string for a whole spec), the answer is a typed
object or an `InvalidObject` naming the field, never another exception, and no value is turned
into text with `str()` unless it is a scalar (a nested value can be a YAML alias graph whose
text is exponentially large).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType
from typing import Any, Literal, TypeVar

from adapter.keda.formula import Formula, FormulaError, compile_formula
from adapter.keda.names import HPA_NAME_PREFIX, LEGACY_GROUP, LEGACY_ROUTE_LABEL, SCALED_OBJECT_LABEL

T = TypeVar("T")
_EMPTY: Mapping[str, Any] = {}

# In the 2019 format these metadata keys hold the name of an environment variable, not a value.
LEGACY_ENV_KEYS = frozenset(
    {"address", "addresses", "host", "hosts", "port", "ports", "password", "username", "connection"}
)


def legacy_key(key: str) -> str:
    """The keda.sh name of a 2019 trigger metadata key: those naming an env variable get `FromEnv`."""
    return f"{key}FromEnv" if key in LEGACY_ENV_KEYS else key


FALLBACK_BEHAVIORS = ("static", "currentReplicas", "currentReplicasIfHigher", "currentReplicasIfLower",
                      "scalingModifiers")
COMPOSITE_METRIC = "composite-metric"  # the one metric of a ScaledObject with scalingModifiers, as KEDA names it

MetricType = Literal["AverageValue", "Value", "Utilization"]  # Utilization: cpu and memory only
RESOURCE_TRIGGERS = frozenset({"cpu", "memory"})  # measured by the HPA itself, never polled


NO_STRINGS: Mapping[str, str] = MappingProxyType({})


class InvalidObject(ValueError):
    """An object that cannot be used; the message goes to its status and to the log."""


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """The kind, namespace and name of an object: what a log line or an event names."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class ScaleTarget:
    """`scaleTargetRef`: the workload the HPA scales and, for `FromEnv` parameters, the container
    whose environment they are read from (`envSourceContainerName`, the first one when unset)."""

    name: str
    api_version: str = "apps/v1"
    kind: str = "Deployment"
    env_source_container: str | None = None


@dataclass(frozen=True, slots=True)
class AuthRef:
    """`authenticationRef`: the (Cluster)TriggerAuthentication a trigger takes parameters from."""

    name: str
    kind: str = "TriggerAuthentication"


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    """One entry of `triggers`: its position (the `s<index>-` of its metric), type, metadata as
    written and how the HPA targets its metric."""

    index: int
    type: str
    name: str
    metadata: Mapping[str, str]
    auth_ref: AuthRef | None = None
    metric_type: MetricType = "AverageValue"
    use_cached_metrics: bool = False
    declared_metric_type: str | None = None  # `metricType` as written (cpu and memory need to know)

    @property
    def resource(self) -> bool:
        """A cpu or memory trigger: a Resource metric of the HPA, not an external one."""
        return self.type in RESOURCE_TRIGGERS


@dataclass(frozen=True, slots=True)
class Fallback:
    """`fallback`: the replicas served after `failure_threshold` failed reads in a row, and how
    `behavior` weighs them against the current replicas."""

    failure_threshold: int
    replicas: int
    behavior: str = "static"


@dataclass(frozen=True, slots=True)
class ScalingModifiers:
    """`advanced.scalingModifiers`: one composite metric computed from the named triggers."""

    formula: Formula
    target: float
    target_text: str  # as written: KEDA applies fallback only when it is a whole number
    activation_target: float = 0.0
    metric_type: MetricType = "AverageValue"


@dataclass(frozen=True, slots=True)
class ScaledObject:
    """A ScaledObject of either API version, validated: what the catalog resolves and the
    controller reconciles."""

    api_version: str
    namespace: str
    name: str
    target: ScaleTarget
    triggers: tuple[TriggerSpec, ...]
    uid: str = ""
    generation: int = 0
    creation_timestamp: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    polling_interval: int = 30
    cooldown_period: int = 300
    initial_cooldown_period: int = 0
    idle_replica_count: int | None = None
    min_replica_count: int = 0
    max_replica_count: int = 100
    fallback: Fallback | None = None
    hpa_name: str = ""
    hpa_behavior: Mapping[str, Any] | None = None
    restore_to_original_replica_count: bool = False
    scaling_modifiers: ScalingModifiers | None = None

    @property
    def legacy(self) -> bool:
        return self.api_version.startswith(LEGACY_GROUP + "/")

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef("ScaledObject", self.namespace, self.name)

    @property
    def route(self) -> tuple[str, str]:
        """The selector requirement the HPA sends for this object's metrics."""
        if self.legacy:
            return LEGACY_ROUTE_LABEL, self.target.name
        return SCALED_OBJECT_LABEL, self.name


@dataclass(frozen=True, slots=True)
class TargetRef:
    """One entry of `secretTargetRef`, `configMapTargetRef` or `env`: the trigger `parameter` it
    provides, read from the Secret or ConfigMap `name` at `key` (for `env`: the variable `name` of
    the container `key`, the scale target's when empty)."""

    parameter: str
    name: str
    key: str = ""


@dataclass(frozen=True, slots=True)
class TriggerAuthentication:
    """A TriggerAuthentication or ClusterTriggerAuthentication (`kind`): where each parameter it
    provides is read from."""

    kind: str
    namespace: str
    name: str
    secret_refs: tuple[TargetRef, ...] = ()
    config_map_refs: tuple[TargetRef, ...] = ()
    env_refs: tuple[TargetRef, ...] = ()  # key holds the container name, may be empty
    pod_identity: str = ""  # spec.podIdentity.provider, for the scalers to refuse or use


def mapping(value: Any, where: str) -> Mapping[str, Any]:
    """A field that must be an object (None is empty): the object kinds of keda.sh read theirs so."""
    if type(value) is dict:  # the common case, without the abstract class check
        return value
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidObject(f"{where} must be an object")
    return value


_SCALARS = (str, int, float, bool)


def _string(value: Any, where: str, default: str = "") -> str:
    """A scalar as text (booleans as KEDA spells them); None is `default`; anything else is refused."""
    if type(value) is str:  # the common case first
        return sys.intern(value)  # one copy of a name however many objects and caches hold it
    if value is None:
        return default
    if isinstance(value, bool):
        return str(value).lower()
    if not isinstance(value, _SCALARS):
        raise InvalidObject(f"{where} must be a string")
    return sys.intern(str(value))


def _flag(value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidObject(f"{where} must be true or false")
    return value


def _int(spec: Mapping[str, Any], key: str, default: int | None, minimum: int | None = 0,
         where: str = "spec") -> int | None:
    value = spec.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        shown = repr(value) if isinstance(value, _SCALARS) and len(str(value)) <= 40 else type(value).__name__
        raise InvalidObject(f"{where}.{key} must be an integer, got {shown}")
    if minimum is not None and value < minimum:
        raise InvalidObject(f"{where}.{key} must be at least {minimum}, got {value}")
    return value


def _strings(value: Any, where: str) -> Mapping[str, str]:
    """A map of strings; the empty ones (most labels and annotations) are one shared read-only map."""
    result: dict[str, str] = {}
    for key, item in mapping(value, where).items():
        name = _string(key, f"a key of {where}")
        result[name] = _string(item, f"{where}.{name}")
    return result or NO_STRINGS


def _meta(obj: Mapping[str, Any]) -> tuple[str, str, Mapping[str, Any]]:
    meta = mapping(obj.get("metadata"), "metadata")
    name = meta.get("name")
    if not name or not isinstance(name, str):
        raise InvalidObject("metadata.name is required")
    namespace = meta.get("namespace") or "default"
    if not isinstance(namespace, str):
        raise InvalidObject("metadata.namespace must be a string")
    return sys.intern(namespace), sys.intern(name), meta


def _generation(meta: Mapping[str, Any]) -> int:
    value = meta.get("generation") or 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidObject("metadata.generation must be a whole number")
    return value


class Problems:
    """The problems of one object, collected part by part so that all are reported at once."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def part(self, parse: Callable[[], T], default: T) -> T:
        """`parse()`, or `default` with its problem kept."""
        try:
            return parse()
        except InvalidObject as exc:
            self.messages.append(str(exc))
            return default

    def check(self, messages: Iterable[str]) -> None:
        self.messages.extend(messages)

    def raise_any(self) -> None:
        if self.messages:
            raise InvalidObject("; ".join(self.messages))


def parse_scaled_object(obj: Mapping[str, Any]) -> ScaledObject:
    """The typed object; `InvalidObject` naming every problem found (the checks across fields,
    such as minReplicaCount against maxReplicaCount, run once every field parses)."""
    namespace, name, meta = _meta(obj)
    api_version = _string(obj.get("apiVersion"), "apiVersion")
    spec = mapping(obj.get("spec"), "spec")
    legacy = api_version.startswith(LEGACY_GROUP + "/")
    problems = Problems()
    target = problems.part(lambda: _parse_target(mapping(spec.get("scaleTargetRef"), "spec.scaleTargetRef"),
                                                 legacy), ScaleTarget(""))
    triggers: tuple[TriggerSpec, ...] = problems.part(lambda: _parse_triggers(spec.get("triggers"), legacy), ())
    advanced: Mapping[str, Any] = problems.part(lambda: mapping(spec.get("advanced"), "spec.advanced"), {})
    hpa_config: Mapping[str, Any] = problems.part(lambda: mapping(advanced.get("horizontalPodAutoscalerConfig"),
                                               "spec.advanced.horizontalPodAutoscalerConfig"), {})

    def number(key: str, default: int | None, minimum: int = 0) -> int | None:
        return problems.part(lambda: _int(spec, key, default, minimum=minimum), default)

    so = ScaledObject(
        api_version=api_version,
        namespace=namespace,
        name=name,
        target=target,
        triggers=triggers,
        uid=problems.part(lambda: _string(meta.get("uid"), "metadata.uid"), ""),
        generation=problems.part(lambda: _generation(meta), 0),
        creation_timestamp=problems.part(lambda: _string(meta.get("creationTimestamp"),
                                                         "metadata.creationTimestamp"), ""),
        labels=problems.part(lambda: _strings(meta.get("labels"), "metadata.labels"), {}),
        annotations=problems.part(lambda: _strings(meta.get("annotations"), "metadata.annotations"), {}),
        polling_interval=number("pollingInterval", 30, minimum=1) or 30,
        cooldown_period=number("cooldownPeriod", 300) or 0,
        initial_cooldown_period=number("initialCooldownPeriod", 0) or 0,
        idle_replica_count=number("idleReplicaCount", None),
        min_replica_count=number("minReplicaCount", 0) or 0,
        max_replica_count=number("maxReplicaCount", 100) or 0,
        fallback=problems.part(lambda: _parse_fallback(spec.get("fallback")), None),
        hpa_name=problems.part(lambda: _string(hpa_config.get("name"),
                                               "spec.advanced.horizontalPodAutoscalerConfig.name"), "")
        or sys.intern(f"{HPA_NAME_PREFIX}{target.name if legacy else name}"),
        hpa_behavior=problems.part(lambda: mapping(hpa_config.get("behavior"), "behavior"), _EMPTY) or None,
        restore_to_original_replica_count=problems.part(lambda: _flag(
            advanced.get("restoreToOriginalReplicaCount"), "spec.advanced.restoreToOriginalReplicaCount"), False),
        scaling_modifiers=problems.part(lambda: _parse_modifiers(advanced.get("scalingModifiers"), triggers), None),
    )
    problems.raise_any()
    problems.check(_replica_problems(so))
    problems.check(_modifier_problems(so))
    problems.raise_any()
    return so


def _replica_problems(so: ScaledObject) -> Iterator[str]:
    if so.min_replica_count > so.max_replica_count:
        yield (f"minReplicaCount ({so.min_replica_count}) must be less than or equal to "
               f"maxReplicaCount ({so.max_replica_count})")
    if so.idle_replica_count is not None and so.idle_replica_count >= so.min_replica_count:
        yield f"idleReplicaCount ({so.idle_replica_count}) must be less than minReplicaCount ({so.min_replica_count})"
    external = [t for t in so.triggers if not t.resource]
    if not external and so.min_replica_count == 0:
        yield "scaledobject has only cpu/memory triggers AND minReplica is 0 (scale to zero doesn't work in this case)"
    if so.fallback and so.scaling_modifiers is None and not external:  # KEDA 2.20's words, Value allowed too
        yield ("at least one trigger (that is not cpu or memory) has to have the `AverageValue` type "
               "for the fallback to be enabled")


def _modifier_problems(so: ScaledObject) -> Iterator[str]:
    modifiers = so.scaling_modifiers
    if so.fallback and so.fallback.behavior == "scalingModifiers" and modifiers is None:
        yield "spec.fallback.behavior scalingModifiers needs spec.advanced.scalingModifiers.formula"


def _parse_modifiers(raw: Any, triggers: tuple[TriggerSpec, ...]) -> ScalingModifiers | None:
    """KEDA's rules: formula required, target required and > 0, metricType AverageValue or Value;
    the formula may name only triggers that have a `name` (not cpu or memory ones)."""
    where = "spec.advanced.scalingModifiers"
    spec = mapping(raw, where)
    fields = {key: _string(spec.get(key), f"{where}.{key}").strip()
              for key in ("formula", "target", "activationTarget", "metricType")}
    if not any(fields.values()):
        return None
    if not fields["formula"]:
        raise InvalidObject(f"{where}.formula is required")
    if not fields["target"]:
        raise InvalidObject(f"{where}.target is required with a formula")
    target = _positive_number(fields["target"], f"{where}.target")
    activation = _number(fields["activationTarget"], f"{where}.activationTarget") if fields["activationTarget"] else 0.0
    metric_type = fields["metricType"] or "AverageValue"
    if metric_type not in ("AverageValue", "Value"):
        raise InvalidObject(f'{where}.metricType "{metric_type[:100]}" must be one of [AverageValue, Value]')
    names = [t.name for t in triggers if t.name and not t.resource]  # cpu and memory stay HPA resource metrics
    try:
        formula = compile_formula(fields["formula"], names)
    except FormulaError as exc:
        raise InvalidObject(f"{where}.formula {exc}") from None
    return ScalingModifiers(formula, target, fields["target"], activation,
                            "Value" if metric_type == "Value" else "AverageValue")


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidObject(f"{where} must be a number, got {text[:40]!r}") from None
    if not math.isfinite(value):
        raise InvalidObject(f"{where} must be a finite number, got {text[:40]!r}")
    return value


def _positive_number(text: str, where: str) -> float:
    value = _number(text, where)
    if value <= 0:
        raise InvalidObject(f"{where} must be greater than 0, got {text[:40]!r}")
    return value


def _parse_target(ref: Mapping[str, Any], legacy: bool) -> ScaleTarget:
    where = "spec.scaleTargetRef"
    if legacy:
        name = _string(ref.get("deploymentName"), f"{where}.deploymentName")
        if not name:
            raise InvalidObject(f"{where}.deploymentName is required")
        return ScaleTarget(name=name, env_source_container=_string(ref.get("containerName"),
                                                                   f"{where}.containerName") or None)
    name = _string(ref.get("name"), f"{where}.name")
    if not name:
        raise InvalidObject(f"{where}.name is required")
    return ScaleTarget(
        name=name,
        api_version=_string(ref.get("apiVersion"), f"{where}.apiVersion") or "apps/v1",
        kind=_string(ref.get("kind"), f"{where}.kind") or "Deployment",
        env_source_container=_string(ref.get("envSourceContainerName"), f"{where}.envSourceContainerName") or None,
    )


def _parse_triggers(raw: Any, legacy: bool) -> tuple[TriggerSpec, ...]:
    """Every trigger; `InvalidObject` naming the problems of all of them."""
    if not isinstance(raw, list) or not raw:
        raise InvalidObject("spec.triggers must list at least one trigger")
    problems = Problems()
    parsed: list[TriggerSpec | None] = [problems.part(partial(_parse_trigger, i, t, legacy), None)
                                        for i, t in enumerate(raw)]
    names = [t.name for t in parsed if t is not None and t.name]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        problems.check([f"triggers must have unique names, duplicated: {', '.join(duplicates)}"])
    problems.raise_any()
    return tuple(t for t in parsed if t is not None)


def _parse_trigger(index: int, item: Any, legacy: bool) -> TriggerSpec:
    where = f"spec.triggers[{index}]"
    raw = mapping(item, where)
    trigger_type = raw.get("type")
    if not trigger_type or not isinstance(trigger_type, str):
        raise InvalidObject(f"{where}.type is required")
    metadata = _strings(raw.get("metadata"), f"{where}.metadata")
    if legacy:
        metadata = {legacy_key(k): v for k, v in metadata.items()}
    declared = _string(raw.get("metricType"), f"{where}.metricType") or None
    metric_type: MetricType
    if declared in (None, "AverageValue"):
        metric_type = "AverageValue"
    elif declared in ("Value", "Utilization"):
        metric_type = "Value" if declared == "Value" else "Utilization"
    else:
        raise InvalidObject(f'{where}.metricType "{declared}" must be one of [AverageValue, Value, Utilization]')
    auth = mapping(raw.get("authenticationRef"), f"{where}.authenticationRef")
    auth_ref = None
    if auth:
        auth_name = _string(auth.get("name"), f"{where}.authenticationRef.name")
        if not auth_name:
            raise InvalidObject(f"{where}.authenticationRef.name is required")
        kind = _string(auth.get("kind"), f"{where}.authenticationRef.kind") or "TriggerAuthentication"
        if kind not in ("TriggerAuthentication", "ClusterTriggerAuthentication"):
            raise InvalidObject(f'{where}.authenticationRef.kind "{kind[:100]}" is not a trigger authentication kind')
        auth_ref = AuthRef(auth_name, kind)
    return TriggerSpec(
        index=index,
        type=sys.intern(trigger_type),
        name=_string(raw.get("name"), f"{where}.name"),
        metadata=metadata,
        auth_ref=auth_ref,
        metric_type=metric_type,
        use_cached_metrics=_flag(raw.get("useCachedMetrics"), f"{where}.useCachedMetrics"),
        declared_metric_type=declared,
    )


def _parse_fallback(raw: Any) -> Fallback | None:
    if raw is None:
        return None
    spec = mapping(raw, "spec.fallback")
    threshold = _int(spec, "failureThreshold", None)
    replicas = _int(spec, "replicas", None)
    if threshold is None or replicas is None:
        raise InvalidObject("spec.fallback needs failureThreshold and replicas")
    behavior = _string(spec.get("behavior"), "spec.fallback.behavior") or "static"
    if behavior not in FALLBACK_BEHAVIORS:
        choices = ", ".join(FALLBACK_BEHAVIORS)
        raise InvalidObject(f'spec.fallback.behavior "{behavior[:100]}" must be one of [{choices}]')
    return Fallback(threshold, replicas, behavior)


def parse_trigger_authentication(obj: Mapping[str, Any]) -> TriggerAuthentication:
    """The typed object; `InvalidObject` naming every reference that is wrong."""
    namespace, name, _ = _meta(obj)
    kind = _string(obj.get("kind"), "kind")
    spec = mapping(obj.get("spec"), "spec")
    problems = Problems()

    def ref(where: str, item: Any, value_key: str) -> TargetRef:
        item = mapping(item, where)
        parameter = _string(item.get("parameter"), f"{where}.parameter")
        name = _string(item.get("name"), f"{where}.name")
        if not parameter or not name:
            raise InvalidObject(f"{where} needs parameter and name")
        value = _string(item.get(value_key), f"{where}.{value_key}")
        if value_key == "key" and not value:
            raise InvalidObject(f"{where} needs key")
        return TargetRef(parameter, name, value)

    def refs(key: str, value_key: str) -> tuple[TargetRef, ...]:
        items = spec.get(key) or []
        if not isinstance(items, list):
            problems.check([f"spec.{key} must be a list"])
            return ()
        parsed = [problems.part(partial(ref, f"spec.{key}[{i}]", item, value_key), None)
                  for i, item in enumerate(items)]
        return tuple(r for r in parsed if r is not None)

    provider = problems.part(lambda: mapping(spec.get("podIdentity"), "spec.podIdentity"), _EMPTY).get("provider")
    authentication = TriggerAuthentication(
        kind=kind,
        namespace="" if kind == "ClusterTriggerAuthentication" else namespace,
        name=name,
        secret_refs=refs("secretTargetRef", "key"),
        config_map_refs=refs("configMapTargetRef", "key"),
        env_refs=refs("env", "containerName"),
        pod_identity=str(provider or ""),
    )
    problems.raise_any()
    return authentication
