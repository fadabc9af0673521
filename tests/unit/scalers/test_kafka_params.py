"""Parsing of kafka triggers: every key, default, source and error, row by row from KEDA's own tables.

The rows follow `parseKafkaMetadataTestDataset`, `parseKafkaAuthParamsTestDataset` and
`parseAuthParamsTestDataset` of KEDA's kafka_scaler_test.go (success or failure as there), plus
our own rows for sources and messages. Two deliberate differences: TLS material must be real PEM
(KEDA checks it only when it connects; we refuse bad PEM at parse time, so its "caaa"/"ceert"
rows use the test CA's PEM), and `sasl: oauthbearer`/`gssapi`, which KEDA accepts, are refused.
"""

from __future__ import annotations

import operator
from typing import Any

import pytest

from scalers.kafka import KafkaScaler
from scalers.kafka.kafka_config import KafkaConfig, parse_partition_limitation
from scalers.params import ParameterError, TriggerParams
from tests.harness.tls_material import KEY_PASSWORD, TLSMaterial

SCALER = KafkaScaler()
PEM = TLSMaterial.generate()
CA, CERT, KEY = PEM.ca_pem.strip(), PEM.client_cert_pem.strip(), PEM.client_key_pem.strip()  # values are trimmed
BASE = {"bootstrapServers": "foobar:9092", "consumerGroup": "my-group", "topic": "my-topic"}
SASL = {"sasl": "plaintext", "username": "admin", "password": "admin"}


def parse(metadata: dict[str, str], auth: dict[str, str] | None = None,
          env: dict[str, str] | None = None) -> KafkaConfig:
    found = SCALER.parse("kafka", TriggerParams(metadata=metadata, auth=auth or {}, env=env or {}))
    assert isinstance(found, KafkaConfig)
    return found


DEFAULTS = {
    "cluster.bootstrap_servers": ("foobar:9092",), "consumer_group": "my-group", "topic": "my-topic",
    "partition_limitation": None, "lag_threshold": 10, "activation_lag_threshold": 0,
    "offset_reset_policy": "latest", "allow_idle_consumers": False, "exclude_persistent_lag": False,
    "scale_to_zero_on_invalid_offset": False, "limit_to_partitions_with_lag": False,
    "ensure_even_distribution": False, "cluster.sasl_mechanism": None, "cluster.tls": None,
    "cluster.security_protocol": "PLAINTEXT",
}


