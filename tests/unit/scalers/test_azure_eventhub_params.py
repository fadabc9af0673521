"""azure-eventhub: KEDA's parse table, its unprocessed-event arithmetic, and the checkpoint layouts."""

from __future__ import annotations

from typing import Any

import pytest

from scalers.azure_eventhub.checkpoints import CheckpointError, layout, sequence_number
from scalers.azure_eventhub.eventhub_scaler import INT64_MAX, AzureEventHubScaler, Partition, capped, unprocessed
from scalers.azure_eventhub.eventhub_scaler import without_checkpoint as without
from scalers.base import metric_name
from scalers.params import ParameterError, TriggerParams, secret_values

HUB = ("Endpoint=sb://testEventHubNamespace.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;"
       "SharedAccessKey=testKey-secret;EntityPath=testEventHub")
NO_ENTITY = HUB.removesuffix("EntityPath=testEventHub")
STORAGE = "DefaultEndpointsProtocol=https;AccountName=store;AccountKey=c3RvcmFnZS1rZXk=;EndpointSuffix=core.windows.net"
ENV = {"HUB": HUB, "STORE": STORAGE}
BASE = {"storageConnectionFromEnv": "STORE", "connectionFromEnv": "HUB"}
SCALER = AzureEventHubScaler()


def parse(metadata: dict[str, str], env: dict[str, str] | None = None, pod_identity: str = "") -> Any:
    return SCALER.parse("azure-eventhub", TriggerParams(metadata, {}, ENV if env is None else env,
                                                        pod_identity=pod_identity))


@pytest.mark.parametrize("metadata, env, expected", [
    # KEDA's parseEventHubMetadataDataset rows that parse
    ({**BASE, "consumerGroup": "testEventHubConsumerGroup", "unprocessedEventThreshold": "15"}, None,
     {"consumer_group": "testEventHubConsumerGroup", "threshold": 15}),
    ({**BASE, "unprocessedEventThreshold": "15"}, None, {"consumer_group": "$Default"}),
    ({**BASE, "consumerGroup": "cg"}, None,
     {"threshold": 64, "activation_threshold": 0, "stale_threshold": 10000}),
    ({**BASE, "blobContainer": "azure-webjobs-eventhub", "checkpointStrategy": "azureFunction"}, None,
     {"blob_container": "azure-webjobs-eventhub", "checkpoint_strategy": "azureFunction"}),
    ({**BASE, "eventHubName": "eventhub1"}, {"HUB": NO_ENTITY, "STORE": STORAGE}, {}),
    ({**BASE}, {"HUB": NO_ENTITY + "entitypath=testEventHub", "STORE": STORAGE}, {}),
    ({**BASE, "activationUnprocessedEventThreshold": "3", "stalePartitionInfoThreshold": "7"}, None,
     {"activation_threshold": 3, "stale_threshold": 7}),
])
def test_keda_good_rows(metadata: dict[str, str], env: dict[str, str] | None, expected: dict[str, Any]) -> None:
    config = parse(metadata, env)
    for name, value in expected.items():
        assert getattr(config, name) == value, name
    assert config.hub.namespace == "testEventHubNamespace.servicebus.windows.net"
    assert "testKey-secret" in secret_values(config) and "testKey-secret" not in repr(config)


def test_the_hub_name_joins_a_connection_without_entity_path() -> None:
    config = parse({**BASE, "eventHubName": "eventhub1"}, {"HUB": NO_ENTITY, "STORE": STORAGE})
    assert config.hub.name == "eventhub1" and config.hub.connection.endswith(";EntityPath=eventhub1")
    assert parse({**BASE, "eventHubName": "ignored"}).hub.connection == HUB  # KEDA: EntityPath wins, unchanged


def test_metric_name_and_sharing() -> None:
    config = parse({**BASE, "consumerGroup": "testEventHubConsumerGroup"})
    assert metric_name(0, SCALER.metric(config).name) == "s0-azure-eventhub-testEventHubConsumerGroup"
    assert metric_name(1, SCALER.metric(config).name) == "s1-azure-eventhub-testEventHubConsumerGroup"
    assert SCALER.server_key(config) == SCALER.server_key(parse({**BASE, "consumerGroup": "other"}))


