"""A broker frozen with SIGSTOP: every metric GET is answered within `--scaler-timeout` (+1 s).

The adapter process serves Redis list triggers over the plain and the TLS port of a Redis of
this test's own. While Redis is stopped, requests keep coming; each must get its 500 naming the
trigger within the bound (closing the stalled client must not hold anyone), and once Redis is
continued the value is back within a polling interval.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.harness.adapter_process import AdapterProcess, running_adapter
from tests.harness.redis_servers import RedisServer
from tests.harness.tls_material import TLSMaterial

TIMEOUT = 2.0
POLLING = 1


@pytest.fixture
def redis(tls_material: TLSMaterial) -> Iterator[RedisServer]:
    with RedisServer(tls=tls_material) as server:
        yield server


def scaled_object(name: str, trigger: Mapping[str, object]) -> dict[str, object]:
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"name": name}, "pollingInterval": POLLING, "triggers": [trigger]}}


def trigger_objects(redis: RedisServer, tls: TLSMaterial) -> list[dict[str, object]]:
    plain = {"type": "redis", "metadata": {"address": redis.address, "listName": "stall", "listLength": "5"}}
    secure = {"type": "redis", "authenticationRef": {"name": "tls"},
              "metadata": {"address": redis.tls_address, "listName": "stall", "listLength": "5", "enableTLS": "true"}}
    return [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ca"}, "stringData": {"ca": tls.ca_pem}},
        {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication", "metadata": {"name": "tls"},
         "spec": {"secretTargetRef": [{"parameter": "ca", "name": "ca", "key": "ca"}]}},
        *(scaled_object(name, trigger) for name, trigger in (("plain", plain), ("secure", secure))),
    ]


def url(name: str) -> str:
    selector = quote(f"scaledobject.keda.sh/name={name}", safe="")
    return f"/apis/external.metrics.k8s.io/v1beta1/namespaces/default/s0-redis-stall?labelSelector={selector}"


class Reader:
    """Steady GETs from a thread of their own; keeps (start, seconds, status, message) per answer."""

    def __init__(self, adapter: AdapterProcess, name: str) -> None:
        self.adapter, self.name = adapter, name
        self.answers: list[tuple[float, float, int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Reader:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with self.adapter.client() as client:
            while not self._stop.is_set():
                started = time.monotonic()
                response = client.get(url(self.name))
                message = response.json().get("message", "") if response.status_code != 200 else ""
                self.answers.append((started, time.monotonic() - started, response.status_code, message))
                time.sleep(0.05)


def test_get_is_answered_within_the_timeout_while_redis_is_stopped(redis: RedisServer, tls_material: TLSMaterial,
                                                                   tmp_path: Path) -> None:
    redis.admin().rpush("stall", *range(7))
    objects = tmp_path / "objects"
    objects.mkdir()
    (objects / "stall.yaml").write_text("\n---\n".join(json.dumps(o) for o in trigger_objects(redis, tls_material)))
    with running_adapter(objects, tmp_path / "certs", tmp_path / "adapter.log", "--scaler-timeout", str(TIMEOUT),
                         "--metric-max-age", "0.2", "--internal-port", "0") as adapter:
        with adapter.client() as client:
            for name in ("plain", "secure"):
                assert client.get(url(name)).json()["items"][0]["value"] == "7"
        readers = [Reader(adapter, "plain"), Reader(adapter, "secure")]
        for reader in readers:
            reader.__enter__()
        try:
            time.sleep(0.5)
            stopped_at = time.monotonic()
            redis.process.signal(signal.SIGSTOP)
            try:
                time.sleep(3 * TIMEOUT + 1)
            finally:
                redis.process.signal(signal.SIGCONT)
            continued_at = time.monotonic()
            time.sleep(POLLING + TIMEOUT + 1)
        finally:
            for reader in readers:
                reader.__exit__()
    for reader in readers:
        during = [a for a in reader.answers if stopped_at + 0.1 < a[0] < continued_at - TIMEOUT]
        assert len(during) >= 3, reader.answers
        assert max(seconds for _, seconds, _, _ in reader.answers) < TIMEOUT + 1.0, reader.answers
        failed = [a for a in during if a[2] != 200]
        assert failed and all(a[2] == 500 and f"no answer within {TIMEOUT:g}s" in a[3]
                              and f"ScaledObject default/{reader.name} trigger 0" in a[3] for a in failed), failed
        recovered = [a for a in reader.answers if a[0] > continued_at + POLLING + TIMEOUT]
        assert recovered and all(a[2] == 200 for a in recovered), reader.answers[-5:]
