"""The two batched Kafka requests aiokafka lacks, written with aiokafka's own protocol types.

aiokafka speaks OffsetFetch up to v3 and FindCoordinator up to v1, both one consumer group per
request. Brokers since Kafka 3.0 take many groups at once (KIP-709: OffsetFetch v8; KIP-699:
FindCoordinator v4), which is what lets one poll of a thousand groups be one request per
coordinator instead of a thousand. Both are flexible versions (compact strings and arrays, tagged
fields); the schemas follow Kafka's `OffsetFetchRequest.json` and `FindCoordinatorRequest.json`.

`Request.prepare` picks the struct by the versions the broker announced; a broker without them
makes `prepare` raise, and the client falls back to aiokafka's one-group requests.

The answers of a poll are large (a thousand groups' offsets, every partition's end offset) and
aiokafka's generic decoder reads them a field at a time; the OffsetFetch v8 and ListOffsets v1
answers are read here with `struct` directly (OffsetFetch's partitions in columns, a topic's in
one unpack), and the OffsetFetch v8 and ListOffsets requests are written the same way, which is
most of a poll's CPU.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from io import BytesIO
from typing import Any

from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    Array,
    Boolean,
    CompactArray,
    CompactString,
    Int8,
    Int16,
    Int32,
    Int64,
    Schema,
    String,
    TaggedFields,
)

GROUP_COORDINATOR = 0  # FindCoordinator key type of consumer groups

TopicColumns = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]  # partitions, committed offsets, error codes
GroupColumns = tuple[str, list[tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...]]], int]


class _Reader:
    """Kafka's wire types read from a buffer with `struct`, for the two large answers."""

    INT16, INT32, INT64 = struct.Struct(">h"), struct.Struct(">i"), struct.Struct(">q")
    PARTITION_V8 = struct.Struct(">iqi")  # partition, committed offset, leader epoch
    PARTITION_LIST_V1 = struct.Struct(">ihqq")  # partition, error, timestamp, offset

    def __init__(self, data: BytesIO | bytes) -> None:
        self.buffer = data.read() if isinstance(data, BytesIO) else data
        self.at = 0

    def fixed(self, shape: struct.Struct) -> tuple[Any, ...]:
        found = shape.unpack_from(self.buffer, self.at)
        self.at += shape.size
        return found

    def int16(self) -> int:
        return int(self.fixed(self.INT16)[0])

    def int32(self) -> int:
        return int(self.fixed(self.INT32)[0])

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            byte = self.buffer[self.at]
            self.at += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    def compact_string(self) -> str | None:
        length = self.uvarint() - 1
        if length < 0:
            return None
        text = self.buffer[self.at:self.at + length].decode()
        self.at += length
        return text

    def string(self) -> str:
        length = self.int16()
        text = self.buffer[self.at:self.at + length].decode()
        self.at += length
        return text

    def plain_partitions_v8(self, count: int) -> TopicColumns | None:
        """`count` OffsetFetch v8 partitions in one unpack when none has metadata or tagged fields (the
        usual answer: every one is then PARTITION_V8_PLAIN), as columns; None, having read nothing,
        when one has."""
        shape = _plain_partitions_v8(count)
        if self.at + shape.size > len(self.buffer):
            return None
        flat = shape.unpack_from(self.buffer, self.at)
        if max(flat[3::6], default=0) > 1 or any(flat[5::6]):
            return None
        self.at += shape.size
        return flat[0::6], flat[1::6], flat[4::6]

    def partitions_v8(self, count: int) -> TopicColumns:
        """`count` OffsetFetch v8 partitions one at a time (some have metadata or tagged fields)."""
        indexes, offsets, errors = [], [], []
        for _ in range(count):
            index, offset, _epoch = self.fixed(self.PARTITION_V8)
            self.compact_string()  # metadata
            indexes.append(index)
            offsets.append(offset)
            errors.append(self.int16())
            self.skip_tags()
        return tuple(indexes), tuple(offsets), tuple(errors)

    def skip_tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.at += self.uvarint()


@functools.lru_cache(maxsize=64)
def _plain_partitions_v8(count: int) -> struct.Struct:
    """`count` partitions of PARTITION_V8 with a metadata of 0 or 1 length byte (null or empty),
    the error code and no tagged fields."""
    return struct.Struct(">" + "iqiBhB" * count)


