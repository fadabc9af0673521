"""The FastAPI part of the API: discovery, OpenAPI, health and /metrics. Everything but metric values.

These answers are static bytes (and the interceptors' counts are taken in, see
`interceptor_counts`); FastAPI gives us routing, method handling and a single place
to turn every HTTP error into a metav1.Status. The metric GET, the hot path, is served before
FastAPI by `app.AdapterApp`.
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.exceptions import HTTPException

from adapter.api import discovery, metrics_endpoint, openapi
from adapter.api.health import Health, run_checks, run_one
from adapter.api.interceptor_counts import PATH as COUNTS_PATH
from adapter.api.interceptor_counts import CountsReceiver
from adapter.kube.wire import EXTERNAL_METRICS_GROUP, EXTERNAL_METRICS_GROUP_VERSION, ApiError, status_body

JSON = "application/json"


def _json(body: bytes, headers: dict[str, str] | None = None, status_code: int = 200) -> Response:
    return Response(body, status_code=status_code, media_type=JSON, headers=headers)


def build_routes(health: Health, exposition: metrics_endpoint.Exposition | None = None,
                 counts: CountsReceiver | None = None) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, redirect_slashes=False)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Response:
        message = {404: "the server could not find the requested resource",
                   405: "the server does not allow this method on the requested resource"}
        body = status_body(exc.status_code, message.get(exc.status_code, str(exc.detail)))
        return _json(body, dict(exc.headers or {}), status_code=exc.status_code)  # keeps a 405's Allow

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> Response:
        return _json(exc.body(), exc.headers, status_code=exc.code)

    @app.get("/apis")
    async def apis(request: Request) -> Response:
        document = discovery.negotiate_apis(request.headers.get("accept"))
        if document is None:
            raise ApiError(406, "only application/json and aggregated discovery (apidiscovery.k8s.io v2, "
                                "v2beta1) are served")
        headers = {"ETag": document.etag, "Vary": "Accept"}
        if request.headers.get("if-none-match") == document.etag:
            return Response(status_code=304, headers=headers)
        return Response(document.body, media_type=document.content_type, headers=headers)

    @app.get(f"/apis/{EXTERNAL_METRICS_GROUP}")
    async def api_group() -> Response:
        return _json(discovery.API_GROUP)

    @app.get(f"/apis/{EXTERNAL_METRICS_GROUP_VERSION}")
    async def api_resources() -> Response:
        return _json(discovery.API_RESOURCE_LIST)

    @app.get("/openapi/v2")
    async def openapi_v2() -> Response:
        return _json(openapi.V2, {"ETag": openapi.V2_ETAG})

    @app.get("/openapi/v3")
    async def openapi_v3_index() -> Response:
        return _json(openapi.V3_INDEX)

    @app.get(openapi.V3_GROUP_PATH)
    async def openapi_v3_group() -> Response:
        return _json(openapi.V3_GROUP, {"ETag": f'"{openapi.V3_HASH}"'})

    if exposition is not None:
        @app.get("/metrics")
        async def metrics() -> Response:
            return Response(exposition.render(), media_type=metrics_endpoint.CONTENT_TYPE)

    if counts is not None:
        @app.post(COUNTS_PATH)
        async def interceptor_counts(request: Request) -> Response:
            try:
                changed = counts.receive(await request.body())
            except ValueError as exc:  # json.JSONDecodeError is one
                raise ApiError(400, f"invalid interceptor counts: {exc}") from None
            return _json(json.dumps({"changedRoutes": changed}).encode())

    for endpoint in ("healthz", "livez", "readyz"):
        _add_health(app, health, endpoint)
    return app


def _add_health(app: FastAPI, health: Health, endpoint: str) -> None:
    async def all_checks(request: Request) -> Response:
        excluded = set(request.query_params.getlist("exclude"))
        code, text = run_checks(endpoint, health.checks(endpoint), "verbose" in request.query_params, excluded)
        return PlainTextResponse(text, status_code=code)

    async def one_check(check: str) -> Response:
        result = run_one(health.checks(endpoint), check)
        if result is None:
            raise HTTPException(404)
        return PlainTextResponse(result[1], status_code=result[0])

    app.add_api_route(f"/{endpoint}", all_checks, methods=["GET"])
    app.add_api_route(f"/{endpoint}/{{check}}", one_check, methods=["GET"])
