"""metrics-api: a number read from an HTTP endpoint's JSON, YAML, XML or Prometheus text (KEDA's `metrics-api`).

Keys as KEDA reads them, from metadata: `url` and `valueLocation` (required), `targetValue`
(required, not 0), `activationTargetValue` (0), `format` (json | xml | yaml | prometheus; json),
`unsafeSsl`, `timeout` (a Go duration or milliseconds; default 3 s),
`aggregateFromKubeServiceEndpoints` with `aggregationType` (average | sum | max | min; average);
authentication (`authMode` apiKey, basic, bearer, tls, custom) as in `scalers.http_client`. The metric is
`s<index>-metric-api-<valueLocation>` against `targetValue`.

`valueLocation` is GJSON for json (gjson-py); a dotted path for yaml and xml (list items by
index); a metric selector such as `queue_size{queue="jobs"}` for prometheus (only `=` matchers:
KEDA compares every matcher as equality, so a `!=` would silently mean `=`; we refuse it). A
number is taken as is; a string is read as a Kubernetes quantity ("1k", "500m"); anything else
is an error. With `aggregateFromKubeServiceEndpoints` the URL's host names a Service
(`<service>.<namespace>...`): every ready endpoint of it is asked (addresses from the catalog's
view of EndpointSlices, no API call) and the values aggregated; failed endpoints are left out, all
failing is an error.

One client per server and credentials; a poll sends ONE GET per distinct URL, whatever the number
of triggers reading it, and each body is decoded once per format. Deviations: KEDA's xml format
cannot work (Go's XML decoder does not fill a map), ours reads element paths; KEDA drops the query
string of endpoint URLs when aggregating, we keep it.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import gjson
import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from scalers.base import ScalerError, Served, ServerScaler, ask_once
from scalers.cluster import ClusterView
from scalers.http_client import (
    TRANSPORT_ERRORS,
    HttpServer,
    HttpServerClient,
    check_url,
    describe_http_error,
    parse_server,
)
from scalers.params import ParameterError, TriggerParams, param, parse_params
from scalers.quantity import QuantityError, quantity_value
from scalers.sources import METADATA_ONLY

Format = Literal["json", "xml", "yaml", "prometheus"]
Aggregation = Literal["average", "sum", "max", "min"]
MAX_BODY = 8 * 1024 * 1024
WRONG_VALUE = "valueLocation {location!r} must point to a numeric value or a string parseable as a Quantity, got {kind}"


@dataclass(frozen=True, kw_only=True)
class _RawParams:
    target_value: float = param("targetValue", default=0.0, sources=METADATA_ONLY)
    activation_target_value: float = param("activationTargetValue", default=0.0, sources=METADATA_ONLY)
    url: str = param("url", required=True, sources=METADATA_ONLY)
    format: Literal["prometheus", "json", "xml", "yaml"] = param("format", default="json", sources=METADATA_ONLY)
    value_location: str = param("valueLocation", required=True, sources=METADATA_ONLY)
    aggregate: bool = param("aggregateFromKubeServiceEndpoints", default=False, sources=METADATA_ONLY)
    aggregation: Literal["average", "sum", "max", "min"] = param("aggregationType", default="average",
                                                                 sources=METADATA_ONLY)
    timeout: str | None = param("timeout", sources=METADATA_ONLY)


@dataclass(frozen=True, kw_only=True, slots=True)
class ServiceTarget:
    """`aggregateFromKubeServiceEndpoints`: the Service named by the URL, and how to call its endpoints."""

    namespace: str
    service: str
    scheme: str
    port: int
    path: str  # path and query of the URL, kept for every endpoint


@dataclass(frozen=True, kw_only=True, slots=True)
class MetricsApiConfig:
    server: HttpServer
    url: str
    format: Format = "json"
    value_location: str
    target_value: float
    activation_target_value: float = 0.0
    service: ServiceTarget | None = None
    aggregation: Aggregation = "average"
    cluster: ClusterView | None = field(default=None, repr=False)


def parse_config(params: TriggerParams) -> MetricsApiConfig:
    raw = parse_params(_RawParams, params)
    if raw.target_value == 0:
        raise ParameterError("no targetValue given in metadata")
    url = check_url("url", raw.url)
    if raw.format == "prometheus":
        metric_selector(raw.value_location)
    service = None
    if raw.aggregate:
        if params.cluster is None:
            raise ParameterError("aggregateFromKubeServiceEndpoints needs the cluster's endpoints, which this "
                                 "adapter does not watch")
        service = _service_target(url)
    return MetricsApiConfig(
        server=parse_server(url, params, raw.timeout),
        url=raw.url, format=raw.format, value_location=raw.value_location, target_value=raw.target_value,
        activation_target_value=raw.activation_target_value, service=service, aggregation=raw.aggregation,
        cluster=params.cluster if raw.aggregate else None,
    )


def _service_target(url: httpx.URL) -> ServiceTarget:
    labels = url.host.split(".")
    if len(labels) < 2:
        raise ParameterError(f"invalid hostname {url.host} : expected at least 2 elements, first being service "
                             "name and second being the namespace")
    path = url.raw_path.decode() or "/"
    return ServiceTarget(namespace=labels[1], service=labels[0], scheme=url.scheme,
                         port=url.port or (443 if url.scheme == "https" else 80), path=path)


# -- values from bodies ---------------------------------------------------------------------------


class BodyValueError(ValueError):
    """The body holds no usable value at valueLocation; the message says why."""


def value_from_body(body: bytes, location: str, form: Format) -> float:
    """KEDA's GetValueFromResponse."""
    if form == "prometheus":
        return _from_prometheus(body.decode(errors="replace"), location)
    if form == "json":
        try:
            document = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BodyValueError("the body is not JSON") from None
        return _from_json(document, location)
    if form == "yaml":
        try:
            document = yaml.safe_load(body)
        except yaml.YAMLError:
            raise BodyValueError("the body is not YAML") from None
        return _scalar(_by_path(document, location), location)
    return _scalar(_from_xml(body, location), location)


