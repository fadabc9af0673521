"""prometheus: the value of an instant PromQL query (KEDA's `prometheus` trigger).

Keys as KEDA reads them, all from metadata: `serverAddress`, `query` and `threshold` (required),
`activationThreshold` (0), `queryParameters` and `customHeaders` (`k=v,k=v`), `namespace` (sent
as a query parameter, for Thanos' tenancy proxy), `ignoreNullValues` (true), `unsafeSsl`,
`timeout` (a Go duration or milliseconds; default 3 s); authentication as in `scalers.http`.
The metric is `s<index>-prometheus` against `threshold`.

The answer is read as KEDA reads it: no series (or an empty value) is 0 when `ignoreNullValues`,
else an error; more than one series is an error; NaN and ±Inf are 0 when `ignoreNullValues`,
else an error; a matrix result counts as empty; a scalar or string result is an error.

Triggers on one server with the same credentials share one keep-alive client: a poll sends each
distinct query once, all concurrently, over at most two connections (`scalers.http`). KEDA sends
`time=<now>`; we leave it out, which Prometheus reads as the same instant, so identical queries
of a poll are one request.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from scalers.base import (
    METADATA_ONLY,
    MetricSpec,
    Scaler,
    ScalerClient,
    ScalerError,
    TriggerParams,
    param,
    parse_params,
)
from scalers.http import (
    DEFAULT_TIMEOUT,
    TRANSPORT_ERRORS,
    HttpAuth,
    RequestHook,
    check_url,
    describe_http_error,
    key_values,
    open_client,
    origin,
    parse_auth,
    parse_timeout,
)


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


@dataclass(frozen=True, kw_only=True)
class PrometheusServer:
    """The server key: where, how to log in, how long to wait."""

    origin: str
    auth: HttpAuth
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True, kw_only=True)
class Query:
    """One request: equal queries of a poll are sent once."""

    url: str  # serverAddress + /api/v1/query
    query: str
    parameters: tuple[tuple[str, str], ...] = ()  # namespace and queryParameters, in that order
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class PrometheusConfig:
    server: PrometheusServer
    request: Query
    threshold: float
    activation_threshold: float = 0.0
    ignore_null_values: bool = True


def parse_config(params: TriggerParams) -> PrometheusConfig:
    raw = parse_params(_RawParams, params)
    address = check_url("serverAddress", raw.server_address)
    namespace: tuple[tuple[str, str], ...] = (("namespace", raw.namespace),) if raw.namespace else ()
    parameters = namespace + key_values("queryParameters", raw.query_parameters)
    timeout = parse_timeout("timeout", raw.timeout)
    return PrometheusConfig(
        server=PrometheusServer(origin=origin(address), auth=parse_auth(params),
                                timeout=timeout if timeout else DEFAULT_TIMEOUT),
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


class PrometheusClient(ScalerClient[PrometheusConfig]):
    """One keep-alive client per server; each distinct query of a batch sent once, concurrently."""

    def __init__(self, server: PrometheusServer, hooks: Sequence[RequestHook] = ()) -> None:
        self._server = server
        self._hooks = list(hooks)
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = open_client(self._server.auth, self._server.timeout, self._hooks)
        return self._http

    async def read(self, configs: Sequence[PrometheusConfig]) -> list[float | ScalerError]:
        queries = list(dict.fromkeys(c.request for c in configs))
        answers = dict(zip(queries, await asyncio.gather(*(self._ask(q) for q in queries)), strict=True))
        return [self._value(c, answers[c.request]) for c in configs]

    async def _ask(self, request: Query) -> Any:
        """The decoded answer, or a ScalerError (never raised: one bad query fails only its triggers)."""
        params = {**dict(request.parameters), "query": request.query}
        params.update(self._server.auth.query())
        try:
            response = await self._client().get(request.url, params=params, headers=dict(request.headers))
        except TRANSPORT_ERRORS as exc:
            return ScalerError(f"prometheus {self._server.origin}: {describe_http_error(exc)}")
        if not 200 <= response.status_code <= 299:
            return ScalerError(f"prometheus {self._server.origin}: prometheus query api returned error. "
                               f"status: {response.status_code}{_reason(response)}")
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return ScalerError(f"prometheus {self._server.origin}: the answer to query {request.query} is not JSON")

    def _value(self, config: PrometheusConfig, answer: Any) -> float | ScalerError:
        if isinstance(answer, ScalerError):
            return answer
        try:
            return value_of(answer, config.request.query, config.ignore_null_values)
        except QueryAnswerError as exc:
            return ScalerError(f"prometheus {self._server.origin}: {exc}")

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def _reason(response: httpx.Response) -> str:
    """Prometheus' own `error` text for a refused query (bad PromQL says where)."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return f": {str(error)[:300]}" if error else ""


class PrometheusScaler(Scaler[PrometheusConfig]):
    types = ("prometheus",)

    def __init__(self, request_hooks: Sequence[RequestHook] = ()) -> None:
        self._hooks = list(request_hooks)

    def parse(self, trigger_type: str, params: TriggerParams) -> PrometheusConfig:
        return parse_config(params)

    def metric(self, config: PrometheusConfig) -> MetricSpec:
        return MetricSpec(name="prometheus", target=config.threshold, activation=config.activation_threshold)

    def server_key(self, config: PrometheusConfig) -> PrometheusServer:
        return config.server

    def open_client(self, config: PrometheusConfig) -> PrometheusClient:
        return PrometheusClient(config.server, self._hooks)
