"""A stand-in for Azure Event Hubs' management node, for the azure-eventhub scaler's tests.

There is no Event Hubs here. The scaler reads a hub's partition ids and each partition's
sequence numbers with the azure-eventhub SDK's management requests, which travel over AMQP 1.0:
SASL ANONYMOUS, a claims-based-security `put-token` on the `$cbs` node (a SAS token signed with
the namespace's key), then a `READ` request on the `$management` node per hub or partition.
`EventHubsStandIn` is an asyncio AMQP 1.0 listener on a free loopback port that answers exactly
that, to the real SDK client over a real socket (the connection string's
`UseDevelopmentEmulator=true` makes the SDK speak plain AMQP, as to Microsoft's emulator):

* a token whose signature does not match the key of its `skn` is refused (401), as is an
  unknown hub (404), both worded as Event Hubs words them;
* hubs, their partitions and sequence numbers are what a test sets (`add_hub`, `set_partition`);
* every management request is counted by type, and every connection, for the tests' and the
  benchmark's "requests per poll".

The AMQP frames are encoded and decoded with python-qpid-proton's codec (`Data`, `Message`). Its
own server engine is not used: proton leaves out a performative's trailing empty fields, which
the AMQP spec allows but the SDK's decoder does not accept, so every performative here is sent
with all its fields.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import hashlib
import hmac
import struct
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote_plus

from proton import UNDESCRIBED, Array, Data, Described, Message, symbol, timestamp, ubyte, uint, ulong, ushort

from tests.harness.ports import free_port

HOST = "127.0.0.1"
KEY_NAME = "RootManageSharedAccessKey"
KEY = "U3RhbmQtaW4tbmFtZXNwYWNlLWtleS1zZWNyZXQ="
SASL_HEADER, AMQP_HEADER = b"AMQP\x03\x01\x00\x00", b"AMQP\x00\x01\x00\x00"
OPEN, BEGIN, ATTACH, FLOW, TRANSFER, DISPOSITION, DETACH, END, CLOSE = range(0x10, 0x19)
SASL_MECHANISMS, SASL_INIT, SASL_OUTCOME, ACCEPTED = 0x40, 0x41, 0x44, 0x24


@dataclass
class PartitionState:
    beginning: int = 0
    last: int = -1  # -1: never had an event


@dataclass
class HubState:
    partitions: dict[str, PartitionState]
    created: float = field(default_factory=time.time)


class EventHubsStandIn:
    """The management node of one Event Hubs namespace; `async with` starts and stops it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.hubs: dict[str, HubState] = {}
        self.requests: collections.Counter[str] = collections.Counter()  # "eventhub", "partition", "put-token"
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def namespace(self) -> str:
        """The Endpoint's host and port: what checkpoint paths call the namespace."""
        return f"{HOST}:{self.port}"

    def connection_string(self, hub: str | None = None, *, key: str = KEY) -> str:
        entity = f";EntityPath={hub}" if hub else ""
        return (f"Endpoint=sb://{self.namespace};SharedAccessKeyName={KEY_NAME};SharedAccessKey={key}"
                f"{entity};UseDevelopmentEmulator=true")

    def add_hub(self, name: str, partitions: int) -> None:
        self.hubs[name] = HubState({str(i): PartitionState() for i in range(partitions)})

    def set_partition(self, hub: str, partition: str, *, last: int, beginning: int = 0) -> None:
        state = self.hubs[hub].partitions[partition]
        state.beginning, state.last = beginning, last

    async def __aenter__(self) -> EventHubsStandIn:
        self._server = await asyncio.start_server(self._serve, HOST, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):  # the handlers then read the end of their stream
                writer.close()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            await _Connection(self, reader, writer).run()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._handlers.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    # -- the nodes -------------------------------------------------------------------------

    def put_token(self, request: Message) -> Message:
        self.requests["put-token"] += 1
        token = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
        if not valid_token(token):
            return _reply(request, 401, "InvalidSignature: The token has an invalid signature.")
        return _reply(request, 202, "Accepted")

    def management(self, request: Message) -> Message:
        props: dict[str, object] = request.properties or {}
        kind = str(props.get("type", "")).removeprefix("com.microsoft:")
        self.requests[kind] += 1
        hub = self.hubs.get(str(props.get("name")))
        if str(props.get("operation")) != "READ" or kind not in ("eventhub", "partition"):
            return _reply(request, 400, f"unsupported operation {props.get('operation')} on {kind}")
        if hub is None:
            return _reply(request, 404, f"The messaging entity '{props.get('name')}' could not be found.")
        if kind == "eventhub":
            return _reply(request, 200, "OK", {
                "name": str(props["name"]), "created_at": timestamp(int(hub.created * 1000)),
                "partition_ids": list(hub.partitions)})
        partition = hub.partitions.get(str(props.get("partition")))
        if partition is None:
            return _reply(request, 404, f"partition {props.get('partition')} could not be found.")
        return _reply(request, 200, "OK", {
            "name": str(props["name"]), "partition": str(props["partition"]),
            "begin_sequence_number": partition.beginning, "last_enqueued_sequence_number": partition.last,
            "last_enqueued_offset": str(max(partition.last, 0) * 100), "is_partition_empty": partition.last < 0,
            "last_enqueued_time_utc": timestamp(int(time.time() * 1000))})


