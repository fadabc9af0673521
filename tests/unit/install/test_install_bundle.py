"""The bundle `eventscale install` applies: moved to another namespace as kustomize's `namespace:`
moves it, and given another image; the HOST:PORT of `dev-cluster` and the Service it makes."""

from __future__ import annotations

import json

import pytest

from adapter.install.bundle import bundled, in_namespace, with_image
from adapter.install.dev_cluster import is_local, local_service, parse_address


def test_another_namespace_moves_every_reference_but_kube_system() -> None:
    moved = in_namespace(bundled(), "ops")
    assert [m.name for m in moved if m.body["kind"] == "Namespace"] == ["ops"]
    namespaces = {m.namespace for m in moved if m.resource.namespaced}
    assert namespaces == {"ops", "kube-system"}
    subjects = {s.get("namespace") for m in moved for s in m.body.get("subjects") or []
                if s["kind"] == "ServiceAccount"}
    assert subjects == {"ops", "kube-system"}  # kube-system: the HPA's own account
    (apiservice,) = [m for m in moved if m.body["kind"] == "APIService"]
    assert apiservice.body["spec"]["service"]["namespace"] == "ops"
    assert '"namespace": "eventscale"' not in json.dumps([m.body for m in moved])
    assert ".eventscale." not in json.dumps([m.body for m in moved])  # no Service DNS name of the old one


def test_another_image_runs_in_every_container_of_the_bundled_image() -> None:
    changed = with_image(bundled(), "registry.example/es:2")
    images = {c["image"] for m in changed if m.body["kind"] == "Deployment"
              for c in m.body["spec"]["template"]["spec"]["containers"]}
    assert images == {"registry.example/es:2"}
    assert [m.body for m in bundled() if m.body["kind"] != "Deployment"] == \
        [m.body for m in changed if m.body["kind"] != "Deployment"]


@pytest.mark.parametrize("address, host, port", [
    ("127.0.0.1:6443", "127.0.0.1", 6443), ("[::1]:7443", "::1", 7443), ("dev.example:443", "dev.example", 443)])
def test_addresses(address: str, host: str, port: int) -> None:
    assert parse_address(address) == (host, port)


@pytest.mark.parametrize("address", ["6443", "127.0.0.1:", ":6443", "127.0.0.1:http", "127.0.0.1:70000"])
def test_bad_addresses_say_what_is_expected(address: str) -> None:
    with pytest.raises(ValueError, match="expected HOST:PORT"):
        parse_address(address)


@pytest.mark.parametrize("host, kinds, external", [
    ("127.0.0.1", ["Service"], "localhost"), ("::1", ["Service"], "localhost"),
    ("dev.example", ["Service"], "dev.example"), ("192.0.2.10", ["Service", "EndpointSlice"], None)])
def test_the_service_for_each_kind_of_address(host: str, kinds: list[str], external: str | None) -> None:
    made = local_service(host, 6443, "eventscale")
    assert [m.body["kind"] for m in made] == kinds
    assert made[0].body["spec"].get("externalName") == external
    if len(made) == 2:
        slice_ = made[1].body
        assert slice_["endpoints"][0]["addresses"] == [host] and slice_["ports"][0]["port"] == 6443
        assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == made[0].name


@pytest.mark.parametrize("host, local", [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
                                         ("localhost", True), ("192.0.2.10", False), ("dev.example", False)])
def test_which_addresses_the_adapter_listens_on_by_default(host: str, local: bool) -> None:
    assert is_local(host) is local
