"""Installing a test server's Debian packages when its binary is missing (a fresh CI machine).

The harness starts real servers (redis-server, rabbitmq-server) rather than fakes; on a machine
without them it installs them with apt-get, non-interactively, waiting up to five minutes for a
dpkg lock another installer holds. The package lists are refreshed at most once per process.
Where installing is not possible (no apt-get, not root, no network) the error names the packages
to install by hand and ends with apt-get's own message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

APT_GET = ("apt-get", "-o", "DPkg::Lock::Timeout=300")

_lock = threading.Lock()
_updated = False


def ensure_packages(binary: str | Path, packages: Sequence[str]) -> None:
    """Install `packages` unless `binary` (an absolute path, or a name on PATH) is there."""
    if _present(binary):
        return
    global _updated
    with _lock:
        if _present(binary):
            return
        if not _updated:
            _apt_get(["update"], packages)
            _updated = True
        _apt_get(["install", "-y", "--no-install-recommends", *packages], packages)
    if not _present(binary):
        raise RuntimeError(f"{binary} is still missing after installing {' '.join(packages)}")


def _present(binary: str | Path) -> bool:
    path = Path(binary)
    return path.exists() if path.is_absolute() else shutil.which(str(binary)) is not None


def _apt_get(arguments: list[str], packages: Sequence[str]) -> None:
    command = [*APT_GET, *arguments]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    except OSError as error:
        raise RuntimeError(f"cannot run apt-get to install {' '.join(packages)}: {error}") from None
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed (exit {result.returncode}); install {' '.join(packages)} "
            f"by hand or run the tests as root:\n{result.stderr[-2000:]}"
        )
