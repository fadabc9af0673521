"""Self-managed serving certificates, shared by every replica through a Secret.

With `--self-signed-certs` no certificate tooling is needed to install the adapter. As KEDA's
certificate rotation does, the CA and the serving certificate live in a Secret of the adapter's
namespace (`eventscale-adapter-certs`, type `kubernetes.io/tls` plus `ca.crt`), so every replica
serves a certificate of the same CA and they all write the same `caBundle`:

* At start: GET the Secret. If it is missing, unreadable, not valid for the Service's names, or
  expires within `RENEW_BEFORE`, generate a new CA and serving certificate and CREATE it (409
  AlreadyExists: another replica won the race, read its Secret) or UPDATE it with the
  resourceVersion read (409 Conflict: someone else replaced it, read again).
* Write `ca.crt`, `serving.crt` and `serving.key` into `--cert-dir` (an in-memory emptyDir), and
  set the `caBundle` of APIService `v1beta1.external.metrics.k8s.io` to that CA: every replica
  patches the same bytes.
* Every minute: read the Secret again (load a replacement into the live TLS context; heal a
  deleted or expiring one the same way as at start), then check the `caBundle` (patch it back
  should a re-apply of the manifests have reset it).

The CA key is never stored: whenever anything must change, CA and certificate are replaced
together. Both are valid for ten years and renewed 90 days before they expire.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from adapter import certs
from adapter.kube.client import ApiStatusError, KubeApi, Object

log = logging.getLogger("eventscale.apiservice")

APISERVICE = "v1beta1.external.metrics.k8s.io"
APISERVICE_PATH = f"/apis/apiregistration.k8s.io/v1/apiservices/{APISERVICE}"
SECRET_NAME = "eventscale-adapter-certs"
RENEW_BEFORE = dt.timedelta(days=90)


@dataclass(frozen=True)
class ServingCerts:
    """The CA certificate and the serving key pair it signed, as PEM."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    @classmethod
    def generate(cls, hosts: list[str]) -> ServingCerts:
        ca = certs.new_ca("eventscale-self-signed-ca")
        serving = certs.issue(ca, hosts[0], hosts=hosts, server=True)
        return cls(ca.cert_pem, serving.cert_pem, serving.key_pem)

    @classmethod
    def from_secret(cls, secret: Object) -> ServingCerts:
        data = secret.get("data") or {}
        try:
            return cls(*(base64.b64decode(data[key]) for key in ("ca.crt", "tls.crt", "tls.key")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"missing or malformed key {exc}") from None

    def secret_data(self) -> dict[str, str]:
        return {key: base64.b64encode(pem).decode() for key, pem in
                (("ca.crt", self.ca_pem), ("tls.crt", self.cert_pem), ("tls.key", self.key_pem))}

    def problem(self, hosts: list[str], now: dt.datetime | None = None) -> str | None:
        """Why these cannot serve `hosts` until `RENEW_BEFORE` from now; None when they can."""
        now = now or dt.datetime.now(dt.UTC)
        try:
            ca = x509.load_pem_x509_certificate(self.ca_pem)
            cert = x509.load_pem_x509_certificate(self.cert_pem)
            key = serialization.load_pem_private_key(self.key_pem, password=None)
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature) as exc:
            return f"unreadable or not signed by its CA ({exc or type(exc).__name__})"
        if key.public_key() != cert.public_key():
            return "the key does not belong to the certificate"
        for which, c in (("CA", ca), ("serving certificate", cert)):
            if c.not_valid_before_utc > now or c.not_valid_after_utc - now < RENEW_BEFORE:
                return f"{which} valid {c.not_valid_before_utc:%Y-%m-%d} to {c.not_valid_after_utc:%Y-%m-%d}"
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return "no subject alternative names"
        names = {*san.get_values_for_type(x509.DNSName), *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))}
        missing = [host for host in hosts if host not in names]
        return f"not valid for {', '.join(missing)}" if missing else None

    def write(self, directory: Path) -> None:
        """`ca.crt`, `serving.crt` and `serving.key` (0600) in `directory`; never a CA key."""
        directory.mkdir(parents=True, exist_ok=True)
        layout = certs.CertLayout(directory)
        cert_path, key_path = layout.paths("serving")
        certs.write_private(key_path, self.key_pem)
        cert_path.write_bytes(self.cert_pem)
        layout.paths("ca")[0].write_bytes(self.ca_pem)


def serving_hosts(service: str, namespace: str) -> list[str]:
    """`<service>.<namespace>.svc` first (what the aggregator verifies), the other names, loopback."""
    names = certs.service_hosts(service, namespace)
    return [f"{service}.{namespace}.svc", *(n for n in names if n != f"{service}.{namespace}.svc"),
            *certs.LOOPBACK_HOSTS]


