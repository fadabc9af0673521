"""What the SQL scalers share: one poll's queries on one pool, and the rule for a query's answer.

KEDA's postgresql and mysql scalers hold one `database/sql` pool per ScaledObject and run the
trigger's query with `QueryRow(...).Scan(&float64)`. Here a poll's configs of one server (host,
database and user) share ONE pool: identical queries run once, the distinct ones run concurrently
on at most `MAX_CONCURRENT_QUERIES` connections, each under its own timeout, so one slow query
fails its own triggers and not the whole batch.

The answer follows `Scan` into a float: the first row's only column, a number or text that
parses as one. No row, more than one column, NULL or anything else is an error that says which.
"""

from __future__ import annotations

import asyncio
import decimal
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from scalers.base import ScalerClient, ScalerError, ask_once, masked_error

MAX_CONCURRENT_QUERIES = 4  # per server and user: the pool's size, and the queries in flight


class QueryError(Exception):
    """One query failed (bad SQL, missing table, a result that is not one number, too slow)."""


def value_of(rows: Sequence[Sequence[Any]]) -> float:
    """The first row's only column as a float, as `Scan(&float64)` reads it; else QueryError."""
    if not rows:
        raise QueryError("the query returned no row (it must return one row with one number)")
    row = rows[0]
    if len(row) != 1:
        raise QueryError(f"the query returned {len(row)} columns (it must return one number)")
    value = row[0]
    if value is None:
        raise QueryError("the query returned NULL (it must return one number)")
    if isinstance(value, bool):
        raise QueryError("the query returned a boolean (it must return a number)")
    if isinstance(value, int | float | decimal.Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode(errors="replace")
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise QueryError(f'the query returned "{shown}", which is not a number')
    raise QueryError(f"the query returned a {type(value).__name__}, which is not a number")


Run = Callable[[str], Awaitable[float]]
Describe = Callable[[BaseException], str]


async def run_queries(queries: Sequence[str], run: Run, *, timeout: float,
                      describe: Describe) -> dict[str, float | ScalerError]:
    """Each distinct query of `queries` run once through `run`, at most MAX_CONCURRENT_QUERIES at a
    time, each within `timeout`. Per-query failures are ScalerErrors in the result; a failure of
    the server itself (`run` raising ScalerError) propagates and fails the whole poll."""
    gate = asyncio.Semaphore(MAX_CONCURRENT_QUERIES)

    async def one(query: str) -> float | ScalerError:
        async with gate:
            try:
                async with asyncio.timeout(timeout):
                    return await run(query)
            except TimeoutError:
                return ScalerError(f"the query did not finish within {timeout:g}s and was cancelled")
            except QueryError as exc:
                return ScalerError(str(exc))
            except ScalerError:
                raise
            except Exception as exc:  # the driver's own error for this query (syntax, missing table)
                return ScalerError(f"the query failed: {describe(exc)}")

    return await ask_once(queries, one)


class QueryConfig(Hashable, Protocol):
    @property
    def query(self) -> str: ...


ConfigT = TypeVar("ConfigT", bound=QueryConfig)
PoolT = TypeVar("PoolT")
ConnectionT = TypeVar("ConnectionT")


class PoolClient(ScalerClient[ConfigT], Generic[ConfigT, PoolT]):
    """One driver pool of at most MAX_CONCURRENT_QUERIES connections for the configs of one server,
    opened on the first read; a poll's queries run on it through `run_queries`. A subclass creates,
    queries and closes the pool; `describe` reads a driver error, `connect_failure` one of
    connecting. Errors start with `where` and mask the secrets of `secrets`."""

    def __init__(self, where: object, secrets: object, *, timeout: float, describe: Describe,
                 connect_failure: Describe) -> None:
        self._where, self._secrets, self._timeout = where, secrets, timeout
        self._describe, self._connect_failure = describe, connect_failure
        self._pool: PoolT | None = None

    async def read(self, configs: Sequence[ConfigT]) -> list[float | ScalerError]:
        pool = await self._open()
        answers = await run_queries([c.query for c in configs], lambda q: self._run(pool, q),
                                    timeout=self._timeout, describe=self._describe)
        return [a if isinstance(a, float) else self._error(str(a)) for a in (answers[c.query] for c in configs)]

    async def _open(self) -> PoolT:
        if self._pool is None:
            try:
                self._pool = await self._create_pool()
            except Exception as exc:
                raise self._refused(exc) from None
        return self._pool

    async def _connection(self, acquiring: Awaitable[ConnectionT]) -> ConnectionT:
        """A connection of the pool: one that cannot be made fails the whole read."""
        try:
            return await acquiring
        except Exception as exc:
            raise self._refused(exc) from None

    def _refused(self, exc: BaseException) -> ScalerError:
        return self._error(self._connect_failure(exc))

    def _error(self, what: str) -> ScalerError:
        return masked_error(f"{self._where}: {what}", self._secrets)

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await self._close(pool)

    @abstractmethod
    async def _create_pool(self) -> PoolT:
        """A new pool, connecting lazily or at once (a failure is a connect failure)."""

    @abstractmethod
    async def _run(self, pool: PoolT, query: str) -> float:
        """The answer of `query` on a connection of `pool`, as `value_of` reads it."""

    @abstractmethod
    async def _close(self, pool: PoolT) -> None:
        """Close `pool` and its connections."""
