"""The options every command shares, as a user types them: the `eventscale` console script,
`--version`, `--log-level` / `--log-format` before or after the command's name, help on every flag."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adapter.cli import parser
from tests.harness.adapter_process import ROOT, run_cli, running_adapter

CONSOLE_SCRIPT = Path(sys.executable).parent / "eventscale"
PROJECT_VERSION = next(line.split('"')[1] for line in (ROOT / "pyproject.toml").read_text().splitlines()
                       if line.startswith("version = "))


def _eventscale(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CONSOLE_SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_console_script_is_installed_and_names_itself() -> None:
    assert CONSOLE_SCRIPT.exists(), f"{CONSOLE_SCRIPT} missing: `pip install -e .` installs it"
    result = _eventscale("--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: eventscale "), result.stdout
    assert "usage: python -m adapter " in run_cli("--help").stdout


@pytest.mark.parametrize("run", [_eventscale, run_cli], ids=["eventscale", "python -m adapter"])
def test_version_prints_the_installed_version(run: object) -> None:
    result = run("--version")  # type: ignore[operator]
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"eventscale {PROJECT_VERSION} (Python "), result.stdout


@pytest.mark.parametrize("args", [
    ("--log-level", "WARNING", "convert", "-"),
    ("convert", "--log-level", "warning", "-"),
    ("--log-format", "json", "convert", "--log-level", "DEBUG", "-"),
    ("convert", "-", "--log-format", "text"),
])
def test_logging_options_are_accepted_before_or_after_the_command(args: tuple[str, ...]) -> None:
    result = subprocess.run([sys.executable, "-m", "adapter", *args], cwd=ROOT, input="", capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_an_unknown_log_level_is_refused_with_the_choices() -> None:
    result = run_cli("serve", "--log-level", "LOUD")
    assert result.returncode == 2 and "DEBUG" in result.stderr and "ERROR" in result.stderr


def _every_flag(command: argparse.ArgumentParser, path: str) -> list[tuple[str, argparse.Action]]:
    found = []
    for action in command._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _every_flag(sub, f"{path} {name}")
        elif action.option_strings and not isinstance(action, argparse._HelpAction):
            found.append((f"{path} {action.option_strings[0]}", action))
    return found


def test_every_flag_of_every_command_has_help_text() -> None:
    flags = _every_flag(parser(), "eventscale")
    assert len(flags) > 40
    missing = [name for name, action in flags if not action.help or action.help == argparse.SUPPRESS]
    assert missing == []


def test_json_logs_after_the_command_name_one_object_per_line(tmp_path: Path) -> None:
    local = tmp_path / "objects"
    local.mkdir()
    (local / "objects.yaml").write_text((ROOT / "tests/api/objects.yaml").read_text())
    with running_adapter(local, tmp_path / "certs", tmp_path / "adapter.log",
                         "--log-format", "json", "--log-level", "debug") as adapter:
        pass
    lines = [line for line in adapter.log().splitlines() if line and not line.startswith("try: ")]
    records = [json.loads(line) for line in lines]  # every line of stderr is one JSON object
    assert all({"time", "level", "logger", "msg"} <= record.keys() for record in records)
    serving = [r for r in records if r["msg"].startswith("serving=https://")]
    assert len(serving) == 1 and serving[0]["level"] == "info" and serving[0]["logger"].startswith("eventscale")
    assert any(r["level"] == "debug" for r in records)


def test_text_logs_are_key_value_lines_and_libraries_are_quiet(tmp_path: Path) -> None:
    local = tmp_path / "objects"
    local.mkdir()
    (local / "objects.yaml").write_text((ROOT / "tests/api/objects.yaml").read_text())
    with running_adapter(local, tmp_path / "certs", tmp_path / "adapter.log") as adapter:
        pass
    lines = [line for line in adapter.log().splitlines() if line and not line.startswith("try: ")]
    assert lines and all(line.startswith("time=") and " level=" in line and " logger=" in line for line in lines)
    assert sum("serving=https://" in line for line in lines) == 1
    assert not [line for line in lines if "logger=uvicorn" in line or "level=debug" in line]


BROKER_PASSWORD = "Rabbit-pa55word-x"


def _failing_objects(closed_port: int) -> str:
    """Two ScaledObjects reading a queue of one RabbitMQ server that is down."""
    return "\n---\n".join(json.dumps({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": name},
        "spec": {"scaleTargetRef": {"name": name}, "pollingInterval": 1, "triggers": [{"type": "rabbitmq", "metadata": {
            "host": f"amqp://eventscale:{BROKER_PASSWORD}@127.0.0.1:{closed_port}/", "queueName": name,
            "mode": "QueueLength", "value": "5"}}]}}) for name in ("orders", "invoices"))


def test_a_broker_failure_is_one_line_per_poll_naming_the_scaled_objects(tmp_path: Path) -> None:
    from tests.harness.ports import free_port

    local = tmp_path / "objects"
    local.mkdir()
    (local / "objects.yaml").write_text(_failing_objects(free_port()))
    with running_adapter(local, tmp_path / "certs", tmp_path / "adapter.log") as adapter:
        deadline = time.monotonic() + 30
        while adapter.log().count("scaler=rabbitmq") < 3:  # a few polls
            assert time.monotonic() < deadline, adapter.log()
            time.sleep(0.2)
    log = adapter.log()
    failures = [line for line in log.splitlines() if "scaler=rabbitmq" in line]
    assert all("scaledobjects=default/invoices,default/orders" in line and "level=warning" in line
               for line in failures), failures
    assert "Traceback" not in log and "logger=pika" not in log and BROKER_PASSWORD not in log
    assert len([line for line in log.splitlines() if line.strip()]) < 12 + len(failures), log
