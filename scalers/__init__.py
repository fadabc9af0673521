"""Scalers: one module per trigger type behind the small interface in `base`.

This package never imports `adapter`; it knows nothing of Kubernetes objects.
"""

from scalers.base import (
    MetricSpec,
    ParameterError,
    Scaler,
    ScalerClient,
    ScalerError,
    Source,
    TriggerParams,
    metric_name,
    param,
    parse_params,
)
from scalers.registry import REGISTRY, scaler_for

__all__ = [
    "REGISTRY",
    "MetricSpec",
    "ParameterError",
    "Scaler",
    "ScalerClient",
    "ScalerError",
    "Source",
    "TriggerParams",
    "metric_name",
    "param",
    "parse_params",
    "scaler_for",
]
