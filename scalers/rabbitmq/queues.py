"""rabbitmq: the length (or rates) of a RabbitMQ queue, over AMQP or the management API.

KEDA's RabbitMQ scaler. Parsing and the broker a config talks to are in `queue_config`; the two
clients (`amqp_client`: a passive declare per queue on one connection per vhost;
`management_client`: one queue listing per vhost for a whole batch) in their own modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote_plus

from scalers.base import ScalerClient, Served, ServedScaler
from scalers.params import TriggerParams
from scalers.rabbitmq.amqp_client import AmqpClient
from scalers.rabbitmq.management_client import ManagementClient
from scalers.rabbitmq.queue_config import Broker, RabbitMQConfig, RequestHook, parse_config


class RabbitMQScaler(ServedScaler[RabbitMQConfig, Broker]):
    """`http_request_hooks` are given to every management API client (tests count requests)."""

    types = ("rabbitmq",)

    def __init__(self, http_request_hooks: Sequence[RequestHook] = ()) -> None:
        self._hooks = tuple(http_request_hooks)

    def parse(self, trigger_type: str, params: TriggerParams) -> RabbitMQConfig:
        return parse_config(params)

    def served(self, config: RabbitMQConfig) -> Served[Broker]:
        return Served(config.broker, f"rabbitmq-{quote_plus(config.queue_name, safe='')}", config.value,
                      config.activation_value)

    def open_client(self, config: RabbitMQConfig) -> ScalerClient[RabbitMQConfig]:
        if config.broker.protocol == "amqp":
            return AmqpClient(config.broker)
        return ManagementClient(config.broker, self._hooks)
