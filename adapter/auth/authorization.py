"""May this user do this: the attributes kube-apiserver would check, and who decides.

Health paths and `system:masters` are always allowed (the server checks the paths before
asking). Standalone mode has no cluster to ask: any authenticated user is allowed and anonymous
callers get 401. Cluster mode asks kube-apiserver with a SubjectAccessReview (see
`adapter.auth.delegated_authorization`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from adapter.auth.authentication import UserInfo, unauthorized
from adapter.kube.wire import EXTERNAL_METRICS_GROUP, EXTERNAL_METRICS_VERSION, ApiError

MASTERS = "system:masters"


@dataclass(frozen=True)
class ResourceAttributes:
    """A metric GET: verb `list` on resource <metric> in the namespace."""

    namespace: str
    resource: str
    verb: str = "list"
    group: str = EXTERNAL_METRICS_GROUP
    version: str = EXTERNAL_METRICS_VERSION


@dataclass(frozen=True)
class NonResourceAttributes:
    path: str
    verb: str = "get"


Attributes = ResourceAttributes | NonResourceAttributes


class Authorizer(Protocol):
    async def authorize(self, user: UserInfo, attributes: Attributes) -> None:
        """Return when allowed; raise `ApiError` 401 or 403 otherwise."""


def forbidden(user: UserInfo, attributes: Attributes, reason: str = "") -> ApiError:
    """403 with kube-apiserver's wording."""
    if isinstance(attributes, ResourceAttributes):
        message = (
            f'{attributes.resource}.{attributes.group} is forbidden: User "{user.name}" cannot '
            f'{attributes.verb} resource "{attributes.resource}" in API group "{attributes.group}" '
            f'in the namespace "{attributes.namespace}"'
        )
        details = {"group": attributes.group, "kind": attributes.resource}
    else:
        message = f'forbidden: User "{user.name}" cannot {attributes.verb} path "{attributes.path}"'
        details = {}
    if reason:
        message += f": {reason}"
    return ApiError(403, message, details)


class AllowAuthenticated:
    """Standalone mode: authenticated users may do everything, anonymous ones nothing."""

    async def authorize(self, user: UserInfo, attributes: Attributes) -> None:
        if user.is_anonymous:
            raise unauthorized()
