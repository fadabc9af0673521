"""Parsing of rabbitmq triggers: every key, default, source and error, as KEDA's rabbitmq scaler.

Sources: queueName, mode, value, activationValue, queueLength, useRegex, operation,
excludeUnacknowledged, pageSize, timeout, unsafeSsl from metadata only; host from metadata, auth
params, then env; protocol and vhostName from metadata then auth params; username and password
from auth params then env; tls, ca, cert, key, keyPassword from auth params only.
Also the value formulas of every mode and the regex aggregation, which need no broker.
"""

from __future__ import annotations

import operator
from typing import Any

import pytest

from scalers.params import ParameterError, TriggerParams
from scalers.rabbitmq.queue_config import QueueStats, RabbitMQConfig, aggregate, metric_value
from scalers.rabbitmq.queues import RabbitMQScaler
from tests.harness.tls_material import TLSMaterial

SCALER = RabbitMQScaler()
AMQP = "amqp://user:Secr3t@rabbit:5672/vh"
HTTP = "http://user:Secr3t@rabbit:15672/vh"
Q = {"queueName": "jobs", "host": AMQP}
QH = {"queueName": "jobs", "host": HTTP}
TLS = TLSMaterial.generate()


def parse(metadata: dict[str, str], auth: dict[str, str] | None = None,
          env: dict[str, str] | None = None) -> RabbitMQConfig:
    return SCALER.parse("rabbitmq", TriggerParams(metadata=metadata, auth=auth or {}, env=env or {}))


def field_of(config: RabbitMQConfig, dotted: str) -> Any:
    return operator.attrgetter(dotted)(config)


