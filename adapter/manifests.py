"""`python -m adapter manifests`: register the CA of a certificate directory in the APIService.

For adapters serving certificates of their own (made by `python -m adapter certs`, mounted from
a Secret, or an adapter run outside the cluster) instead of `--self-signed-certs`: the
APIService manifest gets `spec.caBundle` = the CA, so `kubectl apply -k manifests/` registers
it. Only that one file is rewritten; its header comment is kept.
"""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from adapter.certs import CertLayout

APISERVICE_FILE = Path("deploy/apiservice.yaml")


def write_ca_bundle(cert_dir: Path, out: Path) -> Path:
    """Set the APIService's caBundle in `<out>/deploy/apiservice.yaml` to `<cert_dir>/ca.crt`."""
    ca = CertLayout(cert_dir).paths("ca")[0]
    if not ca.exists():
        raise SystemExit(f"{ca}: no CA; run `python -m adapter certs --cert-dir {cert_dir}` first")
    path = out / APISERVICE_FILE
    text = path.read_text()
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    document = yaml.safe_load(text)
    if document.get("kind") != "APIService":
        raise SystemExit(f"{path}: not an APIService")
    document["spec"]["caBundle"] = base64.b64encode(ca.read_bytes()).decode()
    document["spec"].pop("insecureSkipTLSVerify", None)
    path.write_text(header + yaml.safe_dump(document, sort_keys=False))
    return path
