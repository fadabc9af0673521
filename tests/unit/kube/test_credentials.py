"""Kubeconfigs and the in-cluster service account read into `Credentials`, as kubectl reads them.

Table-driven for the fields; then the parts that must work for real: a client certificate
and CA given inline make a mutual-TLS request (a local HTTPS server that asks for the client
certificate), a token file is read again after a minute, and an `exec` plugin's token (the
official loader, running a real command) reaches the Authorization header.
"""

from __future__ import annotations

import base64
import http.server
import json
import ssl
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapter import certs
from adapter.kube import credentials
from adapter.kube.client import KubeApi
from adapter.kube.credentials import Credentials, KubeconfigError, from_kubeconfig, token_file


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def kubeconfig(path: Path, user: dict[str, Any], cluster: dict[str, Any] | None = None, *,
               current: str | None = "dev", extra_contexts: tuple[str, ...] = ()) -> Path:
    document = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "dev", "cluster": {"server": "https://127.0.0.1:6443", **(cluster or {})}}],
        "users": [{"name": "me", "user": user}],
        "contexts": [{"name": name, "context": {"cluster": "dev", "user": "me"}}
                     for name in ("dev", *extra_contexts)],
    }
    if current:
        document["current-context"] = current
    path.write_text(yaml.safe_dump(document))
    return path


FIELDS = [  # (user, cluster, what Credentials has)
    ({"client-certificate": "me.crt", "client-key": "me.key"}, {"certificate-authority": "ca.crt"},
     {"cert_file": "{dir}/me.crt", "key_file": "{dir}/me.key", "ca_file": "{dir}/ca.crt", "verify": True,
      "authorization": None}),
    ({"token": "abc"}, {"insecure-skip-tls-verify": True},
     {"verify": False, "authorization": "Bearer abc", "cert_file": None}),
    ({"username": "admin", "password": "pw"}, {"certificate-authority-data": b64("PEM")},
     {"ca_data": "PEM", "authorization": "Basic " + b64("admin:pw")}),
    ({"tokenFile": "token"}, {}, {"authorization": "Bearer from-file"}),
    ({}, {}, {"authorization": None, "ca_file": None, "ca_data": None}),
]


@pytest.mark.parametrize(("user", "cluster", "expected"), FIELDS)
def test_kubeconfig_fields(tmp_path: Path, user: dict[str, Any], cluster: dict[str, Any],
                           expected: dict[str, Any]) -> None:
    (tmp_path / "token").write_text("from-file\n")
    found = from_kubeconfig([kubeconfig(tmp_path / "config", user, cluster)])
    assert found.host == "https://127.0.0.1:6443"
    for name, value in expected.items():
        got = found.authorization() if name == "authorization" else getattr(found, name)
        assert got == (value.format(dir=tmp_path) if isinstance(value, str) else value), name


@pytest.mark.parametrize(("context", "current", "message"), [
    ("nope", "dev", "no context 'nope'"),
    (None, None, "no current-context"),
    (None, "gone", "no context 'gone'"),
])
def test_a_kubeconfig_without_the_context_is_a_clear_error(tmp_path: Path, context: str | None,
                                                          current: str | None, message: str) -> None:
    with pytest.raises(KubeconfigError, match=message):
        from_kubeconfig([kubeconfig(tmp_path / "config", {"token": "t"}, current=current)], context)


def test_unreadable_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "config").write_text("clusters: [unclosed")
    with pytest.raises(KubeconfigError, match=r"kubeconfig .*config"):
        from_kubeconfig([tmp_path / "config"])
    with pytest.raises(KubeconfigError, match="No such file"):
        from_kubeconfig([tmp_path / "missing"])


def test_several_files_merge_first_one_wins(tmp_path: Path) -> None:
    first = kubeconfig(tmp_path / "a", {"token": "first"}, current=None)
    second = kubeconfig(tmp_path / "b", {"token": "second"}, {"server": "https://other:1"}, current="dev",
                        extra_contexts=("other",))
    found = from_kubeconfig([first, second])  # current-context from b, user and cluster from a
    assert found.host == "https://127.0.0.1:6443" and found.authorization() == "Bearer first"
    assert from_kubeconfig([first, second], "other").authorization() == "Bearer first"


def test_a_token_file_is_read_again_after_a_minute(tmp_path: Path) -> None:
    path, now = tmp_path / "token", [0.0]
    path.write_text("one")
    token = token_file(path, clock=lambda: now[0])
    assert token() == "one"
    path.write_text("two")
    now[0] = 59.0
    assert token() == "one"
    now[0] = 60.0
    assert token() == "two"
    path.unlink()  # mid-rotation: the last token read, not an error
    now[0] = 200.0
    assert token() == "two"


def test_in_cluster_service_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("sa-token")
    monkeypatch.setattr(credentials, "SERVICE_ACCOUNT_DIR", tmp_path)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    assert credentials.in_cluster()
    found = credentials.load()
    assert found.host == "https://[fd00::1]:443" and found.ca_file == str(tmp_path / "ca.crt")
    assert found.authorization() == "Bearer sa-token"


class _Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        peer = self.connection.getpeercert()
        subject = dict(part[0] for part in peer["subject"]) if peer else {}
        body = json.dumps({"user": subject.get("commonName"), "authorization": self.headers.get("Authorization")})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def mtls_server(tmp_path: Path) -> Iterator[tuple[str, certs.KeyPair]]:
    """An HTTPS server on loopback that requires a client certificate from its CA; it answers
    with the certificate's common name and the Authorization header it got."""
    ca = certs.new_ca("test-ca")
    server_pair = certs.issue(ca, "127.0.0.1", hosts=["127.0.0.1"], server=True)
    server_pair.write(tmp_path / "server.crt", tmp_path / "server.key")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tmp_path / "ca.crt"))
    context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}", ca
    finally:
        httpd.shutdown()
        httpd.server_close()


async def test_inline_certificate_data_makes_a_mutual_tls_request(
        tmp_path: Path, mtls_server: tuple[str, certs.KeyPair]) -> None:
    url, ca = mtls_server
    client = certs.issue(ca, "alice", client=True)
    config = tmp_path / "config"
    config.write_text(certs.kubeconfig(ca, client, url))
    found = credentials.load(config)
    assert found.cert_file and Path(found.cert_file).stat().st_mode & 0o077 == 0  # private
    api = KubeApi(found)
    try:
        assert await api.get("/version") == {"user": "alice", "authorization": None}
    finally:
        await api.aclose()


async def test_an_exec_plugin_token_reaches_the_request(tmp_path: Path,
                                                        mtls_server: tuple[str, certs.KeyPair]) -> None:
    url, ca = mtls_server
    client = certs.issue(ca, "bob", client=True)
    client.write(tmp_path / "bob.crt", tmp_path / "bob.key")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    plugin = tmp_path / "plugin.py"
    plugin.write_text("import json\nprint(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1beta1', "
                      "'kind': 'ExecCredential', 'status': {'token': 'from-plugin'}}))\n")
    config = kubeconfig(tmp_path / "config", {
        "client-certificate": "bob.crt", "client-key": "bob.key",
        "exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": sys.executable,
                 "args": [str(plugin)], "interactiveMode": "Never"}},
        {"server": url, "certificate-authority": "ca.crt"})
    found = credentials.load(config)
    assert isinstance(found, Credentials) and found.authorization() == "Bearer from-plugin"
    api = KubeApi(found)
    try:
        assert await api.get("/version") == {"user": "bob", "authorization": "Bearer from-plugin"}
    finally:
        await api.aclose()