@pytest.mark.parametrize("metadata, auth, env, expected", [
    # defaults: QueueLength with value 20
    (Q, {}, {}, {
        "queue_name": "jobs", "mode": "QueueLength", "value": 20.0, "activation_value": 0.0, "vhost": "vh",
        "use_regex": False, "operation": "sum", "exclude_unacknowledged": False, "page_size": 100,
        "broker.protocol": "amqp", "broker.scheme": "amqp", "broker.host": "rabbit", "broker.port": 5672,
        "broker.vhost": "vh", "broker.username": "user", "broker.password": "Secr3t", "broker.tls": None,
        "broker.timeout": 5.0,
    }),
    ({**Q, "queueName": "  padded  "}, {}, {}, {"queue_name": "padded"}),
    # mode, value, activationValue, deprecated queueLength; zero counts as not given
    ({**QH, "mode": "MessageRate", "value": "12.5", "activationValue": "3"}, {}, {},
     {"mode": "MessageRate", "value": 12.5, "activation_value": 3.0}),
    ({**Q, "mode": "queuelength", "value": "7"}, {}, {}, {"mode": "QueueLength", "value": 7.0}),
    ({**QH, "mode": "DeliverGetRate", "value": "1"}, {}, {}, {"mode": "DeliverGetRate"}),
    ({**QH, "mode": "PublishedToDeliveredRatio", "value": "1"}, {}, {},
     {"mode": "PublishedToDeliveredRatio"}),
    ({**QH, "mode": "ExpectedQueueConsumptionTime", "value": "60"}, {}, {},
     {"mode": "ExpectedQueueConsumptionTime", "value": 60.0}),
    ({**Q, "queueLength": "15"}, {}, {}, {"mode": "QueueLength", "value": 15.0}),
    ({**Q, "queueLength": "0"}, {}, {}, {"mode": "QueueLength", "value": 20.0}),
    ({**Q, "value": "0", "queueLength": "4"}, {}, {}, {"value": 4.0}),
    # host: metadata, then auth params, then env
    ({"queueName": "q"}, {"host": "amqp://a:5672/x"}, {}, {"broker.host": "a", "vhost": "x"}),
    ({"queueName": "q", "hostFromEnv": "H"}, {}, {"H": "amqp://e:5673/y"},
     {"broker.host": "e", "vhost": "y"}),
    ({"queueName": "q", "host": "amqp://m", "hostFromEnv": "H"}, {"host": "amqp://a"}, {"H": "amqp://e"},
     {"broker.host": "m"}),
    ({"queueName": "q", "hostFromEnv": "H"}, {"host": "amqp://a"}, {"H": "amqp://e"}, {"broker.host": "a"}),
    # protocol: auto from the scheme, or explicit; default ports
    ({"queueName": "q", "host": "amqps://r"}, {}, {}, {"broker.protocol": "amqp", "broker.port": 5671}),
    ({"queueName": "q", "host": "http://r"}, {}, {}, {"broker.protocol": "http", "broker.port": 80,
                                                       "broker.timeout": 3.0, "broker.vhost": None}),
    ({"queueName": "q", "host": "https://r"}, {}, {}, {"broker.port": 443}),
    ({**QH, "protocol": "http"}, {}, {}, {"broker.protocol": "http"}),
    ({**Q, "protocol": "AMQP"}, {}, {}, {"broker.protocol": "amqp"}),
    (Q, {"protocol": "amqp"}, {}, {"broker.protocol": "amqp"}),
    ({"queueName": "q", "host": "amqp://[::1]:5679"}, {}, {}, {"broker.host": "::1", "broker.port": 5679}),
    # vhost: vhostName, else the URL (AMQP path; HTTP last segment); empty is /
    ({**Q, "vhostName": "other"}, {}, {}, {"vhost": "other", "broker.vhost": "other"}),
    (Q, {"vhostName": "auth-vh"}, {}, {"vhost": "auth-vh"}),
    ({**Q, "vhostName": "meta"}, {"vhostName": "auth"}, {}, {"vhost": "meta"}),
    ({"queueName": "q", "host": "amqp://r"}, {}, {}, {"vhost": "/"}),
    ({"queueName": "q", "host": "amqp://r/"}, {}, {}, {"vhost": "/"}),
    ({"queueName": "q", "host": "amqp://r/%2F"}, {}, {}, {"vhost": "/"}),
    ({"queueName": "q", "host": "amqp://r/a%2Fb"}, {}, {}, {"vhost": "a/b"}),
    ({"queueName": "q", "host": "http://r:15672"}, {}, {}, {"vhost": "/", "broker.path": ""}),
    ({"queueName": "q", "host": "http://r:15672/"}, {}, {}, {"vhost": "/", "broker.path": ""}),
    ({"queueName": "q", "host": "http://r:15672//"}, {}, {}, {"vhost": "/", "broker.path": ""}),
    ({"queueName": "q", "host": "http://r:15672/%2F"}, {}, {}, {"vhost": "/"}),
    ({"queueName": "q", "host": "http://r/proxy/rabbit/vh"}, {}, {},
     {"vhost": "vh", "broker.path": "/proxy/rabbit"}),
    ({"queueName": "q", "host": "http://r/proxy/vh", "vhostName": "x"}, {}, {},
     {"vhost": "x", "broker.path": "/proxy"}),
    # credentials: URL userinfo, overridden by username/password (auth params, then env)
    ({"queueName": "q", "host": "amqp://r"}, {}, {}, {"broker.username": None, "broker.password": None}),
    ({"queueName": "q", "host": "amqp://u%40x:p%2Fw@r"}, {}, {},
     {"broker.username": "u@x", "broker.password": "p/w"}),
    (Q, {"username": "au", "password": "ap"}, {}, {"broker.username": "au", "broker.password": "ap"}),
    ({**Q, "usernameFromEnv": "U", "passwordFromEnv": "P"}, {}, {"U": "eu", "P": "ep"},
     {"broker.username": "eu", "broker.password": "ep"}),
    ({**Q, "username": "meta-ignored", "password": "meta-ignored"}, {}, {}, {"broker.username": "user"}),
    # HTTP-only keys
    ({**QH, "useRegex": "true", "operation": "max", "pageSize": "5"}, {}, {},
     {"use_regex": True, "operation": "max", "page_size": 5}),
    ({**QH, "useRegex": "true", "operation": "AVG"}, {}, {}, {"operation": "avg"}),
    ({**QH, "excludeUnacknowledged": "true"}, {}, {}, {"exclude_unacknowledged": True}),
    ({**QH, "timeout": "1500"}, {}, {}, {"broker.timeout": 1.5}),
    ({**QH, "timeout": "0"}, {}, {}, {"broker.timeout": 3.0}),
    ({**Q, "timeout": "0"}, {}, {}, {"broker.timeout": 5.0}),
    # TLS: only for amqps/https; material with tls=enable; unsafeSsl
    ({**Q, "unsafeSsl": "true"}, {"tls": "enable", "ca": TLS.ca_pem}, {}, {"broker.tls": None}),
    ({"queueName": "q", "host": "amqps://r"}, {}, {},
     {"broker.tls.ca": None, "broker.tls.unsafe_ssl": False}),
    ({"queueName": "q", "host": "amqps://r", "unsafeSsl": "true"}, {}, {}, {"broker.tls.unsafe_ssl": True}),
    ({"queueName": "q", "host": "amqps://r"}, {"tls": "enable", "ca": TLS.ca_pem}, {},
     {"broker.tls.ca": TLS.ca_pem.strip()}),
    ({"queueName": "q", "host": "https://r"}, {"tls": "disable", "ca": TLS.ca_pem}, {},
     {"broker.tls.ca": None}),
    ({"queueName": "q", "host": "amqps://r"},
     {"tls": "enable", "cert": TLS.client_cert_pem, "key": TLS.client_key_pem}, {},
     {"broker.tls.cert": TLS.client_cert_pem.strip(), "broker.tls.key": TLS.client_key_pem.strip()}),
])
def test_parse(metadata: dict[str, str], auth: dict[str, str], env: dict[str, str],
               expected: dict[str, Any]) -> None:
    config = parse(metadata, auth, env)
    assert {key: field_of(config, key) for key in expected} == expected


