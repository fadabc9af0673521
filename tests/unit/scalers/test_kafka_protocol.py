"""The batched Kafka requests and the fast answer readers agree with aiokafka's generic encoder."""

from __future__ import annotations

from io import BytesIO

from aiokafka.protocol.types import Schema

from scalers.kafka.kafka_protocol import (
    EndOffsetsRequest,
    GroupsOffsetFetchRequest,
    ListOffsetsRequest_v1,
    ListOffsetsResponse_v1,
    OffsetFetchRequest_v8,
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
    assert (read.throttle_time_ms, read.groups) == (12, [  # in columns: partitions, offsets, errors
        ("g1", [("t", (0, 1, 2), (5, 7, 9), (0, 0, 0))], 0),
        ("g2", [], 16),
        ("gé", [("t2", (3,), (-1,), (3,))], 0),
    ])


def test_offset_fetch_v8_answers_without_metadata_are_read_in_one_go_and_agree() -> None:
    plain: list[GroupAnswer] = [("g", [("t", [(p, 10 * p, -1, "" if p % 2 else None, 0, {}) for p in range(12)], {}),
                                       ("u", [(0, 3, 2, "", 14, {})], {})], 0, {})]
    read = OffsetFetchResponse_v8.decode(OffsetFetchResponse_v8(0, plain, {}).encode())
    assert read.groups == [("g", [("t", tuple(range(12)), tuple(10 * p for p in range(12)), (0,) * 12),
                                  ("u", (0,), (3,), (14,))], 0)]


def test_offset_fetch_v8_request_is_the_generic_encoding() -> None:
    request = GroupsOffsetFetchRequest(["g1", "gé" * 70, ""]).build(OffsetFetchRequest_v8)
    generic = Schema.encode(OffsetFetchRequest_v8.SCHEMA, [request.groups, request.require_stable, {}])
    assert request.encode() == generic
    named = OffsetFetchRequest_v8([("g", [("t", [0, 300], {})], {})], True, {})
    assert named.encode() == Schema.encode(OffsetFetchRequest_v8.SCHEMA, [named.groups, True, {}])


def test_list_offsets_v1_request_and_answer_match_the_generic_encoding() -> None:
    request = EndOffsetsRequest([("orders", [0, 1, 2]), ("é", [7])]).build(ListOffsetsRequest_v1)
    generic = Schema.encode(ListOffsetsRequest_v1.SCHEMA, [request.replica_id, request.topics])
    assert request.encode() == generic
    topics = [("orders", [(0, 0, -1, 42), (1, 6, -1, -1)]), ("é", [(7, 0, -1, 3)])]
    written = ListOffsetsResponse_v1(topics).encode()
    assert ListOffsetsResponse_v1.decode(BytesIO(written)).topics == topics
