"""Self-managed serving certificates: no cert tooling needed to install the adapter.

With `--self-signed-certs` the adapter makes a fresh CA and a serving certificate for
`<service>.<namespace>.svc` (and the other in-cluster names) in a writable directory (an
emptyDir) when it starts, and writes the CA into the `caBundle` of APIService
`v1beta1.external.metrics.k8s.io`, as KEDA's own certificate management does. Only the
CA certificate is kept, never its key. The APIService is checked again every minute and
patched back should a re-apply of the manifests have reset its `caBundle`.

One replica per self-signed adapter: two replicas would each register their own CA. For more
replicas serve certificates from a Secret and register their CA with `make manifests`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from pathlib import Path

import httpx

from .. import certs
from .client import ApiStatusError, KubeApi

log = logging.getLogger("eventscale.apiservice")

APISERVICE = "v1beta1.external.metrics.k8s.io"
APISERVICE_PATH = f"/apis/apiregistration.k8s.io/v1/apiservices/{APISERVICE}"


def write_self_signed(directory: Path, service: str, namespace: str) -> bytes:
    """Write `ca.crt`, `serving.crt` and `serving.key` into `directory`; return the CA PEM."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = certs.new_ca("eventscale-self-signed-ca")
    hosts = [*certs.service_hosts(service, namespace), *certs.LOOPBACK_HOSTS]
    serving = certs.issue(ca, f"{service}.{namespace}.svc", hosts=hosts, server=True)
    layout = certs.CertLayout(directory)
    serving.write(*layout.paths("serving"))
    layout.paths("ca")[0].write_bytes(ca.cert_pem)
    log.info("self-signed serving certificate written dir=%s service=%s.%s.svc", directory, service, namespace)
    return ca.cert_pem


class CABundleRegistration:
    """Keeps the APIService's caBundle equal to our CA."""

    def __init__(self, api: KubeApi, ca_pem: bytes, interval: float = 60.0, retry: float = 5.0) -> None:
        self.api = api
        self.bundle = base64.b64encode(ca_pem).decode()
        self.interval = interval
        self.retry = retry
        self.patches = 0

    async def ensure(self) -> None:
        current = await self.api.get(APISERVICE_PATH)
        if (current.get("spec") or {}).get("caBundle") == self.bundle:
            return
        await self.api.merge_patch(APISERVICE_PATH, {"spec": {"caBundle": self.bundle, "insecureSkipTLSVerify": False}})
        self.patches += 1
        log.info("apiservice=%s caBundle registered", APISERVICE)

    async def run(self) -> None:
        while True:
            try:
                await self.ensure()
                delay = self.interval
            except (ApiStatusError, httpx.HTTPError) as exc:
                log.warning("apiservice=%s cannot register caBundle: %s", APISERVICE, str(exc) or type(exc).__name__)
                delay = self.retry
            await asyncio.sleep(delay)