@pytest.mark.parametrize("metadata, auth, error", [
    ({}, {}, 'missing required parameter "queueName"'),
    ({"host": AMQP}, {}, 'missing required parameter "queueName"'),
    ({"queueName": "q"}, {}, 'missing required parameter "host"'),
    ({"queueName": "q", "hostFromEnv": "MISSING"}, {}, 'missing required parameter "host"'),
    ({"host": AMQP}, {"queueName": "auth-is-not-a-source"},
     'missing required parameter "queueName"'),
    ({**Q, "queueLength": "AA"}, {}, 'parameter "queueLength" value "AA" must be a number'),
    ({**Q, "value": "x"}, {}, 'parameter "value" value "x" must be a number'),
    ({**Q, "activationValue": "x"}, {}, 'parameter "activationValue" value "x" must be a number'),
    ({**Q, "mode": "Bogus", "value": "1"}, {}, 'parameter "mode" value "Bogus" must be one of [QueueLength'),
    ({**Q, "queueLength": "5", "mode": "QueueLength"}, {}, 'parameter "queueLength" is deprecated'),
    ({**Q, "queueLength": "5", "value": "3"}, {}, 'parameter "queueLength" is deprecated'),
    ({**Q, "mode": "QueueLength"}, {}, 'missing required parameter "value"'),
    ({**Q, "mode": "QueueLength", "value": "0"}, {}, 'missing required parameter "value"'),
    ({**Q, "value": "5"}, {}, 'missing required parameter "mode"'),
    ({**Q, "mode": "MessageRate", "value": "5"}, {}, 'mode "MessageRate" needs protocol http'),
    ({**Q, "mode": "DeliverGetRate", "value": "5"}, {}, 'mode "DeliverGetRate" needs protocol http'),
    ({**Q, "mode": "PublishedToDeliveredRatio", "value": "5"}, {}, 'needs protocol http'),
    ({**Q, "mode": "ExpectedQueueConsumptionTime", "value": "5"}, {}, 'needs protocol http'),
    ({**Q, "useRegex": "true"}, {}, 'parameter "useRegex" needs protocol http'),
    ({**Q, "excludeUnacknowledged": "true"}, {}, 'parameter "excludeUnacknowledged" needs protocol http'),
    ({**Q, "timeout": "100"}, {}, 'parameter "timeout" needs protocol http'),
    ({**QH, "timeout": "-1"}, {}, 'parameter "timeout" must not be negative'),
    ({**QH, "timeout": "1s"}, {}, 'parameter "timeout" value "1s" must be an integer'),
    ({**QH, "useRegex": "maybe"}, {}, 'parameter "useRegex" value "maybe" must be a boolean'),
    ({**QH, "excludeUnacknowledged": "x"}, {}, 'parameter "excludeUnacknowledged" value "x" must be a'),
    ({**QH, "unsafeSsl": "x"}, {}, 'parameter "unsafeSsl" value "x" must be a boolean'),
    ({**QH, "operation": "min"}, {}, 'parameter "operation" value "min" must be one of [sum, avg, max]'),
    ({**QH, "pageSize": "0"}, {}, 'parameter "pageSize" must be 1 or greater'),
    ({**QH, "pageSize": "ten"}, {}, 'parameter "pageSize" value "ten" must be an integer'),
    ({**QH, "useRegex": "true", "queueName": "jobs-(["}, {}, 'parameter "queueName" is not a valid regular'),
    ({**Q, "protocol": "smtp"}, {}, 'parameter "protocol" value "smtp" must be one of [auto, amqp, http]'),
    ({**Q, "protocol": "http"}, {}, 'protocol "http" does not match the host URL scheme "amqp"'),
    ({**QH, "protocol": "amqp"}, {}, 'protocol "amqp" does not match the host URL scheme "http"'),
    ({"queueName": "q", "host": "ftp://r"}, {}, 'parameter "host" has unknown URL scheme "ftp"'),
    ({"queueName": "q", "host": "rabbit:5672"}, {}, 'parameter "host" has no host name'),
    ({"queueName": "q", "host": "amqp://u:Secr3t@r:notaport"}, {}, 'parameter "host" is not a valid URL'),
    (Q, {"username": "u"}, 'parameters "username" and "password" must be given together'),
    (Q, {"password": "p"}, 'parameters "username" and "password" must be given together'),
    (Q, {"tls": "on"}, 'parameter "tls" value "on" must be one of [enable, disable]'),
    ({**Q, "host": "amqps://r"}, {"tls": "enable", "cert": TLS.client_cert_pem},
     'parameters "cert" and "key" must be given together'),
    ({**Q, "host": "amqps://r"}, {"tls": "enable", "key": TLS.client_key_pem},
     'parameters "cert" and "key" must be given together'),
    ({**Q, "host": "amqps://r"}, {"tls": "enable", "ca": "not a pem"}, 'TLS parameters "ca", "cert", "key"'),
])
def test_parse_errors(metadata: dict[str, str], auth: dict[str, str], error: str) -> None:
    with pytest.raises(ParameterError) as raised:
        parse(metadata, auth)
    assert error in str(raised.value)
    assert "Secr3t" not in str(raised.value)


