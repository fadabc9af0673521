"""Build the real `helm` command the chart tests run, from the Go module proxy, once.

    python tests/cluster/helm_build.py       # build (or confirm the cache), print the binary

or, from Python, ``ensure_helm() -> Path``.

The module in ``tests/cluster/helm-gomod`` requires ``helm.sh/helm/v3`` at a pinned release;
``go build helm.sh/helm/v3/cmd/helm`` there builds the released command. The binary lands in
``$XDG_CACHE_HOME/eventscale/helm-<version>/helm`` beside a stamp (a digest of go.mod, go.sum and
the build flags) and is rebuilt only when the stamp differs; a file lock serialises concurrent
builders, as for the control plane (`go_binary.py`, shared with the delegation test's adapter).

Environment: EVENTSCALE_HELM uses that binary instead (no build); GO and GOTOOLCHAIN as for
build.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

from go_binary import BuildError, GoBinary, _build

GOMOD_DIR = Path(__file__).resolve().parent / "helm-gomod"
PACKAGE = "helm.sh/helm/v3/cmd/helm"
#: bump to invalidate the cache when the way of building changes
BUILD_REVISION = "1"


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


def helm_binary(version: str | None = None) -> GoBinary:
    version = version or helm_version()
    return GoBinary("helm", GOMOD_DIR, PACKAGE, version, _ldflags(version), _stamp(version), "EVENTSCALE_HELM",
                    f"{PACKAGE}@{version}")


def helm_path(version: str | None = None) -> Path:
    path: Path = helm_binary(version).path  # go_binary is imported by its file name: untyped for mypy
    return path


def ensure_helm() -> Path:
    """The path of a helm binary built from the pinned release (built first when not cached)."""
    binary: Path = helm_binary().ensure()
    return binary


__all__ = ["BuildError", "_build", "ensure_helm", "helm_path", "helm_version"]

if __name__ == "__main__":
    try:
        print(ensure_helm())
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
