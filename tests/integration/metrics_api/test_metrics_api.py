"""The metrics-api scaler against real HTTP(S) servers in the test process.

Every format and auth mode is read from a real socket; the servers record what they were sent,
so tests check both the value and the request (credentials, one GET per URL per poll).
Aggregation over a Service's endpoints uses the catalog's own view of EndpointSlices, with the
endpoints listening on other loopback addresses (127.0.0.2, 127.0.0.3).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from adapter.catalog.cluster_objects import ClusterObjects
from scalers.base import ReadResult, ScalerClient, ScalerError
from scalers.metrics_api import MetricsApiConfig, MetricsApiScaler
from scalers.params import TriggerParams, mask, secret_values
from tests.harness.http_api_server import HttpApiServer
from tests.harness.ports import free_port
from tests.harness.rabbitmq_server import tcp_connections_to
from tests.harness.tls_material import TLSMaterial

Opened = list[ScalerClient[MetricsApiConfig]]  # the clients a test opened, closed after it

SCALER = MetricsApiScaler()
JSON = '{"components":[{"id": "82328e93e", "tasks": 32, "str": "64", "k":"1k","wrong":"NaN"}],"count":2.43}'
YAML = "{components: [{id: 82328e93e, tasks: 32, str: '64', k: 1k, wrong: NaN}], count: 2.43}"
XML = "<stats><components><tasks>32</tasks><k>1k</k></components><count>2.43</count></stats>"
PROMETHEUS = """# HELP backend_queue_size Total number of items
# TYPE backend_queue_size counter
backend_queue_size{queueName="zero"} 0
backend_queue_size{queueName="one"} 1
backend_queue_size{queueName="two", instance="random"} 2
backend_queue_size{queueName="two", instance="zero"} 20
# HELP random_metric Random metric generate to include noise
# TYPE random_metric gauge
random_metric 10"""  # no final newline, as in KEDA's test (keda#6559)


@pytest.fixture(scope="module")
def api() -> Iterator[HttpApiServer]:
    with HttpApiServer() as server:
        server.answer("/json", JSON)
        server.answer("/yaml", YAML, content_type="application/yaml")
        server.answer("/xml", XML, content_type="application/xml")
        server.answer("/prometheus", PROMETHEUS, content_type="text/plain")
        server.answer("/broken", "oops", status=500, content_type="text/plain")
        yield server


@pytest.fixture(scope="module")
def tls_api(tls_material: TLSMaterial) -> Iterator[HttpApiServer]:
    with HttpApiServer(host="localhost", tls=tls_material) as server:
        server.answer("/json", JSON)
        yield server


@pytest.fixture(autouse=True)
def clean(api: HttpApiServer) -> None:
    api.forget()


@pytest.fixture
async def opened() -> AsyncIterator[Opened]:
    clients: Opened = []
    yield clients
    for client in clients:
        await client.aclose()


def config(url: str, location: str, auth: dict[str, str] | None = None, cluster: Any = None,
           **metadata: str) -> MetricsApiConfig:
    return SCALER.parse("metrics-api", TriggerParams(
        metadata={"url": url, "valueLocation": location, "targetValue": "5", **metadata}, auth=auth or {},
        cluster=cluster))


async def read(opened: Opened, *configs: MetricsApiConfig) -> list[ReadResult]:
    client = SCALER.open_client(configs[0])
    opened.append(client)
    return list(await client.read(list(configs)))


@pytest.mark.parametrize("path, form, location, expected", [
    ("/json", "json", "count", 2.43),
    ("/json", "json", "components.0.tasks", 32.0),
    ("/json", "json", "components.0.str", 64.0),
    ("/json", "json", "components.0.k", 1000.0),
    ("/json", "json", "components.#", 1.0),
    ("/json", "json", "components.0.wrong", "not parseable as a Quantity"),
    ("/json", "json", "components.0.missing", "got Null"),
    ("/json", "json", "components", "got JSON"),
    ("/yaml", "yaml", "count", 2.43),
    ("/yaml", "yaml", "components.0.tasks", 32.0),
    ("/yaml", "yaml", "components.0.str", 64.0),
    ("/yaml", "yaml", "components.0.wrong", "not parseable as a Quantity"),
    ("/xml", "xml", "components.tasks", 32.0),
    ("/xml", "xml", "stats.count", 2.43),
    ("/xml", "xml", "components.k", 1000.0),
    ("/prometheus", "prometheus", "random_metric", 10.0),
    ("/prometheus", "prometheus", 'backend_queue_size{queueName="one"}', 1.0),
    ("/prometheus", "prometheus", 'backend_queue_size{queueName="two"}', 2.0),
    ("/prometheus", "prometheus", 'backend_queue_size{queueName="two", instance="zero"}', 20.0),
    ("/prometheus", "prometheus", 'backend_queue_size{queueName="three"}', "not found"),
    ("/broken", "json", "count", "/broken: api returned 500"),
])
async def test_every_format(api: HttpApiServer, opened: Opened, path: str, form: str,
                            location: str, expected: float | str) -> None:
    (found,) = await read(opened, config(api.url + path, location, format=form))
    if isinstance(expected, float):
        assert found == expected
    else:
        assert isinstance(found, ScalerError) and expected in str(found) and api.url + path in str(found)


async def test_one_get_per_distinct_url_per_poll(api: HttpApiServer, opened: Opened) -> None:
    configs = [config(api.url + "/json", location) for location in ("count", "components.0.tasks")] * 50
    configs += [config(api.url + "/yaml", "count", format="yaml")] * 20
    before = tcp_connections_to(api.port)
    assert await read(opened, *configs) == [2.43, 32.0] * 50 + [2.43] * 20
    assert sorted(r.path for r in api.seen) == ["/json", "/yaml"]
    assert tcp_connections_to(api.port) - before <= 2


@pytest.mark.parametrize("mode, auth, extra, header, value", [
    ("basic", {"username": "user", "password": "Pa55-s3cret"}, {}, "Authorization",
     "Basic " + base64.b64encode(b"user:Pa55-s3cret").decode()),
    ("bearer", {"token": "T0ken-s3cret"}, {}, "Authorization", "Bearer T0ken-s3cret"),
    ("bearer", {"bearerToken": "T0ken-s3cret"}, {}, "Authorization", "Bearer T0ken-s3cret"),
    ("apiKey", {"apiKey": "K3y-s3cret"}, {}, "X-API-KEY", "K3y-s3cret"),
    ("apiKey", {"apiKey": "K3y-s3cret", "keyParamName": "X-Custom"}, {}, "X-Custom", "K3y-s3cret"),
    ("custom", {"customAuthHeader": "X-Auth", "customAuthValue": "V4lue-s3cret"}, {}, "X-Auth", "V4lue-s3cret"),
])
async def test_credentials_reach_the_server_and_a_refusal_names_no_secret(
        api: HttpApiServer, opened: Opened, mode: str, auth: dict[str, str], extra: dict[str, str],
        header: str, value: str) -> None:
    api.require_headers({header: value})
    good = config(api.url + "/json", "count", auth=auth, authMode=mode, **extra)
    assert await read(opened, good) == [2.43]
    wrong_auth = {k: (v + "-wrong" if "s3cret" in v else v) for k, v in auth.items()}
    wrong = config(api.url + "/json", "count", auth=wrong_auth, authMode=mode)
    (refused,) = await read(opened, wrong)
    assert isinstance(refused, ScalerError) and "api returned 401" in str(refused)
    shown = mask(str(refused), secret_values(wrong))
    assert not any(secret in shown for secret in wrong_auth.values() if "s3cret" in secret)


async def test_an_api_key_in_the_query(api: HttpApiServer, opened: Opened) -> None:
    found = await read(opened, config(api.url + "/json?x=1", "count", auth={"apiKey": "K3y", "method": "query"},
                                      authMode="apiKey"))
    assert found == [2.43]
    assert api.seen[-1].query == {"x": "1", "api_key": "K3y"}


async def test_https_with_the_ca_a_client_certificate_or_unsafe_ssl(
        tls_api: HttpApiServer, tls_material: TLSMaterial, opened: Opened) -> None:
    url = tls_api.url + "/json"
    assert await read(opened, config(url, "count", auth={"ca": tls_material.ca_pem})) == [2.43]
    assert await read(opened, config(url, "count", unsafeSsl="true")) == [2.43]
    with_cert = config(url, "count", authMode="tls", auth={"ca": tls_material.ca_pem,
                                                          "cert": tls_material.client_cert_pem,
                                                          "key": tls_material.client_key_pem})
    assert await read(opened, with_cert) == [2.43]
    (untrusted,) = await read(opened, config(url, "count"))
    assert isinstance(untrusted, ScalerError) and "CERTIFICATE_VERIFY_FAILED" in str(untrusted)


async def test_an_unreachable_url_fails_only_its_trigger(api: HttpApiServer, opened: Opened) -> None:
    found = await read(opened, config("http://127.0.0.1:1/x", "count"))
    assert isinstance(found[0], ScalerError) and "ConnectError" in str(found[0])


# -- aggregateFromKubeServiceEndpoints -------------------------------------------------------------


def endpoint_slice(name: str, addresses: list[tuple[str, bool]], port: int) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "shop", "labels": {"kubernetes.io/service-name": "orders"}},
            "endpoints": [{"addresses": [a], "conditions": {"ready": ready}} for a, ready in addresses],
            "ports": [{"port": port}]}


@pytest.mark.parametrize("aggregation, expected", [("average", 15.0), ("sum", 30.0), ("max", 20.0), ("min", 10.0)])
async def test_aggregation_over_the_ready_endpoints_of_a_service(opened: Opened, aggregation: str,
                                                                 expected: float) -> None:
    port = free_port()
    with HttpApiServer("127.0.0.2", port) as first, HttpApiServer("127.0.0.3", port) as second:
        first.answer("/metrics", '{"queue": 10}')
        second.answer("/metrics", '{"queue": 20}')
        cluster = ClusterObjects()
        cluster.replace_all([endpoint_slice("a", [("127.0.0.2", True), ("127.0.0.4", False)], port),
                             endpoint_slice("b", [("127.0.0.3", True), ("127.0.0.2", True)], port)])
        found = await read(opened, config(f"http://orders.shop.svc:{port}/metrics?from=keda", "queue",
                                          cluster=cluster, aggregateFromKubeServiceEndpoints="true",
                                          aggregationType=aggregation))
        assert found == [expected]
        assert [r.query for r in first.seen + second.seen] == [{"from": "keda"}] * 2


async def test_aggregation_leaves_failed_endpoints_out_and_fails_when_all_do(opened: Opened) -> None:
    port = free_port()
    with HttpApiServer("127.0.0.2", port) as good:
        good.answer("/m", '{"queue": 8}')
        cluster = ClusterObjects()
        cluster.replace_all([endpoint_slice("a", [("127.0.0.2", True), ("127.0.0.3", True)], port)])
        url = f"http://orders.shop:{port}/m"
        assert await read(opened, config(url, "queue", cluster=cluster,
                                         aggregateFromKubeServiceEndpoints="true")) == [8.0]
        cluster.replace_all([endpoint_slice("a", [("127.0.0.3", True)], port)])
        (failed,) = await read(opened, config(url, "queue", cluster=cluster, aggregateFromKubeServiceEndpoints="true"))
        assert isinstance(failed, ScalerError) and "could not get any metric successfully from the 1" in str(failed)
        cluster.replace_all([])
        (none,) = await read(opened, config(url, "queue", cluster=cluster, aggregateFromKubeServiceEndpoints="true"))
        assert isinstance(none, ScalerError) and "no endpoints URLs were given" in str(none)
