"""The wire types Kubernetes reads from us, defined once for both processes.

* `metav1.Status` bodies: every error the API answers is one, with the right code (`ApiError`
  is raised or returned inside the API layer and rendered once into bytes).
* Quantity strings for metric values, in canonical DecimalSI form. The HPA parses `value` with
  resource.ParseQuantity and sums milli-values, so we send milli precision in the canonical
  spelling: an integer mantissa with the largest exponent (a multiple of three) that loses
  nothing. The decimal is built from the float's shortest repr, never from `int(v * 1000)`,
  which turns 1.005 into 1004m.
* `ExternalMetricValueList`, the answer to a metric GET, and the external metrics group.
* Timestamps: `metav1.Time` (whole seconds) and `metav1.MicroTime` (Leases), both UTC RFC 3339.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

EXTERNAL_METRICS_GROUP = "external.metrics.k8s.io"
EXTERNAL_METRICS_VERSION = "v1beta1"
EXTERNAL_METRICS_GROUP_VERSION = f"{EXTERNAL_METRICS_GROUP}/{EXTERNAL_METRICS_VERSION}"
EXTERNAL_METRIC_VALUE_LIST = "ExternalMetricValueList"

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    408: "Timeout",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}


@dataclass
class ApiError(Exception):
    code: int
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # e.g. Allow on a 405

    def __str__(self) -> str:
        return self.message

    def body(self) -> bytes:
        return status_body(self.code, self.message, self.details)


def status_body(code: int, message: str, details: dict[str, Any] | None = None) -> bytes:
    status: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": REASONS.get(code, "InternalError" if code >= 500 else "BadRequest"),
        "code": code,
    }
    if details:
        status["details"] = details
    return json.dumps(status, separators=(",", ":")).encode()


def internal_error(message: str) -> ApiError:
    return ApiError(500, message, {"causes": [{"message": message}]})


# -- quantities ----------------------------------------------------------------------------------

_SUFFIXES = {-3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}
MAX_MILLI = 2**63 - 1  # a Quantity's milli-value is an int64


def format_quantity(value: float) -> str:
    """`1.5 -> "1500m"`, `2000 -> "2k"`; NaN, infinities and negatives become "0" (as KEDA does)."""
    if math.isnan(value) or value <= 0:
        return "0"
    milli = MAX_MILLI if math.isinf(value) else to_milli(value)
    if milli == 0:
        return "0"
    exponent = -3
    while milli % 1000 == 0 and exponent < 18:
        milli //= 1000
        exponent += 3
    return f"{milli}{_SUFFIXES[exponent]}"


def to_milli(value: float) -> int:
    """The thousandths a quantity of a finite `value` >= 0 holds, as `format_quantity` writes it
    (what a reader's `MilliValue()` gives back)."""
    if value >= MAX_MILLI / 1000:
        return MAX_MILLI
    milli = int((Decimal(repr(value)) * 1000).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    return min(milli, MAX_MILLI)


def render_value_list(metric_name: str, value: float, epoch: float) -> bytes:
    """An ExternalMetricValueList with one item, as the HPA reads it."""
    item = {"metricName": metric_name, "metricLabels": {}, "timestamp": timestamp(epoch),
            "value": format_quantity(value)}
    return json.dumps(
        {"kind": EXTERNAL_METRIC_VALUE_LIST, "apiVersion": EXTERNAL_METRICS_GROUP_VERSION, "metadata": {},
         "items": [item]},
        separators=(",", ":"),
    ).encode()


# -- timestamps --------------------------------------------------------------------------------


def timestamp(epoch: float) -> str:
    """metav1.Time: RFC 3339, whole seconds, UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))


def micro_timestamp(epoch: float) -> str:
    """metav1.MicroTime (Leases, activity read times): RFC 3339 with microseconds, UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch * 1e6) % 1_000_000:06d}Z"


def parse_timestamp(value: Any) -> float | None:
    """Seconds since the epoch of an RFC 3339 string, or None when it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
