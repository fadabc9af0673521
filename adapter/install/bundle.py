"""The manifests `eventscale install` applies, shipped inside the package (`bundle.yaml`).

`bundle.yaml` is `kubectl kustomize manifests/` rendered by `make bundle`, so an installed wheel,
which has no manifests/ directory and maybe no kustomize, applies exactly what `kubectl apply -k
manifests/` applies. `--namespace` moves it as kustomize's `namespace:` does: the Namespace, every
namespaced object but those of kube-system, the ServiceAccount subjects of the bindings and the
APIService's Service.

`RESOURCES` names the API path of every kind the bundle holds; a kind missing from it is a
`BundleError`, found by the tests that apply the bundle.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from adapter.kube.resources import DEPLOYMENTS, ENDPOINT_SLICES, SERVICES, Resource

BUNDLED_NAMESPACE = "eventscale"
BUNDLED_IMAGE = "eventscale"  # the image name manifests/ gives the containers (tagged by kustomize)
FIELD_MANAGER = "eventscale-install"
CRD = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False)
APISERVICES = Resource("apiregistration.k8s.io", "v1", "apiservices", "APIService", False)
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", False)
RESOURCES = {r.kind: r for r in (
    NAMESPACES, CRD, APISERVICES, SERVICES, DEPLOYMENTS,
    Resource("", "v1", "serviceaccounts", "ServiceAccount"),
    Resource("", "v1", "endpoints", "Endpoints"),
    ENDPOINT_SLICES,
    Resource("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget"),
)}
Object = dict[str, Any]


class BundleError(ValueError):
    """An object of a kind `RESOURCES` does not name."""


@dataclass(frozen=True)
class Manifest:
    """One object to apply, and where it lives."""

    body: Object

    @property
    def resource(self) -> Resource:
        kind = self.body["kind"]
        if kind not in RESOURCES:
            raise BundleError(f"no API path known for kind {kind}")
        return RESOURCES[kind]

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"].get("namespace", "")) if self.resource.namespaced else ""

    @property
    def path(self) -> str:
        return self.resource.object_path(self.name, self.namespace)

    def __str__(self) -> str:
        """kubectl's way of naming it: `deployment.apps/eventscale-adapter -n eventscale`."""
        resource = self.resource
        kind = resource.kind.lower() + (f".{resource.group}" if resource.group else "")
        return f"{kind}/{self.name}" + (f" -n {self.namespace}" if self.namespace else "")


def bundled() -> list[Manifest]:
    """The objects of bundle.yaml, in the order kustomize wrote them (Namespace and CRDs first)."""
    text = resources.files(__package__).joinpath("bundle.yaml").read_text()
    return [Manifest(doc) for doc in yaml.safe_load_all(text) if doc]


def in_namespace(manifests: Iterable[Manifest], namespace: str) -> list[Manifest]:
    """`manifests` moved from the bundled namespace to `namespace`."""
    return [Manifest(_moved(m.body, namespace)) for m in manifests]


def with_image(manifests: Iterable[Manifest], image: str) -> list[Manifest]:
    """`manifests` with every container of the bundled image (`eventscale:<tag>`) running `image`."""
    return [Manifest(_with_image(m.body, image)) for m in manifests]


def _with_image(body: Object, image: str) -> Object:
    if body["kind"] != "Deployment":
        return body
    changed = copy.deepcopy(body)
    for container in changed["spec"]["template"]["spec"]["containers"]:
        if str(container.get("image", "")).partition(":")[0] == BUNDLED_IMAGE:
            container["image"] = image
    return changed


def _moved(body: Object, namespace: str) -> Object:
    moved = copy.deepcopy(body)

    def rename(holder: dict[str, Any], key: str) -> None:
        if holder.get(key) == BUNDLED_NAMESPACE:
            holder[key] = namespace

    if moved["kind"] == "Namespace":
        rename(moved["metadata"], "name")
    rename(moved["metadata"], "namespace")
    for subject in moved.get("subjects") or []:
        rename(subject, "namespace")
    if moved["kind"] == "APIService":
        rename(moved["spec"].get("service") or {}, "namespace")
    return moved