@pytest.mark.parametrize("metadata, auth, expected", [
    (BASE, {}, DEFAULTS),
    # KEDA: success, no topic; partitionLimitation ignored without a topic; blank limitation
    ({"bootstrapServers": "foobar:9092", "consumerGroup": "my-group"}, {}, {"topic": ""}),
    ({"bootstrapServers": "foobar:9092", "consumerGroup": "my-group", "partitionLimitation": "1,2,3,4,5,6"}, {},
     {"partition_limitation": None}),
    ({**BASE, "partitionLimitation": "           "}, {}, {"partition_limitation": None}),
    ({**BASE, "lagThreshold": "1000000", "activationLagThreshold": "0"}, {}, {"lag_threshold": 1000000}),
    ({**BASE, "lagThreshold": "10", "activationLagThreshold": "0"}, {}, {"activation_lag_threshold": 0}),
    ({**BASE, "activationLagThreshold": "7"}, {}, {"activation_lag_threshold": 7}),
    ({**BASE, "partitionLimitation": "1,2,3,4"}, {}, {"partition_limitation": (1, 2, 3, 4)}),
    ({**BASE, "partitionLimitation": "1-4"}, {}, {"partition_limitation": (1, 2, 3, 4)}),
    ({**BASE, "partitionLimitation": "1-4,8,10-12"}, {}, {"partition_limitation": (1, 2, 3, 4, 8, 10, 11, 12)}),
    ({**BASE, "partitionLimitation": " 1 , 2 , 3 "}, {}, {"partition_limitation": (1, 2, 3)}),
    ({**BASE, "bootstrapServers": "foo:9092,bar:9092"}, {}, {"cluster.bootstrap_servers": ("bar:9092", "foo:9092")}),
    ({**BASE, "offsetResetPolicy": "latest"}, {}, {"offset_reset_policy": "latest"}),
    ({**BASE, "offsetResetPolicy": "earliest"}, {}, {"offset_reset_policy": "earliest"}),
    ({**BASE, "allowIdleConsumers": "true"}, {}, {"allow_idle_consumers": True}),
    ({**BASE, "excludePersistentLag": "true"}, {}, {"exclude_persistent_lag": True}),
    ({**BASE, "allowIdleConsumers": "true", "version": "1.0.0"}, {}, {"allow_idle_consumers": True}),
    ({**BASE, "version": "0.10.2.1"}, {}, {}),
    ({**BASE, "limitToPartitionsWithLag": "true"}, {}, {"limit_to_partitions_with_lag": True}),
    ({**BASE, "allowIdleConsumers": "true", "limitToPartitionsWithLag": "false"}, {}, {"allow_idle_consumers": True}),
    ({**BASE, "ensureEvenDistributionOfPartitions": "true"}, {}, {"ensure_even_distribution": True}),
    ({**BASE, "scaleToZeroOnInvalidOffset": "true"}, {}, {"scale_to_zero_on_invalid_offset": True}),
    ({**BASE, "fullMetadata": "true"}, {}, {}),
    ({"bootstrapServers": "foobar:9092", "consumerGroup": "my-group", "fullMetadata": "true"}, {}, {}),
    ({**BASE, "fullMetadata": "false"}, {}, {}),
    # sources: bootstrapServers, consumerGroup and topic from metadata or <key>FromEnv, never auth params
    ({"bootstrapServersFromEnv": "B", "consumerGroupFromEnv": "G", "topicFromEnv": "T"}, {},
     {"cluster.bootstrap_servers": ("env:9092",), "consumer_group": "eg", "topic": "et"}),
    # SASL (KEDA's parseKafkaAuthParamsTestDataset and parseAuthParamsTestDataset)
    (BASE, SASL, {"cluster.sasl_mechanism": "PLAIN", "cluster.username": "admin", "cluster.password": "admin",
                  "cluster.security_protocol": "SASL_PLAINTEXT"}),
    (BASE, {**SASL, "sasl": "scram_sha256"}, {"cluster.sasl_mechanism": "SCRAM-SHA-256"}),
    (BASE, {**SASL, "sasl": "scram_sha512"}, {"cluster.sasl_mechanism": "SCRAM-SHA-512"}),
    ({**BASE, "sasl": "scram_sha512"}, {"sasl": "scram_sha512", "username": "admin", "password": "admin"},
     {"cluster.sasl_mechanism": "SCRAM-SHA-512"}),
    ({**BASE, "sasl": "plaintext"}, {"username": "admin", "password": "admin"}, {"cluster.sasl_mechanism": "PLAIN"}),
    (BASE, {**SASL, "sasl": "plaintext\n"}, {"cluster.sasl_mechanism": "PLAIN"}),
    (BASE, {**SASL, "sasl": "scram_sha256 "}, {"cluster.sasl_mechanism": "SCRAM-SHA-256"}),
    ({**BASE, "sasl": "none"}, {}, {"cluster.sasl_mechanism": None}),
    (BASE, {**SASL, "tls": "disable"}, {"cluster.tls": None}),
    # TLS: enable|disable from metadata, then auth params; material from auth params only
    (BASE, {"tls": "enable", "ca": CA, "cert": CERT, "key": KEY},
     {"cluster.tls.ca": CA, "cluster.tls.cert": CERT, "cluster.tls.key": KEY, "cluster.security_protocol": "SSL"}),
    (BASE, {"tls": "enable", "cert": CERT, "key": KEY}, {"cluster.tls.ca": None}),
    (BASE, {"tls": "enable", "cert": CERT, "key": PEM.client_key_encrypted_pem, "keyPassword": KEY_PASSWORD},
     {"cluster.tls.key_password": KEY_PASSWORD}),
    (BASE, {"tls": "enable", "ca": CA}, {"cluster.tls.cert": None}),
    ({**BASE, "tls": "enable", "unsafeSsl": "true"}, {"ca": CA}, {"cluster.tls.unsafe_ssl": True}),
    ({**BASE, "tls": "enable"}, {"tls": "enable", "ca": CA, "cert": CERT, "key": KEY}, {"cluster.tls.ca": CA}),
    (BASE, {**SASL, "tls": "enable", "ca": CA}, {"cluster.security_protocol": "SASL_SSL"}),
    ({**BASE, "ca": "ignored"}, {}, {"cluster.tls": None}),
])
def test_parse(metadata: dict[str, str], auth: dict[str, str], expected: dict[str, Any]) -> None:
    config = parse(metadata, auth, {"B": "env:9092", "G": "eg", "T": "et"})
    for path, value in expected.items():
        assert operator.attrgetter(path)(config) == value, path


