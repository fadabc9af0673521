"""Typed ScaledJobs, parsed from the objects users write: KEDA 2.x's and the 2019 `scaleType: job`.

A ScaledJob (`keda.sh/v1alpha1`) runs one Kubernetes Job per unit of work instead of scaling a
workload: every `pollingInterval` its triggers say how much work waits and the controller
creates Jobs from `jobTargetRef` (a batch/v1 JobSpec). A 2019 ScaledObject
(`keda.k8s.io/v1alpha1`) with `scaleType: job` is the same idea in KEDA 1.x's words and lands in
the same `ScaledJob`, read the way KEDA's migration guide rewrites it: `cooldownPeriod` and
`minReplicaCount` are not used, trigger metadata values such as `host` name an environment
variable of the Job's first container, and Jobs are never deleted on a change (KEDA 1.x had no
rollout).

Parsing validates what KEDA's CRD and admission webhook validate (the trigger list, enums,
bounds, no `metricType` on a trigger) and raises `InvalidObject` with a message fit for the
object's status. The JobSpec itself is kept as written: kube-apiserver validates it when a Job
is created. Like `adapter.keda.objects`, parsing is total: any shape is a `ScaledJob` or an
`InvalidObject` naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from adapter.keda.names import JOB_EXCLUDED_LABELS, KEDA_GROUP, LEGACY_GROUP
from adapter.keda.objects import (
    _EMPTY,
    NO_STRINGS,
    InvalidObject,
    ObjectRef,
    Problems,
    TriggerSpec,
    _generation,
    _int,
    _meta,
    _parse_triggers,
    _string,
    _strings,
    mapping,
)

SCALED_JOB_KIND = "ScaledJob"
STRATEGIES = ("default", "custom", "accurate", "eager")
CALCULATIONS = ("max", "min", "avg", "sum")
ROLLOUT_STRATEGIES = ("default", "immediate", "gradual")  # KEDA's CRD says immediate, its docs default
PROPAGATION_POLICIES = ("background", "foreground")
DEFAULT_HISTORY_LIMIT = 100
DEFAULT_MAX_JOBS = 100


@dataclass(frozen=True, slots=True)
class ScalingStrategy:
    """`spec.scalingStrategy`: how the triggers' values become a number of Jobs to create."""

    strategy: str = "default"  # default | custom | accurate | eager
    queue_length_deduction: int | None = None  # custom
    running_job_percentage: str = ""  # custom; KEDA keeps the text, and a text that is no number means default
    pending_pod_conditions: tuple[str, ...] = ()  # a Job is pending until one Pod has all of these True
    multiple_scalers_calculation: str = "max"  # max | min | avg | sum


@dataclass(frozen=True, slots=True)
class ScaledJob:
    api_version: str
    namespace: str
    name: str
    triggers: tuple[TriggerSpec, ...]
    job_spec: Mapping[str, Any]  # jobTargetRef, a batch/v1 JobSpec as written
    uid: str = ""
    generation: int = 0
    creation_timestamp: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    polling_interval: int = 30
    successful_jobs_history_limit: int = DEFAULT_HISTORY_LIMIT
    failed_jobs_history_limit: int = DEFAULT_HISTORY_LIMIT
    rollout_strategy: str = "default"
    propagation_policy: str = "background"
    env_source_container: str | None = None
    min_replica_count: int | None = None
    max_replica_count: int | None = None
    scaling: ScalingStrategy = field(default_factory=ScalingStrategy)

    @property
    def legacy(self) -> bool:
        """A 2019 `keda.k8s.io` ScaledObject with `scaleType: job`."""
        return self.api_version.startswith(LEGACY_GROUP + "/")

    @property
    def kind(self) -> str:
        return "ScaledObject" if self.legacy else SCALED_JOB_KIND

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(self.kind, self.namespace, self.name)

    @property
    def min_jobs(self) -> int:
        """KEDA's MinReplicaCount(): minReplicaCount, but never above maxReplicaCount."""
        minimum = self.min_replica_count or 0
        if self.max_replica_count is not None and minimum > self.max_replica_count:
            return self.max_replica_count
        return minimum

    @property
    def max_jobs(self) -> int:
        """KEDA's MaxReplicaCount(): the Jobs beyond the minimum that one poll may have running.

        maxReplicaCount less minReplicaCount (maxReplicaCount when min is higher); 100 when
        maxReplicaCount is not set, whatever the minimum (KEDA's arithmetic, kept as is)."""
        if self.max_replica_count is None:
            return DEFAULT_MAX_JOBS
        if self.min_replica_count is not None and self.min_replica_count > self.max_replica_count:
            return self.max_replica_count
        return self.max_replica_count - (self.min_replica_count or 0)

    @property
    def excluded_labels(self) -> frozenset[str]:
        """Labels of the ScaledJob not copied onto its Jobs (`scaledjob.keda.sh/job-excluded-labels`)."""
        return frozenset(k.strip() for k in self.annotations.get(JOB_EXCLUDED_LABELS, "").split(",") if k.strip())

    @property
    def uses_pending(self) -> bool:
        """Whether pending Jobs change the number to create (the accurate and eager strategies)."""
        return self.scaling.strategy in ("accurate", "eager")


def is_job_object(raw: Mapping[str, Any]) -> bool:
    """A ScaledJob, or a 2019 ScaledObject with `scaleType: job`: an object that creates Jobs."""
    kind, api_version = raw.get("kind"), raw.get("apiVersion")
    if kind == SCALED_JOB_KIND:
        return True
    spec = raw.get("spec")
    return (kind == "ScaledObject" and isinstance(api_version, str) and api_version.startswith(LEGACY_GROUP + "/")
            and isinstance(spec, Mapping) and spec.get("scaleType") == "job")