class SharedServingCerts:
    """The serving certificate from the shared Secret, in the cert dir and the APIService caBundle."""

    def __init__(self, api: KubeApi, cert_dir: Path, service: str, namespace: str, secret: str = SECRET_NAME,
                 *, interval: float = 60.0, retry: float = 5.0, attempts: int = 5) -> None:
        self.api = api
        self.cert_dir = cert_dir
        self.namespace = namespace
        self.secret = secret
        self.hosts = serving_hosts(service, namespace)
        self.interval = interval
        self.retry = retry
        self.attempts = attempts
        self.current: ServingCerts | None = None
        self.context: ssl.SSLContext | None = None  # set once serving; reloaded when the Secret changes
        self.patches = 0
        self.registered = False

    @property
    def secret_path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/secrets/{self.secret}"

    async def ensure_secret(self) -> ServingCerts:
        """The valid certificates of the Secret, creating or replacing it if need be."""
        for _ in range(self.attempts):
            try:
                found: Object | None = await self.api.get(self.secret_path)
            except ApiStatusError as exc:
                if exc.code != 404:
                    raise
                found = None
            if found is not None:
                try:
                    stored = ServingCerts.from_secret(found)
                    problem = stored.problem(self.hosts)
                except ValueError as exc:
                    problem = str(exc)
                if problem is None:
                    return stored
                log.info("secret=%s/%s replacing: %s", self.namespace, self.secret, problem)
            fresh = ServingCerts.generate(self.hosts)
            body: Object = {
                "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": {"name": self.secret, "namespace": self.namespace,
                             "labels": {"app.kubernetes.io/part-of": "eventscale"}},
                "data": fresh.secret_data(),
            }
            try:
                if found is None:
                    await self.api.post(f"/api/v1/namespaces/{self.namespace}/secrets", body)
                else:
                    body["metadata"]["resourceVersion"] = found["metadata"]["resourceVersion"]
                    await self.api.put(self.secret_path, body)
            except ApiStatusError as exc:
                if exc.code == 409:  # AlreadyExists or Conflict: another replica wrote first; use its
                    log.info("secret=%s/%s written by another replica (%s); reading it", self.namespace,
                             self.secret, exc.reason or exc.code)
                    continue
                raise
            log.info("secret=%s/%s %s with a new CA", self.namespace, self.secret,
                     "created" if found is None else "updated")
            return fresh
        raise RuntimeError(f"secret {self.namespace}/{self.secret}: still contended after {self.attempts} tries")

    async def load(self) -> ServingCerts:
        """At start: the Secret's certificates into the cert dir, and the caBundle set."""
        serving = await self.ensure_secret()
        self._use(serving)
        try:
            await self.ensure_ca_bundle()
            self.registered = True
        except (ApiStatusError, httpx.HTTPError) as exc:  # `run` tries again soon
            log.warning("apiservice=%s cannot register caBundle: %s", APISERVICE, str(exc) or type(exc).__name__)
        return serving

    def _use(self, serving: ServingCerts) -> None:
        if serving == self.current:
            return
        serving.write(self.cert_dir)
        if self.context is not None:  # new connections get the new certificate
            cert, key = certs.CertLayout(self.cert_dir).paths("serving")
            self.context.load_cert_chain(str(cert), str(key))
        log.info("serving certificate of secret=%s/%s in dir=%s%s", self.namespace, self.secret, self.cert_dir,
                 " (reloaded)" if self.current is not None else "")
        self.current = serving

    async def ensure_ca_bundle(self) -> None:
        assert self.current is not None
        bundle = base64.b64encode(self.current.ca_pem).decode()
        apiservice = await self.api.get(APISERVICE_PATH)
        if (apiservice.get("spec") or {}).get("caBundle") == bundle:
            return
        await self.api.merge_patch(APISERVICE_PATH, {"spec": {"caBundle": bundle, "insecureSkipTLSVerify": False}})
        self.patches += 1
        log.info("apiservice=%s caBundle registered", APISERVICE)

    async def run(self) -> None:
        """Every `interval` (every `retry` after a failure): follow the Secret, keep the caBundle."""
        while True:
            await asyncio.sleep(self.interval if self.registered else self.retry)
            try:
                self._use(await self.ensure_secret())
                await self.ensure_ca_bundle()
                self.registered = True
            except (ApiStatusError, httpx.HTTPError, RuntimeError, OSError) as exc:
                self.registered = False
                log.warning("secret=%s/%s apiservice=%s cannot check the certificates: %s", self.namespace,
                            self.secret, APISERVICE, str(exc) or type(exc).__name__)
