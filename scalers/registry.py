"""The explicit map from trigger type to scaler. Adding a scaler means adding a line here."""

from __future__ import annotations

from typing import Any

from scalers.azure_servicebus import AzureServiceBusScaler
from scalers.base import Scaler
from scalers.cron import CronScaler
from scalers.rabbitmq import RabbitMQScaler
from scalers.redis import RedisScaler
from scalers.redis_streams import RedisStreamsScaler

SCALERS: tuple[Scaler[Any], ...] = (
    CronScaler(), AzureServiceBusScaler(), RedisScaler(), RedisStreamsScaler(), RabbitMQScaler()
)


def build_registry(scalers: tuple[Scaler[Any], ...] = SCALERS) -> dict[str, Scaler[Any]]:
    registry: dict[str, Scaler[Any]] = {}
    for scaler in scalers:
        for trigger_type in scaler.types:
            registry[trigger_type] = scaler
    return registry


REGISTRY: dict[str, Scaler[Any]] = build_registry()


def scaler_for(trigger_type: str) -> Scaler[Any] | None:
    return REGISTRY.get(trigger_type)
