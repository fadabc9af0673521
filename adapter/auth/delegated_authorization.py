"""Delegated authorization: a SubjectAccessReview per (user, attributes), cached 10 s.

What kube-apiserver would check for the same request is what we ask it: a metric GET is verb
`list` on resource `<metric>` in group `external.metrics.k8s.io`, version `v1beta1`, in the
request's namespace; discovery and OpenAPI are `get` on a non-resource path. `system:masters`
is allowed without asking (the aggregator's availability checks and aggregated discovery come
as `system:kube-aggregator` in that group). Allow and deny answers are both cached about 10 s,
so the HPA's steady polling costs one review per 10 s. A denial is 403 with kube-apiserver's
wording, also for anonymous callers (only standalone mode, with no cluster to ask, answers
401). A review that cannot be made is a 500 and is not cached.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from adapter.auth.authentication import UserInfo
from adapter.auth.authorization import MASTERS, Attributes, ResourceAttributes, forbidden
from adapter.auth.review_cache import ReviewCache
from adapter.kube.client import ApiStatusError, KubeApi
from adapter.kube.wire import internal_error

log = logging.getLogger("eventscale.authz")

SUBJECT_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"

Subject = tuple[str, str, tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...]]
Decision = tuple[bool, str]  # allowed, reason


def _subject(user: UserInfo) -> Subject:
    return user.name, user.uid, user.groups, tuple(sorted((k, tuple(v)) for k, v in user.extra.items()))


def review_body(user: UserInfo, attributes: Attributes) -> dict[str, Any]:
    spec: dict[str, Any] = {"user": user.name, "groups": list(user.groups)}
    if user.uid:
        spec["uid"] = user.uid
    if user.extra:
        spec["extra"] = {k: list(v) for k, v in user.extra.items()}
    if isinstance(attributes, ResourceAttributes):
        spec["resourceAttributes"] = {
            "namespace": attributes.namespace, "verb": attributes.verb, "group": attributes.group,
            "version": attributes.version, "resource": attributes.resource,
        }
    else:
        spec["nonResourceAttributes"] = {"path": attributes.path, "verb": attributes.verb}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


class SubjectAccessReviewAuthorizer:
    """`adapter.auth.authorization.Authorizer` asking kube-apiserver."""

    def __init__(self, api: KubeApi, ttl: float = 10.0) -> None:
        self.api = api
        self.cache: ReviewCache[tuple[Subject, Attributes], Decision] = ReviewCache(ttl)

    async def authorize(self, user: UserInfo, attributes: Attributes) -> None:
        if MASTERS in user.groups:
            return
        try:
            allowed, reason = await self.cache.get((_subject(user), attributes), lambda: self._review(user, attributes))
        except (ApiStatusError, httpx.HTTPError) as exc:
            log.warning("subjectaccessreview failed user=%r error=%r", user.name, str(exc) or type(exc).__name__)
            raise internal_error(f"authorization could not be checked: {str(exc) or type(exc).__name__}") from None
        if not allowed:
            raise forbidden(user, attributes, reason)

    async def _review(self, user: UserInfo, attributes: Attributes) -> Decision:
        status = (await self.api.post(SUBJECT_ACCESS_REVIEWS, review_body(user, attributes))).get("status") or {}
        allowed = bool(status.get("allowed")) and not status.get("denied")
        log.debug("subjectaccessreview user=%r attributes=%r allowed=%s", user.name, attributes, allowed)
        return allowed, str(status.get("reason") or "")
