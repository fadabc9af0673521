"""A real control plane (etcd, kube-apiserver, kube-controller-manager) for the e2e tests.

The binaries are built (or found in the cache) once, after collection and before any test
runs, so a cold build is not charged to a test's timeout; a build failure fails every e2e
test with the builder's message. One ControlPlane serves the whole session. The second
external metrics adapter of the delegation tests (`pytest.mark.delegate_adapter`) is built at
the same point, when such a test is collected; the `delegate_adapter` fixture gives its path.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))

from controller_stack import Stack
from controlplane import BuildError, ControlPlane, ControlPlaneError, ensure_binaries
from delegate_adapter_build import ensure_delegate_adapter

from tests.harness.redis_servers import RedisServer

_state: dict[str, Any] = {}


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    if config.option.collectonly or "control_plane" in _state or "control_plane_error" in _state:
        return
    if not any(item.get_closest_marker("e2e") for item in items):
        return
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        _build("control_plane", "the control plane", ensure_binaries)
        if any(item.get_closest_marker("delegate_adapter") for item in items):
            _build("delegate_adapter", "the delegate adapter", ensure_delegate_adapter)


def _build(key: str, what: str, ensure: Callable[[], Path]) -> None:
    """Build (or find in the cache) before any test runs; a failure is kept for the fixture to report."""
    started = time.monotonic()
    try:
        _state[key] = ensure()
    except BuildError as exc:
        _state[f"{key}_error"] = str(exc)
        print(f"\n[e2e] building {what} failed:\n{exc}", file=sys.stderr)
    _state[f"{key}_build_seconds"] = time.monotonic() - started


def _built(key: str, what: str, ensure: Callable[[], Path]) -> Path:
    """What `_build` made, or built now when collection did not (a failure fails the test)."""
    if f"{key}_error" in _state:
        pytest.fail(f"{what} could not be built:\n{_state[f'{key}_error']}", pytrace=False)
    try:
        return Path(_state.get(key) or ensure())
    except BuildError as exc:
        pytest.fail(f"{what} could not be built:\n{exc}", pytrace=False)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if "startup_seconds" in _state:
        terminalreporter.write_line(
            f"control plane: binaries ready in {_state['control_plane_build_seconds']:.1f}s, "
            f"start to ready {_state['startup_seconds']:.1f}s ({_state['server']})"
        )
    if "delegate_adapter_build_seconds" in _state:
        terminalreporter.write_line(
            f"delegate adapter: binary ready in {_state['delegate_adapter_build_seconds']:.1f}s")


@pytest.fixture(scope="session")
def delegate_adapter() -> Path:
    """The custom-metrics-apiserver test adapter binary (tests/cluster/delegate_adapter_build.py)."""
    return _built("delegate_adapter", "the delegate adapter", ensure_delegate_adapter)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    bin_dir = _built("control_plane", "control plane binaries", ensure_binaries)
    try:
        cp = ControlPlane(bin_dir)
        cp.start()
    except ControlPlaneError as exc:
        pytest.fail(f"control plane did not start:\n{exc}", pytrace=False)
    _state["startup_seconds"] = cp.startup_seconds
    _state["server"] = cp.server
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    """A fresh namespace, deleted (without waiting) after the test."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)



@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, control_plane: ControlPlane,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The adapter and controller pods of one test module, started against the control plane.

    A module's `pytest.mark.stack(...)` gives `Stack.start` its arguments (replicas, controller and
    adapter flags); without it the stack starts as `Stack.start()` does.
    """
    marker = request.node.get_closest_marker("stack")
    args, kwargs = (marker.args, marker.kwargs) if marker else ((), {})
    running = Stack(control_plane, tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2]))
    try:
        yield running.start(*args, **kwargs)
    finally:
        running.stop()


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    """One real Redis server for a test module."""
    with RedisServer() as server:
        yield server
