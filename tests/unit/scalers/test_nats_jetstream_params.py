"""nats-jetstream trigger parameters: KEDA's testNATSJetStreamMetadata table, and more."""

from __future__ import annotations

import pytest

from scalers.base import metric_name
from scalers.nats_jetstream import Monitoring, NatsJetStreamScaler
from scalers.params import ParameterError, TriggerParams

SCALER = NatsJetStreamScaler()
BASE = {"stream": "mystream", "consumer": "pull_consumer"}


def parse(metadata: dict[str, str], auth: dict[str, str] | None = None) -> object:
    return SCALER.parse("nats-jetstream", TriggerParams(metadata, auth or {}))


@pytest.mark.parametrize("metadata, auth", [
    ({"natsServerMonitoringEndpoint": "localhost:8222", "account": "$G", "accountID": "$G", **BASE,
      "useHttps": "false"}, {}),
    ({"natsServerMonitoringEndpoint": "nats.nats:8222", "account": "$G", **BASE, "useHttps": "true"}, {}),
    ({"natsServerMonitoringEndpoint": "localhost:8222", "accountID": "$G", **BASE, "useHttps": "false"}, {}),
    ({"natsServerMonitoringEndpoint": "nats.nats:8222", "account": "$G", **BASE, "activationLagThreshold": "10"}, {}),
    ({"account": "$G", **BASE}, {"natsServerMonitoringEndpoint": "nats.nats:8222"}),
    ({"account": "$G", **BASE, "lagThreshold": "6"}, {"natsServerMonitoringEndpoint": "nats.nats:8222"}),
    (BASE, {"account": "$G", "natsServerMonitoringEndpoint": "nats.nats:8222"}),
])
def test_kedas_good_rows(metadata: dict[str, str], auth: dict[str, str]) -> None:
    parse(metadata, auth)


@pytest.mark.parametrize("metadata, auth, error", [
    ({}, {}, 'missing required parameter "natsServerMonitoringEndpoint"'),
    ({"natsServerMonitoringEndpoint": "nats.nats:8222", **BASE}, {}, "no account name or id given"),
    ({"natsServerMonitoringEndpoint": "nats.nats:8222", "account": "$G", "consumer": "c"}, {},
     'missing required parameter "stream"'),
    ({"natsServerMonitoringEndpoint": "nats.nats:8222", "account": "$G", "stream": "s"}, {},
     'missing required parameter "consumer"'),
    ({"account": "$G", "stream": "mystream"}, {}, 'missing required parameter "natsServerMonitoringEndpoint"'),
    ({"natsServerMonitoringEndpoint": "n:1", "account": "$G", **BASE, "activationLagThreshold": "Y"}, {},
     'parameter "activationLagThreshold" value "Y" must be an integer'),
    ({"account": "$G", **BASE}, {"natsServerMonitoringEndpoint": ""},
     'missing required parameter "natsServerMonitoringEndpoint"'),
    ({"natsServerMonitoringEndpoint": "n:1", "account": "$G", **BASE, "useHttps": "error"}, {},
     'parameter "useHttps" value "error" must be a boolean'),
    ({"account": "$G", **BASE, "lagThreshold": "Y"}, {"natsServerMonitoringEndpoint": "n:1"},
     'parameter "lagThreshold" value "Y" must be an integer'),
    (BASE, {"natsServerMonitoringEndpoint": "nats.nats:8222"}, "no account name or id given"),
])
def test_kedas_error_rows(metadata: dict[str, str], auth: dict[str, str], error: str) -> None:
    with pytest.raises(ParameterError, match=error.replace("$", r"\$")):
        parse(metadata, auth)


def test_defaults_metric_and_server_key() -> None:
    config = SCALER.parse("nats-jetstream", TriggerParams(
        {"natsServerMonitoringEndpoint": "meta:8222", "account": "$G", **BASE},
        {"natsServerMonitoringEndpoint": "auth:8222"}))
    assert (config.lag_threshold, config.activation_lag_threshold, config.use_https) == (10, 0, False)
    assert config.endpoint == "auth:8222"  # the TriggerAuthentication first, as KEDA
    assert config.account_key == "$G"
    spec = SCALER.metric(config)
    assert (metric_name(0, spec.name), metric_name(1, spec.name)) == ("s0-nats-jetstream-mystream",
                                                                      "s1-nats-jetstream-mystream")
    assert SCALER.server_key(config) == Monitoring("http", "auth:8222")
    assert Monitoring("https", "nats:8222").url("nats-1.nats") == "https://nats-1.nats:8222"


def test_account_id_wins_over_the_name() -> None:
    config = SCALER.parse("nats-jetstream", TriggerParams(
        {"natsServerMonitoringEndpoint": "n:1", "account": "name", "accountID": "ID", **BASE}))
    assert config.account_key == "ID"
    assert config.is_account({"id": "ID", "name": "other"}) and config.is_account({"id": "x", "name": "name"})
    assert not config.is_account({"id": "x", "name": "y"})