@pytest.mark.parametrize("metadata, auth, error", [
    # KEDA: failure rows of parseKafkaMetadataTestDataset
    ({}, {}, 'missing required parameter "bootstrapServers"'),
    ({"bootstrapServers": "foobar:9092"}, {}, 'missing required parameter "consumerGroup"'),
    ({**BASE, "version": "1.2.3.4"}, {}, "error parsing kafka version: invalid version `1.2.3.4`"),
    ({**BASE, "lagThreshold": "-1"}, {}, '"lagThreshold" must be positive number'),
    ({**BASE, "lagThreshold": "0"}, {}, '"lagThreshold" must be positive number'),
    ({**BASE, "lagThreshold": "1.5"}, {}, 'parameter "lagThreshold" value "1.5" must be an integer'),
    ({**BASE, "activationLagThreshold": "AA"}, {}, 'parameter "activationLagThreshold" value "AA" must be an integer'),
    ({**BASE, "activationLagThreshold": "-1"}, {}, '"activationLagThreshold" must be a non-negative number'),
    ({**BASE, "partitionLimitation": "a,b,c,d"}, {}, "invalid partition limitation: a"),
    ({**BASE, "partitionLimitation": "1-2-3"}, {}, "invalid partition limitation range: 1-2-3"),
    ({**BASE, "partitionLimitation": "1-x"}, {}, "invalid partition limitation: 1-x"),
    ({**BASE, "offsetResetPolicy": "foo"}, {}, 'parameter "offsetResetPolicy" value "foo" must be one of'),
    ({**BASE, "allowIdleConsumers": "notvalid"}, {}, 'parameter "allowIdleConsumers" value "notvalid"'),
    ({**BASE, "excludePersistentLag": "notvalid"}, {}, 'parameter "excludePersistentLag" value "notvalid"'),
    ({**BASE, "limitToPartitionsWithLag": "notvalid"}, {}, 'parameter "limitToPartitionsWithLag"'),
    ({**BASE, "allowIdleConsumers": "true", "limitToPartitionsWithLag": "true"}, {},
     "allowIdleConsumers and limitToPartitionsWithLag cannot be set simultaneously"),
    ({"bootstrapServers": "foobar:9092", "consumerGroup": "my-group", "limitToPartitionsWithLag": "true"}, {},
     "topic must be specified when using limitToPartitionsWithLag"),
    ({**BASE, "ensureEvenDistributionOfPartitions": "true", "limitToPartitionsWithLag": "true"}, {},
     "limitToPartitionsWithLag and ensureEvenDistributionOfPartitions cannot be set simultaneously"),
    ({"bootstrapServers": "foobar:9092", "consumerGroup": "g", "ensureEvenDistributionOfPartitions": "true"}, {},
     "topic must be specified when using ensureEvenDistributionOfPartitions"),
    ({"bootstrapServers": "foobar:9092", "consumerGroup": "my-group", "fullMetadata": "false"}, {},
     "topic must be specified when fullMetadata is false"),
    ({**BASE, "fullMetadata": "notabool"}, {}, 'parameter "fullMetadata" value "notabool" must be a boolean'),
    ({"consumerGroup": "g", "topic": "t"}, {"bootstrapServers": "auth:9092"}, 'missing required parameter "bootstrap'),
    # KEDA: failure rows of the auth tables
    (BASE, {"sasl": "foo", "username": "admin", "password": "admin"}, 'parameter "sasl" value "foo" must be one of'),
    (BASE, {"sasl": "plaintext", "password": "admin"}, "no username given"),
    (BASE, {"sasl": "plaintext", "username": "admin"}, "no password given"),
    ({**BASE, "sasl": "plaintext"}, {"username": "admin", "password": ""}, "no password given"),
    (BASE, {"tls": "enable", "ca": CA, "key": KEY}, "cert must be provided with key"),
    (BASE, {"tls": "enable", "ca": CA, "cert": CERT}, "key must be provided with cert"),
    (BASE, {"tls": "yes", "ca": CA, "cert": CERT, "key": KEY}, 'parameter "tls" value "yes" must be one of'),
    (BASE, {**SASL, "tls": "foo"}, 'parameter "tls" value "foo" must be one of'),
    (BASE, {"tls": "enable", "ca": "caaa"}, 'TLS parameters "ca", "cert", "key" cannot be loaded'),
    (BASE, {"tls": "enable", "cert": CERT, "key": PEM.client_key_encrypted_pem, "keyPassword": "wrong"},
     "cannot be loaded"),
    # refused here, accepted by KEDA: token providers and Kerberos are not implemented
    (BASE, {"sasl": "oauthbearer", "username": "a", "password": "b", "oauthTokenEndpointUri": "https://x"},
     'sasl "oauthbearer" is not supported'),
    (BASE, {"sasl": "gssapi", "username": "a", "password": "b", "realm": "r", "kerberosConfig": "c"},
     'sasl "gssapi" is not supported'),
])
def test_parse_errors(metadata: dict[str, str], auth: dict[str, str], error: str) -> None:
    with pytest.raises(ParameterError) as raised:
        parse(metadata, auth)
    assert error in str(raised.value)


