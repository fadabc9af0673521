"""Build the second external metrics adapter of the delegation e2e test, from the Go module proxy, once.

    python tests/cluster/delegate_adapter_build.py   # build (or confirm the cache), print the binary

or, from Python, ``ensure_delegate_adapter() -> Path``.

The module in ``tests/cluster/delegate-adapter`` requires ``sigs.k8s.io/custom-metrics-apiserver``
at a pinned release and holds a small main of ours that runs that library's API server with its
testing provider (unchanged), loopback only. The binary lands in
``$XDG_CACHE_HOME/eventscale/delegate-adapter-<version>/delegate-adapter`` beside a stamp (a digest
of go.mod, go.sum, main.go and the build flags) and is rebuilt only when the stamp differs; a file
lock serialises concurrent builders, as for the control plane (tests/cluster/build.py, whose Go
lookup and lock this reuses, as helm_build.py does).

Environment: EVENTSCALE_DELEGATE_ADAPTER uses that binary instead (no build); GO and GOTOOLCHAIN
as for build.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from helm_build import _build

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


def binary_path(version: str | None = None) -> Path:
    root: Path = _build.cache_root()
    return root / f"delegate-adapter-{version or library_version()}" / "delegate-adapter"


def _is_built(binary: Path, version: str) -> bool:
    stamp = binary.parent / ".stamp"
    return os.access(binary, os.X_OK) and stamp.exists() and stamp.read_text() == _stamp(version)


def ensure_delegate_adapter() -> Path:
    """The path of the delegate adapter built from the pinned library (built first when not cached)."""
    override = os.environ.get("EVENTSCALE_DELEGATE_ADAPTER")
    if override:
        if not os.access(override, os.X_OK):
            raise _build.BuildError(f"EVENTSCALE_DELEGATE_ADAPTER={override} is not an executable")
        return Path(override)
    version = library_version()
    binary = binary_path(version)
    if _is_built(binary, version):
        return binary
    with _build.locked(binary.parent / ".lock"):
        if not _is_built(binary, version):  # another process may have built it while we waited
            _compile(binary, version)
    return binary


def _compile(binary: Path, version: str) -> None:
    go = _build.go_command()
    stamp, log, tmp = binary.parent / ".stamp", binary.parent / "build.log", binary.parent / ".delegate-adapter.tmp"
    stamp.unlink(missing_ok=True)
    env = {**os.environ, "CGO_ENABLED": "0",
           "GOFLAGS": " ".join(filter(None, [os.environ.get("GOFLAGS", ""), "-mod=mod", "-buildvcs=false"]))}
    command = [go, "build", "-trimpath", f"-ldflags={LDFLAGS}", "-o", str(tmp), "."]
    started = time.monotonic()
    print(f"[delegate-adapter-build] go build ({LIBRARY}@{version}) -> {binary} (log: {log})",
          file=sys.stderr, flush=True)
    with open(log, "w") as out:
        result = subprocess.run(command, cwd=MODULE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise _build.BuildError(
            f"go build of the delegate adapter ({LIBRARY}@{version}) failed (exit {result.returncode}); "
            f"see {log}\n{_build.tail(log)}\n"
            "If the error says the go.mod requires a newer Go, retry with GOTOOLCHAIN=go1.27.3."
        )
    os.replace(tmp, binary)
    stamp.write_text(_stamp(version))
    print(f"[delegate-adapter-build] built in {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    try:
        print(ensure_delegate_adapter())
    except _build.BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