def _from_json(document: Any, location: str) -> float:
    try:
        found = gjson.get(document, location)
    except gjson.GJSONError:
        found = None
    return _scalar(found, location, kinds=_GJSON_KINDS)


_GJSON_KINDS: dict[type, str] = {type(None): "Null", bool: "Boolean", dict: "JSON", list: "JSON"}


def _scalar(found: Any, location: str, kinds: dict[type, str] | None = None) -> float:
    if isinstance(found, (int, float)) and not isinstance(found, bool):
        return float(found)
    if isinstance(found, str):
        try:
            return quantity_value(found)
        except QuantityError:
            raise BodyValueError(f"valueLocation {location!r} points to a string that is not parseable as a "
                              "Quantity") from None
    kind = (kinds or {}).get(type(found), type(found).__name__ if found is not None else "nothing")
    raise BodyValueError(WRONG_VALUE.format(location=location, kind=kind))


def _by_path(document: Any, location: str) -> Any:
    """KEDA's GetValueByPath: dotted keys, list items by their index."""
    current = document
    for key in location.split("."):
        if isinstance(current, dict):
            children = {str(k): v for k, v in current.items()}
        elif isinstance(current, list):
            children = {str(i): v for i, v in enumerate(current)}
        else:
            raise BodyValueError(f"path '{location}' does not lead to a value")
        if key not in children:
            raise BodyValueError(f"key '{key}' not found in path '{location}'")
        current = children[key]
    return current


def _from_xml(body: bytes, location: str) -> str:
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise BodyValueError("the body is not XML") from None
    keys = location.split(".")
    if keys and keys[0] == root.tag and len(keys) > 1:
        keys = keys[1:]
    current = [root]
    for key in keys:
        if key.isdigit():
            if int(key) >= len(current):
                raise BodyValueError(f"key '{key}' not found in path '{location}'")
            current = [current[int(key)]]
        else:
            current = [child for child in current[0] if child.tag == key]
            if not current:
                raise BodyValueError(f"key '{key}' not found in path '{location}'")
    return (current[0].text or "").strip()


_SELECTOR = re.compile(r"\s*([A-Za-z_:][A-Za-z0-9_:]*)?\s*(?:\{(.*)\})?\s*", re.DOTALL)
_MATCHER = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')\s*(,|$)")