@pytest.mark.parametrize("queue, name", [
    ("sample", "rabbitmq-sample"),
    ("namespace/name", "rabbitmq-namespace%2Fname"),
    ("a b+c", "rabbitmq-a+b%2Bc"),
    ("x.y_z~-", "rabbitmq-x.y_z~-"),
])
def test_metric_name(queue: str, name: str) -> None:
    spec = SCALER.metric(parse({**Q, "queueName": queue, "value": "4", "mode": "QueueLength",
                                "activationValue": "2"}))
    assert (spec.name, spec.target, spec.activation) == (name, 4.0, 2.0)


def test_metric_name_is_normalised_like_keda() -> None:
    from scalers.base import metric_name

    assert metric_name(1, SCALER.metric(parse({**Q, "queueName": "namespace/name"})).name) == (
        "s1-rabbitmq-namespace-2Fname"
    )


@pytest.mark.parametrize("metadata, auth", [
    (Q, {}),
    ({**Q, "host": "amqp://user:p%40ss%2Fword@rabbit/vh"}, {}),
    ({"queueName": "q", "host": "http://rabbit"}, {"username": "user", "password": "Secr3t"}),
    ({"queueName": "q", "host": "amqps://rabbit"}, {"tls": "enable", "cert": TLS.client_cert_pem,
                                                     "key": TLS.client_key_pem, "keyPassword": "Secr3t"}),
])
def test_repr_and_messages_hide_secrets(metadata: dict[str, str], auth: dict[str, str]) -> None:
    config = parse(metadata, auth)
    failure = config.broker.error(f"failed: {config.broker.password}")
    texts = [repr(config), str(config), str(config.broker), str(failure)]
    for text in texts:
        for secret in ("Secr3t", "p@ss/word", "p%40ss%2Fword", "PRIVATE KEY"):
            assert secret not in text
    assert str(config.broker).startswith(("amqp://user:***@rabbit:5672/vh", "http://user:***@rabbit:80",
                                          "amqps://rabbit:5671/%2F"))


