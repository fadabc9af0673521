"""prometheus: the value of an instant PromQL query (KEDA's `prometheus` trigger).

Keys as KEDA reads them, all from metadata: `serverAddress`, `query` and `threshold` (required),
`activationThreshold` (0), `queryParameters` and `customHeaders` (`k=v,k=v`), `namespace` (sent
as a query parameter, for Thanos' tenancy proxy), `ignoreNullValues` (true), `unsafeSsl`,
`timeout` (a Go duration or milliseconds; default 3 s); authentication as in `scalers.http_client`.
The metric is `s<index>-prometheus` against `threshold`.

The answer is read as KEDA reads it: no series (or an empty value) is 0 when `ignoreNullValues`,
else an error; more than one series is an error; NaN and ±Inf are 0 when `ignoreNullValues`,
else an error; a matrix result counts as empty; a scalar or string result is an error.

Triggers on one server with the same credentials share one keep-alive client over at most two
connections (`scalers.http_client`), and a poll asks for each distinct query once. KEDA sends one GET
per trigger (with `time=<now>`); here up to `QUERIES_PER_REQUEST` queries that share their
parameters and headers go in ONE request: each is wrapped as
`label_replace(<query>, "__eventscale_query", "<n>", "", "")`, joined with `or`, and the answer's
series are split back by that label, so each query sees exactly the series it would have alone
(the label keeps them apart, so `or` drops none). The requests of a poll go concurrently. A
combined request Prometheus refuses (one query is bad PromQL, or answers a scalar, which
label_replace does not take) is asked again query by query, and a query that fails alone is
from then on always sent alone, so one bad trigger costs its own request and nothing else. A
server that refuses POST (405) is asked one GET per query.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from scalers.base import ClientOptions, ScalerError, Served, ServerScaler, ask_once
from scalers.http_client import (
    TRANSPORT_ERRORS,
    HttpServer,
    HttpServerClient,
    check_url,
    describe_http_error,
    key_values,
    parse_server,
)
from scalers.params import TriggerParams, param, parse_params
from scalers.sources import METADATA_ONLY

QUERIES_PER_REQUEST = 100
QUERY_LABEL = "__eventscale_query"
MAX_SOLO = 10_000  # queries remembered as refusing to be combined


@dataclass(frozen=True, kw_only=True)
class _RawParams:
    server_address: str = param("serverAddress", required=True, sources=METADATA_ONLY)
    query: str = param("query", required=True, sources=METADATA_ONLY)
    threshold: float = param("threshold", required=True, sources=METADATA_ONLY)
    activation_threshold: float = param("activationThreshold", default=0.0, sources=METADATA_ONLY)
    query_parameters: str | None = param("queryParameters", sources=METADATA_ONLY)
    namespace: str | None = param("namespace", sources=METADATA_ONLY)
    custom_headers: str | None = param("customHeaders", sources=METADATA_ONLY)
    ignore_null_values: bool = param("ignoreNullValues", default=True, sources=METADATA_ONLY)
    timeout: str | None = param("timeout", sources=METADATA_ONLY)


@dataclass(frozen=True, kw_only=True, slots=True)
class Query:
    """One request: equal queries of a poll are sent once."""

    url: str  # serverAddress + /api/v1/query
    query: str
    parameters: tuple[tuple[str, str], ...] = ()  # namespace and queryParameters, in that order
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class PrometheusConfig:
    server: HttpServer
    request: Query
    threshold: float
    activation_threshold: float = 0.0
    ignore_null_values: bool = True


def parse_config(params: TriggerParams) -> PrometheusConfig:
    raw = parse_params(_RawParams, params)
    address = check_url("serverAddress", raw.server_address)
    namespace: tuple[tuple[str, str], ...] = (("namespace", raw.namespace),) if raw.namespace else ()
    parameters = namespace + key_values("queryParameters", raw.query_parameters)
    return PrometheusConfig(
        server=parse_server(address, params, raw.timeout),
        request=Query(url=f"{raw.server_address.rstrip('/')}/api/v1/query", query=raw.query,
                      parameters=parameters, headers=key_values("customHeaders", raw.custom_headers)),
        threshold=raw.threshold,
        activation_threshold=raw.activation_threshold,
        ignore_null_values=raw.ignore_null_values,
    )


class QueryAnswerError(ValueError):
    """An answer KEDA would refuse; the message says why."""


def value_of(body: Any, query: str, ignore_null_values: bool) -> float:
    """The value of an instant query's JSON answer, by KEDA's rules."""
    data = body.get("data") if isinstance(body, dict) else None
    data = data if isinstance(data, dict) else {}
    result_type, result = data.get("resultType"), data.get("result") or []
    if result_type in ("scalar", "string") or not isinstance(result, list):
        raise QueryAnswerError(f"prometheus query {query} returned a {result_type or 'non-vector'} result, "
                               "not a vector")
    if len(result) > 1:
        raise QueryAnswerError(f"prometheus query {query} returned multiple elements")
    sample = result[0].get("value") if result and isinstance(result[0], dict) else None
    if not result or not sample:
        if ignore_null_values:
            return 0.0
        what = "the result is empty" if not result else "the value list is empty"
        raise QueryAnswerError(f"prometheus metrics 'prometheus' target may be lost, {what}")
    if not isinstance(sample, list) or len(sample) < 2:
        raise QueryAnswerError(f"prometheus query {query} didn't return enough values")
    try:
        value = float(sample[1])
    except (TypeError, ValueError):
        raise QueryAnswerError(f"prometheus query {query} returned {sample[1]!r}, not a number") from None
    if math.isnan(value) or math.isinf(value):
        if ignore_null_values:
            return 0.0
        raise QueryAnswerError(f"prometheus query returns {value}")
    return value


class PrometheusClient(HttpServerClient[PrometheusConfig]):
    """One keep-alive client per server; each distinct query of a batch asked once, combined per request."""

    def __init__(self, server: HttpServer, options: ClientOptions) -> None:
        super().__init__(server, options)
        self._solo: set[Query] = set()  # failed alone once: never combined again
        self._combine = True  # False once the server refused a POST

    async def read(self, configs: Sequence[PrometheusConfig]) -> list[float | ScalerError]:
        answers: dict[Query, Any] = {}
        for found in await asyncio.gather(*(self._ask_many(chunk) for chunk in self._requests(configs))):
            answers.update(found)
        return [self._value(c, answers[c.request]) for c in configs]

    def _requests(self, configs: Sequence[PrometheusConfig]) -> list[list[Query]]:
        """The distinct queries, grouped into requests: those sharing url, parameters and headers together."""
        groups: dict[tuple[Any, ...], list[Query]] = {}
        for query in dict.fromkeys(c.request for c in configs):
            alone = query in self._solo or not self._combine
            key = (query.url, query.parameters, query.headers, query if alone else None)
            groups.setdefault(key, []).append(query)
        return [queries[i:i + QUERIES_PER_REQUEST] for queries in groups.values()
                for i in range(0, len(queries), QUERIES_PER_REQUEST)]

    async def _ask_many(self, queries: list[Query]) -> dict[Query, Any]:
        if len(queries) == 1:
            return {queries[0]: await self._ask(queries[0])}
        combined = "\nor\n".join(f'label_replace(\n{q.query}\n, "{QUERY_LABEL}", "{i}", "", "")'
                                  for i, q in enumerate(queries))
        response = await self._send(queries[0], combined, post=True)
        if isinstance(response, ScalerError):
            return dict.fromkeys(queries, response)
        if response.status_code in (400, 405, 422):
            self._combine = self._combine and response.status_code != 405
            return await self._one_by_one(queries)
        answer = self._decoded(response, "the combined queries")
        if isinstance(answer, ScalerError):
            return dict.fromkeys(queries, answer)
        return _split(answer, queries)

    async def _one_by_one(self, queries: list[Query]) -> dict[Query, Any]:
        answers = await ask_once(queries, self._ask)
        if len(self._solo) < MAX_SOLO:
            self._solo.update(q for q, answer in answers.items() if not _combinable(answer))
        return answers

    async def _ask(self, request: Query) -> Any:
        """One query's decoded answer, or a ScalerError (never raised: a bad query fails only its triggers)."""
        response = await self._send(request, request.query, post=False)
        return response if isinstance(response, ScalerError) else self._decoded(response, f"query {request.query}")

    async def _send(self, request: Query, query: str, *, post: bool) -> httpx.Response | ScalerError:
        params = {**dict(request.parameters), "query": query, **self._server.auth.query()}
        try:
            if post:
                headers = {**dict(request.headers), "Content-Type": "application/x-www-form-urlencoded"}
                return await self._client().post(request.url, content=form(params), headers=headers)
            return await self._client().get(request.url, params=params, headers=dict(request.headers))
        except TRANSPORT_ERRORS as exc:
            return ScalerError(f"prometheus {self._server.origin}: {describe_http_error(exc)}")

    def _decoded(self, response: httpx.Response, what: str) -> Any:
        if not 200 <= response.status_code <= 299:
            return ScalerError(f"prometheus {self._server.origin}: prometheus query api returned error. "
                               f"status: {response.status_code}{_reason(response)}")
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return ScalerError(f"prometheus {self._server.origin}: the answer to {what} is not JSON")

    def _value(self, config: PrometheusConfig, answer: Any) -> float | ScalerError:
        if isinstance(answer, ScalerError):
            return answer
        try:
            return value_of(answer, config.request.query, config.ignore_null_values)
        except QueryAnswerError as exc:
            return ScalerError(f"prometheus {self._server.origin}: {exc}")


