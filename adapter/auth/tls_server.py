"""Hand the TLS peer certificate to the ASGI app, which uvicorn does not do.

uvicorn builds the ASGI scope without the ASGI TLS extension, so the app cannot see who
connected. We subclass uvicorn's protocol: when a connection is made we read the peer
certificate from the transport's `ssl_object` once, and wrap that connection's app so that every
request scope carries `scope["extensions"]["tls"]` as the ASGI TLS extension specifies
(`client_cert_chain`: PEM strings, leaf first; `tls_version`; `cipher_suite`).

The TLS context asks for a certificate but does not require one (CERT_OPTIONAL) so that kubelet
probes and anonymous discovery work; a certificate that chains to neither trusted CA fails the
handshake. Which CA a certificate belongs to is decided later, per certificate, by `authn`.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

Scope = dict[str, Any]


class _WithPeerCertificate:
    """The app of one connection: adds the TLS extension to each request scope."""

    __slots__ = ("_app", "_tls")

    def __init__(self, app: Any, tls: dict[str, Any]) -> None:
        self._app = app
        self._tls = tls

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        scope.setdefault("extensions", {})["tls"] = self._tls
        await self._app(scope, receive, send)


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    cipher = ssl_object.cipher()
    return {
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "tls_version": ssl_object.version(),
        "cipher_suite": cipher[0] if cipher else None,
    }


class PeerCertificateProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus the ASGI TLS extension."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        tls = tls_extension(transport)
        if tls is not None:
            self.app = _WithPeerCertificate(self.app, tls)


def client_certificate(scope: Scope) -> str | None:
    """The peer's leaf certificate (PEM) of this request, if one was presented."""
    chain = scope.get("extensions", {}).get("tls", {}).get("client_cert_chain")
    return chain[0] if chain else None


def server_context(cert: Path, key: Path, client_cas: list[bytes]) -> ssl.SSLContext:
    """TLS 1.2+ server context that verifies an optional client certificate against `client_cas`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    context.verify_mode = ssl.CERT_OPTIONAL
    for pem in client_cas:
        context.load_verify_locations(cadata=pem.decode())
    context.set_alpn_protocols(["http/1.1"])
    return context
