"""The world the broker fault matrix reads: real brokers of its own, 50 ScaledObjects, the faults.

Redis (plain with an ACL user, TLS, streams; append-only file on, so a kill -9 keeps the data),
RabbitMQ (durable queues of persistent messages, read over AMQP and the management API), the
Service Bus stand-in and cron: 50 ScaledObjects whose true values are fixed before the run, so
any 200 can be checked against the truth. The faults, one at a time: kill -9 and restart and
SIGSTOP/SIGCONT of each broker, a password changed on the broker at runtime, a TLS CA that does
not match. Used by tests/faults (asserts) and tests/bench (figures).
"""

from __future__ import annotations

import json
import signal
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika

from adapter.catalog.catalog import Catalog
from scalers.registry import REGISTRY
from tests.harness.fault_run import Fault, Target
from tests.harness.rabbitmq_server import PASSWORD, USER, RabbitMQServer
from tests.harness.redis_servers import ACL_PASSWORD, ACL_USER, RedisServer
from tests.harness.servicebus_standin import ServiceBusStandIn
from tests.harness.tls_material import TLSMaterial

NAMESPACE = "faults"
POLLING = 5
CRON = {"timezone": "UTC", "start": "0 0 1 1 *", "end": "59 23 31 12 *"}
REDIS_GROUPS = frozenset({"redis", "redis-tls", "redis-streams"})
RABBIT_GROUPS = frozenset({"rabbitmq-amqp", "rabbitmq-http"})
COUNTS = {"cron": 5, "redis": 10, "redis-tls": 5, "redis-streams": 5, "rabbitmq-amqp": 10, "rabbitmq-http": 10,
          "azure-servicebus": 5}


def _object(kind: str, name: str, **body: Any) -> dict[str, Any]:
    api = "v1" if kind == "Secret" else "keda.sh/v1alpha1"
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": NAMESPACE}, **body}


def _auth(name: str, secret: str, *params: str) -> dict[str, Any]:
    return _object("TriggerAuthentication", name, spec={"secretTargetRef": [
        {"parameter": p, "name": secret, "key": p} for p in params]})


def _scaled_object(name: str, trigger: dict[str, Any]) -> dict[str, Any]:
    return _object("ScaledObject", name, spec={"scaleTargetRef": {"name": name}, "pollingInterval": POLLING,
                                               "triggers": [trigger]})


