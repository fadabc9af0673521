"""Apply the bundle with server-side apply, wait for the APIService, and take it all away again.

Apply says per object what kubectl says: `created`, `configured`, or `unchanged` when the
object's resourceVersion did not move (a server-side apply that changes nothing writes nothing,
so a second install is all `unchanged`). Fields other managers own (the caBundle the adapter
writes at start) are left to them.

When the APIService does not become Available in time, `why_unavailable` says what the
aggregator says (the condition's reason and message: MissingEndpoints, FailedDiscoveryCheck)
and what the Deployment and its Pods say, which is where a missing image or node shows.

Uninstall leaves the objects users made (ScaledObjects, ScaledJobs, TriggerAuthentications) and
the CRDs that hold them unless `delete_crds`; it takes KEDA's finalizer off ScaledObjects and
ScaledJobs, since no controller is left to remove it and their deletion would hang. A namespace
that still holds users' objects is kept, without the objects the adapter made in it. Install and
uninstall both delete the EndpointSlice `dev-cluster` makes for an adapter outside the cluster,
which would otherwise stay beside the Service's own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from adapter.install.bundle import APISERVICES, CRD, FIELD_MANAGER, Manifest
from adapter.keda.names import FINALIZER, LEGACY_SCALED_OBJECTS, SCALED_JOBS, SCALED_OBJECTS, TRIGGER_AUTHENTICATIONS
from adapter.kube.client import ApiStatusError, KubeApi
from adapter.kube.resources import DEPLOYMENTS, ENDPOINT_SLICES, PODS, SECRETS, Resource

APISERVICE = "v1beta1.external.metrics.k8s.io"
ADAPTER_DEPLOYMENT = "eventscale-adapter"
ADAPTER_POD_SELECTOR = "app.kubernetes.io/name=eventscale-adapter"
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
#: what the running adapter and controller make in their namespace
RUNTIME_OBJECTS = ((SECRETS, "eventscale-adapter-certs"), (LEASES, "eventscale-controller"))
#: what `dev-cluster` may have left: endpoints to an adapter outside the cluster, beside the Service's own
LOCAL_ENDPOINTS = (ENDPOINT_SLICES, "eventscale-adapter-local")
USERS_OBJECTS = (SCALED_OBJECTS, SCALED_JOBS, TRIGGER_AUTHENTICATIONS)
Say = Callable[[str], None]


async def remove_local_endpoints(api: KubeApi, namespace: str, say: Say) -> None:
    """Delete the EndpointSlice `dev-cluster` made, so the Service leads to its pods only."""
    resource, name = LOCAL_ENDPOINTS
    if await _delete(api, resource.object_path(name, namespace)) == "deleted":
        say(f"endpointslice.discovery.k8s.io/{name} -n {namespace} deleted (it led to an adapter outside the cluster)")


async def apply_all(api: KubeApi, manifests: Sequence[Manifest], say: Say) -> dict[str, int]:
    """Server-side apply each manifest in order; the count of each outcome."""
    counts: dict[str, int] = {}
    for manifest in manifests:
        outcome = await _apply(api, manifest)
        counts[outcome] = counts.get(outcome, 0) + 1
        say(f"{manifest} {outcome}")
    return counts


async def _apply(api: KubeApi, manifest: Manifest) -> str:
    before = await _get(api, manifest.path)
    after = await api.apply(manifest.path, manifest.body, FIELD_MANAGER)
    if before is None:
        return "created"
    unchanged = before["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]
    return "unchanged" if unchanged else "configured"


async def _get(api: KubeApi, path: str) -> dict[str, Any] | None:
    try:
        return await api.get(path)
    except ApiStatusError as exc:
        if exc.code == 404:
            return None
        raise


def available_condition(apiservice: dict[str, Any] | None) -> dict[str, Any]:
    conditions = ((apiservice or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Available"), {})


async def wait_available(api: KubeApi, timeout: float, interval: float = 1.0) -> bool:
    """Whether the APIService became Available within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        condition = available_condition(await _get(api, f"{APISERVICES.path}/{APISERVICE}"))
        if condition.get("status") == "True":
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)


async def why_unavailable(api: KubeApi, namespace: str | None) -> list[str]:
    """What the APIService says, and (with the adapter's `namespace`) its Deployment and Pods."""
    condition = available_condition(await _get(api, f"{APISERVICES.path}/{APISERVICE}"))
    lines = [f"apiservice/{APISERVICE}: Available={condition.get('status', 'Unknown')} "
             f"({condition.get('reason', 'no reason yet')}: {condition.get('message', 'no message yet')})"]
    if namespace is not None:
        lines.extend(await _deployment_state(api, namespace))
    return lines


