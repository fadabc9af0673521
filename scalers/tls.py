"""Client TLS from PEM text: the one way every scaler builds an `ssl.SSLContext`.

KEDA takes TLS material as PEM strings in auth params (`ca`, `cert`, `key`, `keyPassword`) plus
`unsafeSsl` in metadata; each scaler keeps its own rules for which keys apply and when, and hands
the result here as `TLSSettings`. The settings are frozen and hashable, so they can be part of a
scaler's server key, and no PEM text ever shows in their repr.

`ssl` loads a CA from memory but a client certificate only from files, so the certificate and
key are written to a private temporary directory (mode 0700, files 0600) that is removed as soon
as `load_cert_chain` has read them. Verification stays on unless `unsafe_ssl` is set.
"""

from __future__ import annotations

import functools
import os
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from scalers.params import ParameterError, secret_field


@dataclass(frozen=True, kw_only=True)
class TLSSettings:
    """A trust anchor and an optional client certificate, as PEM text."""

    ca: str | None = field(default=None, repr=False)
    cert: str | None = field(default=None, repr=False)
    key: str | None = secret_field(None)
    key_password: str | None = secret_field(None)
    unsafe_ssl: bool = False


class TLSMaterialError(ValueError):
    """The `ca`, `cert` or `key` given cannot be used (bad PEM text or wrong `keyPassword`)."""


def client_context(settings: TLSSettings) -> ssl.SSLContext:
    """A client context trusting `ca` (else the system store), presenting `cert` when given."""
    try:
        context = ssl.create_default_context(cadata=settings.ca)
    except (ssl.SSLError, ValueError) as error:
        raise TLSMaterialError(f"ca is not a usable PEM certificate ({error})") from None
    if settings.unsafe_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if settings.cert and settings.key:
        _load_client_certificate(context, settings.cert, settings.key, settings.key_password)
    return context


@functools.lru_cache(maxsize=256)
def check_settings(settings: TLSSettings) -> None:
    """Fail at parse time (`ParameterError`) on PEM material that does not load; once per distinct material."""
    try:
        client_context(settings)
    except TLSMaterialError as exc:
        raise ParameterError(f'TLS parameters "ca", "cert", "key" cannot be loaded: {exc}') from None


def _load_client_certificate(context: ssl.SSLContext, cert: str, key: str, password: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="eventscale-tls-") as directory:
        cert_path, key_path = Path(directory, "cert.pem"), Path(directory, "key.pem")
        _write_private(cert_path, cert)
        _write_private(key_path, key)
        try:
            context.load_cert_chain(cert_path, key_path, password=password)
        except (ssl.SSLError, ValueError):
            raise TLSMaterialError("cert and key cannot be loaded (bad PEM or keyPassword)") from None


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
