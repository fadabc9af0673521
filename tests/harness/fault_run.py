"""Steady metric reads while faults are injected one at a time, and what each answer must be.

`SteadyReader` sends GETs at a fixed total rate (from a few threads, each with its own keep-alive
HTTPS client) across every `Target`, and keeps every `Answer`. `run_faults` injects each `Fault`,
holds it, clears it, and waits for the affected targets to answer their true value again.
`violations` lists every answer that breaks the rules, whatever the fault:

* answered within `bound` seconds (`--scaler-timeout` + 1 s);
* a 200 carries the target's true value (never a 0 or a stale number of another state);
* anything else is a metav1.Status whose message names the ScaledObject and trigger.

The fault-matrix test asserts these and the recovery times; `make bench` prints them as figures.
"""

from __future__ import annotations

import socket
import ssl
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from adapter.kube.wire import format_quantity
from tests.harness.adapter_process import AdapterProcess


@dataclass(frozen=True)
class Target:
    """One ScaledObject's metric and the value its source really holds."""

    namespace: str
    name: str
    metric: str
    truth: float
    group: str  # which fault can touch it: "redis", "rabbitmq", ... ("cron" none)

    @property
    def url(self) -> str:
        selector = quote(f"scaledobject.keda.sh/name={self.name}", safe="")
        return (f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{self.namespace}/{self.metric}"
                f"?labelSelector={selector}")


@dataclass(frozen=True)
class Answer:
    target: Target
    started: float  # monotonic
    seconds: float
    status: int
    value: str | None
    message: str

    @property
    def correct(self) -> bool:
        return self.status == 200 and self.value == format_quantity(self.target.truth)


class SteadyReader:
    """GETs at `rate` per second in total, spread over `threads`, cycling through `targets`."""

    def __init__(self, adapter: AdapterProcess, targets: Sequence[Target], rate: float = 25.0,
                 threads: int = 8) -> None:
        self.adapter, self.targets = adapter, list(targets)
        self.interval = threads / rate
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i, threads), daemon=True) for i in range(threads)]

    def __enter__(self) -> SteadyReader:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _run(self, offset: int, step: int) -> None:
        with self.adapter.client(timeout=30) as client:
            index = offset
            next_at = time.monotonic()
            while not self._stop.is_set():
                target = self.targets[index % len(self.targets)]
                index += step
                started = time.monotonic()
                try:
                    response = client.get(target.url)
                    body = response.json()
                    status = response.status_code
                except Exception as exc:  # a refused connection is an answer too (and a violation)
                    status, body = 0, {"message": f"{type(exc).__name__}: {exc}"}
                value = body["items"][0]["value"] if status == 200 else None
                answer = Answer(target, started, time.monotonic() - started, status, value,
                                str(body.get("message", "")) if status != 200 else "")
                with self._lock:
                    self.answers.append(answer)
                next_at = max(next_at + self.interval, time.monotonic())
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def since(self, start: float, end: float = float("inf")) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if start <= a.started < end]


@dataclass
class Fault:
    name: str
    groups: frozenset[str]  # targets it may make fail
    inject: Callable[[], None]
    clear: Callable[[], None]


@dataclass
class FaultResult:
    name: str
    injected: float
    cleared: float
    recovered: float | None
    answers: list[Answer] = field(default_factory=list)  # from injection to recovery

    @property
    def recovery_seconds(self) -> float | None:
        return None if self.recovered is None else self.recovered - self.cleared

    @property
    def p99(self) -> float:
        seconds = sorted(a.seconds for a in self.answers)
        return seconds[min(len(seconds) - 1, int(0.99 * len(seconds)))] if seconds else 0.0

    @property
    def failed(self) -> int:
        return sum(1 for a in self.answers if not a.correct)


def run_faults(reader: SteadyReader, faults: Sequence[Fault], hold: float,
               recovery_timeout: float) -> list[FaultResult]:
    results = []
    for fault in faults:
        injected = time.monotonic()
        fault.inject()
        time.sleep(hold)
        fault.clear()
        cleared = time.monotonic()
        recovered = wait_recovered(reader, fault.groups, cleared, recovery_timeout)
        end = recovered if recovered is not None else time.monotonic()
        results.append(FaultResult(fault.name, injected, cleared, recovered, reader.since(injected, end)))
        time.sleep(1.0)  # let the next fault start from a settled state
    return results


def wait_recovered(reader: SteadyReader, groups: frozenset[str], cleared: float, timeout: float) -> float | None:
    """The earliest time after `cleared` from which every answer of `groups` was correct, once each
    affected target has answered correctly at least once after it; None if not within `timeout`."""
    names = {t.name for t in reader.targets if t.group in groups}
    deadline = cleared + timeout
    while time.monotonic() < deadline:
        answers = [a for a in reader.since(cleared) if a.target.group in groups]
        wrong = [a.started for a in answers if not a.correct]
        since = max(wrong, default=cleared)
        if {a.target.name for a in answers if a.started > since} >= names:
            return since
        time.sleep(0.2)
    return None


def violations(answers: Sequence[Answer], bound: float) -> list[str]:
    found = []
    for a in answers:
        where = f"{a.target.namespace}/{a.target.name}"
        if a.seconds > bound:
            found.append(f"{where}: answered in {a.seconds:.2f}s > {bound}s")
        if a.status == 200 and not a.correct:
            found.append(f"{where}: wrong value {a.value}, the source holds {format_quantity(a.target.truth)}")
        elif a.status != 200 and f"ScaledObject {where} trigger" not in a.message:
            found.append(f"{where}: {a.status} not naming the trigger: {a.message[:200]}")
    return found


def report(results: Sequence[FaultResult], all_answers: Sequence[Answer], bound: float) -> str:
    within = sum(1 for a in all_answers if a.seconds <= bound) / max(len(all_answers), 1)
    lines = [f"requests={len(all_answers)} within_{bound:g}s={100 * within:.2f}% "
             f"p50={statistics.median(a.seconds for a in all_answers) * 1000:.0f}ms"]
    for r in results:
        recovery = "never" if r.recovery_seconds is None else f"{r.recovery_seconds:.2f}s"
        lines.append(f"  {r.name:<28} answers={len(r.answers):>5} not-a-value={r.failed:>5} "
                     f"p99={r.p99 * 1000:>6.0f}ms recovery={recovery}")
    return "\n".join(lines)


def rss_mb(pid: int) -> float:
    """Resident set size of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def open_tls_connections(adapter: AdapterProcess, count: int, request: bytes) -> list[ssl.SSLSocket]:
    """`count` TLS connections presenting the admin certificate, each having made one request (200)."""
    context = adapter.tls("admin")
    opened = []
    for _ in range(count):
        conn = context.wrap_socket(socket.create_connection(("127.0.0.1", adapter.port), timeout=10),
                                   server_hostname="localhost")
        conn.sendall(request)
        assert conn.recv(65536).startswith(b"HTTP/1.1 200"), "a burst request failed"
        opened.append(conn)
    return opened


def settled_rss(pid: int, below: float, timeout: float = 15.0) -> float:
    """Poll until the RSS is below `below` MB (or the deadline); the last reading."""
    deadline = time.monotonic() + timeout
    while (seen := rss_mb(pid)) >= below and time.monotonic() < deadline:
        time.sleep(0.25)
    return seen
