"""The controller's calls to kube-apiserver: scale subresources, HPAs, ScaledObjects, Jobs, Events.

Every call goes through one token bucket (`RateLimiter`), so a thousand objects changing at
once cannot flood kube-apiserver; leader election uses the bare client so renewing the Lease
never waits behind ordinary work. Every write is checked against the Lease just before it is
sent (`may_write`): a replica that lost it fails the write instead of racing the new leader.
Paths are built here and nowhere else.

`ScaleTargets` finds the resource of a `scaleTargetRef` (group/version + kind) from API
discovery, and whether it has a `/scale` subresource; any such kind can be scaled, not only
Deployments. Answers are cached; an unknown kind is looked up again at most every 30 s (a CRD
installed later is then found).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from adapter.controller.work_queue import RateLimiter
from adapter.keda.names import KEDA_GROUP, LEGACY_GROUP
from adapter.kube.client import ApiStatusError, KubeApi, Object

SO_VERSION = "v1alpha1"
SoKey = tuple[str, str, str]  # API group, namespace, name


@dataclass(frozen=True)
class GroupVersionKindResource:
    group: str
    version: str
    kind: str
    resource: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def kind_string(self) -> str:
        """KEDA's `status.scaleTargetKind`, e.g. `apps/v1.Deployment`."""
        return f"{self.api_version}.{self.kind}"

    def as_status(self) -> dict[str, str]:
        return {"group": self.group, "version": self.version, "kind": self.kind, "resource": self.resource}


class NotLeading(Exception):
    """A write was attempted by a replica that does not (or no longer surely) hold the Lease."""


class TargetError(Exception):
    """The scale target cannot be scaled; the message is fit for the ScaledObject's status."""


def _group_version_path(api_version: str) -> str:
    return f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"


def so_path(key: SoKey, subresource: str = "") -> str:
    group, namespace, name = key
    path = f"/apis/{group}/{SO_VERSION}/namespaces/{namespace}/scaledobjects/{name}"
    return f"{path}/{subresource}" if subresource else path


def so_key(obj: Object) -> SoKey:
    meta = obj.get("metadata") or {}
    group = str(obj.get("apiVersion") or KEDA_GROUP).split("/")[0]
    return (group if group in (KEDA_GROUP, LEGACY_GROUP) else KEDA_GROUP), str(meta.get("namespace") or ""), \
        str(meta.get("name") or "")


class ScaleTargets:
    def __init__(self, api: KubeApi, limiter: RateLimiter, retry: float = 30.0) -> None:
        self.api, self.limiter, self.retry = api, limiter, retry
        self._resources: dict[str, tuple[float, list[Object]]] = {}

    async def resolve(self, api_version: str, kind: str) -> GroupVersionKindResource:
        resources = await self._discover(api_version, refresh=False)
        found = _find(resources, kind)
        if found is None:
            found = _find(await self._discover(api_version, refresh=True), kind)
        if found is None:
            raise TargetError(f"the resource kind {kind} is not served by {api_version}")
        names = {str(r.get("name")) for r in resources}
        if f"{found}/scale" not in names:
            raise TargetError(f"{api_version}.{kind} has no /scale subresource")
        group, _, version = api_version.rpartition("/")
        return GroupVersionKindResource(group, version, kind, found)

    async def _discover(self, api_version: str, refresh: bool) -> list[Object]:
        cached = self._resources.get(api_version)
        if cached is not None and (not refresh or time.monotonic() - cached[0] < self.retry):
            return cached[1]
        await self.limiter.acquire()
        try:
            listing = await self.api.get(_group_version_path(api_version))
        except ApiStatusError as exc:
            if exc.code != 404:
                raise
            listing = {}
        resources = list(listing.get("resources") or [])
        self._resources[api_version] = (time.monotonic(), resources)
        return resources


def _kind_of(path: str) -> str:
    """`scaledobjects/status` of `/apis/keda.sh/v1alpha1/namespaces/ns/scaledobjects/so/status`."""
    parts = path.strip("/").split("/")
    if "namespaces" not in parts:
        return parts[-1]
    rest = parts[parts.index("namespaces") + 2:]
    return "/".join(rest[:1] + rest[2:3])


def _find(resources: list[Object], kind: str) -> str | None:
    return next((str(r["name"]) for r in resources if r.get("kind") == kind and "/" not in str(r.get("name"))), None)