async def _deployment_state(api: KubeApi, namespace: str) -> list[str]:
    deployment = await _get(api, DEPLOYMENTS.object_path(ADAPTER_DEPLOYMENT, namespace))
    if deployment is None:
        return [f"deployment.apps/{ADAPTER_DEPLOYMENT} -n {namespace}: not found"]
    status = deployment.get("status") or {}
    conditions = "; ".join(f"{c['type']}={c['status']} ({c.get('reason', '')}: {c.get('message', '')})"
                           for c in status.get("conditions") or [])
    lines = [f"deployment.apps/{ADAPTER_DEPLOYMENT} -n {namespace}: {status.get('readyReplicas', 0)} of "
             f"{deployment['spec'].get('replicas', 1)} replicas ready" + (f"; {conditions}" if conditions else "")]
    pods = await api.get(PODS.within(namespace).path, {"labelSelector": ADAPTER_POD_SELECTOR})
    for pod in pods.get("items") or []:
        lines.append(f"pod/{pod['metadata']['name']} -n {namespace}: {_pod_state(pod)}")
    return lines


def _pod_state(pod: dict[str, Any]) -> str:
    status = pod.get("status") or {}
    phase = status.get("phase", "Pending")
    if not pod.get("spec", {}).get("nodeName") and not status.get("conditions"):
        return f"{phase}, not scheduled (no scheduler has placed it on a node)"
    waiting = [f"{c['name']}: {c['state']['waiting'].get('reason', '')}" for c in status.get("containerStatuses") or []
               if "waiting" in (c.get("state") or {})]
    unmet = [f"{c['type']}: {c.get('reason', '')} {c.get('message', '')}".strip()
             for c in status.get("conditions") or [] if c.get("status") != "True"]
    return ", ".join([phase, *waiting, *unmet])


async def uninstall(api: KubeApi, manifests: Sequence[Manifest], namespace: str, delete_crds: bool,
                    say: Say) -> None:
    """Delete what `apply_all(manifests)` made, in reverse order, as the module docstring says."""
    await _release_finalizers(api, say)
    await remove_local_endpoints(api, namespace, say)
    for manifest in reversed(manifests):
        if manifest.resource == CRD and not delete_crds:
            say(f"{manifest} kept (it holds users' objects; --delete-crds deletes it and them)")
        elif manifest.resource.kind == "Namespace" and (kept := await _users_objects(api, manifest.name)):
            say(f"{manifest} kept: it holds {', '.join(kept)}")
            await _delete_runtime_objects(api, namespace, say)
        else:
            say(f"{manifest} {await _delete(api, manifest.path)}")


async def _delete(api: KubeApi, path: str) -> str:
    try:
        await api.delete(path)
    except ApiStatusError as exc:
        if exc.code == 404:
            return "not found"
        raise
    return "deleted"


async def _release_finalizers(api: KubeApi, say: Say) -> None:
    for resource in (SCALED_OBJECTS, LEGACY_SCALED_OBJECTS, SCALED_JOBS):
        for item in await _list(api, resource):
            meta = item["metadata"]
            finalizers = meta.get("finalizers") or []
            if FINALIZER in finalizers:
                kept = [f for f in finalizers if f != FINALIZER]
                await api.merge_patch(resource.object_path(meta["name"], meta["namespace"]), {"metadata": {
                    "finalizers": kept or None, "resourceVersion": meta["resourceVersion"]}})
                say(f"{resource.kind.lower()}.{resource.group}/{meta['name']} -n {meta['namespace']}: "
                    f"finalizer {FINALIZER} removed (no controller is left to remove it)")


async def _list(api: KubeApi, resource: Resource) -> list[dict[str, Any]]:
    try:
        items: list[dict[str, Any]] = (await api.get(resource.path)).get("items") or []
    except ApiStatusError as exc:
        if exc.code == 404:  # the CRD is not installed
            return []
        raise
    return items


async def _users_objects(api: KubeApi, namespace: str) -> list[str]:
    found = []
    for resource in USERS_OBJECTS:
        count = len(await _list(api, resource.within(namespace)))
        if count:
            found.append(f"{count} {resource.plural}")
    return found


async def _delete_runtime_objects(api: KubeApi, namespace: str, say: Say) -> None:
    for resource, name in RUNTIME_OBJECTS:
        outcome = await _delete(api, resource.object_path(name, namespace))
        say(f"{resource.kind.lower()}/{name} -n {namespace} {outcome}")
