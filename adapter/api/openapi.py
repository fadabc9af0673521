"""OpenAPI v2 and v3 documents for the group, so the aggregator can merge our schema.

kube-apiserver fetches `/openapi/v2` (Swagger 2.0) and `/openapi/v3` (an index whose
`serverRelativeURL` it follows to a per-group OpenAPI 3.0 document). Both are built once from
one schema description. Definitions use the upstream type names so they merge cleanly.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from adapter.kube.wire import EXTERNAL_METRIC_VALUE_LIST as RESOURCE_KIND
from adapter.kube.wire import EXTERNAL_METRICS_GROUP as GROUP
from adapter.kube.wire import EXTERNAL_METRICS_GROUP_VERSION as GROUP_VERSION
from adapter.kube.wire import EXTERNAL_METRICS_VERSION as VERSION

PREFIX = "io.k8s.metrics.pkg.apis.external_metrics.v1beta1"
META = "io.k8s.apimachinery.pkg.apis.meta.v1"
METRIC_PATH = f"/apis/{GROUP_VERSION}/namespaces/{{namespace}}/{{metric}}"
GVK = [{"group": GROUP, "version": VERSION, "kind": RESOURCE_KIND}]


def _schemas(ref: str) -> dict[str, Any]:
    """Schemas with `$ref`s under `ref` (#/definitions/ or #/components/schemas/)."""
    return {
        f"{PREFIX}.ExternalMetricValue": {
            "description": "ExternalMetricValue is a metric value for an external metric.",
            "type": "object",
            "required": ["metricName", "metricLabels", "timestamp", "value"],
            "properties": {
                "metricName": {"description": "the name of the metric", "type": "string"},
                "metricLabels": {
                    "description": "a set of labels that identify a single time series for the metric",
                    "type": "object", "additionalProperties": {"type": "string"},
                },
                "timestamp": {"description": "indicates the time at which the metrics were produced",
                              "type": "string", "format": "date-time"},
                "window": {"description": "the window ([Timestamp-Window, Timestamp]) of the value",
                           "type": "integer", "format": "int64"},
                "value": {"description": "the value of the metric (a Kubernetes quantity)", "type": "string"},
            },
        },
        f"{META}.Status": {
            "description": "Status is a return value for calls that don't return other objects.",
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "status": {"description": "Success or Failure", "type": "string"},
                "message": {"description": "a human-readable description of the status", "type": "string"},
                "reason": {"description": "a machine-readable description of why it failed", "type": "string"},
                "details": {"type": "object"},
                "code": {"description": "the HTTP status code", "type": "integer", "format": "int32"},
            },
            "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Status"}],
        },
        f"{PREFIX}.ExternalMetricValueList": {
            "description": "ExternalMetricValueList is a list of values for a given metric for some set labels",
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object", "properties": {
                    "resourceVersion": {"type": "string"}, "continue": {"type": "string"},
                }},
                "items": {"type": "array", "items": {"$ref": f"{ref}{PREFIX}.ExternalMetricValue"}},
            },
            "x-kubernetes-group-version-kind": GVK,
        },
    }


_PARAMETERS_V2 = [
    {"name": "namespace", "in": "path", "required": True, "type": "string",
     "description": "object name and auth scope"},
    {"name": "metric", "in": "path", "required": True, "type": "string", "description": "the external metric name"},
    {"name": "labelSelector", "in": "query", "type": "string", "uniqueItems": True,
     "description": "selects the ScaledObject: scaledobject.keda.sh/name=<name>"},
]


ERRORS = {  # what the metric GET answers besides 200, each with a metav1.Status body
    "400": "Bad Request: the labelSelector is malformed or names no ScaledObject",
    "401": "Unauthorized",
    "403": "Forbidden",
    "404": "Not Found: no such ScaledObject, or no such metric for it",
    "405": "Method Not Allowed: only GET (the Allow header says so)",
    "500": "Internal Server Error: the trigger's scaler failed (the message names the trigger)",
}


def _operation(responses: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """The GET operation; `status` is how a response carries a metav1.Status in this OpenAPI version."""
    errors = {code: {"description": text, **status} for code, text in ERRORS.items()}
    return {
        "description": "read the value of an external metric for a ScaledObject",
        "operationId": "readExternalMetricValueList",
        "tags": ["externalMetrics_v1beta1"],
        "responses": {**responses, **errors},
        "x-kubernetes-action": "get",
        "x-kubernetes-group-version-kind": GVK[0],
    }


def swagger_v2() -> dict[str, Any]:
    ok = {"description": "OK", "schema": {"$ref": f"#/definitions/{PREFIX}.ExternalMetricValueList"}}
    operation = _operation({"200": ok}, {"schema": {"$ref": f"#/definitions/{META}.Status"}})
    operation.update({"consumes": ["*/*"], "produces": ["application/json"], "schemes": ["https"],
                      "parameters": _PARAMETERS_V2})
    return {
        "swagger": "2.0",
        "info": {"title": "eventscale external metrics", "version": VERSION},
        "paths": {METRIC_PATH: {"get": operation}},
        "definitions": _schemas("#/definitions/"),
    }


def openapi_v3() -> dict[str, Any]:
    ok = {"description": "OK", "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{PREFIX}.ExternalMetricValueList"}}}}
    parameters = [
        {"name": p["name"], "in": p["in"], "required": p.get("required", False),
         "description": p["description"], "schema": {"type": "string"}}
        for p in _PARAMETERS_V2
    ]
    return {
        "openapi": "3.0.0",
        "info": {"title": "eventscale external metrics", "version": VERSION},
        "paths": {METRIC_PATH: {"get": _operation({"200": ok}, {"content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{META}.Status"}}}}), "parameters": parameters}},
        "components": {"schemas": _schemas("#/components/schemas/")},
    }


def _dump(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


V2 = _dump(swagger_v2())
V2_ETAG = '"' + hashlib.sha256(V2).hexdigest()[:32] + '"'
V3_GROUP = _dump(openapi_v3())
V3_HASH = hashlib.sha512(V3_GROUP).hexdigest()[:64].upper()
V3_GROUP_PATH = f"/openapi/v3/apis/{GROUP_VERSION}"
V3_INDEX = _dump({"paths": {f"apis/{GROUP_VERSION}": {"serverRelativeURL": f"{V3_GROUP_PATH}?hash={V3_HASH}"}}})
