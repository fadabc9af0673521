"""Where kube-apiserver is and how to prove who we are: a kubeconfig, or the in-cluster service account.

Why this is read here and not by `kubernetes.config`: importing that package imports the
official client's hundreds of generated model modules, about 30 MB resident in each of our
processes (a third of an idle controller) for the few fields a connection needs. What clusters
use day to day is read here: the service account mounted in a pod (its token read again as
the kubelet rotates it), and kubeconfigs with client certificates, a token or token file, CA
files or data, `insecure-skip-tls-verify`, several files in $KUBECONFIG. A kubeconfig user with
an `exec` plugin or an `auth-provider` (cloud logins) is handed to the official loader, imported
only then, and its token asked for on every request so that its refreshing keeps working.
"""

from __future__ import annotations

import atexit
import base64
import os
import shutil
import ssl
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_FILE_REREAD = 60.0  # seconds; client-go reads a token file again after a minute too


class KubeconfigError(ValueError):
    """No usable kubeconfig: missing, unreadable, or naming a context, cluster or user it lacks."""


@dataclass(frozen=True)
class Credentials:
    """One API server and how to authenticate to it."""

    host: str
    ca_file: str | None = None
    ca_data: str | None = None  # PEM
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True
    bearer: Callable[[], str | None] = field(default=lambda: None, repr=False, compare=False)
    basic: tuple[str, str] | None = field(default=None, repr=False)

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.verify:
            return False
        context = ssl.create_default_context(cafile=self.ca_file, cadata=self.ca_data)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def authorization(self) -> str | None:
        """The Authorization header's value now (a token file or plugin may have a newer token)."""
        token = self.bearer()
        if token:
            return f"Bearer {token}"
        if self.basic is not None:
            return "Basic " + base64.b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode()
        return None


def in_cluster() -> bool:
    return "KUBERNETES_SERVICE_HOST" in os.environ and (SERVICE_ACCOUNT_DIR / "token").exists()


def load(kubeconfig: Path | None = None, context: str | None = None) -> Credentials:
    """From `kubeconfig`, else in-cluster, else $KUBECONFIG / ~/.kube/config; `context` names a
    kubeconfig context other than the current one."""
    if kubeconfig is None and context is None and in_cluster():
        return in_cluster_credentials()
    return from_kubeconfig(kubeconfig_files(kubeconfig), context)


def in_cluster_credentials() -> Credentials:
    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return Credentials(f"https://{host}:{port}", ca_file=str(SERVICE_ACCOUNT_DIR / "ca.crt"),
                       bearer=token_file(SERVICE_ACCOUNT_DIR / "token"))


def token_file(path: Path, clock: Callable[[], float] = time.monotonic) -> Callable[[], str | None]:
    """The token in `path`, read again once it is a minute old (kubelet rotates bound tokens)."""
    cached: list[Any] = [None, float("-inf")]

    def token() -> str | None:
        if clock() - cached[1] >= TOKEN_FILE_REREAD:
            try:
                cached[0] = path.read_text().strip() or None
                cached[1] = clock()
            except OSError:
                pass  # mid-rotation, or gone: the last one read, and try again next time
        return cached[0]  # type: ignore[no-any-return]
    return token