def parse_scaled_job(obj: Mapping[str, Any]) -> ScaledJob:
    """A ScaledJob, or a 2019 `scaleType: job` ScaledObject (see `is_job_object`); `InvalidObject`
    naming every problem found."""
    namespace, name, meta = _meta(obj)
    api_version = _string(obj.get("apiVersion"), "apiVersion") or f"{KEDA_GROUP}/v1alpha1"
    spec = mapping(obj.get("spec"), "spec")
    legacy = api_version.startswith(LEGACY_GROUP + "/")
    problems = Problems()
    common: dict[str, Any] = dict(
        api_version=api_version, namespace=namespace, name=name,
        triggers=problems.part(lambda: _job_triggers(spec.get("triggers"), legacy), tuple[TriggerSpec, ...]()),
        job_spec=problems.part(lambda: _job_spec(spec.get("jobTargetRef")), _EMPTY),
        uid=problems.part(lambda: _string(meta.get("uid"), "metadata.uid"), ""),
        generation=problems.part(lambda: _generation(meta), 0),
        creation_timestamp=problems.part(lambda: _string(meta.get("creationTimestamp"),
                                                         "metadata.creationTimestamp"), ""),
        labels=problems.part(lambda: _strings(meta.get("labels"), "metadata.labels"), NO_STRINGS),
        annotations=problems.part(lambda: _strings(meta.get("annotations"), "metadata.annotations"), NO_STRINGS),
        polling_interval=problems.part(lambda: _int(spec, "pollingInterval", 30, minimum=1), None) or 30,
        max_replica_count=problems.part(lambda: _int(spec, "maxReplicaCount", None, minimum=1 if not legacy else 0),
                                        None),
    )
    if legacy:  # KEDA 1.x: no minimum, no rollout, no history limits (the 2.x defaults apply)
        problems.raise_any()
        return ScaledJob(**common, rollout_strategy="gradual")
    rollout: Mapping[str, Any] = problems.part(lambda: mapping(spec.get("rollout"), "spec.rollout"), {})
    job = ScaledJob(
        **common,
        successful_jobs_history_limit=problems.part(
            lambda: _int(spec, "successfulJobsHistoryLimit", DEFAULT_HISTORY_LIMIT), None) or 0,
        failed_jobs_history_limit=problems.part(
            lambda: _int(spec, "failedJobsHistoryLimit", DEFAULT_HISTORY_LIMIT), None) or 0,
        rollout_strategy=problems.part(lambda: _choice(
            _string(spec.get("rolloutStrategy"), "spec.rolloutStrategy")
            or _string(rollout.get("strategy"), "spec.rollout.strategy") or "default",
            ROLLOUT_STRATEGIES, "spec.rollout.strategy"), "default"),
        propagation_policy=problems.part(lambda: _choice(
            _string(rollout.get("propagationPolicy"), "spec.rollout.propagationPolicy") or "background",
            PROPAGATION_POLICIES, "spec.rollout.propagationPolicy"), "background"),
        env_source_container=problems.part(
            lambda: _string(spec.get("envSourceContainerName"), "spec.envSourceContainerName"), "") or None,
        min_replica_count=problems.part(lambda: _int(spec, "minReplicaCount", None), None),
        scaling=problems.part(lambda: _scaling(mapping(spec.get("scalingStrategy"), "spec.scalingStrategy")),
                              ScalingStrategy()),
    )
    problems.raise_any()
    return job


def _job_triggers(raw: Any, legacy: bool) -> tuple[TriggerSpec, ...]:
    for i, trigger in enumerate(raw if isinstance(raw, list) else []):
        if isinstance(trigger, Mapping) and trigger.get("metricType") is not None:
            raise InvalidObject(f"spec.triggers[{i}].metricType cannot be set in ScaledJob triggers")
    return _parse_triggers(raw, legacy)


def _job_spec(raw: Any) -> Mapping[str, Any]:
    if raw is None:
        raise InvalidObject("spec.jobTargetRef is required")
    job_spec = mapping(raw, "spec.jobTargetRef")
    template = mapping(job_spec.get("template"), "spec.jobTargetRef.template")
    if not template:
        raise InvalidObject("spec.jobTargetRef.template is required")
    mapping(template.get("metadata"), "spec.jobTargetRef.template.metadata")
    pod = mapping(template.get("spec"), "spec.jobTargetRef.template.spec")
    if pod.get("containers") is not None and not isinstance(pod.get("containers"), list):
        raise InvalidObject("spec.jobTargetRef.template.spec.containers must be a list")
    return job_spec


def _scaling(raw: Mapping[str, Any]) -> ScalingStrategy:
    where = "spec.scalingStrategy"
    conditions = raw.get("pendingPodConditions")
    if conditions is not None and not (isinstance(conditions, list) and all(isinstance(c, str) for c in conditions)):
        raise InvalidObject(f"{where}.pendingPodConditions must be a list of condition types")
    return ScalingStrategy(
        strategy=_choice(_string(raw.get("strategy"), f"{where}.strategy") or "default", STRATEGIES,
                         f"{where}.strategy"),
        queue_length_deduction=_int(raw, "customScalingQueueLengthDeduction", None, minimum=None, where=where),
        running_job_percentage=_string(raw.get("customScalingRunningJobPercentage"),
                                       f"{where}.customScalingRunningJobPercentage"),
        pending_pod_conditions=tuple(conditions or ()),
        multiple_scalers_calculation=_choice(
            _string(raw.get("multipleScalersCalculation"), f"{where}.multipleScalersCalculation") or "max",
            CALCULATIONS, f"{where}.multipleScalersCalculation"),
    )


def _choice(value: str, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise InvalidObject(f'{where} "{value[:100]}" must be one of [{", ".join(allowed)}]')
    return value
