"""Failures of the second-wave scalers, through the adapter's own path: catalog -> metric store -> answer.

Real Kafka, Prometheus and HTTP servers; credentials come from Secrets through
TriggerAuthentications, as in a cluster. Each failing trigger's answer (the 500 the HPA would get)
names its ScaledObject and trigger and never shows a secret; the triggers beside it, on the same
servers, keep their values.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from adapter.catalog.catalog import Catalog
from adapter.store.store import MetricStore
from scalers.registry import REGISTRY
from tests.harness.http_api_server import HttpApiServer
from tests.harness.kafka_server import SCRAM_SHA_256, KafkaServer
from tests.harness.prometheus_server import MetricsExporter, PrometheusServer

pytestmark = [pytest.mark.kafka, pytest.mark.prometheus]

WRONG = "Wr0ng-Pa55word-s3cret"


@pytest.fixture(scope="module")
def api() -> Iterator[HttpApiServer]:
    with HttpApiServer() as server:
        server.answer("/ok", '{"n": 4}')
        server.answer("/broken", "boom", status=500, content_type="text/plain")
        yield server


def secret(name: str, **values: str) -> dict[str, Any]:
    return {"kind": "Secret", "metadata": {"name": name, "namespace": "default"},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}}


def auth(name: str, *parameters: str) -> dict[str, Any]:
    return {"kind": "TriggerAuthentication", "metadata": {"name": name, "namespace": "default"},
            "spec": {"secretTargetRef": [{"parameter": p, "name": name, "key": p} for p in parameters]}}


def so(name: str, trigger: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"scaleTargetRef": {"name": name}, "triggers": [trigger]}}


async def test_each_failure_names_its_trigger_and_no_secret_and_leaves_the_others_alone(
        kafka_server: KafkaServer, prometheus_server: PrometheusServer, metrics_exporter: MetricsExporter,
        api: HttpApiServer) -> None:
    name = uuid.uuid4().hex[:8]
    topic, group = f"t-{name}", f"g-{name}"
    await kafka_server.create_topic(topic, 2)
    await kafka_server.produce(topic, 3, 0)
    await kafka_server.commit_offsets(group, topic, {0: 0, 1: 0})
    gauge = f"es_fail_{name}"
    metrics_exporter.set_gauge(gauge, 5)
    prometheus_server.wait_for_value(gauge, 5)
    user = kafka_server.users[SCRAM_SHA_256]
    sasl = kafka_server.listeners.sasl_plaintext
    kafka = {"bootstrapServers": sasl, "consumerGroup": group, "topic": topic}
    objects = [
        secret("good", sasl="scram_sha256", username=user.username, password=user.password),
        secret("bad", sasl="scram_sha256", username=user.username, password=WRONG),
        auth("good", "sasl", "username", "password"), auth("bad", "sasl", "username", "password"),
        so("kafka-good", {"type": "kafka", "metadata": kafka, "authenticationRef": {"name": "good"}}),
        so("kafka-bad-password", {"type": "kafka", "metadata": kafka, "authenticationRef": {"name": "bad"}}),
        so("kafka-down", {"type": "kafka", "metadata": {**kafka, "bootstrapServers": "127.0.0.1:1"}}),
        so("kafka-no-topic", {"type": "kafka", "metadata": {**kafka, "topic": f"nope-{name}"},
                              "authenticationRef": {"name": "good"}}),
        so("prom-good", {"type": "prometheus", "metadata": {"serverAddress": prometheus_server.url,
                                                            "query": gauge, "threshold": "1"}}),
        so("prom-bad", {"type": "prometheus", "metadata": {"serverAddress": prometheus_server.url,
                                                           "query": f"sum({gauge}", "threshold": "1"}}),
        so("api-good", {"type": "metrics-api", "metadata": {"url": api.url + "/ok", "valueLocation": "n",
                                                            "targetValue": "1"}}),
        so("api-500", {"type": "metrics-api", "metadata": {"url": api.url + "/broken", "valueLocation": "n",
                                                           "targetValue": "1"}}),
        so("api-down", {"type": "metrics-api", "metadata": {"url": "http://127.0.0.1:1/x", "valueLocation": "n",
                                                            "targetValue": "1"}}),
    ]
    catalog, store = Catalog(REGISTRY), MetricStore(timeout=30)
    catalog.subscribe(lambda: store.sync(catalog.triggers()))
    catalog.replace_all([(o, "test") for o in objects])
    assert not catalog.problems
    try:
        await store.refresh(list(store.entries()))
        entries = {e.trigger.scaled_object: e for e in store.entries()}
        assert {n: e.value for n, e in entries.items() if e.error is None} == {
            "kafka-good": 3.0, "prom-good": 5.0, "api-good": 4.0}
        for failing, what in [("kafka-bad-password", "Authentication"), ("kafka-down", "cannot connect"),
                              ("kafka-no-topic", "is unknown"), ("prom-bad", "status: 400"),
                              ("api-500", "api returned 500"), ("api-down", "ConnectError")]:
            entry = entries[failing]
            message = json.loads(entry.body)["message"]
            assert entry.status == 500 and what in message, (failing, message)
            assert f"ScaledObject default/{failing} trigger 0" in message
            assert WRONG not in message and user.password not in message
    finally:
        await store.aclose()
