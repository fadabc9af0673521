"""The shipped ClusterRole `eventscale-metrics-reader` is what lets Prometheus scrape /metrics.

The adapter authorizes GET /metrics with a SubjectAccessReview like any non-resource path, so a
service account with no binding is refused and one bound to the role (as the Helm value
metrics.readerSubjects or the README's `kubectl create clusterrolebinding` does) is let in.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cluster_adapter import cluster_adapter, direct_client, install
from controlplane import ControlPlane, wait_for

from tests.harness.adapter_process import AdapterProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def adapter(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdapterProcess]:
    install(control_plane)
    process = cluster_adapter(control_plane, tmp_path_factory.mktemp("metrics-reader"))
    process.start(timeout=60)
    try:
        yield process
    finally:
        process.stop()


def test_a_service_account_bound_to_the_role_may_scrape(control_plane: ControlPlane, adapter: AdapterProcess,
                                                         namespace: str) -> None:
    cp = control_plane
    cp.kubectl("create", "serviceaccount", "prometheus", "-n", namespace)
    token = cp.kubectl("create", "token", "prometheus", "-n", namespace).stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}
    binding = f"{namespace}-metrics-reader"
    with direct_client(adapter) as client:
        assert client.get("/metrics", headers=headers).status_code == 403
        cp.kubectl("create", "clusterrolebinding", binding, "--clusterrole=eventscale-metrics-reader",
                   f"--serviceaccount={namespace}:prometheus")
        try:
            scraped = wait_for(lambda: (r := client.get("/metrics", headers=headers)).status_code == 200 and r,
                               timeout=30, what="GET /metrics allowed by the binding")
        finally:
            cp.kubectl("delete", "clusterrolebinding", binding, check=False)
    assert scraped.headers["content-type"].startswith("text/plain") and "# TYPE" in scraped.text
