"""Reading many Redis keys in one round trip: a server-side script and the shared batch client.

Every Redis trigger reduces to a `Probe`: a key, what to measure on it and, for streams, a
consumer group. `RedisClient.read` deduplicates the probes of a batch and sends them as EVALSHA
calls of one small Lua script, all in a single pipeline: the script looks at each key's type and
answers a number, or a short error code that becomes a `ScalerError` for that key only. A
standalone or sentinel server gets one call per `KEYS_PER_CALL` keys; a cluster gets one call per
hash slot (a script may only touch keys of one slot), and redis-py's cluster pipeline sends each
node its calls at once, so a read costs one round trip per node whatever the number of triggers.

Anything that fails the whole server (unreachable, refused login, TLS mismatch, timeout) raises
`ScalerError` naming the server, with every credential masked.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from redis.crc import key_slot
from redis.exceptions import NoScriptError, RedisClusterException, RedisError, ResponseError

from ._redis_connection import RedisConnection, RedisHandle
from .base import ScalerClient, ScalerError

Measure = Literal["length", "stream-length", "pending", "lag"]

KEYS_PER_CALL = 500

# KEYS[i] is a key; ARGV[2i-1] what to measure on it; ARGV[2i] a consumer group (or "").
# Each answer is a number, or a string "code:detail" for a key that cannot be measured.
SCRIPT = """
local LENGTH = {list = 'LLEN', set = 'SCARD', zset = 'ZCARD', hash = 'HLEN'}

local function lag(key, group)
  for _, info in ipairs(redis.call('XINFO', 'GROUPS', key)) do
    local fields = {}
    for j = 1, #info, 2 do fields[info[j]] = info[j + 1] end
    if fields['name'] == group then
      if fields['lag'] == nil then return 'nolag:' end
      return fields['lag'] or 0
    end
  end
  return redis.call('XLEN', key)
end

local function measure(key, what, group)
  local kind = redis.call('TYPE', key)['ok']
  if what == 'length' then
    if kind == 'none' then return 0 end
    if LENGTH[kind] then return redis.call(LENGTH[kind], key) end
    return 'type:' .. kind
  end
  if kind == 'none' and what ~= 'pending' then return 0 end
  if kind ~= 'stream' and kind ~= 'none' then return 'type:' .. kind end
  if what == 'stream-length' then return redis.call('XLEN', key) end
  if what == 'lag' then return lag(key, group) end
  local pending = redis.pcall('XPENDING', key, group)
  if pending['err'] then return 'nogroup:' end
  return pending[1]
end

local answers = {}
for i, key in ipairs(KEYS) do
  answers[i] = measure(key, ARGV[2 * i - 1], ARGV[2 * i])
end
return answers
"""
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()


@dataclass(frozen=True)
class Probe:
    """One thing to measure: the length of `key` by its type, or a stream figure."""

    key: str
    measure: Measure = "length"
    group: str = ""


class RedisTarget(Hashable, Protocol):
    """A config the batch client can read: the server it lives on and what to measure there."""

    @property
    def connection(self) -> RedisConnection: ...

    def probe(self) -> Probe: ...


T = TypeVar("T", bound=RedisTarget)
Value = float | ScalerError


class RedisClient(ScalerClient[T]):
    """All triggers of one Redis server: one small pool, one pipeline per read."""

    def __init__(self, connection: RedisConnection) -> None:
        self._connection = connection
        self._handle = RedisHandle(connection)
        self._lock = asyncio.Lock()  # one read at a time: a read never needs a second connection

    async def read(self, configs: Sequence[T]) -> list[Value]:
        probes = [config.probe() for config in configs]
        async with self._lock:
            values = await self._measure(list(dict.fromkeys(probes)))
        return [values[probe] for probe in probes]

    async def aclose(self) -> None:
        async with self._lock:
            await self._handle.aclose()

    async def _measure(self, probes: list[Probe]) -> dict[Probe, Value]:
        batches = list(self._batches(probes))
        try:
            answers = await self._call(batches)
        except (RedisError, RedisClusterException, OSError, ssl.SSLError) as error:
            raise self._error(f"cannot read ({type(error).__name__}: {error})") from None
        values: dict[Probe, Value] = {}
        for batch, answer in zip(batches, answers, strict=True):
            values.update(self._decode(batch, answer))
        return values

    def _batches(self, probes: list[Probe]) -> Iterator[list[Probe]]:
        """Chunks of probes, each within one hash slot on a cluster."""
        groups: dict[int, list[Probe]] = {}
        for probe in probes:
            slot = key_slot(probe.key.encode()) if self._connection.kind == "cluster" else 0
            groups.setdefault(slot, []).append(probe)
        for group in groups.values():
            for start in range(0, len(group), KEYS_PER_CALL):
                yield group[start : start + KEYS_PER_CALL]

    async def _call(self, batches: list[list[Probe]]) -> list[object]:
        """Run the script on every batch in one pipeline, loading it first if the server lost it."""
        client = await self._handle.client()
        for attempt in range(2):
            pipeline = client.pipeline(transaction=False)
            for batch in batches:
                # execute_command: the cluster pipeline refuses `evalsha()` because a script could
                # span slots; each batch here stays within one slot, so the call routes cleanly.
                pipeline.execute_command("EVALSHA", SCRIPT_SHA, *_script_arguments(batch))
            answers: list[object] = await pipeline.execute(raise_on_error=False)
            if attempt or not any(isinstance(answer, NoScriptError) for answer in answers):
                break
            await client.script_load(SCRIPT)
        for answer in answers:
            if isinstance(answer, ResponseError) and not isinstance(answer, NoScriptError):
                _raise_if_server_wide(answer)
        return answers

    def _decode(self, batch: list[Probe], answer: object) -> Iterator[tuple[Probe, Value]]:
        if not isinstance(answer, list):
            failure = self._error(f"script failed: {answer}")
            yield from ((probe, failure) for probe in batch)
            return
        for probe, item in zip(batch, answer, strict=True):
            yield probe, float(item) if isinstance(item, int) else self._key_error(probe, item)

    def _key_error(self, probe: Probe, code: object) -> ScalerError:
        text = code.decode() if isinstance(code, bytes) else str(code)
        reason, _, detail = text.partition(":")
        key = f'key "{probe.key}"'
        if reason == "type":
            wanted = "list, set, sorted set or hash" if probe.measure == "length" else "stream"
            return self._error(f"{key} is a {detail}, not a {wanted}")
        if reason == "nogroup":
            return self._error(f'stream "{probe.key}" has no consumer group "{probe.group}"')
        if reason == "nolag":
            return self._error(f'stream "{probe.key}": consumer group lag needs Redis 7 or later')
        return self._error(f"{key}: unexpected answer {text}")

    def _error(self, message: str) -> ScalerError:
        text = f"{self._connection.describe()}: {message}"
        for secret in self._connection.secrets():
            text = text.replace(secret, "***")
        return ScalerError(text)


def _script_arguments(batch: list[Probe]) -> list[str | int]:
    """numkeys, the keys, then what to measure and the group for each key."""
    measures = [part for probe in batch for part in (probe.measure, probe.group)]
    return [len(batch), *(probe.key for probe in batch), *measures]


_SERVER_WIDE = ("NOAUTH", "WRONGPASS", "NOPERM", "LOADING", "MASTERDOWN", "CLUSTERDOWN", "READONLY")


def _raise_if_server_wide(error: ResponseError) -> None:
    """A refusal that is about the connection, not a key, fails the whole read."""
    if str(error).startswith(_SERVER_WIDE):
        raise error