def kubeconfig_files(kubeconfig: Path | None) -> list[Path]:
    if kubeconfig is not None:
        return [kubeconfig]
    listed = [Path(p).expanduser() for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return [p for p in listed if p.exists()] or [Path("~/.kube/config").expanduser()]


def _merged(files: list[Path]) -> dict[str, Any]:
    """kubectl's merge of several files: the first file to name a context, cluster or user, or
    to set current-context, wins. Relative paths are taken from the file that holds them."""
    merged: dict[str, Any] = {"current-context": None, "contexts": {}, "clusters": {}, "users": {}}
    for path in files:
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise KubeconfigError(f"kubeconfig {path}: {exc}") from None
        merged["current-context"] = merged["current-context"] or document.get("current-context")
        for section, inner in (("contexts", "context"), ("clusters", "cluster"), ("users", "user")):
            for item in document.get(section) or []:
                if isinstance(item, dict) and item.get("name") not in merged[section]:
                    merged[section][item.get("name")] = (dict(item.get(inner) or {}), path.parent)
    return merged


def from_kubeconfig(files: list[Path], context: str | None = None) -> Credentials:
    merged = _merged(files)
    name = context or merged["current-context"]
    if not name or name not in merged["contexts"]:
        raise KubeconfigError(f"kubeconfig {', '.join(map(str, files))}: no context {name!r}"
                              if name else f"kubeconfig {', '.join(map(str, files))}: no current-context")
    ctx, _ = merged["contexts"][name]
    cluster, cluster_dir = _named(merged, "clusters", ctx.get("cluster"), name)
    user, user_dir = _named(merged, "users", ctx.get("user"), name, required=False)
    if "exec" in user or "auth-provider" in user:
        return _with_official_loader(files, name)
    server = cluster.get("server")
    if not server:
        raise KubeconfigError(f"kubeconfig context {name!r}: cluster has no server")
    token = user.get("token")
    token_path = _path(user.get("tokenFile"), user_dir)
    return Credentials(
        host=str(server),
        ca_file=_path(cluster.get("certificate-authority"), cluster_dir),
        ca_data=_decoded(cluster.get("certificate-authority-data")),
        cert_file=_path(user.get("client-certificate"), user_dir) or _data_file(user.get("client-certificate-data")),
        key_file=_path(user.get("client-key"), user_dir) or _data_file(user.get("client-key-data")),
        verify=not cluster.get("insecure-skip-tls-verify", False),
        bearer=token_file(Path(token_path)) if token_path and not token else (lambda: token),
        basic=(str(user["username"]), str(user.get("password", ""))) if user.get("username") else None)


def _named(merged: dict[str, Any], section: str, name: Any, context: str,
           required: bool = True) -> tuple[dict[str, Any], Path]:
    if name in merged[section]:
        return merged[section][name]  # type: ignore[no-any-return]
    if required or name:
        raise KubeconfigError(f"kubeconfig context {context!r}: no {section[:-1]} {name!r}")
    return {}, Path(".")


def _path(value: Any, base: Path) -> str | None:
    return str(base / Path(value).expanduser()) if value else None


def _decoded(data: Any) -> str | None:
    return base64.b64decode(data).decode() if data else None


_DATA_DIR: list[str] = []


def _data_file(data: Any) -> str | None:
    """Inline certificate or key data written to a private file (`ssl` loads chains from files
    only), removed when the process ends."""
    if not data:
        return None
    if not _DATA_DIR:
        _DATA_DIR.append(tempfile.mkdtemp(prefix="eventscale-kubeconfig-"))
        atexit.register(shutil.rmtree, _DATA_DIR[0], True)
    fd, path = tempfile.mkstemp(dir=_DATA_DIR[0])
    with os.fdopen(fd, "wb") as out:
        out.write(base64.b64decode(data))
    return path


def _with_official_loader(files: list[Path], context: str) -> Credentials:
    """An `exec` plugin or `auth-provider` user: the official loader runs and refreshes it."""
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException

    configuration = k8s_client.Configuration()
    try:
        k8s_config.load_kube_config(config_file=str(files[0]), context=context,  # type: ignore[no-untyped-call]
                                    client_configuration=configuration)
    except ConfigException as exc:
        raise KubeconfigError(str(exc)) from None

    def bearer() -> str | None:
        value = configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
        return str(value).removeprefix("Bearer ").strip() if value else None
    return Credentials(configuration.host, ca_file=configuration.ssl_ca_cert, cert_file=configuration.cert_file,
                       key_file=configuration.key_file, verify=bool(configuration.verify_ssl), bearer=bearer)