def _uvarint(value: int) -> bytes:
    """Kafka's unsigned varint (lengths of compact strings and arrays, plus one)."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class OffsetFetchResponse_v8(Response):  # type: ignore[misc]  # aiokafka is untyped
    """OffsetFetch v8's answer (KIP-709): for each group asked, the committed offset of every
    partition of its topics and the group's own error code."""

    API_KEY, API_VERSION = 9, 8
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

    @classmethod
    def decode(cls, data: BytesIO | bytes) -> OffsetFetchResponse_v8:
        """SCHEMA's answer, read with `struct`, keeping what a lag needs and in columns, so that a
        thousand groups' partitions are not a tuple each: groups are (group, [(topic, partitions,
        committed offsets, error codes)], error code)."""
        read = _Reader(data)
        throttle = read.int32()
        groups: list[GroupColumns] = []
        for _ in range(read.uvarint() - 1):
            group = read.compact_string() or ""
            topics: list[tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = []
            for _ in range(max(read.uvarint() - 1, 0)):
                name = read.compact_string() or ""
                count = max(read.uvarint() - 1, 0)
                columns = read.plain_partitions_v8(count) or read.partitions_v8(count)
                read.skip_tags()
                topics.append((name, *columns))
            error = read.int16()
            read.skip_tags()
            groups.append((group, topics, error))
        read.skip_tags()
        return cls(throttle, groups, {})


class OffsetFetchRequest_v8(RequestStruct):  # type: ignore[misc]  # aiokafka is untyped
    """OffsetFetch v8: the committed offsets of many groups in one request."""

    API_KEY, API_VERSION = 9, 8
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

    def encode(self) -> bytes:
        """SCHEMA's encoding, written directly: a poll names a thousand groups. Topics are given as
        None (every topic) or a list of (name, partitions, {}); no tagged fields are written."""
        parts = [_uvarint(len(self.groups) + 1)]
        for group_id, topics, _tags in self.groups:
            name = group_id.encode()
            parts += (_uvarint(len(name) + 1), name)
            if topics is None:
                parts.append(b"\x00")
            else:
                parts.append(_uvarint(len(topics) + 1))
                for topic, partitions, _topic_tags in topics:
                    encoded = topic.encode()
                    parts += (_uvarint(len(encoded) + 1), encoded, _uvarint(len(partitions) + 1))
                    parts.extend(struct.pack(">i", p) for p in partitions)
                    parts.append(b"\x00")
            parts.append(b"\x00")
        parts.append(b"\x01\x00" if self.require_stable else b"\x00\x00")
        return b"".join(parts)


class GroupsOffsetFetchRequest(Request[OffsetFetchRequest_v8]):  # type: ignore[misc]  # aiokafka is untyped
    """The committed offsets of every topic of each of `groups`, in one request."""

    API_KEY = 9

    def __init__(self, groups: list[str]) -> None:
        self._groups = groups

    def build(self, request_struct_class: type[OffsetFetchRequest_v8]) -> OffsetFetchRequest_v8:
        return request_struct_class([(group, None, {}) for group in self._groups], False, {})


class FindCoordinatorResponse_v4(Response):  # type: ignore[misc]  # aiokafka is untyped
    """FindCoordinator v4's answer (KIP-699): the coordinator of each group asked, or its error."""

    API_KEY, API_VERSION = 10, 4
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
    """FindCoordinator v4: the coordinators of many groups (keys of `key_type` group) in one request."""

    API_KEY, API_VERSION = 10, 4
    FLEXIBLE_VERSION = True
    RESPONSE_TYPE = FindCoordinatorResponse_v4
    SCHEMA = Schema(("key_type", Int8), ("coordinator_keys", CompactArray(CompactString("utf-8"))),
                    ("tags", TaggedFields))


class GroupsFindCoordinatorRequest(Request[FindCoordinatorRequest_v4]):  # type: ignore[misc]  # aiokafka is untyped
    """The coordinator of each of `groups`, in one request."""

    API_KEY = 10

    def __init__(self, groups: list[str]) -> None:
        self._groups = groups

    def build(self, request_struct_class: type[FindCoordinatorRequest_v4]) -> FindCoordinatorRequest_v4:
        return request_struct_class(GROUP_COORDINATOR, self._groups, {})


class ListOffsetsResponse_v1(Response):  # type: ignore[misc]  # aiokafka is untyped
    """ListOffsets v1's answer: an offset (here the latest) of each partition asked, by topic."""

    API_KEY, API_VERSION = 2, 1
    SCHEMA = Schema(
        ("topics", Array(
            ("topic", String("utf-8")),
            ("partitions", Array(("partition", Int32), ("error_code", Int16), ("timestamp", Int64),
                                 ("offset", Int64))),
        )),
    )

    @classmethod
    def decode(cls, data: BytesIO | bytes) -> ListOffsetsResponse_v1:
        read = _Reader(data)
        topics = []
        for _ in range(read.int32()):
            name = read.string()
            topics.append((name, [read.fixed(read.PARTITION_LIST_V1) for _ in range(read.int32())]))
        return cls(topics)


class ListOffsetsRequest_v1(RequestStruct):  # type: ignore[misc]  # aiokafka is untyped
    """ListOffsets v1: an offset of each partition at a timestamp (-1: the latest), by topic."""

    API_KEY, API_VERSION = 2, 1
    RESPONSE_TYPE = ListOffsetsResponse_v1
    SCHEMA = Schema(
        ("replica_id", Int32),
        ("topics", Array(("topic", String("utf-8")), ("partitions", Array(("partition", Int32),
                                                                           ("timestamp", Int64))))),
    )

    def encode(self) -> bytes:
        parts = [struct.pack(">ii", self.replica_id, len(self.topics))]
        for topic, partitions in self.topics:
            name = topic.encode()
            parts.append(struct.pack(f">h{len(name)}si", len(name), name, len(partitions)))
            parts.extend(struct.pack(">iq", partition, timestamp) for partition, timestamp in partitions)
        return b"".join(parts)


class EndOffsetsRequest(Request[ListOffsetsRequest_v1]):  # type: ignore[misc]  # aiokafka is untyped
    """The latest offset (high watermark) of each of `partitions`, grouped by topic; v1, as KEDA's sarama asks."""

    API_KEY = 2
    LATEST = -1

    def __init__(self, topics: Sequence[tuple[str, Sequence[int]]]) -> None:
        self._topics = [(topic, [(p, self.LATEST) for p in partitions]) for topic, partitions in topics]

    def build(self, request_struct_class: type[ListOffsetsRequest_v1]) -> ListOffsetsRequest_v1:
        return request_struct_class(-1, self._topics)
