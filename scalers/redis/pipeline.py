"""Reading many Redis keys in one round trip: a server-side script and the shared batch client.

Every Redis trigger reduces to a `Probe`: a key, what to measure on it and, for streams, a
consumer group. `RedisClient.read` deduplicates the probes of a batch and sends them as EVALSHA
calls of one small Lua script, all in a single pipeline: the script looks at each key's type and
answers a number, or a short error code that becomes a `ScalerError` for that key only. A
standalone or sentinel server gets one call per `KEYS_PER_CALL` keys; a cluster gets one call per
hash slot (a script may only touch keys of one slot), and redis-py's cluster pipeline sends each
node its calls at once, so a read costs one round trip per node whatever the number of triggers.

Anything that fails the whole server (unreachable, refused login, TLS mismatch, timeout) raises
`ScalerError` naming the server, with every credential masked. `RedisScalerBase` is what the list
and the streams scalers share: the connection parsed from the trigger, one client per connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any, ClassVar, Literal, NamedTuple, Protocol, TypeVar

from redis.asyncio.sentinel import MasterNotFoundError
from redis.crc import key_slot
from redis.exceptions import NoScriptError, RedisClusterException, RedisError, ResponseError

from scalers.base import ScalerClient, ScalerError, ServedScaler, masked_error
from scalers.params import TriggerParams, parse_params
from scalers.redis.connection import RedisConnection, RedisHandle, parse_connection
from scalers.redis.keyspace import KeyspaceWatch, Notifications
from scalers.tls import TLSMaterialError

Measure = Literal["length", "stream-length", "pending", "lag"]

KEYS_PER_CALL = 500

# KEYS[i] is a key; ARGV[i] what to measure on it (one letter, see MEASURE_CODES) followed by the
# consumer group for pending and lag; without ARGV every key is measured by its length. The answer
# is one string of comma-separated fields, a number or "code:detail" per key: redis-py's pure-Python
# parser reads one bulk string far faster than ten thousand integers.
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
  if what == 'l' then
    if kind == 'none' then return 0 end
    if LENGTH[kind] then return redis.call(LENGTH[kind], key) end
    return 'type:' .. kind
  end
  if kind == 'none' and what ~= 'p' then return 0 end
  if kind ~= 'stream' and kind ~= 'none' then return 'type:' .. kind end
  if what == 'x' then return redis.call('XLEN', key) end
  if what == 'g' then return lag(key, group) end
  local pending = redis.pcall('XPENDING', key, group)
  if pending['err'] then return 'nogroup:' end
  return pending[1]
end

local answers = {}
for i, key in ipairs(KEYS) do
  local spec = ARGV[i] or 'l'
  answers[i] = measure(key, string.sub(spec, 1, 1), string.sub(spec, 2))
end
return table.concat(answers, ',')
"""
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()
MEASURE_CODES: dict[Measure, str] = {"length": "l", "stream-length": "x", "pending": "p", "lag": "g"}


class Probe(NamedTuple):
    """One thing to measure: the length of `key` by its type, or a stream figure of a group."""

    key: str
    measure: Measure = "length"
    group: str = ""


class RedisTarget(Hashable, Protocol):
    """A config the batch client can read: it says what to measure on its server, and which
    keyspace events tell that it changed."""

    def probe(self) -> Probe: ...

    def notified_key(self) -> tuple[str, str]: ...

    @property
    def connection(self) -> RedisConnection: ...

    @property
    def keyspace_notifications(self) -> Notifications: ...


T = TypeVar("T", bound=RedisTarget)
Value = float | ScalerError


class RedisClient(ScalerClient[T]):
    """All triggers of one Redis server: one small pool, one pipeline per read, and the keyspace
    subscription that wakes the triggers of objects at zero (`keyspace`)."""

    activation_only = True

    def __init__(self, connection: RedisConnection) -> None:
        self._connection = connection
        self._handle = RedisHandle(connection)
        self._lock = asyncio.Lock()  # one read at a time: a read never needs a second connection
        self.keyspace: KeyspaceWatch[T] = KeyspaceWatch(self._handle)

    def watch(self, configs: Sequence[T], wake: Callable[[Sequence[T]], None]) -> None:
        self.keyspace.update(configs, wake)

    async def read(self, configs: Sequence[T]) -> list[Value]:
        probes = [config.probe() for config in configs]
        async with self._lock:
            values = await self._measure(list(dict.fromkeys(probes)))
        return [values[probe] for probe in probes]

    async def aclose(self) -> None:
        await self.keyspace.aclose()
        async with self._lock:
            await self._handle.aclose()

    async def _measure(self, probes: list[Probe]) -> dict[Probe, Value]:
        batches = list(self._batches(probes))
        try:
            answers = await self._call(batches)
        except (RedisError, RedisClusterException, TLSMaterialError, OSError, ssl.SSLError) as error:
            raise self._error(f"cannot read ({_failure(error)})") from None
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
        if not isinstance(answer, bytes):
            failure = self._error(f"script failed: {answer}")
            yield from ((probe, failure) for probe in batch)
            return
        for probe, item in zip(batch, answer.decode().split(","), strict=True):
            yield probe, float(item) if item.isdigit() else self._key_error(probe, item)

    def _key_error(self, probe: Probe, text: str) -> ScalerError:
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
        return masked_error(f"{self._connection.describe()}: {message}", self._connection)


def _failure(error: BaseException) -> str:
    """The error's class and text; a sentinel's (which quotes a whole client) cut to its cause."""
    text = str(error)
    if isinstance(error, MasterNotFoundError):
        text = "no sentinel named the master: " + text.rpartition(" - ")[2]
    return f"{type(error).__name__}: {text}"


def _script_arguments(batch: list[Probe]) -> list[str | int]:
    """numkeys, the keys, then per key its measure code and group (none when all are lengths)."""
    codes = [MEASURE_CODES[probe.measure] + probe.group for probe in batch]
    if all(code == "l" for code in codes):
        codes = []
    return [len(batch), *(probe.key for probe in batch), *codes]


_SERVER_WIDE = ("NOAUTH", "WRONGPASS", "NOPERM", "LOADING", "MASTERDOWN", "CLUSTERDOWN", "READONLY")


def _raise_if_server_wide(error: ResponseError) -> None:
    """A refusal that is about the connection, not a key, fails the whole read."""
    if str(error).startswith(_SERVER_WIDE):
        raise error


class RedisScalerBase(ServedScaler[T, RedisConnection]):
    """A Redis trigger family: its config is `config_type`'s parameters plus the connection its
    trigger type and parameters name, and every config of one connection shares one `RedisClient`.
    A subclass names its config class in its header (`class TheScaler(RedisScalerBase[TheConfig],
    config=TheConfig)`), sets `types` and writes `served`."""

    config_type: ClassVar[type[Any]]

    def __init_subclass__(cls, *, config: type[Any], **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.config_type = config

    def parse(self, trigger_type: str, params: TriggerParams) -> T:
        config: T = parse_params(self.config_type, params, connection=parse_connection(trigger_type, params))
        return config

    def open_client(self, config: T) -> RedisClient[T]:
        return RedisClient(config.connection)
