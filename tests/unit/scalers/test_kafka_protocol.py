"""The batched Kafka requests and the fast answer readers agree with aiokafka's generic encoder."""

from __future__ import annotations

from io import BytesIO

from aiokafka.protocol.types import Schema

from scalers.kafka.kafka_protocol import (
    EndOffsetsRequest,
    ListOffsetsRequest_v1,
    ListOffsetsResponse_v1,
    OffsetFetchResponse_v8,
)

Tags = dict[int, bytes]  # tagged fields by tag: none are written
PartitionAnswer = tuple[int, int, int, str | None, int, Tags]
GroupAnswer = tuple[str, list[tuple[str, list[PartitionAnswer], Tags]], int, Tags]


def test_offset_fetch_v8_answers_read_back_as_written() -> None:
    groups: list[GroupAnswer] = [
        ("g1", [("t", [(0, 5, -1, "", 0, {}), (1, 7, 3, None, 0, {}), (2, 9, -1, "meta" * 40, 0, {})], {})], 0, {}),
        ("g2", [], 16, {}),
        ("gé", [("t2", [(3, -1, -1, "", 3, {})], {})], 0, {}),
    ]
    written = OffsetFetchResponse_v8(12, groups, {}).encode()
    read = OffsetFetchResponse_v8.decode(BytesIO(written))
    assert (read.throttle_time_ms, read.groups) == (12, groups)


def test_list_offsets_v1_request_and_answer_match_the_generic_encoding() -> None:
    request = EndOffsetsRequest([("orders", [0, 1, 2]), ("é", [7])]).build(ListOffsetsRequest_v1)
    generic = Schema.encode(ListOffsetsRequest_v1.SCHEMA, [request.replica_id, request.topics])
    assert request.encode() == generic
    topics = [("orders", [(0, 0, -1, 42), (1, 6, -1, -1)]), ("é", [(7, 0, -1, 3)])]
    written = ListOffsetsResponse_v1(topics).encode()
    assert ListOffsetsResponse_v1.decode(BytesIO(written)).topics == topics
