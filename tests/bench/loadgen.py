"""Build the Go load generator once (standard library only) into the project cache."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "loadgen"


def build_loadgen() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "eventscale" / "loadgen"
    binary = cache / "loadgen"
    stamp = cache / "source.mtime"
    current = str(max(p.stat().st_mtime_ns for p in SOURCE.iterdir()))
    if binary.exists() and stamp.exists() and stamp.read_text() == current:
        return binary
    go = shutil.which("go") or "/usr/local/go/bin/go"
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([go, "build", "-o", str(binary), "."], cwd=SOURCE, check=True)
    stamp.write_text(current)
    return binary
