"""Reading the offsets of many consumer groups from one Kafka cluster in as few requests as the protocol allows.

KEDA builds a sarama client per ScaledObject and, every poll, asks for metadata, the group's
committed offsets and the topic's end offsets: a thousand ScaledObjects are a thousand clients,
their connections and several thousand requests (keda#7453, #601). Here one `KafkaClient` per
cluster and credentials answers every config of a poll with:

1. ONE OffsetFetch per group coordinator naming every group of the batch (v8, KIP-709), each
   group's offsets for all its topics; coordinators are looked up in one FindCoordinator (v4) and
   remembered until a group answers NOT_COORDINATOR;
2. metadata for the topics read (asked for with topic auto-creation off), refreshed when a new
   topic is read, every `METADATA_MAX_AGE`, or after a topic or leader went missing;
3. ONE ListOffsets (latest) per partition leader naming every partition of the batch.

Requests go over aiokafka's one connection per broker. Older brokers without OffsetFetch v8 or
FindCoordinator v4 get aiokafka's one-group requests instead, sent concurrently.

Whole-cluster failures (unreachable, refused login, TLS) raise `ScalerError` naming the cluster;
a group, topic or partition problem is an error for the configs that need it only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from aiokafka.client import AIOKafkaClient, CoordinationType
from aiokafka.conn import create_conn
from aiokafka.errors import (
    IncompatibleBrokerVersion,
    KafkaConnectionError,
    KafkaError,
    NoError,
    for_code,
)
from aiokafka.protocol.commit import OffsetFetchRequest
from aiokafka.protocol.metadata import MetadataRequest

from scalers.base import Reading, ScalerClient, ScalerError, masked_error
from scalers.kafka.kafka_config import KafkaCluster, KafkaConfig
from scalers.kafka.kafka_protocol import EndOffsetsRequest, GroupsFindCoordinatorRequest, GroupsOffsetFetchRequest
from scalers.kafka.lag import Partition, total_lag
from scalers.tls import TLSMaterialError, client_context

log = logging.getLogger("eventscale.kafka")

RequestHook = Callable[[Any], None]  # told of every request sent (tests, benchmarks)

CLIENT_ID = "eventscale"
REQUEST_TIMEOUT_MS = 10_000
METADATA_MAX_AGE = 60.0  # seconds between metadata refreshes of the topics read
BACKGROUND_METADATA_MS = 24 * 3600 * 1000  # aiokafka's own periodic refresh, which we do not need
GROUPS_PER_REQUEST = 1000
RETRIABLE_COORDINATOR_ERRORS = {14, 15, 16}  # COORDINATOR_LOAD_IN_PROGRESS, _NOT_AVAILABLE, NOT_COORDINATOR


@dataclass
class GroupOffsets:
    """What a group has committed, by topic then partition (missing: nothing committed), or why it is
    unknown. By topic, so that a poll's ten thousand partitions are not a key tuple each."""

    committed: dict[str, dict[int, int]] = field(default_factory=dict)
    error: str | None = None


@dataclass
class EndOffsets:
    """The latest offset of each partition asked for, or why a partition has none."""

    offsets: dict[Partition, int] = field(default_factory=dict)
    errors: dict[Partition, str] = field(default_factory=dict)


def _error_name(code: int) -> str:
    error = for_code(code)
    return f"{error.__name__} ({getattr(error, 'description', '') or code})"


