"""Who is asking: the generic apiserver's authentication order, for an aggregated server.

1. Front proxy: a peer certificate issued by the request-header CA, with client-auth usage and a
   CN in the allowed names, makes the `X-Remote-*` headers trusted. No username header means
   this step does not apply. Headers on any other request are ignored.
2. Client certificate issued by the client CA: user = CN, groups = O.
3. Bearer token, through a `TokenReviewer` (cluster mode only).
4. Anonymous: `system:anonymous` in `system:unauthenticated`.

A presented certificate that belongs to neither CA, or a rejected token, is 401. Every
authenticated user also gets `system:authenticated`. Certificates are classified once and
remembered, since kube-apiserver reuses one proxy certificate for every request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote

from cachetools import LRUCache
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from adapter.auth.tls_server import Scope, client_certificate
from adapter.kube.wire import ApiError

AUTHENTICATED = "system:authenticated"
MAX_KEYED_PEM = 8192  # characters: certificates up to this size are cache keys themselves


@dataclass(frozen=True)
class UserInfo:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def is_anonymous(self) -> bool:
        return self.name == "system:anonymous"


ANONYMOUS = UserInfo("system:anonymous", groups=("system:unauthenticated",))


@dataclass(frozen=True)
class RequestHeaderConfig:
    """The front-proxy settings, as in kube-system/extension-apiserver-authentication."""

    client_ca: bytes
    allowed_names: tuple[str, ...] = ()
    username_headers: tuple[str, ...] = ("X-Remote-User",)
    uid_headers: tuple[str, ...] = ("X-Remote-Uid",)
    group_headers: tuple[str, ...] = ("X-Remote-Group",)
    extra_headers_prefixes: tuple[str, ...] = ("X-Remote-Extra-",)


@dataclass(frozen=True)
class AuthConfig:
    client_ca: bytes | None = None
    requestheader: RequestHeaderConfig | None = None

    def trusted_cas(self) -> list[bytes]:
        cas = [self.client_ca] if self.client_ca else []
        return cas + ([self.requestheader.client_ca] if self.requestheader else [])


class TokenReviewer(Protocol):
    async def review(self, token: str) -> UserInfo | None:
        """The user a bearer token belongs to, or None when the token is not valid."""


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized")


@dataclass(frozen=True)
class _CertIdentity:
    front_proxy: bool = False
    user: UserInfo | None = None


def _load_bundle(pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem) if pem else []


def _issued_by(cert: x509.Certificate, cas: Sequence[x509.Certificate]) -> bool:
    now = dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        return False
    for ca in cas:
        try:
            cert.verify_directly_issued_by(ca)
            return True
        except (InvalidSignature, ValueError, TypeError):  # signature, issuer or algorithm mismatch
            continue
    return False


def _allows_client_auth(cert: x509.Certificate) -> bool:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return ExtendedKeyUsageOID.CLIENT_AUTH in usages or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in name.get_attributes_for_oid(oid)]


def _header_values(headers: Sequence[tuple[bytes, bytes]], names: Sequence[str]) -> list[str]:
    wanted = {n.lower().encode() for n in names}
    return [v.decode("latin-1") for k, v in headers if k in wanted]


class Authenticator:
    def __init__(self, config: AuthConfig, tokens: TokenReviewer | None = None) -> None:
        self._tokens = tokens
        self.update(config)

    def update(self, config: AuthConfig) -> None:
        """Take new CAs or header settings (the ConfigMap changed); forget classified certs."""
        self.config = config
        self._client_cas = _load_bundle(config.client_ca or b"")
        self._proxy_cas = _load_bundle(config.requestheader.client_ca if config.requestheader else b"")
        self._identities: LRUCache[str | bytes, _CertIdentity] = LRUCache(maxsize=256)

    async def authenticate(self, scope: Scope) -> UserInfo:
        pem = client_certificate(scope)
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        if pem is not None:
            identity = self._identify(pem)
            if identity.front_proxy:
                user = self._from_headers(headers)
                if user is not None:
                    return user
            elif identity.user is not None:
                return identity.user
            else:
                raise unauthorized()
        token = self._bearer(headers)
        if token is not None:
            user = await self._tokens.review(token) if self._tokens else None
            if user is None:
                raise unauthorized()
            return _with_authenticated(user)
        return ANONYMOUS

    def _identify(self, pem: str) -> _CertIdentity:
        # A connection's PEM string is one object whose hash Python keeps, so keying by it costs
        # nothing per request; a large certificate is keyed by its digest instead (bounded memory).
        key: str | bytes = pem if len(pem) <= MAX_KEYED_PEM else hashlib.sha256(pem.encode()).digest()
        identity = self._identities.get(key)
        if identity is None:
            identity = self._classify(x509.load_pem_x509_certificate(pem.encode()))
            self._identities[key] = identity
        return identity

    def _classify(self, cert: x509.Certificate) -> _CertIdentity:
        if not _allows_client_auth(cert):
            return _CertIdentity()
        names = _attr(cert.subject, NameOID.COMMON_NAME)
        common_name = names[0] if names else ""
        rh = self.config.requestheader
        if rh and _issued_by(cert, self._proxy_cas):
            allowed = not rh.allowed_names or common_name in rh.allowed_names
            return _CertIdentity(front_proxy=allowed)
        if _issued_by(cert, self._client_cas) and common_name:
            groups = tuple(_attr(cert.subject, NameOID.ORGANIZATION_NAME))
            return _CertIdentity(user=_with_authenticated(UserInfo(common_name, groups=groups)))
        return _CertIdentity()

    def _from_headers(self, headers: Sequence[tuple[bytes, bytes]]) -> UserInfo | None:
        rh = self.config.requestheader
        assert rh is not None
        name = next((v for v in _header_values(headers, rh.username_headers) if v), None)
        if name is None:
            return None
        uid = next((v for v in _header_values(headers, rh.uid_headers) if v), "")
        groups = tuple(_header_values(headers, rh.group_headers))
        return _with_authenticated(UserInfo(name, uid, groups, _extras(headers, rh.extra_headers_prefixes)))

    @staticmethod
    def _bearer(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
        for key, value in headers:
            if key == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and token.strip():
                    return token.strip()
        return None


def _extras(headers: Sequence[tuple[bytes, bytes]], prefixes: Sequence[str]) -> dict[str, tuple[str, ...]]:
    extra: dict[str, list[str]] = {}
    lowered = [p.lower().encode() for p in prefixes]
    for key, value in headers:
        for prefix in lowered:
            if key.startswith(prefix) and len(key) > len(prefix):
                name = unquote(key[len(prefix):].decode("latin-1")).lower()
                extra.setdefault(name, []).append(value.decode("latin-1"))
    return {k: tuple(v) for k, v in extra.items()}


def _with_authenticated(user: UserInfo) -> UserInfo:
    if AUTHENTICATED in user.groups or user.is_anonymous:
        return user
    return UserInfo(user.name, user.uid, (*user.groups, AUTHENTICATED), user.extra)


def describe(user: UserInfo) -> dict[str, Any]:
    """A log-safe description of a user (no tokens, no certificates)."""
    return {"user": user.name, "groups": list(user.groups)}
