"""Memory of the real `serve` process: given back after a burst of TLS connections, bounded by cache keys.

1,000 TLS connections are opened (each makes one request) and held, then closed: the resident set
must come back near its baseline within seconds. Then 1,024 distinct valid query strings of 60 KiB
each must not pin their size in the per-query caches.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from tests.harness.adapter_process import AdapterProcess, running_adapter
from tests.harness.fault_run import open_tls_connections, rss_mb, settled_rss

BURST = 1000
MARGIN_MB = 40
QUERIES = 1024  # of 60 KiB each: 60 MB if the caches kept them


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdapterProcess]:
    work = tmp_path_factory.mktemp("memory")
    objects = work / "objects"
    objects.mkdir()
    (objects / "so.yaml").write_text(json.dumps({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "so"},
        "spec": {"scaleTargetRef": {"name": "w"}, "triggers": [{"type": "cron", "useCachedMetrics": True,
                                                               "metadata": {"timezone": "UTC", "start": "0 0 1 1 *",
                                                                            "end": "59 23 31 12 *",
                                                                            "desiredReplicas": "2"}}]}}))
    with running_adapter(objects, work / "certs", work / "adapter.log", "--internal-port", "0") as process:
        yield process


def baseline(adapter: AdapterProcess, request: bytes) -> float:
    assert adapter.process is not None
    for conn in open_tls_connections(adapter, 50, request):  # warm up: imports, caches, first buffers
        conn.close()
    time.sleep(2)
    return rss_mb(adapter.process.pid)


def test_rss_returns_near_its_baseline_after_a_burst_of_tls_connections(adapter: AdapterProcess) -> None:
    assert adapter.process is not None
    request = b"GET /apis/external.metrics.k8s.io/v1beta1 HTTP/1.1\r\nhost: x\r\n\r\n"
    before = baseline(adapter, request)
    held = open_tls_connections(adapter, BURST, request)
    peak = rss_mb(adapter.process.pid)
    for conn in held:
        conn.close()
    after = settled_rss(adapter.process.pid, before + MARGIN_MB)
    assert after < before + MARGIN_MB, (before, peak, after)
    print(f"rss before={before:.0f}MB peak={peak:.0f}MB after={after:.0f}MB")


def test_long_query_strings_are_not_pinned_by_caches(adapter: AdapterProcess) -> None:
    assert adapter.process is not None
    selector = quote("scaledobject.keda.sh/name=so", safe="")
    path = ("/apis/external.metrics.k8s.io/v1beta1/namespaces/default/s0-cron-UTC-0011x-59233112x"
            f"?labelSelector={selector}")
    before = baseline(adapter, f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
    with adapter.client() as client:
        for _ in range(QUERIES):
            response = client.get(f"{path}&pad={secrets.token_hex(30 * 1024)}")
            assert response.status_code == 200
    after = settled_rss(adapter.process.pid, before + MARGIN_MB)
    assert after < before + MARGIN_MB, (before, after)
