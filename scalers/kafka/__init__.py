"""kafka: consumer-group lag of Apache Kafka topics (KEDA's `kafka` trigger).

`config` holds the keys and KEDA's rules, `lag` the lag arithmetic, `offsets` the one client per
cluster that reads every group of a poll in a handful of requests, `protocol` the two batched
requests aiokafka lacks. The metric is `s<index>-kafka-<topic>` (or `-kafka-<group>-topics`
without a topic) against `lagThreshold`; activity is the scaler's own decision (persistent lag
counts, see `lag`).
"""

from __future__ import annotations

from collections.abc import Sequence

from scalers.base import Served, ServedScaler
from scalers.kafka.kafka_config import KafkaCluster, KafkaConfig, parse_config
from scalers.kafka.offsets import KafkaClient, RequestHook
from scalers.params import TriggerParams


class KafkaScaler(ServedScaler[KafkaConfig, KafkaCluster]):
    types = ("kafka",)

    def __init__(self, request_hooks: Sequence[RequestHook] = ()) -> None:
        self._hooks = list(request_hooks)

    def parse(self, trigger_type: str, params: TriggerParams) -> KafkaConfig:
        return parse_config(params)

    def served(self, config: KafkaConfig) -> Served[KafkaCluster]:
        name = f"kafka-{config.topic}" if config.topic else f"kafka-{config.consumer_group}-topics"
        return Served(config.cluster, name, config.lag_threshold, config.activation_lag_threshold)

    def open_client(self, config: KafkaConfig) -> KafkaClient:
        return KafkaClient(config.cluster, self._hooks)
