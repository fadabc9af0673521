"""The eventscale container image, built from the Dockerfile and run with podman, for the tests.

No image registry is reachable from here, so the Dockerfile's BASE is made on this machine: a
minimal Debian of the host's release (`debootstrap --variant=minbase`, plus python3-venv),
trusting the host's extra CA certificates (pip in the build reaches PyPI through the same
egress as the host), imported into podman. Podman keeps its images in storage of its own under
~/.cache/eventscale/podman, so the base (tagged with a digest of how it was made) and the build
layers survive between runs: an image whose inputs are unchanged is reused as it is, a code
change rebuilds only the small application layer. Debian's podman, runc and debootstrap are installed when missing.

Podman here: `--isolation chroot` to build; runc as the runtime (crun refuses this machine's
hybrid cgroups); ulimits passed explicitly and no higher than this process's (podman's defaults
would raise them, which the sandbox does not allow).
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.cluster.build import cache_root, locked

from .adapter_process import ROOT
from .packages import ensure_packages

BASE_PACKAGES = ("python3-venv",)
#: bump to rebuild the base when the way of making it changes
BASE_REVISION = "1"
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
TRIMMED = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale",
           "usr/share/info")


@dataclass(frozen=True)
class Podman:
    """podman with the tests' own storage (cached) and the runtime and limits that work here."""

    root: Path
    runroot: Path

    def command(self, *args: str) -> list[str]:
        return ["podman", "--root", str(self.root), "--runroot", str(self.runroot), "--runtime", "runc",
                "--cgroup-manager", "cgroupfs", *args]

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """podman in a session of its own, killed whole on timeout: a build's RUN steps (pip under
        buildah's chroot) would otherwise outlive podman and go on for as long as they take."""
        process = subprocess.Popen(self.command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
        result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        if check and result.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}")
        return result

    def has_image(self, name: str) -> bool:
        """`podman image exists`: exit 0 yes, 1 no, anything else an error (not "no": that would rebuild)."""
        result = self.run("image", "exists", name, check=False)
        if result.returncode not in (0, 1):
            raise RuntimeError(f"podman image exists {name} exited {result.returncode}:\n{result.stderr[-3000:]}")
        return result.returncode == 0


def podman() -> Podman:
    ensure_packages("podman", ["podman", "runc"])
    ensure_packages("runc", ["runc"])
    storage = cache_root() / "podman" / "storage"
    # state of running containers: one directory per storage, never shared between two
    run = f"eventscale-podman-{hashlib.sha256(str(storage).encode()).hexdigest()[:8]}"
    return Podman(storage, Path(tempfile.gettempdir()) / run)


def ulimits() -> list[str]:
    """--ulimit options at most this process's hard limits (4096 where those are higher)."""
    options = []
    for name, limit in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
        hard = resource.getrlimit(limit)[1]
        value = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
        options += ["--ulimit", f"{name}={value}:{value}"]
    return options


def _os_release() -> dict[str, str]:
    text = Path("/etc/os-release").read_text()
    return dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', text, re.MULTILINE))


def _debian_mirror() -> str:
    """The host's Debian mirror (deb822 `URIs:` or one-line `deb` sources), else deb.debian.org."""
    sources = [*sorted(Path("/etc/apt/sources.list.d").glob("*.sources")), Path("/etc/apt/sources.list")]
    for path in sources:
        text = path.read_text() if path.exists() else ""
        urls: list[str] = re.findall(r"^(?:URIs:|deb)\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.MULTILINE)
        for url in urls:
            if url.rstrip("/").endswith("/debian"):
                return url
    return "http://deb.debian.org/debian"


def _extra_cas() -> list[Path]:
    return sorted(EXTRA_CA_DIR.glob("*.crt")) if EXTRA_CA_DIR.is_dir() else []


def base_image_name() -> str:
    """localhost/eventscale-base:<codename>-<digest of release, packages, CAs and revision>."""
    codename = _os_release().get("VERSION_CODENAME") or "bookworm"
    digest = hashlib.sha256(f"{codename} {' '.join(BASE_PACKAGES)} {BASE_REVISION}".encode())
    for ca in _extra_cas():
        digest.update(ca.read_bytes())
    return f"localhost/eventscale-base:{codename}-{digest.hexdigest()[:12]}"


def ensure_base_image(pod: Podman) -> str:
    """The Dockerfile's BASE for these tests, made with debootstrap unless podman already has it."""
    name = base_image_name()
    if pod.has_image(name):
        return name
    with locked(cache_root() / "podman" / ".base.lock"):
        if not pod.has_image(name):
            _make_base(pod, name)
    return name


def _make_base(pod: Podman, name: str) -> None:
    ensure_packages("debootstrap", ["debootstrap"])
    if os.geteuid() != 0:
        raise RuntimeError("making the base image with debootstrap needs root")
    codename = name.split(":")[1].rsplit("-", 1)[0]
    work = Path(tempfile.mkdtemp(prefix="eventscale-base-", dir=cache_root() / "podman"))
    rootfs = work / "rootfs"
    try:
        _checked(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", codename,
                  str(rootfs), _debian_mirror()], "debootstrap", timeout=900)
        for ca in _extra_cas():
            shutil.copy(ca, rootfs / "usr/local/share/ca-certificates" / ca.name)
        _checked(["chroot", str(rootfs), "update-ca-certificates"], "update-ca-certificates", timeout=120)
        for trimmed in TRIMMED:
            shutil.rmtree(rootfs / trimmed, ignore_errors=True)
        _import(pod, rootfs, name)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _import(pod: Podman, rootfs: Path, name: str) -> None:
    """`tar -c rootfs | podman import - name`, streamed."""
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    result = subprocess.run(pod.command("import", "--quiet", "-", name), stdin=tar.stdout, capture_output=True,
                            text=True, timeout=600, check=False)
    assert tar.stdout is not None
    tar.stdout.close()
    if tar.wait(timeout=60) != 0 or result.returncode != 0:
        raise RuntimeError(f"podman import of {rootfs} failed:\n{result.stderr[-3000:]}")


def _checked(command: list[str], what: str, timeout: float) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}")


BUILD_INPUTS = ("Dockerfile", ".dockerignore", "pyproject.toml")
BUILD_TREES = ("adapter", "scalers")


def _inputs_digest(base: str) -> str:
    """Digest of what the build reads (the files the build context keeps, see .dockerignore) and its base."""
    digest = hashlib.sha256(base.encode())
    files = [ROOT / name for name in BUILD_INPUTS]
    files += sorted(path for tree in BUILD_TREES for path in (ROOT / tree).rglob("*")
                    if path.is_file() and "__pycache__" not in path.parts)
    for path in files:
        digest.update(f"{path.relative_to(ROOT)}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def build_image(pod: Podman, repository: str, base: str) -> tuple[str, bool]:
    """`podman build` of the Dockerfile on `base`, tagged by a digest of its inputs: (image, built now).

    An image already tagged with the digest is reused without asking podman to check its
    layers (checking the COPY --from layers means hashing the whole virtual environment).
    """
    image = f"{repository}:{_inputs_digest(base)}"
    if pod.has_image(image):
        return image, False
    pod.run("build", "--quiet", "--isolation", "chroot", *ulimits(), "--build-arg", f"BASE={base}", "-t", image,
            "-f", str(ROOT / "Dockerfile"), str(ROOT), timeout=2400)
    return image, True