def valid_token(token: str) -> bool:
    """A SAS token signed with the namespace key: HMAC-SHA256 of `quote_plus(sr)\\n<se>`."""
    fields = {k: v[0] for k, v in parse_qs(token.removeprefix("SharedAccessSignature ")).items()}
    if fields.get("skn") != KEY_NAME or not {"sr", "sig", "se"} <= fields.keys():
        return False
    signed = f"{quote_plus(fields['sr'])}\n{fields['se']}".encode()
    expected = base64.b64encode(hmac.new(KEY.encode(), signed, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected, fields["sig"]) and int(fields["se"]) > time.time()


def _reply(request: Message, status: int, description: str, body: Any = None) -> Message:
    return Message(properties={"status-code": status, "status-description": description},
                   correlation_id=request.id, body=body)


# -- AMQP 1.0 framing ------------------------------------------------------------------------


def encode(descriptor: int, fields: list[Any]) -> bytes:
    data = Data()
    data.put_object(Described(ulong(descriptor), fields))
    return bytes(data.encode())


def decode(body: bytes) -> tuple[int, list[Any], bytes]:
    """(descriptor, fields, payload after the performative) of a frame body."""
    data = Data()
    used = data.decode(body)
    data.rewind()
    data.next()
    described = data.get_object()
    assert isinstance(described, Described) and isinstance(described.descriptor, int), \
        f"a frame body holds a performative (a described list), not {described!r}"
    fields = list(described.value) if isinstance(described.value, list) else []  # None: no fields
    return described.descriptor, fields, body[used:]


@dataclass
class _Link:
    name: str
    ours: int  # our handle
    client_sends: bool
    address: str  # the node: the client's target (it sends) or source (it receives)
    deliveries: int = 0


class _Connection:
    """One client connection: SASL, then sessions and links to the $cbs and $management nodes."""

    def __init__(self, standin: EventHubsStandIn, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.standin, self.reader, self.writer = standin, reader, writer
        self.links: dict[tuple[int, int], _Link] = {}  # (channel, client handle) -> link
        self.partial: dict[tuple[int, int], bytes] = {}  # a message spread over several transfers

    async def run(self) -> None:
        await self._expect_header(SASL_HEADER)
        self.writer.write(SASL_HEADER)
        # proton's annotation of Array's descriptor leaves out UNDESCRIBED, the value it documents for plain arrays
        mechanisms = Array(UNDESCRIBED, Data.SYMBOL, symbol("ANONYMOUS"))  # type: ignore[arg-type]
        self._send(0, SASL_MECHANISMS, [mechanisms], sasl=True)
        await self._frame()  # sasl-init
        self._send(0, SASL_OUTCOME, [ubyte(0), None], sasl=True)
        await self._expect_header(AMQP_HEADER)
        self.writer.write(AMQP_HEADER)
        while True:
            frame = await self._frame()
            if frame is None:
                continue
            channel, descriptor, fields, payload = frame
            if descriptor == CLOSE:
                self._send(0, CLOSE, [None])
                await self.writer.drain()
                return
            self._handle(channel, descriptor, fields, payload)
            await self.writer.drain()

    def _handle(self, channel: int, descriptor: int, fields: list[Any], payload: bytes) -> None:
        fields += [None] * 14
        if descriptor == OPEN:
            self._send(0, OPEN, ["eventscale-standin", None, uint(65536), ushort(255), None, None, None, None,
                                 None, {symbol("product"): "eventscale-standin"}])
        elif descriptor == BEGIN:
            self._send(channel, BEGIN, [ushort(channel), uint(1), uint(5000), uint(5000), uint(255), None, None, None])
        elif descriptor == ATTACH:
            self._attach(channel, fields)
        elif descriptor == TRANSFER:
            self._transfer(channel, fields, payload)
        elif descriptor == DETACH:
            link = self.links.pop((channel, int(fields[0])), None)
            self._send(channel, DETACH, [uint(link.ours if link else fields[0]), True, None])
        elif descriptor == END:
            self._send(channel, END, [None])

    def _attach(self, channel: int, fields: list[Any]) -> None:
        name, handle, client_receives = str(fields[0]), int(fields[1]), bool(fields[2])
        source, target = fields[5], fields[6]
        node = source if client_receives else target
        fields_of_node = node.value if isinstance(node, Described) and isinstance(node.value, list) else []
        address = str(fields_of_node[0]) if fields_of_node else ""
        ours = len(self.links)
        self.links[(channel, handle)] = _Link(name, ours, not client_receives, address)
        self._send(channel, ATTACH, [name, uint(ours), not client_receives, fields[3], fields[4], source, target,
                                     None, False, uint(0) if client_receives else None, None, None, None, None])
        if not client_receives:  # give the client credit to send its requests
            self._send(channel, FLOW, [uint(0), uint(5000), uint(1), uint(5000), uint(ours), uint(0), uint(1000),
                                       None, False, False, None])

    def _transfer(self, channel: int, fields: list[Any], payload: bytes) -> None:
        key = (channel, int(fields[0]))
        payload = self.partial.pop(key, b"") + payload
        if fields[5]:  # more frames follow
            self.partial[key] = payload
            return
        link = self.links[key]
        if not fields[4] and fields[1] is not None:  # unsettled: accept it
            self._send(channel, DISPOSITION, [True, fields[1], fields[1], True, Described(ulong(ACCEPTED), []),
                                              False])
        request = Message()
        request.decode(payload)
        reply = self.standin.put_token(request) if link.address == "$cbs" else self.standin.management(request)
        replying = next((lk for (c, _), lk in self.links.items()
                         if c == channel and not lk.client_sends and lk.address == link.address), None)
        if replying is not None:
            replying.deliveries += 1
            tag = struct.pack(">I", replying.deliveries)
            self._send(channel, TRANSFER, [uint(replying.ours), uint(replying.deliveries), tag, uint(0), True, False,
                                           None, None, None, None, None], payload=bytes(reply.encode()))

    async def _expect_header(self, header: bytes) -> None:
        received = await self.reader.readexactly(8)
        if received != header:
            raise ConnectionError(f"expected protocol header {header!r}, got {received!r}")

    async def _frame(self) -> tuple[int, int, list[Any], bytes] | None:
        size, offset, _, channel = struct.unpack(">IBBH", await self.reader.readexactly(8))
        body = (await self.reader.readexactly(size - 8))[offset * 4 - 8:]
        if not body:
            return None  # an empty frame keeps the connection alive
        descriptor, fields, payload = decode(body)
        return channel, descriptor, fields, payload

    def _send(self, channel: int, descriptor: int, fields: list[Any], *, payload: bytes = b"",
              sasl: bool = False) -> None:
        body = encode(descriptor, fields) + payload
        self.writer.write(struct.pack(">IBBH", 8 + len(body), 2, 1 if sasl else 0, channel) + body)
