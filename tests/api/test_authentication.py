"""Who may call: client certificates, the front proxy, anonymous callers, over real TLS."""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from adapter.certs import CertLayout, KeyPair, issue, new_ca
from tests.harness.adapter_process import AdapterProcess

METRIC = "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/s0-cron-UTC-0011x-59233112x?labelSelector=" + quote(
    "scaledobject.keda.sh/name=always", safe="")


def client_with(adapter: AdapterProcess, pair: KeyPair | None, tmp: Path) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(adapter.cert_dir / "ca.crt"))
    if pair is not None:
        pair.write(tmp / "c.crt", tmp / "c.key")
        context.load_cert_chain(tmp / "c.crt", tmp / "c.key")
    return httpx.Client(base_url=adapter.base_url, verify=context, timeout=10)


def test_admin_certificate(adapter: AdapterProcess) -> None:
    with adapter.client("admin") as admin:
        assert admin.get(METRIC).status_code == 200


def test_any_client_ca_user_is_allowed_in_standalone_mode(adapter: AdapterProcess, tmp_path: Path) -> None:
    alice = issue(CertLayout(adapter.cert_dir).load("ca"), "alice", organizations=["devs"], client=True)
    with client_with(adapter, alice, tmp_path) as client:
        assert client.get(METRIC).status_code == 200


def test_front_proxy_with_user_header(adapter: AdapterProcess) -> None:
    with adapter.client("front-proxy-client") as proxy:
        response = proxy.get(METRIC, headers={"X-Remote-User": "system:serviceaccount:kube-system:hpa",
                                              "X-Remote-Group": "system:serviceaccounts"})
        assert response.status_code == 200


def test_front_proxy_without_user_header_is_anonymous(adapter: AdapterProcess) -> None:
    with adapter.client("front-proxy-client") as proxy:
        assert proxy.get(METRIC).status_code == 401


@pytest.mark.parametrize("headers", [{}, {"X-Remote-User": "admin", "X-Remote-Group": "system:masters"}])
def test_no_certificate_is_401_and_forged_headers_are_ignored(adapter: AdapterProcess,
                                                              headers: dict[str, str]) -> None:
    with adapter.client(None) as anonymous:
        for path in (METRIC, "/apis/external.metrics.k8s.io/v1beta1", "/apis", "/openapi/v2"):
            response = anonymous.get(path, headers=headers)
            assert response.status_code == 401, path
            assert response.json()["reason"] == "Unauthorized"


def test_front_proxy_ca_certificate_with_unlisted_name_is_401(adapter: AdapterProcess, tmp_path: Path) -> None:
    proxy_ca = CertLayout(adapter.cert_dir).load("front_proxy_ca")
    intruder = issue(proxy_ca, "intruder", client=True)
    with client_with(adapter, intruder, tmp_path) as client:
        assert client.get(METRIC, headers={"X-Remote-User": "admin"}).status_code == 401


def test_server_only_certificate_cannot_be_a_client(adapter: AdapterProcess, tmp_path: Path) -> None:
    # OpenSSL already refuses a certificate without client-auth usage during the handshake.
    server_only = issue(CertLayout(adapter.cert_dir).load("ca"), "sneaky", organizations=["system:masters"],
                        server=True)
    with client_with(adapter, server_only, tmp_path) as client, pytest.raises(httpx.HTTPError):
        client.get(METRIC)


def test_certificate_from_unknown_ca_fails_the_handshake(adapter: AdapterProcess, tmp_path: Path) -> None:
    stranger = issue(new_ca("stranger-ca"), "admin", organizations=["system:masters"], client=True)
    with client_with(adapter, stranger, tmp_path) as client, pytest.raises(httpx.HTTPError):
        client.get(METRIC)


def test_bearer_token_without_token_review_is_401(adapter: AdapterProcess) -> None:
    with adapter.client(None) as client:
        assert client.get(METRIC, headers={"Authorization": "Bearer abc"}).status_code == 401
