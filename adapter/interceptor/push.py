"""Counts to the adapters: one report every `interval`, and one at once when a request is held.

Every adapter replica answers the HPA and feeds its own controller, so each one must know the
counts: the report goes to every adapter (the ready endpoints of the adapter's Service in a
cluster, or the `--adapter-url`s given). Pushes cross pods, so they are authenticated like any
client of the adapter: a ServiceAccount token (re-read before each push: projected tokens
rotate) or a client certificate, over TLS verified against the adapter's CA with the Service's
DNS name. A failed push is logged (once per adapter until it succeeds again) and the next push
carries the then-current counts; nothing is queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from adapter.interceptor.counting import Counters
from scalers.http.report import encode_report

log = logging.getLogger("eventscale.interceptor.push")

COUNTS_PATH = "/interceptor/counts"


@dataclass(frozen=True)
class PushTarget:
    """One adapter: where to connect, and the name its certificate must carry (SNI and checks)."""

    url: str  # https://host:port
    server_name: str | None = None  # None: the URL's host

    def __str__(self) -> str:
        return self.url


Targets = Callable[[], Sequence[PushTarget]]
Token = Callable[[], str | None]


def token_file(path: Path) -> Token:
    def read() -> str | None:
        try:
            return path.read_text().strip() or None
        except OSError:
            return None
    return read


class CountsPusher:
    def __init__(self, counters: Counters, targets: Targets, identity: str, *, context: ssl.SSLContext | bool,
                 token: Token | None = None, interval: float = 1.0, timeout: float = 2.0) -> None:
        self.counters, self.targets, self.identity = counters, targets, identity
        self.token, self.interval, self.timeout = token, interval, timeout
        self.ttl = max(3.0, 3 * interval)
        self.sequence = 0
        self.pushes = 0
        self.failures = 0
        self._urgent = asyncio.Event()
        self._urgent_since: float | None = None
        self.urgent_seconds = 0.0  # the last urgent push: from the held request to every adapter's answer
        self._failing: set[str] = set()
        self._client = httpx.AsyncClient(verify=context, timeout=timeout, http2=False,
                                         headers={"content-type": "application/json",
                                                  "user-agent": "eventscale-interceptor"})

    def push_now(self) -> None:
        if self._urgent_since is None:
            self._urgent_since = time.monotonic()
        self._urgent.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._urgent.wait()
            self._urgent.clear()
            since, self._urgent_since = self._urgent_since, None
            await self.push_once()
            if since is not None:
                self.urgent_seconds = time.monotonic() - since

    async def push_once(self) -> None:
        targets = list(self.targets())
        if not targets:
            return
        self.sequence += 1
        body = encode_report(self.counters.report(self.identity, self.sequence, self.ttl))
        headers = {}
        token = self.token() if self.token is not None else None
        if token:
            headers["authorization"] = f"Bearer {token}"
        await asyncio.gather(*(self._send(target, body, headers) for target in targets))

    async def _send(self, target: PushTarget, body: bytes, headers: dict[str, str]) -> None:
        extensions = {"sni_hostname": target.server_name} if target.server_name else {}
        try:
            response = await self._client.post(f"{target.url}{COUNTS_PATH}", content=body, headers=headers,
                                               extensions=extensions)
            ok, problem = response.status_code < 300, f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            ok, problem = False, f"{type(exc).__name__}: {exc}"
        self.pushes += 1
        if ok:
            if target.url in self._failing:
                log.info("adapter=%s counts accepted again", target)
                self._failing.discard(target.url)
            return
        self.failures += 1
        if target.url not in self._failing:
            log.warning("adapter=%s counts not accepted: %s", target, problem)
            self._failing.add(target.url)

    async def aclose(self) -> None:
        await self._client.aclose()
