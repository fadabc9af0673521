"""cpu and memory: targets the HPA computes itself from pod metrics (KEDA's `cpu` and `memory` triggers).

Nothing is polled and no external metric is served: the trigger becomes a `Resource` metric of
the HPA (a `ContainerResource` one with `containerName`), written by the controller exactly as
KEDA writes it, carried there as `MetricSpec.resource`. Keys: `value` (required; a whole percent
for `Utilization`, a quantity such as `500m` or `256Mi` for `AverageValue`) and `containerName`
from metadata; the target type from the trigger's `metricType` (Utilization or AverageValue).
KEDA removed the metadata key `type` in 2.18 and now refuses it; we still read it when
`metricType` is not set, so manifests written for older KEDA keep working.

Such a trigger is never active by itself: a ScaledObject whose triggers are all cpu or memory is
always active (it cannot scale to zero, and `minReplicaCount: 0` is refused when the ScaledObject
is parsed), as in KEDA.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from scalers.base import MetricSpec, ResourceTarget, Scaler, ScalerClient, ScalerError
from scalers.params import ParameterError, TriggerParams, param, parse_params
from scalers.quantity import QuantityError, canonical, quantity_value
from scalers.sources import METADATA_ONLY

TargetType = Literal["Utilization", "AverageValue"]


@dataclass(frozen=True, kw_only=True)
class _RawParams:
    type: str | None = param("type", sources=METADATA_ONLY)
    value: str = param("value", required=True, sources=METADATA_ONLY)
    container_name: str = param("containerName", default="", sources=METADATA_ONLY)


@dataclass(frozen=True, kw_only=True, slots=True)
class CpuMemoryConfig:
    target: ResourceTarget


def parse_config(resource: Literal["cpu", "memory"], params: TriggerParams) -> CpuMemoryConfig:
    raw = parse_params(_RawParams, params)
    given = params.metric_type or raw.type or ""
    if given not in ("Utilization", "AverageValue"):
        raise ParameterError(f"unknown metric type: {given}, allowed values are 'Utilization' or 'AverageValue'")
    target_type: TargetType = "Utilization" if given == "Utilization" else "AverageValue"
    value = _utilization(raw.value) if target_type == "Utilization" else _average_value(raw.value)
    return CpuMemoryConfig(target=ResourceTarget(resource=resource, target_type=target_type, value=value,
                                                 container=raw.container_name))


def _utilization(text: str) -> str:
    if not text.lstrip("+-").isdigit() or not 0 < int(text) < 2**31:
        raise ParameterError(f'parameter "value" value "{text}" must be a whole percent greater than 0')
    return str(int(text))


def _average_value(text: str) -> str:
    try:
        return canonical(text)
    except QuantityError as exc:
        raise ParameterError(f'parameter "value": {exc}') from None


class _NotPolled(ScalerClient[CpuMemoryConfig]):
    async def read(self, configs: Sequence[CpuMemoryConfig]) -> list[ScalerError]:
        return [ScalerError("cpu and memory are measured by the HPA from pod metrics, not polled")] * len(configs)


class CpuMemoryScaler(Scaler[CpuMemoryConfig]):
    types = ("cpu", "memory")

    def parse(self, trigger_type: str, params: TriggerParams) -> CpuMemoryConfig:
        return parse_config("memory" if trigger_type == "memory" else "cpu", params)

    def metric(self, config: CpuMemoryConfig) -> MetricSpec:
        target = config.target
        number = float(target.value) if target.target_type == "Utilization" else quantity_value(target.value)
        return MetricSpec(name=target.resource, target=number, resource=target)

    def server_key(self, config: CpuMemoryConfig) -> str:
        return "resource-metrics"

    def open_client(self, config: CpuMemoryConfig) -> _NotPolled:
        return _NotPolled()
