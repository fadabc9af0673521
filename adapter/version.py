"""The version of eventscale, as its installed distribution says (`--version`, `keda_build_info`)."""

from __future__ import annotations

import functools
import platform
from importlib import metadata

DISTRIBUTION = "eventscale"


@functools.cache
def version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"


def describe() -> str:
    """What `--version` prints: ours and the Python that runs it."""
    system = f"{platform.system().lower()}/{platform.machine()}"
    return f"eventscale {version()} (Python {platform.python_version()}, {system})"
