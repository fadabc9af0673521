"""A short-lived cache of review answers (TokenReview, SubjectAccessReview), with single flight.

The generic apiserver caches delegated authentication and authorization decisions for about
10 s so that the HPA's steady requests cost kube-apiserver one review per 10 s, not one per
request. Concurrent requests for the same key share one review. A review that fails (network,
5xx) raises and is not cached, so the next request asks again.

Keys are kept as a SHA-256 of their repr: a key carries what a client sent (a token, a user's
groups and extra headers, up to the 1 MiB a request head may hold), and 10,000 such keys must not
pin gigabytes.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from cachetools import TTLCache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ReviewCache(Generic[K, V]):
    def __init__(self, ttl: float = 10.0, maxsize: int = 10_000) -> None:
        self._answers: TTLCache[bytes, V] = TTLCache(maxsize=maxsize, ttl=ttl)
        self._inflight: dict[bytes, asyncio.Future[V]] = {}
        self.reviews = 0  # reviews actually sent

    async def get(self, key: K, review: Callable[[], Awaitable[V]]) -> V:
        digest = hashlib.sha256(repr(key).encode()).digest()
        try:
            return self._answers[digest]
        except KeyError:
            pass
        pending = self._inflight.get(digest)
        if pending is None:
            self.reviews += 1
            pending = asyncio.ensure_future(review())
            self._inflight[digest] = pending
            pending.add_done_callback(lambda done: self._settle(digest, done))
        return await asyncio.shield(pending)

    def _settle(self, key: bytes, done: asyncio.Future[V]) -> None:
        self._inflight.pop(key, None)
        if not done.cancelled() and done.exception() is None:
            self._answers[key] = done.result()
