"""One adapter process for the API contract tests, serving a directory the tests write to."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.adapter_process import ROOT, AdapterProcess, running_adapter
from tests.harness.ports import free_port


@pytest.fixture(scope="session")
def local_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("objects")
    shutil.copy(ROOT / "tests/api/objects.yaml", directory / "objects.yaml")
    return directory


@pytest.fixture(scope="session")
def internal_port() -> int:
    """The adapter's plain-HTTP loopback listener (the controller sidecar's), on a port of its own."""
    return free_port()


@pytest.fixture(scope="session")
def adapter(local_dir: Path, tmp_path_factory: pytest.TempPathFactory, internal_port: int) -> Iterator[AdapterProcess]:
    certs = tmp_path_factory.mktemp("certs")
    with running_adapter(local_dir, certs, certs.parent / "adapter.log", "--metric-max-age", "0.5",
                         "--internal-port", str(internal_port)) as process:
        yield process