def test_equal_brokers_share_a_server_key() -> None:
    keys = {SCALER.server_key(parse({**Q, "queueName": f"q{i}", "queueLength": f"{i + 1}"}))
            for i in range(5)}
    assert len(keys) == 1
    http = {SCALER.server_key(parse({**QH, "vhostName": f"v{i}"})) for i in range(3)}
    assert len(http) == 1, "HTTP configs of all vhosts share the broker's client"
    amqp_vhosts = {SCALER.server_key(parse({**Q, "vhostName": f"v{i}"})) for i in range(3)}
    assert len(amqp_vhosts) == 3, "an AMQP connection belongs to one vhost"
    other_password = SCALER.server_key(parse(Q, {"username": "user", "password": "other"}))
    assert other_password not in keys


def stats(messages: int, ready: int = 0, publish: float = 0.0, deliver: float = 0.0) -> QueueStats:
    return QueueStats(messages, ready, publish, deliver)


@pytest.mark.parametrize("mode, extra, queue, value", [
    ("QueueLength", {}, stats(7, 3), 7.0),
    ("QueueLength", {"excludeUnacknowledged": "true"}, stats(7, 3), 3.0),
    ("MessageRate", {}, stats(7, 3, 2.5, 1.0), 2.5),
    ("DeliverGetRate", {}, stats(7, 3, 2.5, 1.5), 1.5),
    ("PublishedToDeliveredRatio", {}, stats(7, 3, 3.0, 1.5), 2.0),
    ("PublishedToDeliveredRatio", {}, stats(7, 3, 0.0, 1.5), 0.0),
    ("PublishedToDeliveredRatio", {}, stats(0, 0, 0.0, 0.0), 0.0),
    ("PublishedToDeliveredRatio", {"activationValue": "2"}, stats(0, 0, 3.0, 0.0), 2.001),
    ("ExpectedQueueConsumptionTime", {}, stats(10, 4, 3.0, 2.0), (3.0 - 2.0) / 2.0 + 10 / 2.0),
    ("ExpectedQueueConsumptionTime", {"excludeUnacknowledged": "true"}, stats(10, 4, 3.0, 2.0), 0.5 + 2.0),
    ("ExpectedQueueConsumptionTime", {"activationValue": "5"}, stats(10, 4, 3.0, 0.0), 5.001),
    ("ExpectedQueueConsumptionTime", {"activationValue": "5"}, stats(0, 0, 0.0, 0.0), 0.0),
])
def test_metric_value(mode: str, extra: dict[str, str], queue: QueueStats, value: float) -> None:
    config = parse({**QH, "mode": mode, "value": "1", **extra})
    assert metric_value(config, queue) == pytest.approx(value)
    assert (value > config.activation_value) == (metric_value(config, queue) > config.activation_value)


@pytest.mark.parametrize("operation, expected", [
    ("sum", stats(9, 4, 6.0, 3.0)),
    ("avg", stats(3, 1, 2.0, 1.0)),  # whole messages, like KEDA's integer average
    ("max", stats(5, 3, 4.0, 2.0)),
])
def test_aggregate(operation: Any, expected: QueueStats) -> None:
    queues = [stats(5, 1, 4.0, 0.0), stats(4, 3, 2.0, 2.0), stats(0, 0, 0.0, 1.0)]
    assert aggregate(queues, operation) == expected
    assert aggregate([], operation) == stats(0, 0)
