"""aws-sqs-queue trigger parameters: KEDA's table (keys, defaults, credentials) and its errors."""

from __future__ import annotations

from typing import Any

import pytest

from scalers.aws_sqs import DELAYED, IN_FLIGHT, VISIBLE, Account, AwsSqsScaler
from scalers.base import metric_name
from scalers.params import ParameterError, TriggerParams, secret_values

SCALER = AwsSqsScaler()
URL = "https://sqs.eu-west-1.amazonaws.com/account_id/DeleteArtifactQ"
KEYS = {"awsAccessKeyId": "AKIDEXAMPLE", "awsSecretAccessKey": "Secret-access-key"}


def parse(metadata: dict[str, str], auth: dict[str, str] | None = None, env: dict[str, str] | None = None,
          pod_identity: str = "") -> Any:
    params = TriggerParams(metadata, KEYS if auth is None else auth, env or {}, pod_identity=pod_identity)
    return SCALER.parse("aws-sqs-queue", params)


@pytest.mark.parametrize("metadata, auth, env, expected", [
    ({"queueURL": URL, "awsRegion": "eu-west-1"}, None, None,
     {"queue_length": 5, "activation_queue_length": 0, "queue_name": "DeleteArtifactQ", "scale_on_in_flight": True,
      "scale_on_delayed": False, "attributes": (VISIBLE, IN_FLIGHT), "aws_endpoint": None}),
    ({"queueURL": URL, "awsRegion": "eu-west-1", "queueLength": "1", "activationQueueLength": "3"}, None, None,
     {"queue_length": 1, "activation_queue_length": 3}),
    ({"queueURL": "my-queue", "awsRegion": "eu-west-1"}, None, None, {"queue_name": "my-queue"}),
    ({"queueURLFromEnv": "QUEUE_URL", "awsRegion": "eu-west-1"}, None, {"QUEUE_URL": URL},
     {"queue_url": URL, "queue_name": "DeleteArtifactQ"}),
    ({"queueURL": URL}, {**KEYS, "awsRegion": "eu-central-1"}, None, {"aws_region": "eu-central-1"}),
    ({"queueURL": URL, "awsRegion": "eu-west-1", "scaleOnInFlight": "false"}, None, None,
     {"attributes": (VISIBLE,)}),
    ({"queueURL": URL, "awsRegion": "eu-west-1", "scaleOnDelayed": "true"}, None, None,
     {"attributes": (VISIBLE, IN_FLIGHT, DELAYED)}),
    ({"queueURL": URL, "awsRegion": "eu-west-1", "scaleOnInFlight": "false", "scaleOnDelayed": "true"}, None, None,
     {"attributes": (VISIBLE, DELAYED)}),
    ({"queueURL": URL, "awsRegion": "eu-west-1", "awsEndpoint": "http://127.0.0.1:4566"}, None, None,
     {"aws_endpoint": "http://127.0.0.1:4566"}),
    ({"queueURL": URL, "awsRegion": "eu-west-1", "identityOwner": "pod"}, None, None, {"identity_owner": "pod"}),
])
def test_keys_and_defaults(metadata: dict[str, str], auth: dict[str, str] | None, env: dict[str, str] | None,
                           expected: dict[str, Any]) -> None:
    config = parse(metadata, auth, env)
    for name, value in expected.items():
        assert getattr(config, name) == value, name