_UNSAFE = re.compile(rb"[^A-Za-z0-9_.~-]")


def form(params: dict[str, str]) -> bytes:
    """`params` form-encoded; urllib's quote walks every byte in Python, far slower on 10 kB queries."""
    def quoted(text: str) -> bytes:
        return _UNSAFE.sub(lambda m: b"%%%02X" % m.group()[0], text.encode())

    return b"&".join(quoted(k) + b"=" + quoted(v) for k, v in params.items())


def _combinable(answer: Any) -> bool:
    """A query that answered a vector alone can go in a combined request (label_replace takes vectors)."""
    if isinstance(answer, ScalerError) or not isinstance(answer, dict):
        return False
    return (answer.get("data") or {}).get("resultType", "vector") in ("vector", "matrix")


def _split(answer: Any, queries: list[Query]) -> dict[Query, Any]:
    """A combined answer as one vector answer per query, series told apart by QUERY_LABEL."""
    series: list[list[Any]] = [[] for _ in queries]
    result = ((answer.get("data") or {}).get("result") if isinstance(answer, dict) else None) or []
    for item in result:
        index = (item.get("metric") or {}).get(QUERY_LABEL) if isinstance(item, dict) else None
        if isinstance(index, str) and index.isdigit() and int(index) < len(queries):
            series[int(index)].append(item)
    return {q: {"data": {"resultType": "vector", "result": found}} for q, found in zip(queries, series, strict=True)}


def _reason(response: httpx.Response) -> str:
    """Prometheus' own `error` text for a refused query (bad PromQL says where)."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return f": {str(error)[:300]}" if error else ""


class PrometheusScaler(ServerScaler[PrometheusConfig, HttpServer], parse=parse_config, client=PrometheusClient):
    types = ("prometheus",)

    def served(self, config: PrometheusConfig) -> Served[HttpServer]:
        return Served(config.server, "prometheus", config.threshold, config.activation_threshold)
