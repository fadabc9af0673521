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
from collections.abc import Iterator
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
    if config.option.collectonly or "bin_dir" in _state or "error" in _state:
        return
    if not any(item.get_closest_marker("e2e") for item in items):
        return
    capture = config.pluginmanager.getplugin("capturemanager")
    started = time.monotonic()
    with capture.global_and_fixture_disabled():
        try:
            _state["bin_dir"] = ensure_binaries()
        except BuildError as exc:
            _state["error"] = str(exc)
            print(f"\n[e2e] building the control plane failed:\n{exc}", file=sys.stderr)
    _state["build_seconds"] = time.monotonic() - started
    if any(item.get_closest_marker("delegate_adapter") for item in items):
        with capture.global_and_fixture_disabled():
            _build_delegate_adapter()


def _build_delegate_adapter() -> None:
    started = time.monotonic()
    try:
        _state["delegate_adapter"] = ensure_delegate_adapter()
    except BuildError as exc:
        _state["delegate_error"] = str(exc)
        print(f"\n[e2e] building the delegate adapter failed:\n{exc}", file=sys.stderr)
    _state["delegate_build_seconds"] = time.monotonic() - started


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if "startup_seconds" in _state:
        terminalreporter.write_line(
            f"control plane: binaries ready in {_state['build_seconds']:.1f}s, "
            f"start to ready {_state['startup_seconds']:.1f}s ({_state['server']})"
        )
    if "delegate_build_seconds" in _state:
        terminalreporter.write_line(f"delegate adapter: binary ready in {_state['delegate_build_seconds']:.1f}s")


@pytest.fixture(scope="session")
def delegate_adapter() -> Path:
    """The custom-metrics-apiserver test adapter binary (tests/cluster/delegate_adapter_build.py)."""
    if "delegate_error" in _state:
        pytest.fail(f"the delegate adapter could not be built:\n{_state['delegate_error']}", pytrace=False)
    try:
        return Path(_state.get("delegate_adapter") or ensure_delegate_adapter())
    except BuildError as exc:
        pytest.fail(f"the delegate adapter could not be built:\n{exc}", pytrace=False)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    if "error" in _state:
        pytest.fail(f"control plane binaries could not be built:\n{_state['error']}", pytrace=False)
    try:
        bin_dir = _state.get("bin_dir") or ensure_binaries()
        cp = ControlPlane(bin_dir)
        cp.start()
    except (BuildError, ControlPlaneError) as exc:
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