@pytest.mark.parametrize("auth, env, metadata, account", [
    (KEYS, {}, {}, Account("eu-west-1", None, "AKIDEXAMPLE", "Secret-access-key")),
    ({"awsAccessKeyID": "AKID2", "awsSecretAccessKey": "Secret-2", "awsSessionToken": "Token-1"}, {}, {},
     Account("eu-west-1", None, "AKID2", "Secret-2", "Token-1")),
    ({}, {"KEY_ID": "AKID3", "SECRET": "Secret-3"},
     {"awsAccessKeyIDFromEnv": "KEY_ID", "awsSecretAccessKeyFromEnv": "SECRET"},
     Account("eu-west-1", None, "AKID3", "Secret-3")),
    ({}, {"SECRET": "Secret-4"}, {"awsAccessKeyID": "AKID4", "awsSecretAccessKeyFromEnv": "SECRET"},
     Account("eu-west-1", None, "AKID4", "Secret-4")),
])
def test_credentials(auth: dict[str, str], env: dict[str, str], metadata: dict[str, str], account: Account) -> None:
    config = parse({"queueURL": URL, "awsRegion": "eu-west-1", **metadata}, auth, env)
    assert SCALER.server_key(config) == account
    assert config.account.secret_access_key == account.secret_access_key
    assert account.secret_access_key in secret_values(config)
    assert account.secret_access_key not in repr(config)


def test_metric_and_sharing() -> None:
    config = parse({"queueURL": URL, "awsRegion": "eu-west-1"})
    assert metric_name(0, SCALER.metric(config).name) == "s0-aws-sqs-DeleteArtifactQ"
    other = parse({"queueURL": URL.replace("DeleteArtifactQ", "Other"), "awsRegion": "eu-west-1"})
    assert SCALER.server_key(config) == SCALER.server_key(other)
    assert SCALER.server_key(config) != SCALER.server_key(parse({"queueURL": URL, "awsRegion": "us-east-1"}))


@pytest.mark.parametrize("metadata, auth, pod_identity, error", [
    ({"queueURL": "https://sqs.eu-west-1.amazonaws.com/account_id", "awsRegion": "eu-west-1"}, KEYS, "",
     "cannot get queueName from queueURL"),
    ({"queueURL": "https://sqs.eu-west-1.amazonaws.com", "awsRegion": "eu-west-1"}, KEYS, "",
     "cannot get queueName from queueURL"),
    ({"queueURL": URL, "awsRegion": ""}, KEYS, "", 'missing required parameter "awsRegion"'),
    ({"awsRegion": "eu-west-1"}, KEYS, "", 'missing required parameter "queueURL"'),
    ({"queueURL": URL, "awsRegion": "eu-west-1", "queueLength": "x"}, KEYS, "",
     'parameter "queueLength" value "x" must be an integer'),
    ({"queueURL": URL, "awsRegion": "eu-west-1", "scaleOnDelayed": "sometimes"}, KEYS, "",
     'parameter "scaleOnDelayed" value "sometimes" must be a boolean'),
    ({"queueURL": URL, "awsRegion": "eu-west-1"}, {"awsAccessKeyId": "AKID"}, "", "awsSecretAccessKey not found"),
    ({"queueURL": URL, "awsRegion": "eu-west-1"}, {}, "", "awsAccessKeyID not found"),
    ({"queueURL": URL, "awsRegion": "eu-west-1", "awsAccessKeyID": "AKID"}, {}, "", "awsSecretAccessKey not found"),
    ({"queueURL": URL, "awsRegion": "eu-west-1", "identityOwner": "operator"}, {}, "",
     "identityOwner operator (the operator's own AWS identity) is not supported"),
    ({"queueURL": URL, "awsRegion": "eu-west-1"}, {"awsRoleArn": "arn:aws:iam::1:role/r"}, "",
     "awsRoleArn (a role to assume) is not supported"),
    ({"queueURL": URL, "awsRegion": "eu-west-1"}, {}, "aws", 'pod identity "aws" is not supported'),
    ({"queueURL": URL, "awsRegion": "eu-west-1"}, KEYS, "aws-eks", 'pod identity "aws-eks" is not supported'),
    ({"queueURL": URL, "awsRegion": "eu-west-1", "identityOwner": "someone"}, KEYS, "",
     'parameter "identityOwner" value "someone" must be one of [pod, operator]'),
])
def test_errors(metadata: dict[str, str], auth: dict[str, str], pod_identity: str, error: str) -> None:
    with pytest.raises(ParameterError) as caught:
        parse(metadata, auth, pod_identity=pod_identity)
    assert error in str(caught.value) and "Secret-access-key" not in str(caught.value)
