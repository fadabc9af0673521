"""Build the real Kubernetes control plane binaries used by the e2e tests.

    python tests/cluster/build.py            # build (or confirm the cache), print the bin dir
    python tests/cluster/build.py --force    # rebuild even when the stamp matches

or, from Python, ``ensure_binaries() -> Path``.

The Go module in ``tests/cluster/gomod`` requires ``k8s.io/kubernetes`` at a pinned release
and replaces each ``k8s.io/*`` staging module with its published ``v0.X.Y`` release, so the
go command can build ``kube-apiserver``, ``kube-controller-manager`` and ``kubectl`` straight
from the Go module proxy; ``etcd`` comes from ``go.etcd.io/etcd/server/v3`` at the version
kubernetes itself requires. Binaries land in
``$XDG_CACHE_HOME/eventscale/k8s-<version>/bin`` (default ``~/.cache``). A stamp file there
records a digest of go.mod, go.sum and the build flags: when it matches and every binary
exists, nothing is built. A lock file serialises concurrent builders.

Environment:
    EVENTSCALE_K8S_BIN   use binaries from this directory instead (no build, no stamp check)
    GO                   the go command (default: ``go`` on PATH, then /usr/local/go/bin/go)
    GOTOOLCHAIN          passed through (e.g. ``go1.27.3`` if a later pin needs a newer Go)
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

GOMOD_DIR = Path(__file__).resolve().parent / "gomod"

#: binary name -> Go package
PACKAGES: dict[str, str] = {
    "etcd": "go.etcd.io/etcd/server/v3",
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "kubectl": "k8s.io/kubernetes/cmd/kubectl",
}

#: bump to invalidate every cache when the way of building changes
BUILD_REVISION = "1"


class BuildError(RuntimeError):
    """The control plane binaries could not be built."""


def _required_version(module: str) -> str:
    text = (GOMOD_DIR / "go.mod").read_text()
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", text, re.MULTILINE)
    if not match:
        raise BuildError(f"{GOMOD_DIR / 'go.mod'}: no requirement on {module}")
    return match.group(1)


def kubernetes_version() -> str:
    """The pinned k8s.io/kubernetes release, e.g. ``v1.37.2``."""
    return _required_version("k8s.io/kubernetes")


def etcd_version() -> str:
    return _required_version("go.etcd.io/etcd/server/v3")


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "eventscale"


def bin_dir(version: str | None = None) -> Path:
    return cache_root() / f"k8s-{version or kubernetes_version()}" / "bin"


def _ldflags(name: str, k8s: str) -> str:
    flags = ["-s", "-w"]
    if name != "etcd":
        major, minor = k8s.lstrip("v").split(".")[:2]
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
            flags += [
                f"-X {pkg}.gitVersion={k8s}",
                f"-X {pkg}.gitMajor={major}",
                f"-X {pkg}.gitMinor={minor}",
                f"-X {pkg}.gitTreeState=clean",
            ]
    return " ".join(flags)


def _stamp(k8s: str) -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((GOMOD_DIR / name).read_bytes())
    for name, pkg in sorted(PACKAGES.items()):
        digest.update(f"{name}={pkg} {_ldflags(name, k8s)}\n".encode())
    digest.update(BUILD_REVISION.encode())
    return json.dumps(
        {"kubernetes": k8s, "etcd": etcd_version(), "digest": digest.hexdigest()}, sort_keys=True
    )


def go_command() -> str:
    explicit = os.environ.get("GO")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise BuildError(f"GO={explicit} is not an executable go command")
        return explicit
    for candidate in (shutil.which("go"), "/usr/local/go/bin/go"):
        if candidate and Path(candidate).exists():
            return candidate
    raise BuildError(
        "the go command was not found (set GO=/path/to/go or put go on PATH); "
        "it is needed to build kube-apiserver, kube-controller-manager, kubectl and etcd"
    )


def _say(message: str) -> None:
    print(f"[k8s-build] {message}", file=sys.stderr, flush=True)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created with its folder) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def is_built(version: str | None = None) -> bool:
    k8s = version or kubernetes_version()
    target = bin_dir(k8s)
    stamp = target / ".stamp"
    return (
        stamp.exists()
        and stamp.read_text() == _stamp(k8s)
        and all(os.access(target / name, os.X_OK) for name in PACKAGES)
    )


def ensure_binaries(force: bool = False) -> Path:
    """Return the directory holding etcd, kube-apiserver, kube-controller-manager, kubectl.

    Builds them first unless the cache stamp matches. Raises BuildError with the tail of
    the go command's log on failure.
    """
    override = os.environ.get("EVENTSCALE_K8S_BIN")
    if override:
        path = Path(override)
        missing = [name for name in PACKAGES if not os.access(path / name, os.X_OK)]
        if missing:
            raise BuildError(f"EVENTSCALE_K8S_BIN={path}: missing {', '.join(missing)}")
        return path

    k8s = kubernetes_version()
    target = bin_dir(k8s)
    if not force and is_built(k8s):
        return target
    with locked(target.parent / ".lock"):
        if not force and is_built(k8s):  # another process built it while we waited
            return target
        _build(k8s, target)
    return target


def _build(k8s: str, target: Path) -> None:
    go = go_command()
    target.mkdir(parents=True, exist_ok=True)
    stamp = target / ".stamp"
    stamp.unlink(missing_ok=True)
    log = target.parent / "build.log"
    env = dict(os.environ)
    env["GOFLAGS"] = " ".join(filter(None, [env.get("GOFLAGS", ""), "-mod=mod", "-buildvcs=false"]))
    env.setdefault("CGO_ENABLED", "0")
    env.pop("GOOS", None)
    env.pop("GOARCH", None)

    started = time.monotonic()
    _say(f"building Kubernetes {k8s} + etcd {etcd_version()} into {target} (log: {log})")
    _say("a cold build takes a long while (tens of minutes on 2 cores); later runs are cached")
    with open(log, "w") as out:
        version = subprocess.run([go, "version"], env=env, cwd=GOMOD_DIR, capture_output=True,
                                 text=True)
        out.write(f"$ go version\n{version.stdout}{version.stderr}\n")
        if version.returncode != 0:
            raise BuildError(f"`{go} version` failed:\n{version.stderr.strip()}")
        _say(version.stdout.strip())
        for name, pkg in PACKAGES.items():
            step = time.monotonic()
            _say(f"go build {pkg} -> {name} ...")
            tmp = target / f".{name}.tmp"
            cmd = [go, "build", "-trimpath", f"-ldflags={_ldflags(name, k8s)}", "-o", str(tmp), pkg]
            out.write(f"$ {' '.join(cmd)}\n")
            out.flush()
            result = subprocess.run(cmd, cwd=GOMOD_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
            if result.returncode != 0:
                out.flush()
                tmp.unlink(missing_ok=True)
                raise BuildError(
                    f"go build {pkg} failed (exit {result.returncode}); see {log}\n"
                    f"{tail(log)}\n"
                    "If the error says the go.mod requires a newer Go, retry with "
                    "GOTOOLCHAIN=go1.27.3 (fetched through the Go module proxy)."
                )
            os.replace(tmp, target / name)
            _say(f"  {name} built in {time.monotonic() - step:.0f}s "
                 f"({(target / name).stat().st_size / 2**20:.0f} MiB)")
    stamp.write_text(_stamp(k8s))
    _say(f"done in {time.monotonic() - started:.0f}s")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        path = ensure_binaries(force=args.force)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _say(f"binaries ready in {time.monotonic() - started:.1f}s")
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
