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
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from scalers.base import ScalerError, ask_once

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


async def run_queries(queries: Sequence[str], run: Run, *, timeout: float,
                      describe: Callable[[BaseException], str]) -> dict[str, float | ScalerError]:
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
