"""Running an asyncio client's coroutine from the harness's synchronous start-up code.

Harness servers start in synchronous session fixtures, yet their readiness checks and set-up
(users, databases, credentials) use the same asyncio clients the tests and scalers use (asyncpg,
aiomysql, aiobotocore). `run_to_completion` runs one coroutine on a new event loop in a worker
thread, so it never touches the test session's own loop and leaves no loop behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_to_completion(coroutine: Coroutine[Any, Any, T]) -> T:
    """The coroutine's result (or its exception), computed on a loop of its own."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="harness-setup") as pool:
        return pool.submit(asyncio.run, coroutine).result()
