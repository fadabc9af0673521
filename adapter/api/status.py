"""metav1.Status bodies: every error the API answers is one of these, with the right code.

`ApiError` is raised (or returned) inside the API layer and rendered once into bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    500: "InternalError",
    503: "ServiceUnavailable",
}


@dataclass
class ApiError(Exception):
    code: int
    message: str
    details: dict[str, Any] = field(default_factory=dict)

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