@pytest.mark.parametrize("metadata, env, pod_identity, error", [
    ({}, None, "", "no storage connection string given"),
    ({"storageConnectionFromEnv": "STORE", "unprocessedEventThreshold": "15"}, None, "",
     "no event hub connection string given"),
    ({"connectionFromEnv": "HUB"}, None, "", "no storage connection string given"),
    ({**BASE, "unprocessedEventThreshold": "0"}, None, "", '"unprocessedEventThreshold" must be a positive number'),
    ({**BASE, "unprocessedEventThreshold": "-1"}, None, "", '"unprocessedEventThreshold" must be a positive number'),
    ({**BASE, "activationUnprocessedEventThreshold": "AA"}, None, "",
     'parameter "activationUnprocessedEventThreshold" value "AA" must be an integer'),
    (BASE, {"HUB": NO_ENTITY, "STORE": STORAGE}, "",
     "connection string does not contain event hub name, and parameter eventHubName not provided"),
    (BASE, {"HUB": NO_ENTITY.replace("testEventHubNamespace", "EntityPath"), "STORE": STORAGE}, "",
     "connection string does not contain event hub name"),
    ({**BASE, "cloud": "Private"}, None, "", "endpointSuffix must be provided for Private cloud type"),
    ({**BASE, "cloud": "Moon"}, None, "", "invalid cloud environment Moon"),
    ({"eventHubNamespace": "ns", "eventHubName": "h", "storageAccountName": "a"}, {}, "azure-workload",
     "workload identity for Event Hubs namespace ns.servicebus.windows.net is not supported"),
    (BASE, None, "aws", "event hub does not support pod identity aws"),
])
def test_errors(metadata: dict[str, str], env: dict[str, str] | None, pod_identity: str, error: str) -> None:
    with pytest.raises(ParameterError) as caught:
        parse(metadata, env, pod_identity)
    assert error in str(caught.value) and "testKey-secret" not in str(caught.value)


@pytest.mark.parametrize("checkpoint, last, expected", [
    # KEDA's calculateUnprocessedEventsDataset
    (5, 10, 5), (4611686018427387903, 4611686018427387905, 2), (4611686018427387900, 4611686018427387905, 5),
    (4000000000000200000, 4000000000000000000, 9223372036854575807),
    (0, 2, 2),  # empty checkpoint
    (15, 10, 0), (4611686018427387910, 4611686018427387905, 0), (5, 9223372036854775797, 0),  # stale
    (9223372036854775797, 5, 15),  # circular buffer reset
])
def test_unprocessed(checkpoint: int, last: int, expected: int) -> None:
    assert unprocessed(Partition("0", 0, last), checkpoint, 10000) == expected


@pytest.mark.parametrize("beginning, last, expected", [(0, 0, 1), (3, 9, 7), (5, 5, 0), (0, 4, 5)])
def test_without_checkpoint(beginning: int, last: int, expected: int) -> None:
    assert without(Partition("0", beginning, last)) == expected


@pytest.mark.parametrize("total, partitions, threshold, expected", [
    (10, 2, 3, 6), (6, 2, 3, 6), (7, 2, 3, 7), (0, 4, 64, 0), (INT64_MAX, 1, 64, 64)])
def test_capped_by_partitions(total: int, partitions: int, threshold: int, expected: int) -> None:
    assert capped(total, partitions, threshold) == expected


@pytest.mark.parametrize("strategy, container, blob_container, blob", [
    ("azureFunction", "ignored", "azure-webjobs-eventhub", "ns.example/hub/Group/3"),
    (None, None, "azure-webjobs-eventhub", "ns.example/hub/Group/3"),
    ("blobMetadata", "cp", "cp", "ns.example/hub/group/checkpoint/3"),
    ("goSdk", "cp", "cp", "3"),
    ("dapr", "cp", "cp", "dapr-hub-Group-3"),
    (None, "cp", "cp", "Group/3"),
    ("unknown", "cp", "cp", "Group/3"),
])
def test_layouts(strategy: str | None, container: str | None, blob_container: str, blob: str) -> None:
    place = layout(strategy, container, "ns.example", "hub", "Group")
    assert (place.container, place.blob("3")) == (blob_container, blob)


@pytest.mark.parametrize("strategy, body, metadata, expected", [
    ("azureFunction", b'{"Offset":"1","SequenceNumber":42,"PartitionId":"0"}', {}, 42),
    ("default", b'{"sequence_number":7,"partition_id":"1"}', {}, 7),
    ("default", b'{"SequenceNumber":9}', {}, 9),
    ("goSdk", b'{"checkpoint":{"offset":"2","sequenceNumber":11},"partitionId":"0"}', {}, 11),
    ("dapr", b'{"checkpoint":{"sequenceNumber":12}}', {}, 12),
    ("blobMetadata", b"", {"sequencenumber": "13", "offset": "5"}, 13),
    ("blobMetadata", b"", {"Sequencenumber": "14"}, 14),
])
def test_sequence_numbers(strategy: Any, body: bytes, metadata: dict[str, str], expected: int) -> None:
    assert sequence_number(strategy, body, metadata) == expected


@pytest.mark.parametrize("strategy, body, metadata, error", [
    ("blobMetadata", b"", {}, "sequencenumber on blob not found"),
    ("blobMetadata", b"", {"sequencenumber": "x"}, "sequencenumber is not a valid int64 value"),
    ("default", b"not json", {}, "failed to decode blob data"),
    ("goSdk", b'{"checkpoint":{"sequenceNumber":"one"}}', {}, "failed to decode blob data"),
])
def test_sequence_number_errors(strategy: Any, body: bytes, metadata: dict[str, str], error: str) -> None:
    with pytest.raises(CheckpointError, match=error):
        sequence_number(strategy, body, metadata)
