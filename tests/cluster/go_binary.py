"""A Go command of the tests, built once from a module directory of ours through the Go module proxy.

helm (`helm_build.py`) and the delegation test's second adapter (`delegate_adapter_build.py`) are
built the same way: `go build` in a directory holding a go.mod that pins the release, the binary
cached in ``$XDG_CACHE_HOME/eventscale/<name>-<version>/<name>`` beside a stamp saying what it was
built from (rebuilt only when the stamp differs), a file lock for concurrent builders, and an
environment variable naming a ready binary instead. The Go lookup, the lock and the cache root are
the control plane's (tests/cluster/build.py).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent


def load_build() -> Any:
    """tests/cluster/build.py, loaded once under a name that cannot clash with PyPI's `build`: the
    control plane (controlplane.py) and the Go binaries share it."""
    name = "eventscale_cluster_build"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _HERE / "build.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_build = load_build()
BuildError: type[Exception] = _build.BuildError


@dataclass(frozen=True)
class GoBinary:
    name: str  # the binary's file name, and the prefix of its cache directory and log lines
    module_dir: Path  # where `go build` runs: the go.mod that pins the release
    target: str  # what `go build` builds there: "." or a package path
    version: str
    ldflags: str
    stamp: str  # what a cached binary must have been built from
    override_env: str  # names a ready binary to use instead
    what: str  # the build's name in messages

    @property
    def path(self) -> Path:
        root: Path = _build.cache_root()
        return root / f"{self.name}-{self.version}" / self.name

    def ensure(self) -> Path:
        """The binary's path, built first when no cached one has this stamp."""
        override = os.environ.get(self.override_env)
        if override:
            if not os.access(override, os.X_OK):
                raise _build.BuildError(f"{self.override_env}={override} is not an executable")
            return Path(override)
        binary = self.path
        if self._is_built(binary):
            return binary
        with _build.locked(binary.parent / ".lock"):
            if not self._is_built(binary):  # another process may have built it while we waited
                self._compile(binary)
        return binary

    def _is_built(self, binary: Path) -> bool:
        stamp = binary.parent / ".stamp"
        return os.access(binary, os.X_OK) and stamp.exists() and stamp.read_text() == self.stamp

    def _compile(self, binary: Path) -> None:
        go = _build.go_command()
        stamp, log = binary.parent / ".stamp", binary.parent / "build.log"
        tmp = binary.parent / f".{self.name}.tmp"
        stamp.unlink(missing_ok=True)
        env = {**os.environ, "CGO_ENABLED": "0",
               "GOFLAGS": " ".join(filter(None, [os.environ.get("GOFLAGS", ""), "-mod=mod", "-buildvcs=false"]))}
        command = [go, "build", "-trimpath", f"-ldflags={self.ldflags}", "-o", str(tmp), self.target]
        started = time.monotonic()
        print(f"[{self.name}-build] go build {self.what} -> {binary} (log: {log})", file=sys.stderr, flush=True)
        with open(log, "w") as out:
            result = subprocess.run(command, cwd=self.module_dir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    check=False)
        if result.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise _build.BuildError(
                f"go build of {self.what} failed (exit {result.returncode}); see {log}\n{_build.tail(log)}\n"
                "If the error says the go.mod requires a newer Go, retry with GOTOOLCHAIN=go1.27.3."
            )
        os.replace(tmp, binary)
        stamp.write_text(self.stamp)
        print(f"[{self.name}-build] built in {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)
