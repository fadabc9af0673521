"""TLS material for the test servers and the scalers that talk to them, as PEM text.

Every harness server that speaks TLS (redis, rabbitmq, the Service Bus stand-in) and every test
that hands a scaler `ca`, `cert`, `key` or `keyPassword` uses one `TLSMaterial`: a fresh CA
(made with `adapter.certs`), a server certificate for 127.0.0.1 and localhost that may also act
as a client (redis cluster nodes and sentinels connect to each other with it), and a client
certificate whose key also comes encrypted with `KEY_PASSWORD`. Servers read files, so
`write_server_files` puts the CA and the server pair into a directory, the key readable by its
owner only; `client_context` gives a test's own client an `ssl.SSLContext` that trusts the CA
and, when asked, presents the client certificate.
"""

from __future__ import annotations

import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from cryptography.hazmat.primitives import serialization

from adapter.certs import issue, new_ca, write_private

KEY_PASSWORD = "Key-Pa55phrase-s3cret"


class ServerFiles(NamedTuple):
    """Where `write_server_files` put the CA, the server certificate and its key."""

    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class TLSMaterial:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, as PEM text."""

    ca_pem: str
    server_cert_pem: str
    server_key_pem: str
    client_cert_pem: str
    client_key_pem: str
    client_key_encrypted_pem: str  # the same key, encrypted with KEY_PASSWORD

    @classmethod
    def generate(cls, name: str = "eventscale-test-ca") -> TLSMaterial:
        """New material under a new CA called `name`."""
        ca = new_ca(name)
        server = issue(ca, "localhost", hosts=["127.0.0.1", "localhost"], server=True, client=True)
        client = issue(ca, "scaler-client", client=True)
        encrypted = client.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
        )
        return cls(
            ca_pem=ca.cert_pem.decode(),
            server_cert_pem=server.cert_pem.decode(),
            server_key_pem=server.key_pem.decode(),
            client_cert_pem=client.cert_pem.decode(),
            client_key_pem=client.key_pem.decode(),
            client_key_encrypted_pem=encrypted.decode(),
        )

    def write_server_files(self, directory: Path) -> ServerFiles:
        """`ca.pem`, `server.pem` and `server.key` (mode 0600) in `directory`."""
        files = ServerFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
        files.ca.write_text(self.ca_pem)
        files.cert.write_text(self.server_cert_pem)
        write_private(files.key, self.server_key_pem.encode())
        return files

    def client_context(self, *, certificate: bool = False) -> ssl.SSLContext:
        """A client context trusting the CA; with `certificate`, presenting the client certificate."""
        context = ssl.create_default_context(cadata=self.ca_pem)
        if certificate:  # ssl loads a certificate chain from files only
            with tempfile.TemporaryDirectory(prefix="client-tls-") as directory:
                cert, key = Path(directory) / "client.pem", Path(directory) / "client.key"
                cert.write_text(self.client_cert_pem)
                write_private(key, self.client_key_pem.encode())
                context.load_cert_chain(cert, key)
        return context
