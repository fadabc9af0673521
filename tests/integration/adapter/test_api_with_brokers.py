"""The adapter process as a user runs it, serving Redis and RabbitMQ triggers from manifests.

Secrets reach scalers through TriggerAuthentications and container env; a wrong password is a
500 naming the trigger, and no response or log line carries the secret.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import httpx

from tests.harness.adapter_process import running_adapter
from tests.harness.rabbitmq_server import RabbitMQServer
from tests.harness.redis_servers import ACL_PASSWORD, ACL_USER, RedisServer

WRONG = "Not-The-Right-Pa55word"


def manifests(redis: RedisServer, rabbitmq: RabbitMQServer) -> list[dict[str, object]]:
    return [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "redis-auth"},
         "stringData": {"password": ACL_PASSWORD, "wrong": WRONG, "username": ACL_USER}},
        {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication", "metadata": {"name": "redis"},
         "spec": {"secretTargetRef": [{"parameter": "password", "name": "redis-auth", "key": "password"},
                                      {"parameter": "username", "name": "redis-auth", "key": "username"}]}},
        {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication", "metadata": {"name": "redis-wrong"},
         "spec": {"secretTargetRef": [{"parameter": "password", "name": "redis-auth", "key": "wrong"},
                                      {"parameter": "username", "name": "redis-auth", "key": "username"}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "consumer"},
         "spec": {"template": {"spec": {"containers": [{"name": "app", "env": [
             {"name": "RABBIT_URL", "valueFrom": {"secretKeyRef": {"name": "rabbit", "key": "url"}}}]}]}}}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "rabbit"},
         "stringData": {"url": rabbitmq.amqp_url("/")}},
        {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "jobs"},
         "spec": {"scaleTargetRef": {"name": "consumer"}, "triggers": [
             {"type": "redis", "authenticationRef": {"name": "redis"},
              "metadata": {"address": redis.address, "listName": "api-jobs", "listLength": "10"}},
             {"type": "rabbitmq", "metadata": {"queueName": "api-orders", "hostFromEnv": "RABBIT_URL"}},
             {"type": "redis", "name": "bad", "authenticationRef": {"name": "redis-wrong"},
              "metadata": {"address": redis.address, "listName": "other"}},
         ]}},
    ]


def url(metric: str) -> str:
    selector = quote("scaledobject.keda.sh/name=jobs", safe="")
    return f"/apis/external.metrics.k8s.io/v1beta1/namespaces/default/{metric}?labelSelector={selector}"


def test_values_and_masked_errors_over_https(redis_server: RedisServer, rabbitmq: RabbitMQServer,
                                             tmp_path: Path) -> None:
    redis_server.admin().delete("api-jobs")
    redis_server.admin().rpush("api-jobs", *range(25))
    rabbitmq.fill("/", {"api-orders": 7})
    rabbitmq.wait_queue("/", "api-orders", "messages", 7)
    objects = tmp_path / "objects"
    objects.mkdir()
    (objects / "all.yaml").write_text("\n---\n".join(json.dumps(m) for m in manifests(redis_server, rabbitmq)))
    with running_adapter(objects, tmp_path / "certs", tmp_path / "adapter.log") as adapter, \
            adapter.client() as client:
        assert value(client, "s0-redis-api-jobs") == "25"
        assert value(client, "s1-rabbitmq-api-orders") == "7"
        failed = client.get(url("s2-redis-other"))
        assert failed.status_code == 500
        message = failed.json()["message"]
        assert "ScaledObject default/jobs trigger 2 (redis, bad)" in message
        metrics = client.get("/metrics").text
        failures = [line for line in metrics.splitlines() if line.startswith(
            "eventscale_trigger_consecutive_failures{") and 'metric="s2-redis-other"' in line]
        assert failures and 'scaledObject="jobs"' in failures[0] and not failures[0].endswith(" 0.0")
        log = adapter.log()
    for text in (failed.text, log, metrics):
        assert WRONG not in text and ACL_PASSWORD not in text and rabbitmq.amqp_url("/") not in text


def value(client: httpx.Client, metric: str) -> str:
    response = client.get(url(metric))
    assert response.status_code == 200, response.text
    return str(response.json()["items"][0]["value"])
