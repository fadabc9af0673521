"""Where the harness keeps what it fetched once (Kafka's jars): ~/.cache/eventscale, file-locked.

Fetching takes tens of seconds, so the result is kept across sessions in
`$XDG_CACHE_HOME/eventscale/<name>` (default `~/.cache`), and `locked` serialises the processes
(parallel sessions, CI next to a developer) that would otherwise fetch into it at once.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def cache_dir(name: str) -> Path:
    """`$XDG_CACHE_HOME/eventscale/<name>` (default `~/.cache`), not created."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "eventscale" / name


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created with its folder) while inside."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
