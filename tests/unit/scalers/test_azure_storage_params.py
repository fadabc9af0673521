"""azure-queue and azure-blob trigger parameters: KEDA's keys, defaults and errors."""

from __future__ import annotations

from typing import Any

import pytest

from scalers.azure_storage.account import Account, parse_account
from scalers.azure_storage.blob import AzureBlobScaler
from scalers.azure_storage.queue import AzureQueueScaler
from scalers.base import metric_name
from scalers.params import ParameterError, TriggerParams, secret_values

KEY = "QWNjb3VudC1rZXktdmFsdWUtc2VjcmV0"
CONNECTION = f"DefaultEndpointsProtocol=https;AccountName=sample;AccountKey={KEY};EndpointSuffix=core.windows.net"
QUEUE, BLOB = AzureQueueScaler(), AzureBlobScaler()


def queue(metadata: dict[str, str], auth: dict[str, str] | None = None, env: dict[str, str] | None = None,
          pod_identity: str = "") -> Any:
    return QUEUE.parse("azure-queue", TriggerParams(metadata, {"connection": CONNECTION} if auth is None else auth,
                                                    env or {}, pod_identity=pod_identity))


def blob(metadata: dict[str, str], auth: dict[str, str] | None = None, pod_identity: str = "") -> Any:
    return BLOB.parse("azure-blob", TriggerParams(metadata, {"connection": CONNECTION} if auth is None else auth,
                                                  pod_identity=pod_identity))


@pytest.mark.parametrize("metadata, auth, env, expected", [
    ({"queueName": "sample"}, None, None,
     {"queue_length": 5, "activation_queue_length": 0, "queue_length_strategy": "all"}),
    ({"queueName": "sample", "queueLength": "7", "activationQueueLength": "2", "queueLengthStrategy": "VisibleOnly"},
     None, None, {"queue_length": 7, "activation_queue_length": 2, "queue_length_strategy": "visibleonly"}),
    ({"queueName": "sample", "connectionFromEnv": "CONN"}, {}, {"CONN": CONNECTION}, {"connection": CONNECTION}),
    ({"queueName": "sample", "connection": CONNECTION}, {}, None, {"connection": CONNECTION}),  # metadata too
    ({"queueName": "sample", "cloud": "AzureChinaCloud"}, None, None, {"queue_name": "sample"}),
    ({"queueName": "sample", "cloud": "Private", "endpointSuffix": "queue.local"}, None, None,
     {"queue_name": "sample"}),
])
def test_queue_keys(metadata: dict[str, str], auth: dict[str, str] | None, env: dict[str, str] | None,
                    expected: dict[str, Any]) -> None:
    config = queue(metadata, auth, env)
    for name, value in expected.items():
        assert getattr(config, name) == value, name
    assert metric_name(0, QUEUE.metric(config).name) == "s0-azure-queue-sample"
    assert QUEUE.server_key(config) == Account("sample", "https://sample.queue.core.windows.net", CONNECTION)
    assert KEY in secret_values(config) and KEY not in repr(config)


@pytest.mark.parametrize("metadata, auth, pod_identity, error", [
    ({}, None, "", 'missing required parameter "queueName"'),
    ({"queueName": "q"}, {}, "", "no connection setting given"),
    ({"queueName": "q", "queueLength": "x"}, None, "", 'parameter "queueLength" value "x" must be an integer'),
    ({"queueName": "q", "queueLengthStrategy": "some"}, None, "",
     'parameter "queueLengthStrategy" value "some" must be one of [all, visibleonly]'),
    ({"queueName": "q", "cloud": "Private"}, None, "", "endpointSuffix must be provided for Private cloud type"),
    ({"queueName": "q", "cloud": "Mars"}, None, "", "invalid cloud environment Mars"),
    ({"queueName": "q", "accountName": "acct"}, {}, "azure-workload",
     "workload identity for storage account acct.queue.core.windows.net is not supported"),
    ({"queueName": "q"}, None, "aws", "pod identity aws not supported for azure storage queues"),
    ({"queueName": "q"}, {"connection": "AccountName=a"}, "", "has neither AccountKey nor SharedAccessSignature"),
    ({"queueName": "q"}, {"connection": "garbage"}, "", "is not a storage connection string"),
    ({"queueName": "q"}, {"connection": "AccountKey=k"}, "", "Missing key or name"),
])
def test_queue_errors(metadata: dict[str, str], auth: dict[str, str] | None, pod_identity: str, error: str) -> None:
    with pytest.raises(ParameterError) as caught:
        queue(metadata, auth, pod_identity=pod_identity)
    assert error in str(caught.value) and KEY not in str(caught.value)


