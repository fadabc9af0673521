"""Certificates: a small PKI for serving, for kubectl and for the aggregator's front proxy.

Everything here is ECDSA P-256 made with `cryptography`. The layout written by
`python -m adapter certs` mirrors what a kube-apiserver needs to aggregate us:

    ca.crt / ca.key                       client CA, also the CA of the serving certificate
    serving.crt / serving.key             the adapter's TLS certificate (SANs for loopback and in-cluster)
    admin.crt / admin.key                 kubectl client certificate, group system:masters
    front-proxy-ca.crt / .key             request-header CA (what kube-apiserver's proxy cert chains to)
    front-proxy-client.crt / .key         the proxy client certificate kube-apiserver presents
    kubeconfig                            kubectl -> https://127.0.0.1:<port> with the admin certificate

Existing files are reused unless `force` is set, so re-running never invalidates a registered
APIService `caBundle`. Private keys are written with mode 0600.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=3650)


@dataclass(frozen=True)
class KeyPair:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def write(self, cert_path: Path, key_path: Path) -> None:
        cert_path.write_bytes(self.cert_pem)
        write_private(key_path, self.key_pem)

    @classmethod
    def load(cls, cert_path: Path, key_path: Path) -> KeyPair:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path.name}: expected an EC private key")
        return cls(cert, key)


def write_private(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only, without a window where it is wider."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, 0o600)


def _name(common_name: str, organizations: Iterable[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _key_usage(ca: bool) -> x509.KeyUsage:
    """Signatures for every certificate; certificate and CRL signing for a CA only."""
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False,
    )


def new_ca(common_name: str) -> KeyPair:
    """A self-signed certificate authority."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = _name(common_name)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert, key)


def issue(
    ca: KeyPair,
    common_name: str,
    *,
    organizations: Sequence[str] = (),
    hosts: Sequence[str] = (),
    server: bool = False,
    client: bool = False,
) -> KeyPair:
    """A leaf certificate signed by `ca`; `hosts` become DNS or IP subject alternative names."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organizations))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName(_san(hosts)), critical=False)
    return KeyPair(builder.sign(ca.key, hashes.SHA256()), key)


def _san(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def service_hosts(service: str, namespace: str) -> list[str]:
    """The names a Service is reached by in-cluster, as the aggregator verifies them."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class CertLayout:
    """Where each piece of the adapter's PKI lives in a certificate directory."""

    directory: Path
    files: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {
            "ca": ("ca.crt", "ca.key"),
            "serving": ("serving.crt", "serving.key"),
            "admin": ("admin.crt", "admin.key"),
            "front_proxy_ca": ("front-proxy-ca.crt", "front-proxy-ca.key"),
            "front_proxy_client": ("front-proxy-client.crt", "front-proxy-client.key"),
        }
    )

    def paths(self, role: str) -> tuple[Path, Path]:
        cert, key = self.files[role]
        return self.directory / cert, self.directory / key

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    def load(self, role: str) -> KeyPair:
        return KeyPair.load(*self.paths(role))

    def exists(self, role: str) -> bool:
        return all(path.exists() for path in self.paths(role))


FRONT_PROXY_CLIENT_CN = "front-proxy-client"


def generate(
    directory: Path,
    *,
    service: str = "eventscale-adapter",
    namespace: str = "eventscale",
    extra_hosts: Sequence[str] = (),
    port: int = 6443,
    force: bool = False,
) -> list[str]:
    """Create (or reuse) the whole layout; return the names of the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    layout = CertLayout(directory)
    written: list[str] = []

    def ensure(role: str, make: Callable[[], KeyPair]) -> KeyPair:
        if layout.exists(role) and not force:
            return layout.load(role)
        pair = make()
        pair.write(*layout.paths(role))
        written.extend(path.name for path in layout.paths(role))
        return pair

    ca = ensure("ca", lambda: new_ca("eventscale-ca"))
    hosts = [*LOOPBACK_HOSTS, *service_hosts(service, namespace), *extra_hosts]
    ensure("serving", lambda: issue(ca, f"{service}.{namespace}.svc", hosts=hosts, server=True))
    admin = ensure("admin", lambda: issue(ca, "admin", organizations=["system:masters"], client=True))
    proxy_ca = ensure("front_proxy_ca", lambda: new_ca("eventscale-front-proxy-ca"))
    ensure("front_proxy_client", lambda: issue(proxy_ca, FRONT_PROXY_CLIENT_CN, client=True))
    config = kubeconfig(ca, admin, f"https://127.0.0.1:{port}").encode()
    if not layout.kubeconfig.exists() or layout.kubeconfig.read_bytes() != config:  # e.g. another --port
        write_private(layout.kubeconfig, config)
        written.append(layout.kubeconfig.name)
    return written


def kubeconfig(ca: KeyPair, user: KeyPair, server: str, name: str = "eventscale") -> str:
    """A kubeconfig with inline certificate data, so it can be copied anywhere."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {
            "server": server, "certificate-authority-data": b64(ca.cert_pem)}}],
        "users": [{"name": "admin", "user": {
            "client-certificate-data": b64(user.cert_pem), "client-key-data": b64(user.key_pem)}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": "admin"}}],
        "current-context": name,
    }
    return yaml.safe_dump(config, sort_keys=False)