def metric_selector(location: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """`name{label="value",...}` as (name, label pairs); `ParameterError` when it is not one."""
    match = _SELECTOR.fullmatch(location)
    if match is None or not (match.group(1) or match.group(2)):
        raise ParameterError(f'parameter "valueLocation" value "{location}" is not a metric selector')
    name, body = match.group(1) or "", (match.group(2) or "").strip()
    labels: list[tuple[str, str]] = []
    position = 0
    while position < len(body):
        found = _MATCHER.match(body, position)
        if found is None:
            raise ParameterError(f'parameter "valueLocation" value "{location}" is not a metric selector')
        label, operator, quoted = found.group(1), found.group(2), found.group(3)
        if operator != "=":
            raise ParameterError(f'parameter "valueLocation" value "{location}": only "=" label matchers are '
                                 f'supported, not "{operator}"')
        value = quoted[1:-1].encode().decode("unicode_escape")
        if label == "__name__":
            name = value
        else:
            labels.append((label, value))
        position = found.end()
    if not name:
        raise ParameterError(f'parameter "valueLocation" value "{location}" names no metric')
    return name, tuple(labels)


def _from_prometheus(text: str, location: str) -> float:
    name, labels = metric_selector(location)
    try:
        families = list(text_string_to_metric_families(text.replace("\r\n", "\n")))
    except (ValueError, IndexError) as exc:
        raise BodyValueError(f"prometheus format parsing error: {exc}") from None
    found = False
    for family in families:
        # prometheus_client names a counter's samples `<family>_total` even when the text did not
        counted_as = f"{name}_total" if family.type == "counter" and family.name == name else name
        for sample in family.samples:
            if sample.name not in (name, counted_as):
                continue
            found = True
            if all(sample.labels.get(label) == value for label, value in labels):
                return float(sample.value)
    raise BodyValueError(f"value {location} not found" if found else f"metric '{name}' not found")


def aggregate(values: Sequence[float], aggregation: Aggregation) -> float:
    if aggregation == "max":
        return max(values)
    if aggregation == "min":
        return min(values)
    total = sum(values)
    return total / len(values) if aggregation == "average" else total


# -- the client ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fetched:
    """One GET's outcome, shared by every trigger that reads the URL."""

    body: bytes = b""
    error: str | None = None


class MetricsApiClient(HttpServerClient[MetricsApiConfig]):
    """One keep-alive client per server; one GET per distinct URL per read."""

    async def read(self, configs: Sequence[MetricsApiConfig]) -> list[float | ScalerError]:
        wanted = {c: self._urls(c) for c in configs}
        urls = (u for found in wanted.values() if not isinstance(found, ScalerError) for u in found)
        values = _ValueCache(await ask_once(urls, self._get))
        return [self._answer(c, wanted[c], values) for c in configs]

    def _urls(self, config: MetricsApiConfig) -> list[str] | ScalerError:
        if config.service is None:
            return [config.url]
        target, view = config.service, config.cluster
        assert view is not None
        endpoints = view.service_endpoints(target.namespace, target.service)
        if not endpoints:
            return ScalerError(f"metrics-api {config.url}: no endpoints URLs were given for the service name")
        urls = []
        for endpoint in endpoints:
            host = f"[{endpoint.address}]" if ":" in endpoint.address else endpoint.address
            port = f":{target.port}" if target.port in endpoint.ports else ""
            urls.append(f"{target.scheme}://{host}{port}{target.path}")
        return urls

    async def _get(self, url: str) -> Fetched:
        try:
            response = await self._client().get(httpx.URL(url).copy_merge_params(self._server.auth.query()))
        except TRANSPORT_ERRORS as exc:
            return Fetched(error=describe_http_error(exc))
        if response.status_code != 200:
            return Fetched(error=f"{response.url.path}: api returned {response.status_code}")
        if len(response.content) > MAX_BODY:
            return Fetched(error=f"{response.url.path}: the answer is larger than {MAX_BODY} bytes")
        return Fetched(body=response.content)

    def _answer(self, config: MetricsApiConfig, urls: list[str] | ScalerError,
                values: _ValueCache) -> float | ScalerError:
        if isinstance(urls, ScalerError):
            return urls
        found = [values.value(url, config) for url in urls]
        if config.service is None:
            single = found[0]
            return single if isinstance(single, float) else ScalerError(f"metrics-api {config.url}: {single}")
        good = [v for v in found if isinstance(v, float)]
        if not good:
            return ScalerError(f"metrics-api {config.url}: could not get any metric successfully from the "
                               f"{len(urls)} provided endpoints")
        return aggregate(good, config.aggregation)


class _ValueCache:
    """Values by (url, format, location) for one read, each body decoded once per format."""

    def __init__(self, fetched: dict[str, Fetched]) -> None:
        self._fetched = fetched
        self._values: dict[tuple[str, str, str], float | str] = {}

    def value(self, url: str, config: MetricsApiConfig) -> float | str:
        key = (url, config.format, config.value_location)
        if key not in self._values:
            self._values[key] = self._compute(self._fetched[url], config)
        return self._values[key]

    @staticmethod
    def _compute(fetched: Fetched, config: MetricsApiConfig) -> float | str:
        if fetched.error is not None:
            return fetched.error
        try:
            return value_from_body(fetched.body, config.value_location, config.format)
        except (BodyValueError, ParameterError) as exc:
            return str(exc)


class MetricsApiScaler(ServerScaler[MetricsApiConfig, HttpServer], parse=parse_config, client=MetricsApiClient):
    types = ("metrics-api",)

    def served(self, config: MetricsApiConfig) -> Served[HttpServer]:
        return Served(config.server, f"metric-api-{config.value_location}",
                      config.target_value, config.activation_target_value)

