"""Delegated authentication: the front-proxy and client CAs from kube-system, tokens by TokenReview.

kube-apiserver publishes how to trust it in ConfigMap `kube-system/extension-apiserver-authentication`
(client CA, request-header CA, allowed proxy names, the header names as JSON arrays), and may
change it (CA rotation). `AuthConfigWatch` reads it once before serving, then watches it by
name (the `extension-apiserver-authentication-reader` Role allows exactly that) and, on a
change, calls `Authenticator.update` and adds the new CAs to the TLS server context's trust
store. OpenSSL cannot drop a CA from a context in use, so a rotated-out CA may still complete
a handshake; the authenticator re-verifies every certificate against the current CAs, so such
a certificate is answered 401.

Bearer tokens go to kube-apiserver as TokenReviews, answers (valid or not) cached 10 s under a
digest of the token. A review that cannot be made is a 401 and is not cached. Tokens are never
logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import ssl
from collections.abc import Mapping

import httpx

from adapter.auth.authentication import AuthConfig, Authenticator, RequestHeaderConfig, UserInfo
from adapter.auth.review_cache import ReviewCache
from adapter.kube.client import ApiStatusError, KubeApi, Object
from adapter.kube.resources import Resource
from adapter.kube.watch import Backoff, Reflector

log = logging.getLogger("eventscale.authn")

AUTH_NAMESPACE = "kube-system"
AUTH_CONFIGMAP = "extension-apiserver-authentication"
TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"


def _names(data: Mapping[str, str], key: str) -> tuple[str, ...]:
    raw = data.get(key)
    if not raw:
        return ()
    values = json.loads(raw)
    if not isinstance(values, list):
        raise ValueError(f"{key} is not a JSON array")
    return tuple(str(v) for v in values)


def parse_auth_config(data: Mapping[str, str]) -> AuthConfig:
    """The ConfigMap's data as an `AuthConfig`; missing header keys mean none (as upstream)."""
    client_ca = data.get("client-ca-file", "").encode() or None
    proxy_ca = data.get("requestheader-client-ca-file", "").encode()
    if not proxy_ca:
        return AuthConfig(client_ca=client_ca)
    requestheader = RequestHeaderConfig(
        client_ca=proxy_ca,
        allowed_names=_names(data, "requestheader-allowed-names"),
        username_headers=_names(data, "requestheader-username-headers"),
        uid_headers=_names(data, "requestheader-uid-headers"),
        group_headers=_names(data, "requestheader-group-headers"),
        extra_headers_prefixes=_names(data, "requestheader-extra-headers-prefix"),
    )
    return AuthConfig(client_ca=client_ca, requestheader=requestheader)


class AuthConfigWatch:
    """Keeps an Authenticator (and TLS context) in step with the ConfigMap."""

    def __init__(self, api: KubeApi, namespace: str = AUTH_NAMESPACE, name: str = AUTH_CONFIGMAP) -> None:
        self.api = api
        self.resource = Resource("", "v1", "configmaps", "ConfigMap", namespace=namespace,
                                 field_selector=f"metadata.name={name}")
        self.name = name
        self.config: AuthConfig | None = None
        self.updates = 0
        self._targets: list[tuple[Authenticator, ssl.SSLContext | None]] = []
        self._trusted: set[bytes] = set()

    def follow(self, authenticator: Authenticator, context: ssl.SSLContext | None = None) -> None:
        """Call `authenticator.update` and extend `context`'s trust store on every change."""
        self._targets.append((authenticator, context))
        if context is not None and self.config is not None:
            self._trust(context, self.config)

    async def load(self, attempts: int = 10) -> AuthConfig:
        """Read the ConfigMap now (before serving), retrying with backoff."""
        backoff = Backoff()
        path = f"{self.resource.path}/{self.name}"
        for attempt in range(1, attempts + 1):
            try:
                self._set(await self.api.get(path))
                assert self.config is not None
                return self.config
            except (ApiStatusError, httpx.HTTPError, ValueError) as exc:
                if attempt == attempts:
                    raise SystemExit(f"cannot read ConfigMap {self.resource.namespace}/{self.name}: {exc}") from None
                log.warning("configmap=%s/%s error=%r attempt=%d", self.resource.namespace, self.name,
                            str(exc), attempt)
                await asyncio.sleep(backoff.next())
        raise AssertionError("unreachable")

    async def run(self) -> None:
        await Reflector(self.api, self.resource, self, lambda obj: obj).run()

    def listed(self, resource: Resource, objects: list[Object]) -> None:
        if objects:
            self.changed(resource, objects[0], deleted=False)
        else:
            log.warning("configmap=%s/%s missing; keeping the last settings", resource.namespace, self.name)

    def changed(self, resource: Resource, obj: Object, deleted: bool) -> None:
        if deleted:
            log.warning("configmap=%s/%s deleted; keeping the last settings", resource.namespace, self.name)
            return
        try:
            self._set(obj)
        except ValueError as exc:
            log.error("configmap=%s/%s invalid, keeping the last settings: %s", resource.namespace, self.name, exc)

    def _set(self, obj: Object) -> None:
        config = parse_auth_config(obj.get("data") or {})
        if config == self.config:
            return
        first = self.config is None
        self.config = config
        for authenticator, context in self._targets:
            authenticator.update(config)
            if context is not None:
                self._trust(context, config)
        if not first:
            self.updates += 1
        log.info("authentication settings %s from %s/%s: client_ca=%s requestheader_ca=%s allowed_names=%s",
                 "loaded" if first else "updated", self.resource.namespace, self.name, config.client_ca is not None,
                 config.requestheader is not None,
                 list(config.requestheader.allowed_names) if config.requestheader else [])

    def _trust(self, context: ssl.SSLContext, config: AuthConfig) -> None:
        for pem in config.trusted_cas():
            if pem not in self._trusted:
                context.load_verify_locations(cadata=pem.decode())
                self._trusted.add(pem)


class TokenReviewer:
    """`adapter.auth.authentication.TokenReviewer` by TokenReview (authentication.k8s.io/v1)."""

    def __init__(self, api: KubeApi, ttl: float = 10.0) -> None:
        self.api = api
        self.cache: ReviewCache[str, UserInfo | None] = ReviewCache(ttl)

    async def review(self, token: str) -> UserInfo | None:
        digest = hashlib.sha256(token.encode()).hexdigest()
        try:
            return await self.cache.get(digest, lambda: self._ask(token))
        except (ApiStatusError, httpx.HTTPError) as exc:
            log.warning("tokenreview failed: %s", type(exc).__name__ if isinstance(exc, httpx.HTTPError) else exc)
            return None

    async def _ask(self, token: str) -> UserInfo | None:
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
        status = (await self.api.post(TOKEN_REVIEWS, body)).get("status") or {}
        if not status.get("authenticated"):
            return None
        user = status.get("user") or {}
        return UserInfo(
            name=str(user.get("username", "")),
            uid=str(user.get("uid", "")),
            groups=tuple(user.get("groups") or ()),
            extra={k: tuple(v) for k, v in (user.get("extra") or {}).items()},
        )
