"""azure-servicebus trigger parameters: every key, default and error, KEDA's wording where it has one."""

from __future__ import annotations

from typing import Any

import pytest

from adapter.certs import new_ca
from scalers.azure_servicebus import AzureServiceBusScaler, Namespace
from scalers.base import metric_name
from scalers.params import ParameterError, TriggerParams

KEY = "c2VjcmV0LWtleS0xMjM0NTY3ODkw"
CONNECTION = f"Endpoint=sb://MyNs.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey={KEY}"
SAS = ("SharedAccessSignature sr=https%3A%2F%2Fmyns.servicebus.windows.net&sig=c2lnbmF0dXJl"
       "&se=4102444800&skn=Root")
CA_PEM = new_ca("unit-test-ca").cert_pem.decode()
SCALER = AzureServiceBusScaler()


def parse(metadata: dict[str, str], auth: dict[str, str] | None = None,
          env: dict[str, str] | None = None) -> Any:
    params = TriggerParams(metadata=metadata, auth={"connection": CONNECTION} if auth is None else auth,
                           env=env or {})
    return SCALER.parse("azure-servicebus", params)


@pytest.mark.parametrize("metadata, auth, env, expected", [
    ({"queueName": "orders"}, None, None,
     {"queue_name": "orders", "topic_name": None, "subscription_name": None, "message_count": 5,
      "activation_message_count": 0, "use_regex": False, "operation": "sum", "ca": None}),
    ({"topicName": "events", "subscriptionName": "billing"}, None, None,
     {"queue_name": None, "topic_name": "events", "subscription_name": "billing", "entity": "billing"}),
    ({"queueName": " orders ", "messageCount": " 10 ", "activationMessageCount": "2"}, None, None,
     {"queue_name": "orders", "message_count": 10, "activation_message_count": 2}),
    ({"queueName": "orders-.*", "useRegex": "true"}, None, None, {"use_regex": True, "operation": "sum"}),
    ({"queueName": "o.*", "useRegex": "true", "operation": "MAX"}, None, None, {"operation": "max"}),
    ({"topicName": "t", "subscriptionName": "s.*", "useRegex": "1", "operation": "avg"}, None, None,
     {"use_regex": True, "operation": "avg"}),
    ({"queueName": "orders", "useRegex": "false", "messageCount": ""}, None, None,
     {"use_regex": False, "message_count": 5}),
    ({"queueName": "orders", "connectionFromEnv": "SB_CONN"}, {}, {"SB_CONN": CONNECTION},
     {"connection": CONNECTION}),
    ({"queueName": "orders", "connectionFromEnv": "SB_CONN"}, {"connection": CONNECTION},
     {"SB_CONN": "Endpoint=sb://other/;SharedAccessKeyName=a;SharedAccessKey=b"}, {"connection": CONNECTION}),
    ({"queueName": "orders", "namespace": "ignored", "cloud": "Nowhere"}, None, None,
     {"connection": CONNECTION}),
    ({"queueName": "orders"}, {"connection": f"Endpoint=sb://myns.servicebus.windows.net/;"
                                             f"SharedAccessSignature={SAS}"}, None, {"queue_name": "orders"}),
    ({"queueName": "orders"}, {"connection": CONNECTION, "ca": CA_PEM}, None, {"ca": CA_PEM.strip()}),
])
def test_parses(metadata: dict[str, str], auth: dict[str, str] | None, env: dict[str, str] | None,
                expected: dict[str, Any]) -> None:
    config = parse(metadata, auth, env)
    for name, value in expected.items():
        assert getattr(config, name) == value, name