class ControllerKube:
    """Rate-limited operations; each returns the object the server answered with.

    Events have a token bucket of their own (a fifth of the rate, a quarter of the burst by
    default), so they never take the calls HPAs and statuses need."""

    def __init__(self, api: KubeApi, limiter: RateLimiter, may_write: Callable[[], bool] = lambda: True,
                 event_limiter: RateLimiter | None = None) -> None:
        self.api, self.limiter, self.may_write = api, limiter, may_write
        self.event_limiter = event_limiter or RateLimiter(max(1.0, limiter.qps / 5), max(1, limiter.burst // 4))
        self.targets = ScaleTargets(api, limiter)
        self.calls: dict[str, int] = {}  # by what was called ("PATCH scaledobjects/status", ...), for benchmarks

    async def _call(self, method: str, path: str, body: Object | None = None,
                    content_type: str = "application/json", limiter: RateLimiter | None = None,
                    params: dict[str, str] | None = None) -> Object:
        await (limiter or self.limiter).acquire()
        if method != "GET" and not self.may_write():
            raise NotLeading(f"{method} {path}")
        what = f"{method} {_kind_of(path)}"
        self.calls[what] = self.calls.get(what, 0) + 1
        return await self.api.request(method, path, body=body, content_type=content_type, params=params)

    async def list(self, path: str, label_selector: str, limiter: RateLimiter | None = None) -> Object:
        """A list of a collection (the Jobs and Pods of a ScaledJob, the pods of a target in
        fallback), by label selector; on `limiter` when given, else on the shared one."""
        return await self._call("GET", path, params={"labelSelector": label_selector}, limiter=limiter)

    async def delete(self, path: str, propagation_policy: str) -> None:
        await self._call("DELETE", path, {"apiVersion": "v1", "kind": "DeleteOptions",
                                          "propagationPolicy": propagation_policy})

    @staticmethod
    def scale_path(target: GroupVersionKindResource, namespace: str, name: str) -> str:
        base = _group_version_path(target.api_version)
        return f"{base}/namespaces/{namespace}/{target.resource}/{name}/scale"

    async def get_scale(self, target: GroupVersionKindResource, namespace: str, name: str,
                        limiter: RateLimiter | None = None) -> Object:
        return await self._call("GET", self.scale_path(target, namespace, name), limiter=limiter)

    async def put_scale(self, target: GroupVersionKindResource, body: Object) -> Object:
        """Write a Scale; with its resourceVersion set, a concurrent change fails (409)."""
        meta = body["metadata"]
        return await self._call("PUT", self.scale_path(target, str(meta["namespace"]), str(meta["name"])), body)

    @staticmethod
    def hpa_path(namespace: str, name: str = "") -> str:
        base = f"/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers"
        return f"{base}/{name}" if name else base

    async def create_hpa(self, hpa: Object) -> Object:
        return await self._call("POST", self.hpa_path(hpa["metadata"]["namespace"]), hpa)

    async def patch_hpa(self, namespace: str, name: str, patch: Object) -> Object:
        return await self._call("PATCH", self.hpa_path(namespace, name), patch, "application/merge-patch+json")

    async def delete_hpa(self, namespace: str, name: str) -> None:
        try:
            await self._call("DELETE", self.hpa_path(namespace, name))
        except ApiStatusError as exc:
            if exc.code != 404:
                raise

    async def patch_scaled_object(self, key: SoKey, patch: Object, subresource: str = "") -> Object:
        return await self._call("PATCH", so_path(key, subresource), patch, "application/merge-patch+json")

    async def write(self, method: str, path: str, body: Object, content_type: str = "application/json") -> Object:
        """Any other write (the ScaledObjects of HTTPScaledObjects), rate-limited and leader-checked."""
        return await self._call(method, path, body, content_type)

    async def create_event(self, namespace: str, event: Object) -> Object:
        return await self._call("POST", f"/api/v1/namespaces/{namespace}/events", event,
                                limiter=self.event_limiter)

    async def patch_event(self, namespace: str, name: str, patch: Object) -> Object:
        return await self._call("PATCH", f"/api/v1/namespaces/{namespace}/events/{name}", patch,
                                "application/merge-patch+json", self.event_limiter)