@pytest.mark.parametrize("metadata, listing, extra", [
    ({"blobContainerName": "sample"}, ("sample", "", "/", None),
     {"blob_count": 5, "activation_blob_count": 0, "recursive": False}),
    ({"blobContainerName": "sample", "blobPrefix": "in", "blobCount": "3", "activationBlobCount": "1"},
     ("sample", "in/", "/", None), {"blob_count": 3, "activation_blob_count": 1}),
    ({"blobContainerName": "sample", "blobPrefix": "in", "blobDelimiter": "-"}, ("sample", "in-", "-", None), {}),
    ({"blobContainerName": "sample", "blobPrefix": "in", "recursive": "true"}, ("sample", "in", "", None),
     {"recursive": True}),
    ({"blobContainerName": "sample", "globPattern": "/logs/*.json"}, ("sample", "", "", "logs/*.json"), {}),
])
def test_blob_keys(metadata: dict[str, str], listing: tuple[str, str, str, str | None], extra: dict[str, Any]) -> None:
    config = blob(metadata)
    assert config.listing == listing
    for name, value in extra.items():
        assert getattr(config, name) == value
    assert metric_name(1, BLOB.metric(config).name) == "s1-azure-blob-sample"
    assert BLOB.server_key(config).endpoint == "https://sample.blob.core.windows.net"


@pytest.mark.parametrize("metadata, auth, pod_identity, error", [
    ({}, None, "", 'missing required parameter "blobContainerName"'),
    ({"blobContainerName": "c"}, {}, "", "connection string is required when not using pod identity"),
    ({"blobContainerName": "c", "blobCount": "many"}, None, "", 'parameter "blobCount" value "many" must be an'),
    ({"blobContainerName": "c", "recursive": "perhaps"}, None, "", 'parameter "recursive" value "perhaps" must be'),
    ({"blobContainerName": "c", "accountName": "acct"}, {}, "azure-workload",
     "workload identity for storage account acct.blob.core.windows.net is not supported"),
    ({"blobContainerName": "c"}, None, "gcp", "pod identity gcp not supported for Azure Storage Blobs"),
    ({"blobContainerName": "c", "cloud": "Nowhere"}, None, "", "invalid cloud environment Nowhere"),
])
def test_blob_errors(metadata: dict[str, str], auth: dict[str, str] | None, pod_identity: str, error: str) -> None:
    with pytest.raises(ParameterError) as caught:
        blob(metadata, auth, pod_identity)
    assert error in str(caught.value)


@pytest.mark.parametrize("connection, service, account", [
    ("UseDevelopmentStorage=true", "queue", Account("devstoreaccount1", "http://127.0.0.1:10001/devstoreaccount1")),
    (f"AccountName=a;AccountKey={KEY};BlobEndpoint=http://127.0.0.1:9/a/", "blob",
     Account("a", "http://127.0.0.1:9/a")),
    ("BlobEndpoint=https://x.blob.core.windows.net;SharedAccessSignature=sv=1&sig=abc", "blob",
     Account("https://x.blob.core.windows.net", "https://x.blob.core.windows.net")),
])
def test_accounts(connection: str, service: str, account: Account) -> None:
    found = parse_account(connection, service)
    assert (found.name, found.endpoint) == (account.name, account.endpoint)