@pytest.mark.parametrize("text, expected", [
    ("1", (1,)), ("1,2,3,4", (1, 2, 3, 4)), (" 1 , 2 , 3 ", (1, 2, 3)), ("1-4", (1, 2, 3, 4)),
    (" 1 - 3 ", (1, 2, 3)), ("1-4,8,10-12", (1, 2, 3, 4, 8, 10, 11, 12)), ("5-5", (5,)), ("3-1", ()),
    ("", None), ("   ", None),
])
def test_partition_limitation(text: str, expected: tuple[int, ...] | None) -> None:
    """KEDA's TestKafkaParsePartitionLimitation."""
    assert parse_partition_limitation(text) == expected


@pytest.mark.parametrize("metadata, name", [
    (BASE, "kafka-my-topic"),  # KEDA: s0-kafka-my-topic once indexed and normalised
    ({"bootstrapServers": "foobar:9092", "consumerGroup": "my-group"}, "kafka-my-group-topics"),
])
def test_metric(metadata: dict[str, str], name: str) -> None:
    spec = SCALER.metric(parse({**metadata, "lagThreshold": "7", "activationLagThreshold": "2"}))
    assert (spec.name, spec.target, spec.activation) == (name, 7.0, 2.0)


def test_repr_and_server_key_hold_no_secret() -> None:
    config = parse(BASE, {**SASL, "password": "pw-secret-1", "tls": "enable", "cert": CERT,
                          "key": PEM.client_key_encrypted_pem, "keyPassword": KEY_PASSWORD})
    text = f"{config!r} {SCALER.server_key(config)!r} {config.cluster}"
    assert "pw-secret" not in text and KEY_PASSWORD not in text and "PRIVATE KEY" not in text
