"""Build the real `helm` command the chart tests run, from the Go module proxy, once.

    python tests/cluster/helm_build.py       # build (or confirm the cache), print the binary

or, from Python, ``ensure_helm() -> Path``.

The module in ``tests/cluster/helm-gomod`` requires ``helm.sh/helm/v3`` at a pinned release;
``go build helm.sh/helm/v3/cmd/helm`` there builds the released command. The binary lands in
``$XDG_CACHE_HOME/eventscale/helm-<version>/helm`` beside a stamp (a digest of go.mod, go.sum and
the build flags) and is rebuilt only when the stamp differs; a file lock serialises concurrent
builders, as for the control plane (tests/cluster/build.py, whose Go lookup and lock this reuses).

Environment: EVENTSCALE_HELM uses that binary instead (no build); GO and GOTOOLCHAIN as for
build.py.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
GOMOD_DIR = _HERE / "helm-gomod"
PACKAGE = "helm.sh/helm/v3/cmd/helm"
#: bump to invalidate the cache when the way of building changes
BUILD_REVISION = "1"


def _load_build() -> Any:
    """tests/cluster/build.py under the name controlplane.py gives it (no clash with PyPI's `build`)."""
    name = "eventscale_cluster_build"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _HERE / "build.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_build = _load_build()
BuildError: type[Exception] = _build.BuildError


def helm_version() -> str:
    match = re.search(r"^require\s+helm\.sh/helm/v3\s+(v\S+)", (GOMOD_DIR / "go.mod").read_text(), re.MULTILINE)
    if not match:
        raise _build.BuildError(f"{GOMOD_DIR / 'go.mod'}: no requirement on helm.sh/helm/v3")
    return match.group(1)


def _ldflags(version: str) -> str:
    """As helm's release Makefile sets them: its version, and the Kubernetes version it assumes
    without a cluster (`helm template`, `helm lint`), from the client-go it is built with."""
    match = re.search(r"^\s*k8s\.io/client-go\s+v0\.(\d+)\.", (GOMOD_DIR / "go.mod").read_text(), re.MULTILINE)
    if not match:
        raise _build.BuildError(f"{GOMOD_DIR / 'go.mod'}: no requirement on k8s.io/client-go")
    flags = ["-s", "-w", f"-X helm.sh/helm/v3/internal/version.version={version}"]
    for package in ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"):
        flags += [f"-X {package}.k8sVersionMajor=1", f"-X {package}.k8sVersionMinor={match.group(1)}"]
    return " ".join(flags)


def _stamp(version: str) -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((GOMOD_DIR / name).read_bytes())
    digest.update(f"{PACKAGE} {_ldflags(version)} {BUILD_REVISION}".encode())
    return json.dumps({"helm": version, "digest": digest.hexdigest()}, sort_keys=True)


def helm_path(version: str | None = None) -> Path:
    root: Path = _build.cache_root()
    return root / f"helm-{version or helm_version()}" / "helm"


def _is_built(binary: Path, version: str) -> bool:
    stamp = binary.parent / ".stamp"
    return os.access(binary, os.X_OK) and stamp.exists() and stamp.read_text() == _stamp(version)


def ensure_helm() -> Path:
    """The path of a helm binary built from the pinned release (built first when not cached)."""
    override = os.environ.get("EVENTSCALE_HELM")
    if override:
        if not os.access(override, os.X_OK):
            raise _build.BuildError(f"EVENTSCALE_HELM={override} is not an executable")
        return Path(override)
    version = helm_version()
    binary = helm_path(version)
    if _is_built(binary, version):
        return binary
    with _build.locked(binary.parent / ".lock"):
        if not _is_built(binary, version):  # another process may have built it while we waited
            _compile(binary, version)
    return binary


def _compile(binary: Path, version: str) -> None:
    go = _build.go_command()
    stamp, log, tmp = binary.parent / ".stamp", binary.parent / "build.log", binary.parent / ".helm.tmp"
    stamp.unlink(missing_ok=True)
    env = {**os.environ, "CGO_ENABLED": "0",
           "GOFLAGS": " ".join(filter(None, [os.environ.get("GOFLAGS", ""), "-mod=mod", "-buildvcs=false"]))}
    command = [go, "build", "-trimpath", f"-ldflags={_ldflags(version)}", "-o", str(tmp), PACKAGE]
    started = time.monotonic()
    print(f"[helm-build] go build {PACKAGE}@{version} -> {binary} (log: {log})", file=sys.stderr, flush=True)
    with open(log, "w") as out:
        result = subprocess.run(command, cwd=GOMOD_DIR, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise _build.BuildError(
            f"go build {PACKAGE} failed (exit {result.returncode}); see {log}\n{_build.tail(log)}\n"
            "If the error says the go.mod requires a newer Go, retry with GOTOOLCHAIN=go1.27.3."
        )
    os.replace(tmp, binary)
    stamp.write_text(_stamp(version))
    print(f"[helm-build] built in {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    try:
        print(ensure_helm())
    except _build.BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
