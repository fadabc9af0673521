"""The aggregation layer reaches a server on this host through an ExternalName Service.

A throwaway HTTPS server (group probe.eventscale.test, not the adapter's group) is registered
as an APIService behind `externalName: localhost`; kube-apiserver must mark it Available and
proxy requests to it with its front-proxy client certificate and X-Remote-* headers.
"""

from __future__ import annotations

import json
import ssl
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from controlplane import ControlPlane, wait_for

from adapter import certs

pytestmark = pytest.mark.e2e

GROUP, VERSION = "probe.eventscale.test", "v1"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path == f"/apis/{GROUP}/{VERSION}":
            self._json(200, {
                "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{GROUP}/{VERSION}",
                "resources": [{"name": "echoes", "singularName": "", "namespaced": True,
                               "kind": "Echo", "verbs": ["get"]}],
            })
        elif path.startswith(f"/apis/{GROUP}/{VERSION}/namespaces/"):
            peer = self.connection.getpeercert() or {}
            subject = dict(pair[0] for pair in peer.get("subject", ()))
            self._json(200, {
                "kind": "Echo", "apiVersion": f"{GROUP}/{VERSION}",
                "user": self.headers.get("X-Remote-User"),
                "groups": self.headers.get_all("X-Remote-Group") or [],
                "peerCN": subject.get("commonName"),
            })
        else:
            self._json(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                             "reason": "NotFound", "code": 404})


@pytest.fixture
def probe_server(control_plane: ControlPlane) -> Iterator[tuple[int, bytes]]:
    """(port, CA PEM) of an HTTPS server on 127.0.0.1 that asks for the front-proxy cert."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        ca = certs.new_ca("probe-ca")
        serving = certs.issue(ca, "probe", hosts=["localhost", "127.0.0.1",
                                                 *certs.service_hosts("probe", "default")], server=True)
        serving.write(d / "tls.crt", d / "tls.key")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(d / "tls.crt", d / "tls.key")
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(cafile=str(control_plane.front_proxy_ca_file))
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.server_address[1], ca.cert_pem
        finally:
            server.shutdown()
            server.server_close()


def test_apiservice_through_externalname_service(control_plane: ControlPlane,
                                                 probe_server: tuple[int, bytes]) -> None:
    import base64

    port, ca_pem = probe_server
    objects = [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "probe", "namespace": "default"},
         "spec": {"type": "ExternalName", "externalName": "localhost",
                  "ports": [{"port": port, "protocol": "TCP"}]}},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
         "metadata": {"name": f"{VERSION}.{GROUP}"},
         "spec": {"group": GROUP, "version": VERSION, "groupPriorityMinimum": 100,
                  "versionPriority": 100, "caBundle": base64.b64encode(ca_pem).decode(),
                  "service": {"name": "probe", "namespace": "default", "port": port}}},
    ]
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    control_plane.kubectl("apply", "-f", "-", input=manifest)
    try:
        def available() -> dict[str, Any] | None:
            status = control_plane.kubectl_json("get", "apiservice", f"{VERSION}.{GROUP}")["status"]
            for cond in status.get("conditions", []):
                if cond["type"] == "Available":
                    return cond if cond["status"] == "True" else None
            return None

        wait_for(available, timeout=60, what=f"APIService {VERSION}.{GROUP} Available")
        echo = json.loads(control_plane.kubectl(
            "get", "--raw", f"/apis/{GROUP}/{VERSION}/namespaces/default/echoes").stdout)
        assert echo["user"] == "admin"
        assert "system:masters" in echo["groups"]
        assert echo["peerCN"] == "front-proxy-client"
    finally:
        control_plane.kubectl("delete", "-f", "-", "--wait=false", input=manifest, check=False)
