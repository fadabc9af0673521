"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

    with ControlPlane() as cp:
        cp.kubectl("get", "ns")
        client = cp.api_client()          # kubernetes.client.ApiClient with admin credentials

No kubelet, scheduler or kube-proxy: Pods stay Pending, but Deployments, ReplicaSets, HPAs,
APIServices and the aggregation layer are real. The aggregator dials the Service of an
APIService itself (--enable-aggregator-routing=false), so an ExternalName Service with
``externalName: localhost`` reaches an adapter running on this host.

Everything lives in a temporary directory (PKI, etcd data, one log per component) that is
removed on exit unless ``keep=True`` or EVENTSCALE_KEEP_CLUSTER=1.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

_HERE = Path(__file__).resolve().parent
if str(_HERE.parents[1]) not in sys.path:
    sys.path.append(str(_HERE.parents[1]))  # the project root, for `adapter`

from go_binary import load_build  # noqa: E402  # by its file name, beside this one

from adapter import certs  # noqa: E402

_build = load_build()
ensure_binaries: Callable[[], Path] = _build.ensure_binaries
BuildError: type[Exception] = _build.BuildError

T = TypeVar("T")

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
APISERVER_HOSTS = (
    "127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local", "10.0.0.1",
)
#: controllers run by kube-controller-manager (HPA, what a Deployment needs, and the Job
#: controller the Jobs of ScaledJobs are run by)
CONTROLLERS = (
    "deployment-controller",
    "job-controller",
    "replicaset-controller",
    "horizontal-pod-autoscaler-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
)


class ControlPlaneError(RuntimeError):
    """A component failed to start or to become ready."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL the child when the test process dies (Linux PR_SET_PDEATHSIG).

    SIGKILL, not SIGTERM: all three components would get it at once, etcd exits first, and
    kube-apiserver's graceful shutdown then hangs forever waiting for etcd.
    """
    with contextlib.suppress(Exception):  # best effort; teardown still stops the child
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))