@dataclass
class FaultWorld:
    work: Path
    tls: TLSMaterial = field(default_factory=TLSMaterial.generate)
    stack: ExitStack = field(default_factory=ExitStack)

    def __enter__(self) -> FaultWorld:
        self.redis = self.stack.enter_context(RedisServer(tls=self.tls, extra_args=["--appendonly", "yes"]))
        self.redis.add_user()
        self.rabbitmq = self.stack.enter_context(RabbitMQServer())
        self.servicebus = self.stack.enter_context(ServiceBusStandIn())
        self.objects = self.work / "objects"
        self.objects.mkdir(parents=True, exist_ok=True)
        self._fill()
        self._write()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    # -- the sources' true values ----------------------------------------------------------

    def _fill(self) -> None:
        admin = self.redis.admin()
        for i in range(COUNTS["redis"]):
            admin.delete(f"list-{i}")
            admin.rpush(f"list-{i}", *range(i + 1))
        for i in range(COUNTS["redis-streams"]):
            for n in range(i + 2):
                admin.xadd(f"stream-{i}", {"n": n})
        with self.rabbitmq.amqp() as channel:
            for i in range(COUNTS["rabbitmq-amqp"]):
                channel.queue_declare(f"queue-{i}", durable=True)
                for _ in range(i + 1):
                    channel.basic_publish("", f"queue-{i}", b"job", pika.BasicProperties(delivery_mode=2))
        for i in range(COUNTS["rabbitmq-amqp"]):
            self.rabbitmq.wait_queue("/", f"queue-{i}", "messages", i + 1, timeout=30)
        for i in range(COUNTS["azure-servicebus"]):
            self.servicebus.set_queue(f"sb-{i}", 3 * i + 1)

    def _write(self) -> None:
        objects: list[tuple[dict[str, Any], float, str]] = []  # ScaledObject, true value, group
        for i in range(COUNTS["cron"]):
            objects.append((_scaled_object(f"cron-{i}", {"type": "cron", "metadata": {
                **CRON, "desiredReplicas": str(i + 1)}}), i + 1, "cron"))
        for i in range(COUNTS["redis"]):
            objects.append((_scaled_object(f"redis-{i}", {"type": "redis", "authenticationRef": {"name": "redis"},
                                                          "metadata": {"address": self.redis.address,
                                                                       "listName": f"list-{i}"}}), i + 1, "redis"))
        for i in range(COUNTS["redis-tls"]):
            objects.append((_scaled_object(f"redis-tls-{i}", {
                "type": "redis", "authenticationRef": {"name": "redis-tls"},
                "metadata": {"address": self.redis.tls_address, "listName": f"list-{i}", "enableTLS": "true"}}),
                i + 1, "redis-tls"))
        for i in range(COUNTS["redis-streams"]):
            objects.append((_scaled_object(f"streams-{i}", {"type": "redis-streams", "metadata": {
                "address": self.redis.address, "stream": f"stream-{i}"}}), i + 2, "redis-streams"))
        for i in range(COUNTS["rabbitmq-amqp"]):
            objects.append((_scaled_object(f"amqp-{i}", {
                "type": "rabbitmq", "authenticationRef": {"name": "rabbit-amqp"},
                "metadata": {"queueName": f"queue-{i}", "mode": "QueueLength", "value": "1"}}), i + 1, "rabbitmq-amqp"))
        for i in range(COUNTS["rabbitmq-http"]):
            objects.append((_scaled_object(f"http-{i}", {
                "type": "rabbitmq", "authenticationRef": {"name": "rabbit-http"},
                "metadata": {"queueName": f"queue-{i}", "mode": "QueueLength", "value": "1"}}), i + 1, "rabbitmq-http"))
        for i in range(COUNTS["azure-servicebus"]):
            objects.append((_scaled_object(f"sb-{i}", {"type": "azure-servicebus", "authenticationRef": {"name": "sb"},
                                                       "metadata": {"queueName": f"sb-{i}"}}), 3 * i + 1,
                            "azure-servicebus"))
        support = [
            _object("Secret", "redis", stringData={"username": ACL_USER, "password": ACL_PASSWORD}),
            _auth("redis", "redis", "username", "password"),
            _auth("redis-tls", "redis-ca", "ca"),
            _object("Secret", "rabbit", stringData={"host": self.rabbitmq.amqp_url("/")}),
            _object("Secret", "rabbit-http", stringData={"host": self.rabbitmq.http_url("/")}),
            _auth("rabbit-amqp", "rabbit", "host"),
            _auth("rabbit-http", "rabbit-http", "host"),
            _object("Secret", "sb", stringData={"connection": self.servicebus.connection_string(),
                                                "ca": self.servicebus.ca_pem}),
            _auth("sb", "sb", "connection", "ca"),
        ]
        documents = [o for o, _, _ in objects] + support
        (self.objects / "world.yaml").write_text("\n---\n".join(json.dumps(d) for d in documents))
        self.write_redis_ca(self.tls.ca_pem)
        self.targets = self._targets(objects, [*documents, self._redis_ca(self.tls.ca_pem)])

    def _redis_ca(self, pem: str) -> dict[str, Any]:
        return _object("Secret", "redis-ca", stringData={"ca": pem})

    def write_redis_ca(self, pem: str) -> None:
        (self.objects / "redis-ca.yaml").write_text(json.dumps(self._redis_ca(pem)))

    @staticmethod
    def _targets(objects: list[tuple[dict[str, Any], float, str]], documents: list[dict[str, Any]]) -> list[Target]:
        """Metric names as the adapter serves them: resolved by the same catalog."""
        catalog = Catalog(REGISTRY)
        catalog.replace_all([(d, "world") for d in documents])
        assert not catalog.problems, catalog.problems
        targets = []
        for so, truth, group in objects:
            resolved = catalog.scaled_object(NAMESPACE, so["metadata"]["name"])
            assert resolved is not None
            targets.append(Target(NAMESPACE, so["metadata"]["name"], resolved.triggers[0].metric_name, truth, group))
        return targets

    # -- faults --------------------------------------------------------------------------------

    def faults(self) -> list[Fault]:
        redis, rabbit = self.redis, self.rabbitmq
        other_ca = TLSMaterial.generate("not-the-redis-ca").ca_pem

        def restart_redis() -> None:
            redis.start()
            redis.add_user()  # ACL users set at runtime are not in the append-only file

        def wrong_redis_password() -> None:
            redis.admin().acl_setuser(ACL_USER, enabled=True, reset_passwords=True, passwords=["+Wrong-Pa55"],
                                      keys=["*"], channels=["*"], commands=["+@all"])
            # redis-py leaves execute_command unannotated
            redis.admin().execute_command("CLIENT", "KILL", "USER", ACL_USER)  # type: ignore[no-untyped-call]

        def right_redis_password() -> None:
            redis.admin().acl_setuser(ACL_USER, enabled=True, reset_passwords=True, passwords=[f"+{ACL_PASSWORD}"],
                                      keys=["*"], channels=["*"], commands=["+@all"])

        def wrong_rabbit_password() -> None:
            rabbit.ctl("change_password", USER, "Wrong-Pa55")
            rabbit.ctl("close_all_connections", "password changed")

        return [
            Fault("redis kill -9, restart", REDIS_GROUPS, redis.process.kill, restart_redis),
            Fault("redis SIGSTOP, SIGCONT", REDIS_GROUPS, lambda: redis.process.signal(signal.SIGSTOP),
                  lambda: redis.process.signal(signal.SIGCONT)),
            Fault("redis password changed", frozenset({"redis"}), wrong_redis_password, right_redis_password),
            Fault("redis TLS CA mismatch", frozenset({"redis-tls"}), lambda: self.write_redis_ca(other_ca),
                  lambda: self.write_redis_ca(self.tls.ca_pem)),
            Fault("rabbitmq kill -9, restart", RABBIT_GROUPS, rabbit.process.kill, rabbit.start),
            Fault("rabbitmq SIGSTOP, SIGCONT", RABBIT_GROUPS, lambda: rabbit.process.signal(signal.SIGSTOP),
                  lambda: rabbit.process.signal(signal.SIGCONT)),
            Fault("rabbitmq password changed", RABBIT_GROUPS, wrong_rabbit_password,
                  lambda: rabbit.ctl("change_password", USER, PASSWORD)),
        ]
