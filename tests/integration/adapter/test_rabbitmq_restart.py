"""A RabbitMQ broker restarting under steady reads: never a 0 for a queue that holds messages.

For a few seconds after `rabbitmqctl start_app` (or a restart after kill -9) the management API
lists durable queues without a message count. The adapter process must answer those reads with
an error naming the trigger, never with 0, and serve the true count again once it is measured.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pika
import pytest

from tests.harness.adapter_process import AdapterProcess, running_adapter
from tests.harness.rabbitmq_server import RabbitMQServer

MESSAGES = 3


@pytest.fixture
def broker() -> Iterator[RabbitMQServer]:
    """A broker of this test's own: restarting the session's would disturb other tests."""
    with RabbitMQServer() as server:
        with server.amqp() as channel:
            channel.queue_declare("durable-jobs", durable=True)
            for _ in range(MESSAGES):
                channel.basic_publish("", "durable-jobs", b"job", pika.BasicProperties(delivery_mode=2))
        server.wait_queue("/", "durable-jobs", "messages", MESSAGES)
        yield server


URL = ("/apis/external.metrics.k8s.io/v1beta1/namespaces/default/s0-rabbitmq-durable-jobs?labelSelector="
       + quote("scaledobject.keda.sh/name=jobs", safe=""))


def read_steadily(adapter: AdapterProcess, stop: threading.Event, answers: list[tuple[int, str]]) -> None:
    with adapter.client() as client:
        while not stop.is_set():
            response = client.get(URL)
            body = response.json()
            answers.append((response.status_code, body["items"][0]["value"] if response.status_code == 200
                            else body["message"]))
            time.sleep(0.05)


def test_no_zero_while_the_broker_has_not_measured(broker: RabbitMQServer, tmp_path: Path) -> None:
    objects = tmp_path / "objects"
    objects.mkdir()
    (objects / "jobs.yaml").write_text(json.dumps({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "jobs"},
        "spec": {"scaleTargetRef": {"name": "worker"}, "pollingInterval": 1, "triggers": [{
            "type": "rabbitmq", "metadata": {"host": broker.http_url(), "protocol": "http",
                                             "queueName": "durable-jobs", "mode": "QueueLength", "value": "1"}}]}}))
    answers: list[tuple[int, str]] = []
    stop = threading.Event()
    with running_adapter(objects, tmp_path / "certs", tmp_path / "adapter.log", "--metric-max-age", "0.1",
                         "--scaler-timeout", "2", "--internal-port", "0") as adapter:
        reader = threading.Thread(target=read_steadily, args=(adapter, stop, answers), daemon=True)
        reader.start()
        try:
            restarts: tuple[tuple[Callable[[], None], Callable[[], None]], ...] = (
                (lambda: broker.ctl("stop_app"), lambda: broker.ctl("start_app")),
                (broker.process.kill, broker.start))
            for restart in restarts:
                before = len(answers)
                for step in restart:
                    step()
                deadline = time.monotonic() + 60
                while not (answers[-1:] == [(200, str(MESSAGES))] and len(answers) > before + 5):
                    assert time.monotonic() < deadline, answers[-5:]
                    time.sleep(0.1)
        finally:
            stop.set()
            reader.join(timeout=30)
    values = [value for status, value in answers if status == 200]
    assert set(values) == {str(MESSAGES)}, sorted(set(values))
    errors = [message for status, message in answers if status != 200]
    assert errors and all("ScaledObject default/jobs trigger 0 (rabbitmq)" in m for m in errors), errors[:3]
    assert any("has no message count yet" in m for m in errors), sorted(set(errors))[:5]
