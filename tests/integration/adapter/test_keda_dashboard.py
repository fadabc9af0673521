"""KEDA's Grafana dashboard works against our `/metrics`: a real Prometheus scrapes a real adapter
over HTTPS (client certificate, as in a cluster), and every query the dashboard makes of KEDA's
own series -- its template variables and its panels -- answers series naming our ScaledObject.

The queries are those of KEDA's published dashboard (config/grafana/keda-dashboard.json in
kedacore/keda); their `$variables` are filled as Grafana fills them, from the variables' own
label_values queries. The target carries a `namespace` label as Kubernetes service discovery
gives one, so the adapter's `namespace` arrives as `exported_namespace`, which is what the
dashboard selects on. Its replica panels query kube-state-metrics' HPA series, not ours, and
are not part of this test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness.adapter_process import AdapterProcess, running_adapter
from tests.harness.ports import free_port
from tests.harness.prometheus_server import PrometheusServer

pytestmark = pytest.mark.prometheus

NAMESPACE, SCALED_OBJECT = "shop", "orders"
# label_values(<selector>, <label>) of the dashboard's variables, in the order Grafana resolves them
VARIABLES = (
    ("namespace", "keda_scaler_active", "exported_namespace"),
    ("scaledObject", 'keda_scaler_active{exported_namespace="$namespace"}', "scaledObject"),
    ("scaler", 'keda_scaler_active{exported_namespace="$namespace"}', "scaler"),
    ("metric", 'keda_scaler_active{exported_namespace="$namespace"}', "metric"),
)
PANELS = (
    "sum by(job) (rate(keda_scaler_detail_errors_total{}[5m]))",
    'sum by(scaler) (rate(keda_scaler_detail_errors_total{exported_namespace=~"$namespace", '
    'scaledObject=~"$scaledObject", scaler=~"$scaler"}[5m]))',
    'sum by(scaledObject) (rate(keda_scaled_object_errors_total{exported_namespace=~"$namespace", '
    'scaledObject=~"$scaledObject"}[5m]))',
    'sum by(metric) (keda_scaler_metrics_value{exported_namespace=~"$namespace", metric=~"$metric", '
    'scaledObject=~"$scaledObject"})',
)


def _objects(closed_port: int) -> str:
    """One ScaledObject: a cron trigger that always reads 12 and a Redis trigger whose server is down."""
    return yaml.safe_dump({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": SCALED_OBJECT, "namespace": NAMESPACE},
        "spec": {"scaleTargetRef": {"name": "worker"}, "pollingInterval": 1, "triggers": [
            {"type": "cron", "metadata": {"timezone": "UTC", "start": "0 0 1 1 *", "end": "59 23 31 12 *",
                                          "desiredReplicas": "12"}},
            {"type": "redis", "metadata": {"address": f"127.0.0.1:{closed_port}", "listName": "jobs"}},
        ]},
    })


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdapterProcess]:
    directory = tmp_path_factory.mktemp("dashboard")
    (directory / "objects").mkdir()
    (directory / "objects" / "orders.yaml").write_text(_objects(free_port()))
    with running_adapter(directory / "objects", directory / "certs", directory / "adapter.log",
                         "--metric-max-age", "0.5") as process:
        yield process


@pytest.fixture(scope="module")
def prometheus(adapter: AdapterProcess) -> Iterator[PrometheusServer]:
    certs: Path = adapter.cert_dir
    tls = {"ca_file": str(certs / "ca.crt"), "cert_file": str(certs / "admin.crt"),
           "key_file": str(certs / "admin.key")}
    with PrometheusServer([f"127.0.0.1:{adapter.port}"], scrape={"scheme": "https", "tls_config": tls},
                          target_labels={"namespace": "eventscale"}) as server:
        yield server


def _label_values(prometheus: PrometheusServer, selector: str, label: str) -> list[str]:
    response = prometheus.client().get(f"/api/v1/label/{label}/values", params={"match[]": selector})
    response.raise_for_status()
    values: list[str] = response.json()["data"]
    return values


def _fill(expression: str, variables: dict[str, list[str]]) -> str:
    """Grafana's interpolation: one value as itself, several (a multi-value variable) as a|b."""
    for name in sorted(variables, key=len, reverse=True):
        expression = expression.replace(f"${name}", "|".join(variables[name]))
    return expression


def _wait_for_series(prometheus: PrometheusServer, promql: str, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while not (series := prometheus.query(promql)):
        if time.monotonic() > deadline:
            raise AssertionError(f"{promql} answers no series after {timeout}s")
        time.sleep(0.2)
    return series


def _variables(prometheus: PrometheusServer) -> dict[str, list[str]]:
    variables: dict[str, list[str]] = {}
    for name, selector, label in VARIABLES:
        deadline = time.monotonic() + 30
        while not (values := _label_values(prometheus, _fill(selector, variables), label)):
            assert time.monotonic() < deadline, f"variable {name}: label_values({selector}, {label}) is empty"
            time.sleep(0.2)
        variables[name] = values if name == "scaledObject" else values[:1]  # only scaledObject is multi-value
    return variables


def test_the_dashboard_variables_list_our_scaled_object(prometheus: PrometheusServer) -> None:
    variables = _variables(prometheus)
    assert variables["namespace"] == [NAMESPACE] and variables["scaledObject"] == [SCALED_OBJECT]
    assert variables["scaler"][0] in {"cron", "redis"}
    metrics = _label_values(prometheus, 'keda_scaler_active{exported_namespace="shop"}', "metric")
    assert len(metrics) == 2 and metrics[0].startswith("s0-cron-") and metrics[1] == "s1-redis-jobs"


@pytest.mark.parametrize("panel", PANELS)
def test_every_panel_query_answers_series(prometheus: PrometheusServer, panel: str) -> None:
    series = _wait_for_series(prometheus, _fill(panel, _variables(prometheus)))
    assert all(sample["value"][1] != "NaN" for sample in series)


def test_the_panels_show_the_value_and_the_failing_trigger(prometheus: PrometheusServer) -> None:
    values = _wait_for_series(prometheus, 'sum by(metric) (keda_scaler_metrics_value{exported_namespace="shop"})')
    assert [(s["metric"]["metric"][:8], float(s["value"][1])) for s in values] == [("s0-cron-", 12.0)]
    deadline = time.monotonic() + 30
    while True:
        errors = {s["metric"]["scaler"]: float(s["value"][1]) for s in prometheus.query(
            'sum by(scaler) (rate(keda_scaler_detail_errors_total{exported_namespace="shop"}[5m]))')}
        if errors.get("redis", 0) > 0:
            break
        assert time.monotonic() < deadline, f"no error rate for the redis trigger: {errors}"
        time.sleep(0.2)
    assert errors.get("cron") == 0.0
    active = prometheus.query('keda_scaler_active{exported_namespace="shop"}')
    assert {s["metric"]["triggerIndex"]: s["value"][1] for s in active} == {"0": "1", "1": "0"}
    assert {s["metric"]["type"] for s in active} == {"scaledobject"}
    assert _wait_for_series(prometheus, 'keda_build_info{version!=""}')
