"""The external.metrics.k8s.io contract over real HTTPS, as kube-apiserver and kubectl use it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from openapi_spec_validator import validate

from tests.harness.adapter_process import AdapterProcess

GV = "/apis/external.metrics.k8s.io/v1beta1"
ALWAYS = "s0-cron-UTC-0011x-59233112x"
NEVER = "s1-cron-UTC-0011x-1011x"
V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"


def selector(name: str, key: str = "scaledobject.keda.sh/name") -> str:
    return "labelSelector=" + quote(f"{key}={name}", safe="")


def metric_url(namespace: str, metric: str, query: str) -> str:
    return f"{GV}/namespaces/{namespace}/{metric}?{query}"


def assert_status(response: httpx.Response, code: int, reason: str, contains: str = "") -> dict[str, Any]:
    assert response.status_code == code, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict), body
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == code and body["reason"] == reason
    assert contains in body["message"]
    return body


@pytest.fixture(scope="module")
def admin(adapter: AdapterProcess) -> httpx.Client:
    return adapter.client("admin")


def test_metric_value_list(admin: httpx.Client) -> None:
    response = admin.get(metric_url("default", ALWAYS, selector("always")),
                         headers={"Accept": "application/vnd.kubernetes.protobuf, */*"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["kind"] == "ExternalMetricValueList"
    assert body["apiVersion"] == "external.metrics.k8s.io/v1beta1"
    (item,) = body["items"]
    assert item["metricName"] == ALWAYS and item["metricLabels"] == {} and item["value"] == "1500"
    stamp = dt.datetime.strptime(item["timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert abs((dt.datetime.now(dt.UTC) - stamp).total_seconds()) < 60


def test_zero_is_one_item_with_zero(admin: httpx.Client) -> None:
    body = admin.get(metric_url("default", NEVER, selector("always"))).json()
    assert [i["value"] for i in body["items"]] == ["0"]


def test_metric_name_is_case_insensitive(admin: httpx.Client) -> None:
    response = admin.get(metric_url("default", ALWAYS.lower(), selector("always")))
    assert response.status_code == 200 and response.json()["items"][0]["value"] == "1500"


def test_namespaces_are_separate(admin: httpx.Client) -> None:
    paris = "s0-cron-Europe-Paris-0011x-59233112x"
    assert admin.get(metric_url("team-a", paris, selector("other"))).json()["items"][0]["value"] == "3"
    assert_status(admin.get(metric_url("default", paris, selector("other"))), 404, "NotFound", '"other" not found')


def test_legacy_format_is_routed_by_deployment_name(admin: httpx.Client) -> None:
    response = admin.get(metric_url("default", ALWAYS, selector("old-worker", "deploymentName")))
    assert response.json()["items"][0]["value"] == "4"


@pytest.mark.parametrize("query", [
    selector("always") + "&timeout=32s&pretty=true",
    "labelSelector=" + quote("scaledobject.keda.sh/name in (always),team!=x", safe=""),
    "labelSelector=" + quote("  scaledobject.keda.sh/name == always ", safe=""),
])
def test_selector_forms_and_ignored_parameters(admin: httpx.Client, query: str) -> None:
    assert admin.get(metric_url("default", ALWAYS, query)).status_code == 200


@pytest.mark.parametrize("raw", ["a=b,", "x in (a b)", "!x=a", "x>a", "a/=b", ",", "x in a"])
def test_bad_selector_is_400(admin: httpx.Client, raw: str) -> None:
    assert_status(admin.get(metric_url("default", ALWAYS, "labelSelector=" + quote(raw, safe=""))),
                  400, "BadRequest", "invalid labelSelector")


def test_selector_without_scaled_object_is_400(admin: httpx.Client) -> None:
    assert_status(admin.get(metric_url("default", ALWAYS, selector("x", "app"))), 400, "BadRequest",
                  "scaledobject.keda.sh/name=<name>")
    assert_status(admin.get(f"{GV}/namespaces/default/{ALWAYS}"), 400, "BadRequest")


def test_unknown_metric_and_scaled_object_are_404(admin: httpx.Client) -> None:
    assert_status(admin.get(metric_url("default", "s9-nope", selector("always"))), 404, "NotFound",
                  'external metric "s9-nope" not found for ScaledObject default/always')
    assert_status(admin.get(metric_url("default", ALWAYS, selector("ghost"))), 404, "NotFound",
                  'ScaledObject "ghost" not found in namespace "default"')


def test_invalid_scaled_object_is_reported(admin: httpx.Client, adapter: AdapterProcess) -> None:
    body = assert_status(admin.get(metric_url("default", ALWAYS, selector("broken"))), 500, "InternalError",
                         "ScaledObject default/broken is not valid: minReplicaCount (5) must be less than")
    assert body["details"]["causes"][0]["message"]
    assert "ScaledObject default/broken" in adapter.log() and "minReplicaCount (5)" in adapter.log()


@pytest.mark.parametrize("path", [f"{GV}/{ALWAYS}", f"{GV}/namespaces/default", f"{GV}/namespaces/default/a/b",
                                  "/apis/other.group/v1", "/nothing"])
def test_other_paths_are_404(admin: httpx.Client, path: str) -> None:
    assert_status(admin.get(path), 404, "NotFound")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_405_with_allow(admin: httpx.Client, method: str) -> None:
    for path in (metric_url("default", ALWAYS, selector("always")), GV, "/openapi/v2", "/readyz"):
        response = admin.request(method, path)
        assert_status(response, 405, "MethodNotAllowed")
        assert response.headers["allow"] == "GET", path


def test_discovery_documents(admin: httpx.Client) -> None:
    resources = admin.get(GV).json()
    assert resources["kind"] == "APIResourceList" and resources["groupVersion"] == "external.metrics.k8s.io/v1beta1"
    assert resources["resources"] == [{"name": "externalmetrics", "singularName": "", "namespaced": True,
                                       "kind": "ExternalMetricValueList", "verbs": ["get"]}]
    group = admin.get("/apis/external.metrics.k8s.io").json()
    assert group["kind"] == "APIGroup" and group["preferredVersion"]["version"] == "v1beta1"
    for path in (GV + "/", "/apis/external.metrics.k8s.io/", "/apis/"):
        response = admin.get(path)
        assert response.status_code == 200 and not response.is_redirect


@pytest.mark.parametrize("accept, content_type, kind", [
    (None, "application/json", "APIGroupList"),
    ("application/json", "application/json", "APIGroupList"),
    ("*/*", "application/json", "APIGroupList"),
    (V2, V2, "APIGroupDiscoveryList"),
    (V2BETA1, V2BETA1, "APIGroupDiscoveryList"),
    (f"{V2},{V2BETA1},application/json", V2, "APIGroupDiscoveryList"),
    (f"application/json;g=apidiscovery.k8s.io;v=v9;as=APIGroupDiscoveryList,{V2BETA1}", V2BETA1,
     "APIGroupDiscoveryList"),
])
def test_aggregated_discovery_negotiation(admin: httpx.Client, accept: str | None, content_type: str,
                                          kind: str) -> None:
    headers = {"Accept": accept} if accept else {}
    response = admin.get("/apis", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["vary"] == "Accept" and response.headers["etag"]
    body = response.json()
    assert body["kind"] == kind
    if kind == "APIGroupDiscoveryList":
        version = body["items"][0]["versions"][0]
        assert body["apiVersion"] == "apidiscovery.k8s.io/" + content_type.split("v=")[1].split(";")[0]
        assert version["freshness"] == "Current" and version["resources"][0]["scope"] == "Namespaced"
    else:
        assert body["groups"][0]["name"] == "external.metrics.k8s.io"


def test_discovery_etag_304(admin: httpx.Client) -> None:
    first = admin.get("/apis", headers={"Accept": V2})
    again = admin.get("/apis", headers={"Accept": V2, "If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    changed = admin.get("/apis", headers={"Accept": V2BETA1, "If-None-Match": first.headers["etag"]})
    assert changed.status_code == 200


def test_discovery_406(admin: httpx.Client) -> None:
    assert_status(admin.get("/apis", headers={"Accept": "application/vnd.kubernetes.protobuf"}), 406,
                  "NotAcceptable")


ERROR_CODES = ["400", "401", "403", "404", "405", "500"]


def test_openapi_v2_is_valid_swagger(admin: httpx.Client) -> None:
    document = admin.get("/openapi/v2", headers={"Accept": "application/json"}).json()
    assert document["swagger"] == "2.0"
    validate(document)
    (operation,) = (path["get"] for path in document["paths"].values())
    assert sorted(operation["responses"]) == ["200", *ERROR_CODES]
    for code in ERROR_CODES:
        assert operation["responses"][code]["schema"] == {
            "$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Status"}


def test_openapi_v3_index_and_group(admin: httpx.Client) -> None:
    index = admin.get("/openapi/v3").json()
    url = index["paths"]["apis/external.metrics.k8s.io/v1beta1"]["serverRelativeURL"]
    document = admin.get(url).json()
    assert document["openapi"].startswith("3.0")
    validate(document)
    (operation,) = (path["get"] for path in document["paths"].values())
    assert sorted(operation["responses"]) == ["200", *ERROR_CODES]
    schema = operation["responses"]["405"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Status"}


@pytest.mark.parametrize("path, verbose_lines", [
    ("/healthz", ["[+]ping ok", "healthz check passed"]),
    ("/livez", ["[+]ping ok", "livez check passed"]),
    ("/readyz", ["[+]ping ok", "[+]catalog-loaded ok", "[+]task-directory-watch ok", "[+]task-metric-poller ok",
                 "[+]task-internal-listener ok", "readyz check passed"]),
])
def test_health_without_certificate(adapter: AdapterProcess, path: str, verbose_lines: list[str]) -> None:
    with adapter.client(None) as anonymous:
        plain = anonymous.get(path)
        assert plain.status_code == 200 and plain.text == "ok"
        assert plain.headers["content-type"] == "text/plain; charset=utf-8"
        assert anonymous.get(path + "?verbose").text.splitlines() == verbose_lines
        assert anonymous.get(path + "/ping").text == "ok"
        assert anonymous.get(path + "/nope").status_code == 404


def test_values_follow_the_directory(admin: httpx.Client, adapter: AdapterProcess, local_dir: Path) -> None:
    extra = local_dir / "extra.yaml"
    extra.write_text(json.dumps({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "late", "namespace": "default"},
        "spec": {"scaleTargetRef": {"name": "w"}, "triggers": [{"type": "cron", "metadata": {
            "timezone": "UTC", "start": "0 0 1 1 *", "end": "59 23 31 12 *", "desiredReplicas": "9"}}]},
    }))
    (local_dir / "zz-broken.yaml").write_text("kind: [unclosed\n")
    try:
        url = metric_url("default", ALWAYS, selector("late"))
        value = _eventually(lambda: admin.get(url))
        assert value.json()["items"][0]["value"] == "9"
        assert admin.get(metric_url("default", ALWAYS, selector("always"))).status_code == 200
        assert "zz-broken.yaml" in adapter.log() and "cannot parse" in adapter.log()
    finally:
        extra.unlink()
        (local_dir / "zz-broken.yaml").unlink()
    gone = _eventually(lambda: admin.get(metric_url("default", ALWAYS, selector("late"))), status=404)
    assert gone.status_code == 404


def _eventually(call: Callable[[], httpx.Response], status: int = 200, timeout: float = 10.0) -> httpx.Response:
    import time

    deadline = time.monotonic() + timeout
    while True:
        response = call()
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_prometheus_metrics(admin: httpx.Client, adapter: AdapterProcess) -> None:
    admin.get(metric_url("default", ALWAYS, selector("always")))
    response = admin.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    value = [line for line in lines if line.startswith("keda_scaler_metrics_value{")
             and 'scaledObject="always"' in line and f'metric="{ALWAYS}"' in line]
    assert value and value[0].endswith(" 1500.0")
    assert any(line.startswith('eventscale_scaler_reads_total{scaler="cron"}') for line in lines)
    assert any(line.startswith("process_resident_memory_bytes") for line in lines)
    with adapter.client(None) as anonymous:
        assert anonymous.get("/metrics").status_code == 401