class KafkaClient(ScalerClient[KafkaConfig]):
    """One aiokafka client per cluster and credentials, shared by every config on it."""

    def __init__(self, cluster: KafkaCluster, request_hooks: Sequence[RequestHook] = ()) -> None:
        self._cluster = cluster
        self._hooks = list(request_hooks)
        self._client: AIOKafkaClient | None = None
        self._coordinators: dict[str, int] = {}
        self._previous: dict[KafkaConfig, dict[Partition, int]] = {}  # excludePersistentLag state
        self._tracked: set[str] = set()  # topics whose metadata we keep
        self._metadata_at = float("-inf")
        self._stale = False

    # -- the batch -----------------------------------------------------------------------------

    async def read(self, configs: Sequence[KafkaConfig]) -> list[Reading | ScalerError]:
        client = await self._connect()
        groups = await self._committed(client, sorted({c.consumer_group for c in configs}))
        topics = {t for c in configs for t in self._topics(c, groups[c.consumer_group])}
        await self._metadata(client, topics)
        known: dict[tuple[str, tuple[int, ...] | None], list[Partition] | str] = {}
        wanted = [self._partitions(client, c, groups[c.consumer_group], known) for c in configs]
        distinct = {id(found): found for found in wanted if isinstance(found, list)}  # a topic's configs share one
        ends = await self._end_offsets(client, {p for found in distinct.values() for p in found})
        return [self._reading(c, groups[c.consumer_group], found, ends)
                for c, found in zip(configs, wanted, strict=True)]

    def _reading(self, config: KafkaConfig, group: GroupOffsets, partitions: list[Partition] | str,
                 ends: EndOffsets) -> Reading | ScalerError:
        if isinstance(partitions, str):
            return self._error(partitions)
        if ends.errors:
            failed = next((ends.errors[p] for p in partitions if p in ends.errors), None)
            if failed is not None:
                return self._error(failed)
        previous = self._previous.setdefault(config, {}) if config.exclude_persistent_lag else {}
        value, with_persistent = total_lag(config, partitions, group.committed, ends.offsets, previous)
        return Reading(float(value), active=with_persistent > config.activation_lag_threshold)

    def _error(self, what: str) -> ScalerError:
        return masked_error(f"{self._cluster}: {what}", self._cluster)

    # -- connecting ----------------------------------------------------------------------------

    async def _connect(self) -> AIOKafkaClient:
        if self._client is not None:
            return self._client
        cluster = self._cluster
        try:
            context = client_context(cluster.tls) if cluster.tls else None
        except TLSMaterialError as exc:
            raise self._error(str(exc)) from None
        options: dict[str, Any] = {"security_protocol": cluster.security_protocol, "ssl_context": context}
        if cluster.sasl_mechanism:
            options.update(sasl_mechanism=cluster.sasl_mechanism, sasl_plain_username=cluster.username,
                           sasl_plain_password=cluster.password)
        client = AIOKafkaClient(bootstrap_servers=list(cluster.bootstrap_servers), client_id=CLIENT_ID,
                                request_timeout_ms=REQUEST_TIMEOUT_MS, metadata_max_age_ms=BACKGROUND_METADATA_MS,
                                **options)
        try:
            await client.bootstrap()
        except KafkaConnectionError:
            await client.close()
            raise self._error(await self._why_not(options)) from None
        self._client = client
        return client

    async def _why_not(self, options: dict[str, Any]) -> str:
        """aiokafka's bootstrap error names no cause; one direct connection attempt finds it."""
        host, _, port = self._cluster.bootstrap_servers[0].rpartition(":")
        try:
            connection = await create_conn(host or port, int(port) if host else 9092, client_id=CLIENT_ID,
                                           request_timeout_ms=REQUEST_TIMEOUT_MS, **options)
        except (TimeoutError, OSError, KafkaError, ValueError) as exc:
            return f"cannot connect: {type(exc).__name__}: {exc}"
        connection.close()
        return "cannot bootstrap: no broker answered the metadata request"

    async def _send(self, client: AIOKafkaClient, node: int, request: Any) -> Any:
        """The response; a request the broker has no version for raises as aiokafka raises it."""
        self._count(request)
        try:
            return await client.send(node, request)
        except IncompatibleBrokerVersion:
            raise
        except KafkaError as exc:
            raise self._error(f"request to broker {node} failed: {type(exc).__name__}: {exc}") from None

    def _count(self, request: Any) -> None:
        for hook in self._hooks:
            hook(request)

    # -- committed offsets ---------------------------------------------------------------------

    async def _committed(self, client: AIOKafkaClient, groups: list[str]) -> dict[str, GroupOffsets]:
        found = await self._fetch_committed(client, groups)
        retry = [g for g, offsets in found.items() if offsets is None]
        if retry:  # a coordinator moved: look again once
            for group in retry:
                self._coordinators.pop(group, None)
            found.update(await self._fetch_committed(client, retry))
        return {g: offsets or GroupOffsets(error=f'consumer group "{g}": its coordinator is not available')
                for g, offsets in found.items()}

    async def _fetch_committed(self, client: AIOKafkaClient, groups: list[str]) -> dict[str, GroupOffsets | None]:
        coordinators = await self._find_coordinators(client, groups)
        by_node: dict[int, list[str]] = {}
        found: dict[str, GroupOffsets | None] = {}
        for group in groups:
            node = coordinators.get(group)
            if isinstance(node, int):
                by_node.setdefault(node, []).append(group)
            else:
                found[group] = GroupOffsets(error=f'consumer group "{group}": {node}')
        requests = [(node, chunk) for node, members in by_node.items()
                    for chunk in _chunks(members, GROUPS_PER_REQUEST)]
        for answer in await asyncio.gather(*(self._offset_fetch(client, n, chunk) for n, chunk in requests)):
            found.update(answer)
        return found

    async def _offset_fetch(self, client: AIOKafkaClient, node: int,
                            groups: list[str]) -> dict[str, GroupOffsets | None]:
        try:
            response = await self._send(client, node, GroupsOffsetFetchRequest(groups))
        except (IncompatibleBrokerVersion, NotImplementedError):
            singles = await asyncio.gather(*(self._offset_fetch_one(client, node, g) for g in groups))
            return dict(zip(groups, singles, strict=True))
        return {group_id: _group_offsets(group_id, topics, code) for group_id, topics, code in response.groups}

    async def _offset_fetch_one(self, client: AIOKafkaClient, node: int, group: str) -> GroupOffsets | None:
        response = await self._send(client, node, OffsetFetchRequest(group, None))
        topics = [(topic, tuple(p[0] for p in parts), tuple(p[1] for p in parts), tuple(p[3] for p in parts))
                  for topic, parts in response.topics]  # v3: (partition, offset, metadata, error)
        return _group_offsets(group, topics, getattr(response, "error_code", 0))

    async def _find_coordinators(self, client: AIOKafkaClient, groups: list[str]) -> dict[str, int | str]:
        missing = [g for g in groups if g not in self._coordinators]
        if missing:
            node = client.get_random_node()
            try:
                response = await self._send(client, node, GroupsFindCoordinatorRequest(missing))
            except (IncompatibleBrokerVersion, NotImplementedError):
                await asyncio.gather(*(self._find_one(client, g) for g in missing))
            else:
                for key, node_id, _host, _port, code, _message, _tags in response.coordinators:
                    if code == 0:
                        self._coordinators[key] = node_id
        return {g: self._coordinators.get(g, "its coordinator is not available") for g in groups}

    async def _find_one(self, client: AIOKafkaClient, group: str) -> None:
        self._count(None)
        try:
            self._coordinators[group] = await client.coordinator_lookup(CoordinationType.GROUP, group)
        except KafkaError as exc:
            log.debug("group=%s coordinator lookup failed: %s", group, exc)

    # -- topics, partitions and end offsets ----------------------------------------------------

    @staticmethod
    def _topics(config: KafkaConfig, group: GroupOffsets) -> Sequence[str]:
        if config.topic:
            return (config.topic,)
        return sorted(group.committed)

    async def _metadata(self, client: AIOKafkaClient, topics: set[str]) -> None:
        """Metadata of every topic read so far, asked for again when a new one appears, when it is
        older than METADATA_MAX_AGE, or after a topic or leader went missing. Never creates a
        topic (aiokafka's own refresh asks with auto-creation on)."""
        now = asyncio.get_running_loop().time()
        if topics <= self._tracked and not self._stale and now - self._metadata_at < METADATA_MAX_AGE:
            return
        self._tracked |= topics
        response = await self._send(client, client.get_random_node(),
                                    MetadataRequest(sorted(self._tracked), allow_auto_topic_creation=False))
        client.cluster.update_metadata(response)
        self._metadata_at, self._stale = now, False

    def _partitions(self, client: AIOKafkaClient, config: KafkaConfig, group: GroupOffsets,
                    known: dict[tuple[str, tuple[int, ...] | None], list[Partition] | str]) -> list[Partition] | str:
        """The partitions `config` reads (after partitionLimitation), or why it cannot be read;
        `known` keeps each topic's answer for the rest of the read."""
        if group.error is not None:
            return group.error
        topics = self._topics(config, group)
        if not topics:
            return (f'consumer group "{config.consumer_group}" has no committed offsets and no topic is given: '
                    "nothing to measure")
        found: list[list[Partition]] = []
        for topic in topics:
            key = (topic, config.partition_limitation)
            if key not in known:
                known[key] = self._topic_partitions(client, topic, config.partition_limitation)
            answer = known[key]
            if isinstance(answer, str):
                return answer
            found.append(answer)
        return found[0] if len(found) == 1 else [p for partitions in found for p in partitions]  # one: shared

    def _topic_partitions(self, client: AIOKafkaClient, topic: str,
                          limitation: tuple[int, ...] | None) -> list[Partition] | str:
        ids = client.cluster.partitions_for_topic(topic)
        if not ids:
            self._stale = True
            return f'topic "{topic}" is unknown (UnknownTopicOrPartitionError)'
        active = sorted(p for p in ids if limitation is None or p in limitation)
        if not active:
            return f"expected at least one active partition within the topic '{topic}'"
        return [(topic, p) for p in active]

    async def _end_offsets(self, client: AIOKafkaClient, partitions: set[Partition]) -> EndOffsets:
        by_leader: dict[int, list[Partition]] = {}
        ends = EndOffsets()
        for partition in partitions:
            leader = client.cluster.leader_for_partition(TopicPartition(*partition))
            if leader is None or leader < 0:
                ends.errors[partition] = f"partition {partition[0]}/{partition[1]} has no leader"
                self._stale = True
            else:
                by_leader.setdefault(leader, []).append(partition)
        await asyncio.gather(*(self._list_offsets(client, node, ps, ends) for node, ps in by_leader.items()))
        return ends

    async def _list_offsets(self, client: AIOKafkaClient, node: int, partitions: list[Partition],
                            ends: EndOffsets) -> None:
        topics: dict[str, list[int]] = {}
        for topic, partition in sorted(partitions):
            topics.setdefault(topic, []).append(partition)
        response = await self._send(client, node, EndOffsetsRequest(list(topics.items())))
        for topic, answers in response.topics:
            for partition, code, _timestamp, offset in answers:
                if code == NoError.errno:
                    ends.offsets[(topic, partition)] = offset
                else:
                    ends.errors[(topic, partition)] = f"end offset of {topic}/{partition}: {_error_name(code)}"
                    self._stale = True

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()


def _group_offsets(group: str, topics: Sequence[tuple[str, Sequence[int], Sequence[int], Sequence[int]]],
                   code: int) -> GroupOffsets | None:
    """A group's answer from its (topic, partitions, committed offsets, error codes): None when its
    coordinator moved (the caller asks again), else the offsets or the error."""
    if code in RETRIABLE_COORDINATOR_ERRORS:
        return None
    if code:
        return GroupOffsets(error=f'consumer group "{group}": {_error_name(code)}')
    committed: dict[str, dict[int, int]] = {}
    for topic, partitions, offsets, errors in topics:
        error = next((e for e in errors if e), 0) if any(errors) else 0
        if error in RETRIABLE_COORDINATOR_ERRORS:
            return None
        if error:
            return GroupOffsets(error=f'consumer group "{group}" topic "{topic}": {_error_name(error)}')
        if partitions:
            committed.setdefault(topic, {}).update(zip(partitions, offsets, strict=True))
    return GroupOffsets(committed=committed)


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