@pytest.mark.parametrize("metadata, auth, error", [
    ({}, None, "no service bus entity type set"),
    ({"subscriptionName": "billing"}, None, "no service bus entity type set"),
    ({"queueName": "q", "subscriptionName": "s"}, None, "subscription name provided with queue name"),
    ({"queueName": "q", "topicName": "t"}, None, "both topic and queue name metadata provided"),
    ({"topicName": "t"}, None, "no subscription name provided with topic name"),
    ({"queueName": "q", "messageCount": "AA"}, None,
     'parameter "messageCount" value "AA" must be an integer'),
    ({"queueName": "q", "messageCount": "0"}, None, 'parameter "messageCount" value "0" must be positive'),
    ({"queueName": "q", "activationMessageCount": "x"}, None,
     'parameter "activationMessageCount" value "x" must be an integer'),
    ({"queueName": "q", "useRegex": "maybe"}, None, 'parameter "useRegex" value "maybe" must be a boolean'),
    ({"queueName": "q", "useRegex": "true", "operation": "median"}, None,
     'parameter "operation" value "median" must be one of [sum, avg, max]'),
    ({"queueName": "(", "useRegex": "true"}, None, "queueName is not a valid regular expression"),
    ({"topicName": "t", "subscriptionName": "[", "useRegex": "true"}, None,
     "subscriptionName is not a valid regular expression"),
    ({"queueName": "q"}, {}, "no connection setting given"),
    ({"queueName": "q", "connection": CONNECTION}, {}, "no connection setting given"),  # auth/env only
    ({"queueName": "q", "connectionFromEnv": "MISSING"}, {}, "no connection setting given"),
    ({"queueName": "q", "namespace": "myns"}, {},
     "workload identity for namespace myns.servicebus.windows.net is not supported: only connection strings"),
    ({"queueName": "q", "namespace": "myns", "cloud": "azurepubliccloud"}, {},
     "namespace myns.servicebus.windows.net is not supported"),
    ({"queueName": "q", "namespace": "myns", "cloud": "AzureChinaCloud"}, {},
     "namespace myns.servicebus.chinacloudapi.cn is not supported"),
    ({"queueName": "q", "namespace": "myns", "cloud": "AzureUSGovernmentCloud"}, {},
     "namespace myns.servicebus.usgovcloudapi.net is not supported"),
    ({"queueName": "q", "namespace": "myns", "cloud": "AzureGermanCloud"}, {},
     "namespace myns.servicebus.cloudapi.de is not supported"),
    ({"queueName": "q", "namespace": "myns", "cloud": "Private", "endpointSuffix": "sb.airgap.example"}, {},
     "namespace myns.sb.airgap.example is not supported"),
    ({"queueName": "q", "namespace": "myns", "cloud": "Private"}, {},
     "endpointSuffix must be provided for Private cloud type"),
    ({"queueName": "q", "namespace": "myns", "cloud": "Mars"}, {}, "invalid cloud environment Mars"),
    ({"queueName": "q"}, {"connection": f"garbage{KEY}"}, 'parameter "connection" is not a Service Bus'),
    ({"queueName": "q"}, {"connection": f"SharedAccessKeyName=a;SharedAccessKey={KEY}"},
     'parameter "connection" has no Endpoint'),
    ({"queueName": "q"}, {"connection": f"Endpoint=sb://myns.servicebus.windows.net/;SharedAccessKey={KEY}"},
     'parameter "connection" for myns.servicebus.windows.net needs SharedAccessKeyName'),
    ({"queueName": "q"}, {"connection": f"{CONNECTION};SharedAccessSignature={SAS}"},
     "needs SharedAccessKeyName"),
    ({"queueName": "q"}, {"connection": CONNECTION, "ca": "not a certificate"},
     'parameter "ca" is not a PEM certificate'),
])
def test_errors(metadata: dict[str, str], auth: dict[str, str] | None, error: str) -> None:
    with pytest.raises(ParameterError) as caught:
        parse(metadata, auth)
    assert error in str(caught.value)
    assert KEY not in str(caught.value) and "sig=" not in str(caught.value)


@pytest.mark.parametrize("metadata, name, target, activation", [
    ({"queueName": "orders"}, "s0-azure-servicebus-orders", 5.0, 0.0),
    ({"topicName": "mytopic", "subscriptionName": "sub", "messageCount": "20",
      "activationMessageCount": "3"}, "s0-azure-servicebus-mytopic", 20.0, 3.0),
    ({"queueName": "my.queue/a", "useRegex": "false"}, "s0-azure-servicebus-my-queue-a", 5.0, 0.0),
    ({"queueName": "orders-.*", "useRegex": "true"}, "s0-azure-servicebus-queue-regex", 5.0, 0.0),
    ({"topicName": "t", "subscriptionName": "s.*", "useRegex": "true"}, "s0-azure-servicebus-topic-regex",
     5.0, 0.0),
])
def test_metric(metadata: dict[str, str], name: str, target: float, activation: float) -> None:
    spec = SCALER.metric(parse(metadata))
    assert (metric_name(0, spec.name), spec.target, spec.activation) == (name, target, activation)


@pytest.mark.parametrize("connection, ca, same", [
    (CONNECTION, None, True),
    (CONNECTION.replace("MyNs", "myns") + ";EntityPath=orders", None, True),
    (CONNECTION.replace(KEY, "b3RoZXIta2V5"), None, False),
    (CONNECTION.replace("Root", "Listen"), None, False),
    (CONNECTION.replace("MyNs", "OtherNs"), None, False),
    (CONNECTION, CA_PEM, False),
])
def test_server_key_is_namespace_and_credentials(connection: str, ca: str | None, same: bool) -> None:
    auth = {"connection": connection} | ({"ca": ca} if ca else {})
    key = SCALER.server_key(parse({"queueName": "orders"}, auth))
    reference = SCALER.server_key(parse({"topicName": "t", "subscriptionName": "s"}))
    assert (key == reference) is same
    assert isinstance(key, Namespace)
    assert key.host in {"myns.servicebus.windows.net", "otherns.servicebus.windows.net"}


def test_secrets_stay_out_of_reprs() -> None:
    config = parse({"queueName": "orders"}, {"connection": CONNECTION, "ca": CA_PEM})
    for text in (repr(config), str(config), repr(SCALER.server_key(config))):
        assert KEY not in text and CONNECTION not in text and "BEGIN CERTIFICATE" not in text
