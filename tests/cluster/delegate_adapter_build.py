"""Build the second external metrics adapter of the delegation e2e test, from the Go module proxy, once.

    python tests/cluster/delegate_adapter_build.py   # build (or confirm the cache), print the binary

or, from Python, ``ensure_delegate_adapter() -> Path``.

The module in ``tests/cluster/delegate-adapter`` requires ``sigs.k8s.io/custom-metrics-apiserver``
at a pinned release and holds a small main of ours that runs that library's API server with its
testing provider (unchanged), loopback only. The binary lands in
``$XDG_CACHE_HOME/eventscale/delegate-adapter-<version>/delegate-adapter`` beside a stamp (a digest
of go.mod, go.sum, main.go and the build flags) and is rebuilt only when the stamp differs; a file
lock serialises concurrent builders, as for helm (`go_binary.py`).

Environment: EVENTSCALE_DELEGATE_ADAPTER uses that binary instead (no build); GO and GOTOOLCHAIN
as for build.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

from go_binary import BuildError, GoBinary, _build

MODULE_DIR = Path(__file__).resolve().parent / "delegate-adapter"
LIBRARY = "sigs.k8s.io/custom-metrics-apiserver"
LDFLAGS = "-s -w"
#: bump to invalidate the cache when the way of building changes
BUILD_REVISION = "1"


def library_version() -> str:
    text = (MODULE_DIR / "go.mod").read_text()
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(LIBRARY)}\s+(v\S+)", text, re.MULTILINE)
    if not match:
        raise _build.BuildError(f"{MODULE_DIR / 'go.mod'}: no requirement on {LIBRARY}")
    return match.group(1)


def _stamp(version: str) -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((MODULE_DIR / name).read_bytes())
    digest.update(f"{LDFLAGS} {BUILD_REVISION}".encode())
    return json.dumps({LIBRARY: version, "digest": digest.hexdigest()}, sort_keys=True)


def delegate_adapter_binary(version: str | None = None) -> GoBinary:
    version = version or library_version()
    return GoBinary("delegate-adapter", MODULE_DIR, ".", version, LDFLAGS, _stamp(version),
                    "EVENTSCALE_DELEGATE_ADAPTER", f"the delegate adapter ({LIBRARY}@{version})")


def binary_path(version: str | None = None) -> Path:
    path: Path = delegate_adapter_binary(version).path  # go_binary is imported by its file name: untyped for mypy
    return path


def ensure_delegate_adapter() -> Path:
    """The path of the delegate adapter built from the pinned library (built first when not cached)."""
    binary: Path = delegate_adapter_binary().ensure()
    return binary


if __name__ == "__main__":
    try:
        print(ensure_delegate_adapter())
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
