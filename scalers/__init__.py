"""Scalers: one module (or package) per trigger type behind the small interface in `base`;
`params` turns trigger parameters into their typed configs.

This package never imports `adapter`; it knows nothing of Kubernetes objects. Importing it loads
no broker SDK: the registry imports a scaler's module when a trigger of its type is first used.
"""

from scalers.base import MetricSpec, Reading, ReadResult, Scaler, ScalerClient, ScalerError, metric_name
from scalers.params import ParameterError, TriggerParams, mask, param, parse_params, secret_values
from scalers.registry import REGISTRY, ScalerRegistry

__all__ = [
    "REGISTRY",
    "MetricSpec",
    "ParameterError",
    "ReadResult",
    "Reading",
    "Scaler",
    "ScalerClient",
    "ScalerError",
    "ScalerRegistry",
    "TriggerParams",
    "mask",
    "metric_name",
    "param",
    "parse_params",
    "secret_values",
]
