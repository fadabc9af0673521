"""What the adapter reads from the authentication ConfigMap and asks in a SubjectAccessReview."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest
import yaml

from adapter.auth.authentication import UserInfo
from adapter.auth.authorization import NonResourceAttributes, ResourceAttributes
from adapter.auth.delegated_authentication import parse_auth_config
from adapter.auth.delegated_authorization import review_body
from adapter.certs import generate
from adapter.manifests import write_ca_bundle

ROOT = Path(__file__).resolve().parents[3]

CONFIGMAP = {
    "client-ca-file": "CLIENT-CA-PEM\n",
    "requestheader-client-ca-file": "PROXY-CA-PEM\n",
    "requestheader-allowed-names": '["front-proxy-client"]',
    "requestheader-username-headers": '["X-Remote-User"]',
    "requestheader-uid-headers": '["X-Remote-Uid"]',
    "requestheader-group-headers": '["X-Remote-Group"]',
    "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
}


def test_configmap_to_auth_config() -> None:
    config = parse_auth_config(CONFIGMAP)
    assert config.client_ca == b"CLIENT-CA-PEM\n"
    rh = config.requestheader
    assert rh is not None and rh.client_ca == b"PROXY-CA-PEM\n"
    assert (rh.allowed_names, rh.username_headers, rh.uid_headers, rh.group_headers, rh.extra_headers_prefixes) == (
        ("front-proxy-client",), ("X-Remote-User",), ("X-Remote-Uid",), ("X-Remote-Group",), ("X-Remote-Extra-",))


def test_configmap_of_an_older_apiserver_without_uid_headers() -> None:
    data = {k: v for k, v in CONFIGMAP.items() if k != "requestheader-uid-headers"}
    config = parse_auth_config(data)
    assert config.requestheader is not None and config.requestheader.uid_headers == ()
    assert parse_auth_config({"client-ca-file": "X"}).requestheader is None


def test_configmap_with_a_malformed_list_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_auth_config({**CONFIGMAP, "requestheader-allowed-names": '"front-proxy-client"'})


def test_review_of_a_metric_get() -> None:
    user = UserInfo("system:serviceaccount:kube-system:horizontal-pod-autoscaler", "u-1",
                    ("system:serviceaccounts", "system:authenticated"),
                    {"authentication.kubernetes.io/credential-id": ("JTI=abc",)})
    body = review_body(user, ResourceAttributes("apps", "s0-redis-jobs"))
    assert body == {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
        "user": user.name, "uid": "u-1", "groups": ["system:serviceaccounts", "system:authenticated"],
        "extra": {"authentication.kubernetes.io/credential-id": ["JTI=abc"]},
        "resourceAttributes": {"namespace": "apps", "verb": "list", "group": "external.metrics.k8s.io",
                               "version": "v1beta1", "resource": "s0-redis-jobs"}}}


def test_review_of_discovery() -> None:
    discovery = NonResourceAttributes("/apis/external.metrics.k8s.io/v1beta1")
    body = review_body(UserInfo("system:kube-aggregator"), discovery)
    assert body["spec"] == {"user": "system:kube-aggregator", "groups": [],
                            "nonResourceAttributes": {"path": "/apis/external.metrics.k8s.io/v1beta1", "verb": "get"}}


def test_manifests_command_registers_the_ca(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    generate(tmp_path / "certs")
    path = write_ca_bundle(tmp_path / "certs", tmp_path / "manifests")
    text = path.read_text()
    assert text.startswith("# kube-apiserver sends")  # the header comment is kept
    document = yaml.safe_load(text)
    assert base64.b64decode(document["spec"]["caBundle"]) == (tmp_path / "certs" / "ca.crt").read_bytes()
    assert document["spec"]["service"] == {"name": "eventscale-adapter", "namespace": "eventscale", "port": 443}
    assert document["metadata"]["name"] == "v1beta1.external.metrics.k8s.io"