@cache
def _supports_flag(binary: str, flag: str) -> bool:
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=60)
    return flag in out.stdout + out.stderr


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager, started by ``start()`` / ``with``.

    Attributes once started:
        server            https://127.0.0.1:<port>
        port              kube-apiserver secure port
        kubeconfig        admin kubeconfig (client cert, group system:masters)
        ca_pem / ca_file  cluster CA (client CA and the apiserver serving CA)
        admin_cert, admin_key
        front_proxy_ca_file, front_proxy_client_cert, front_proxy_client_key
        service_account_key, service_account_pub
        etcd_url          http://127.0.0.1:<port>
        logs              {"etcd"|"kube-apiserver"|"kube-controller-manager": Path}
        dir, bin_dir, startup_seconds
    """

    def __init__(
        self,
        bin_dir: Path | None = None,
        *,
        keep: bool | None = None,
        hpa_sync_period: str = "1s",
        extra_apiserver_args: Sequence[str] = (),
        extra_controller_manager_args: Sequence[str] = (),
        start_timeout: float = 120.0,
    ) -> None:
        self.bin_dir = Path(bin_dir) if bin_dir else None
        self.keep = keep if keep is not None else os.environ.get("EVENTSCALE_KEEP_CLUSTER") == "1"
        self.hpa_sync_period = hpa_sync_period
        self.extra_apiserver_args = list(extra_apiserver_args)
        self.extra_controller_manager_args = list(extra_controller_manager_args)
        self.start_timeout = start_timeout
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}
        self.startup_seconds: float | None = None
        self.dir: Path | None = None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> ControlPlane:
        if self.bin_dir is None:
            self.bin_dir = ensure_binaries()
        self.dir = Path(tempfile.mkdtemp(prefix="eventscale-k8s-"))
        started = time.monotonic()
        try:
            self._write_pki()
            self._start_etcd()
            self._start_apiserver()
            self._start_controller_manager()
            self._wait_controllers()
        except BaseException:
            self.stop(keep_dir=True)
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def stop(self, keep_dir: bool = False) -> None:
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self.dir and self.dir.exists():
            if keep_dir or self.keep:
                print(f"[controlplane] kept {self.dir}", file=sys.stderr)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------ helpers

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as cluster admin; with ``check`` a non-zero exit raises with stderr."""
        assert self.bin_dir is not None
        assert self.dir is not None
        cmd = [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig),
               "--cache-dir", str(self.dir / "kubectl-cache"), *args]
        result = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout)
        if check and result.returncode != 0:
            raise ControlPlaneError(
                f"kubectl {' '.join(args)} exited {result.returncode}:\n{result.stderr.strip()}"
            )
        return result

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def api_client(self) -> Any:
        """An official ``kubernetes.client.ApiClient`` using the admin kubeconfig."""
        from kubernetes import config

        # kubernetes.config is unannotated
        return config.new_client_from_config(config_file=str(self.kubeconfig))  # type: ignore[no-untyped-call]

    def env(self) -> dict[str, str]:
        """os.environ plus KUBECONFIG pointing at the admin kubeconfig."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts the cluster CA and presents the admin client certificate."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.load_cert_chain(str(self.admin_cert), str(self.admin_key))
        return ctx

    def get(self, path: str, timeout: float = 5) -> tuple[int, bytes]:
        """GET an apiserver path as admin; returns (status, body), never raises on HTTP errors."""
        request = urllib.request.Request(self.server + path)
        try:
            with urllib.request.urlopen(request, context=self.ssl_context(), timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    # ------------------------------------------------------------------ PKI

    def _write_pki(self) -> None:
        assert self.dir is not None
        pki = self.dir / "pki"
        pki.mkdir()
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"

        ca = certs.new_ca("eventscale-e2e-cluster-ca")
        self.ca_file, ca_key = pki / "ca.crt", pki / "ca.key"
        ca.write(self.ca_file, ca_key)
        self.ca_pem = ca.cert_pem

        serving = certs.issue(ca, "kube-apiserver", hosts=APISERVER_HOSTS, server=True)
        self.apiserver_cert, self.apiserver_key = pki / "apiserver.crt", pki / "apiserver.key"
        serving.write(self.apiserver_cert, self.apiserver_key)

        admin = certs.issue(ca, "admin", organizations=["system:masters"], client=True)
        self.admin_cert, self.admin_key = pki / "admin.crt", pki / "admin.key"
        admin.write(self.admin_cert, self.admin_key)
        self.kubeconfig = self.dir / "admin.kubeconfig"
        certs.write_private(self.kubeconfig, certs.kubeconfig(ca, admin, self.server, "e2e").encode())

        kcm = certs.issue(ca, "system:kube-controller-manager", client=True)
        kcm.write(pki / "kcm.crt", pki / "kcm.key")
        self.kcm_kubeconfig = self.dir / "kcm.kubeconfig"
        certs.write_private(self.kcm_kubeconfig, certs.kubeconfig(ca, kcm, self.server, "e2e").encode())

        proxy_ca = certs.new_ca("eventscale-e2e-front-proxy-ca")
        self.front_proxy_ca_file = pki / "front-proxy-ca.crt"
        proxy_ca.write(self.front_proxy_ca_file, pki / "front-proxy-ca.key")
        self.front_proxy_ca_pem = proxy_ca.cert_pem
        proxy = certs.issue(proxy_ca, certs.FRONT_PROXY_CLIENT_CN, client=True)
        self.front_proxy_client_cert = pki / "front-proxy-client.crt"
        self.front_proxy_client_key = pki / "front-proxy-client.key"
        proxy.write(self.front_proxy_client_cert, self.front_proxy_client_key)

        sa_key = ec.generate_private_key(ec.SECP256R1())
        self.service_account_key, self.service_account_pub = pki / "sa.key", pki / "sa.pub"
        certs.write_private(self.service_account_key, sa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        self.service_account_pub.write_bytes(sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    # ------------------------------------------------------------------ processes

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        assert self.dir is not None and self.bin_dir is not None
        log = self.dir / f"{name}.log"
        self.logs[name] = log
        with open(log, "wb") as out:
            out.write(f"$ {name} {' '.join(args)}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                [str(self.bin_dir / name), *args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.dir, preexec_fn=_die_with_parent,
            )
        self.procs[name] = proc
        return proc

    def _wait(self, name: str, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.start_timeout
        proc = self.procs[name]
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited with {proc.returncode} before {what}; log {self.logs[name]}:\n"
                    f"{tail(self.logs[name])}"
                )
            try:
                if ready():
                    return
            except (OSError, ssl.SSLError, ValueError):
                pass
            time.sleep(0.2)
        raise ControlPlaneError(
            f"{name}: no {what} within {self.start_timeout:.0f}s; log {self.logs[name]}:\n"
            f"{tail(self.logs[name])}"
        )

    def _start_etcd(self) -> None:
        assert self.dir is not None
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        self._spawn("etcd", [
            "--name=e2e",
            f"--data-dir={self.dir / 'etcd'}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=e2e={peer_url}",
            "--initial-cluster-state=new",
            "--unsafe-no-fsync",
            "--quota-backend-bytes=8589934592",  # 8 GiB: the 100,000-object benchmark outgrows the 2 GiB default
            "--log-level=warn",
        ])

        def healthy() -> bool:
            with urllib.request.urlopen(f"{self.etcd_url}/health", timeout=2) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")

        self._wait("etcd", healthy, "/health")

    def apiserver_args(self) -> list[str]:
        assert self.dir is not None and self.bin_dir is not None
        args = [
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--cert-dir={self.dir / 'apiserver-certs'}",
            f"--tls-cert-file={self.apiserver_cert}",
            f"--tls-private-key-file={self.apiserver_key}",
            f"--client-ca-file={self.ca_file}",
            "--authorization-mode=Node,RBAC",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={self.service_account_pub}",
            f"--service-account-signing-key-file={self.service_account_key}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            # the Endpoints of `kubernetes` may not hold a loopback address, and nothing here
            # needs them: skip the reconciler rather than log a validation error every 10 s
            "--endpoint-reconciler-type=none",
            # aggregation layer (front proxy)
            f"--requestheader-client-ca-file={self.front_proxy_ca_file}",
            f"--requestheader-allowed-names={certs.FRONT_PROXY_CLIENT_CN}",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={self.front_proxy_client_cert}",
            f"--proxy-client-key-file={self.front_proxy_client_key}",
            "--enable-aggregator-routing=false",
            "--profiling=false",
            # PodTemplates (used by nothing here) bypass the watch cache, so their lists are read
            # from etcd page by page and a continuation can expire (tests/e2e/test_cluster_watches.py)
            "--watch-cache-sizes=podtemplates#0",
        ]
        binary = str(self.bin_dir / "kube-apiserver")
        if _supports_flag(binary, "--requestheader-uid-headers"):
            args.append("--requestheader-uid-headers=X-Remote-Uid")
        return args + self.extra_apiserver_args

    def _start_apiserver(self) -> None:
        self._spawn("kube-apiserver", self.apiserver_args())

        def ready() -> bool:
            status, _ = self.get("/readyz", timeout=2)
            return status == 200

        self._wait("kube-apiserver", ready, "/readyz = 200")

    def kill_apiserver(self) -> None:
        """SIGKILL kube-apiserver (fault tests: the Kubernetes API down); etcd keeps every object."""
        proc = self.procs.pop("kube-apiserver")
        proc.kill()
        proc.wait(timeout=10)

    def stop_controller_manager(self) -> None:
        """Stop kube-controller-manager (the HPA controller with it) for good: benchmarks at a scale
        where its work would be what is measured."""
        proc = self.procs.pop("kube-controller-manager", None)
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)

    def restart_apiserver(self) -> None:
        """Start kube-apiserver again on the same port with the same flags, and wait until ready."""
        self._start_apiserver()

    def controller_manager_args(self) -> list[str]:
        assert self.dir is not None
        self.kcm_port = free_port()
        return [
            f"--kubeconfig={self.kcm_kubeconfig}",
            f"--authentication-kubeconfig={self.kcm_kubeconfig}",
            f"--authorization-kubeconfig={self.kcm_kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.kcm_port}",
            f"--cert-dir={self.dir / 'kcm-certs'}",
            f"--controllers={','.join(CONTROLLERS)}",
            # each controller calls the API as its own service account in kube-system, like a
            # real cluster (the HPA as kube-system/horizontal-pod-autoscaler)
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={self.service_account_key}",
            f"--root-ca-file={self.ca_file}",
            f"--horizontal-pod-autoscaler-sync-period={self.hpa_sync_period}",
            "--leader-elect=false",
            "--profiling=false",
            *self.extra_controller_manager_args,
        ]

    def _start_controller_manager(self) -> None:
        self._spawn("kube-controller-manager", self.controller_manager_args())
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # kcm serves a self-signed cert from --cert-dir

        def healthy() -> bool:
            url = f"https://127.0.0.1:{self.kcm_port}/healthz"
            with urllib.request.urlopen(url, context=insecure, timeout=2) as resp:
                return bool(resp.status == 200)

        self._wait("kube-controller-manager", healthy, "/healthz = 200")

    def _wait_controllers(self) -> None:
        """The serviceaccount controller made `default` in `default`: Pods can be created."""

        def has_default_sa() -> bool:
            status, _ = self.get("/api/v1/namespaces/default/serviceaccounts/default", timeout=2)
            return status == 200

        self._wait("kube-controller-manager", has_default_sa, "ServiceAccount default/default")


def wait_for(probe: Callable[[], T | None], timeout: float = 30, what: str = "condition",
             interval: float = 0.25) -> T:
    """Poll `probe` until it returns something truthy; AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def main() -> int:
    """Start a control plane, print how to reach it, and wait for Ctrl-C."""
    started = time.monotonic()
    with ControlPlane(keep=False) as cp:
        print(f"ready in {time.monotonic() - started:.1f}s (start to ready "
              f"{cp.startup_seconds:.1f}s): {cp.server}")
        print(f"export KUBECONFIG={cp.kubeconfig}")
        for name, log in cp.logs.items():
            print(f"  {name} log: {log}")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
