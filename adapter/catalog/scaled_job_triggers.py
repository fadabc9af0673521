"""ScaledJobs in the catalog: one more reader of triggers, resolved as ScaledObjects are.

A ScaledJob's triggers go through the same resolver (TriggerAuthentications, Secrets,
ConfigMaps, `*FromEnv`), the same scalers and so the same shared clients and batched reads in
the metric store; the only difference is where `*FromEnv` looks: the container of the
ScaledJob's own `jobTargetRef` named by `envSourceContainerName` (default: the first one), not
a scale target's pod template. A ScaledJob has no HPA and no metric route: its values go to the
controller only, through the activity document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapter.catalog.resolve import ResolvedTrigger, Resolver
from adapter.keda.activity import Key, object_key
from adapter.keda.objects import ScaledObject, ScaleTarget
from adapter.keda.scaled_job import ScaledJob


@dataclass(frozen=True)
class ResolvedScaledJob:
    job: ScaledJob
    triggers: tuple[ResolvedTrigger, ...]
    by_metric: Mapping[str, ResolvedTrigger]
    error: str | None = None  # object-level problem (duplicate metric names)

    @property
    def key(self) -> Key:
        return object_key(self.job.kind, self.job.namespace, self.job.name)

    @property
    def trigger_errors(self) -> list[str]:
        return [f"trigger {t.spec.index} ({t.spec.type}): {t.error}" for t in self.triggers if t.error]


def resolve_scaled_job(resolver: Resolver, job: ScaledJob) -> ResolvedScaledJob:
    """The ScaledJob's triggers, resolved as a ScaledObject's would be against its Job's containers."""
    as_reader = ScaledObject(
        api_version=job.api_version, namespace=job.namespace, name=job.name, uid=job.uid,
        generation=job.generation, triggers=job.triggers, polling_interval=job.polling_interval,
        target=ScaleTarget(name=job.name, api_version=job.api_version, kind=job.kind,
                           env_source_container=job.env_source_container),
    )
    resolved = resolver.resolve(as_reader, pod_containers=_containers(job.job_spec), kind=job.kind)
    return ResolvedScaledJob(job, resolved.triggers, resolved.by_metric, resolved.error)


def _containers(job_spec: Mapping[str, Any]) -> Any:
    template = job_spec.get("template")
    pod = template.get("spec") if isinstance(template, Mapping) else None
    return (pod.get("containers") if isinstance(pod, Mapping) else None) or []
