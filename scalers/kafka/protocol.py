"""The two batched Kafka requests aiokafka lacks, written with aiokafka's own protocol types.

aiokafka speaks OffsetFetch up to v3 and FindCoordinator up to v1, both one consumer group per
request. Brokers since Kafka 3.0 take many groups at once (KIP-709: OffsetFetch v8; KIP-699:
FindCoordinator v4), which is what lets one poll of a thousand groups be one request per
coordinator instead of a thousand. Both are flexible versions (compact strings and arrays, tagged
fields); the schemas follow Kafka's `OffsetFetchRequest.json` and `FindCoordinatorRequest.json`.

`Request.prepare` picks the struct by the versions the broker announced; a broker without them
makes `prepare` raise, and the client falls back to aiokafka's one-group requests.
"""

from __future__ import annotations

from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    Boolean,
    CompactArray,
    CompactString,
    Int8,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)

GROUP_COORDINATOR = 0  # FindCoordinator key type of consumer groups


class OffsetFetchResponse_v8(Response):  # type: ignore[misc]  # aiokafka is untyped
    API_KEY = 9
    API_VERSION = 8
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("groups", CompactArray(
            ("group_id", CompactString("utf-8")),
            ("topics", CompactArray(
                ("name", CompactString("utf-8")),
                ("partitions", CompactArray(
                    ("partition_index", Int32),
                    ("committed_offset", Int64),
                    ("committed_leader_epoch", Int32),
                    ("metadata", CompactString("utf-8")),
                    ("error_code", Int16),
                    ("tags", TaggedFields),
                )),
                ("tags", TaggedFields),
            )),
            ("error_code", Int16),
            ("tags", TaggedFields),
        )),
        ("tags", TaggedFields),
    )


class OffsetFetchRequest_v8(RequestStruct):  # type: ignore[misc]  # aiokafka is untyped
    API_KEY = 9
    API_VERSION = 8
    FLEXIBLE_VERSION = True
    RESPONSE_TYPE = OffsetFetchResponse_v8
    SCHEMA = Schema(
        ("groups", CompactArray(
            ("group_id", CompactString("utf-8")),
            ("topics", CompactArray(  # null: every topic the group committed
                ("name", CompactString("utf-8")),
                ("partition_indexes", CompactArray(Int32)),
                ("tags", TaggedFields),
            )),
            ("tags", TaggedFields),
        )),
        ("require_stable", Boolean),
        ("tags", TaggedFields),
    )


class GroupsOffsetFetchRequest(Request[OffsetFetchRequest_v8]):  # type: ignore[misc]  # aiokafka is untyped
    """The committed offsets of every topic of each of `groups`, in one request."""

    API_KEY = 9

    def __init__(self, groups: list[str]) -> None:
        self._groups = groups

    def build(self, request_struct_class: type[OffsetFetchRequest_v8]) -> OffsetFetchRequest_v8:
        return request_struct_class([(group, None, {}) for group in self._groups], False, {})


class FindCoordinatorResponse_v4(Response):  # type: ignore[misc]  # aiokafka is untyped
    API_KEY = 10
    API_VERSION = 4
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("coordinators", CompactArray(
            ("key", CompactString("utf-8")),
            ("node_id", Int32),
            ("host", CompactString("utf-8")),
            ("port", Int32),
            ("error_code", Int16),
            ("error_message", CompactString("utf-8")),
            ("tags", TaggedFields),
        )),
        ("tags", TaggedFields),
    )


class FindCoordinatorRequest_v4(RequestStruct):  # type: ignore[misc]  # aiokafka is untyped
    API_KEY = 10
    API_VERSION = 4
    FLEXIBLE_VERSION = True
    RESPONSE_TYPE = FindCoordinatorResponse_v4
    SCHEMA = Schema(
        ("key_type", Int8),
        ("coordinator_keys", CompactArray(CompactString("utf-8"))),
        ("tags", TaggedFields),
    )


class GroupsFindCoordinatorRequest(Request[FindCoordinatorRequest_v4]):  # type: ignore[misc]  # aiokafka is untyped
    """The coordinator of each of `groups`, in one request."""

    API_KEY = 10

    def __init__(self, groups: list[str]) -> None:
        self._groups = groups

    def build(self, request_struct_class: type[FindCoordinatorRequest_v4]) -> FindCoordinatorRequest_v4:
        return request_struct_class(GROUP_COORDINATOR, self._groups, {})
