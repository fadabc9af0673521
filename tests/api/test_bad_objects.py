"""Badly shaped objects in the served directory, through the real `serve` process over HTTPS.

A file holding a wrongly typed object, present at start-up or written while serving, is reported
on that object (a 500 naming the problem, a log line); every other object keeps answering, the
directory watcher keeps applying changes, and `/readyz` lists a check per background task.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.harness.adapter_process import AdapterProcess, running_adapter

GV = "/apis/external.metrics.k8s.io/v1beta1"
CRON = {"timezone": "UTC", "start": "0 0 1 1 *", "end": "59 23 31 12 *", "desiredReplicas": "4"}
METRIC = "s0-cron-UTC-0011x-59233112x"


def scaled_object(name: str, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": name, **meta},
            "spec": {"scaleTargetRef": {"name": f"{name}-app"}, "triggers": [{"type": "cron", "metadata": dict(CRON)}]}}


def reading(name: str, auth: str) -> dict[str, Any]:
    """A ScaledObject taking desiredReplicas from TriggerAuthentication `auth`."""
    so = scaled_object(name)
    trigger = so["spec"]["triggers"][0]
    trigger["metadata"].pop("desiredReplicas")
    trigger["authenticationRef"] = {"name": auth}
    return so


def auth(name: str, kind: str, source: str) -> dict[str, Any]:
    ref = "secretTargetRef" if kind == "Secret" else "configMapTargetRef"
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication", "metadata": {"name": name},
            "spec": {ref: [{"parameter": "desiredReplicas", "name": source, "key": "n"}]}}


def deployment(name: str, spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def laughs_config_map(name: str, levels: int = 7) -> str:
    """A ConfigMap whose key `n` is a "billion laughs": 10**levels strings once its aliases are expanded."""
    lines = ['  l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, levels + 1)]
    return (f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata:\n" + "\n".join(lines)
            + f"\n  n: *l{levels}\n")


TRIGGER = 404  # the object resolved, its trigger did not: "metric not found (trigger errors: ...)"
OBJECT = 500  # the object itself cannot be used: "ScaledObject default/bad is not valid: ..."
BAD_FILES: dict[str, tuple[str, int, str]] = {  # file: (content, status, what the answer for "bad" says)
    "generation-abc": (json.dumps(scaled_object("bad", generation="abc")), OBJECT, "metadata.generation"),
    "generation-list": (json.dumps(scaled_object("bad", generation=[1])), OBJECT, "metadata.generation"),
    "spec-oops": (json.dumps(scaled_object("x") | {"metadata": {"name": "bad"}, "spec": "oops"}),
                  OBJECT, "spec must be an object"),
    "deployment-spec": ("\n---\n".join(json.dumps(o) for o in (scaled_object("bad"), deployment("bad-app", "oops"))),
                        TRIGGER, "spec of Deployment default/bad-app must be an object"),
    "containers": ("\n---\n".join(json.dumps(o) for o in (
        scaled_object("bad"), deployment("bad-app", {"template": {"spec": {"containers": ["c1"]}}}))),
        TRIGGER, "must be a list of objects"),
    "env": ("\n---\n".join(json.dumps(o) for o in (
        scaled_object("bad"), deployment("bad-app", {"template": {"spec": {"containers": [
            {"name": "c", "env": ["A=1"]}]}}}))), TRIGGER, "env of container"),
    "stringdata-list": ("\n---\n".join(json.dumps(o) for o in (
        reading("bad", "a"), auth("a", "Secret", "s"),
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": ["n"]})),
        TRIGGER, "stringData of Secret default/s must be an object"),
    "stringdata-string": ("\n---\n".join(json.dumps(o) for o in (
        reading("bad", "a"), auth("a", "Secret", "s"),
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": "n=3"})),
        TRIGGER, "stringData of Secret default/s must be an object"),
    "timezone": (json.dumps(scaled_object("bad") | {"spec": {"scaleTargetRef": {"name": "w"}, "triggers": [
        {"type": "cron", "metadata": {**CRON, "timezone": "z" * 10_000}}]}}), TRIGGER, "is not an IANA time zone"),
    "config-map-map": ("\n---\n".join(json.dumps(o) for o in (
        reading("bad", "a"), auth("a", "ConfigMap", "cm"),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"n": {"deep": [1]}}})),
        TRIGGER, 'key "n" of ConfigMap default/cm must be a string'),
    "unknown-fields": (json.dumps(scaled_object("bad") | {"spec": {
        "scaleTargetRef": {"name": "w"}, "pollingIntervall": 5, "minReplicaCont": 1,
        "triggers": [{"type": "cron", "metdata": {}, "metadata": dict(CRON)}]}}),
        OBJECT, "unknown fields: spec.pollingIntervall, spec.minReplicaCont, spec.triggers[0].metdata"),
}


def metric(client: httpx.Client, name: str) -> httpx.Response:
    selector = quote(f"scaledobject.keda.sh/name={name}", safe="")
    return client.get(f"{GV}/namespaces/default/{METRIC}?labelSelector={selector}")


def eventually(check: Callable[[], str | None], timeout: float = 15.0) -> None:
    """Poll `check` (None when satisfied, else what it saw) until it is satisfied."""
    deadline = time.monotonic() + timeout
    while (seen := check()) is not None:
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s; last seen: {seen}")
        time.sleep(0.1)


def answers(client: httpx.Client, name: str, status: int, text: str = "") -> Callable[[], str | None]:
    def check() -> str | None:
        response = metric(client, name)
        message = response.json().get("message", "") if response.status_code != 200 else ""
        ok = response.status_code == status and text in message
        return None if ok else f"{response.status_code} {response.text[:300]}"
    return check


@pytest.fixture
def objects(tmp_path: Path) -> Path:
    directory = tmp_path / "objects"
    directory.mkdir()
    (directory / "good.yaml").write_text(json.dumps(scaled_object("good")))
    return directory


@pytest.fixture
def serving(objects: Path, tmp_path: Path) -> Iterator[AdapterProcess]:
    (objects / "at-start.yaml").write_text(json.dumps(scaled_object("bad-at-start", generation="abc")) + "\n---\n"
                                           + json.dumps({"kind": ["ScaledObject"], "metadata": {"name": "k"}}))
    with running_adapter(objects, tmp_path / "certs", tmp_path / "adapter.log", "--internal-port", "0") as adapter:
        yield adapter


def test_bad_objects_at_start_up_and_while_serving(serving: AdapterProcess, objects: Path) -> None:
    with serving.client() as client:
        assert metric(client, "good").json()["items"][0]["value"] == "4"
        at_start = metric(client, "bad-at-start")
        assert at_start.status_code == 500 and "metadata.generation must be a whole number" in at_start.text
        assert "at-start.yaml" in serving.log() and "kind that is not a string" in serving.log()
        for name, (content, status, problem) in BAD_FILES.items():
            path = objects / f"{name}.yaml"
            path.write_text(content)
            eventually(answers(client, "bad", status, problem))
            assert metric(client, "good").status_code == 200, name
            path.unlink()
            eventually(answers(client, "bad", 404, 'ScaledObject "bad" not found'))
        (objects / "at-start.yaml").unlink()
        (objects / "late.yaml").write_text(json.dumps(scaled_object("late")))
        eventually(answers(client, "late", 200))
        eventually(answers(client, "bad-at-start", 404, 'ScaledObject "bad-at-start" not found'))
        ready = client.get("/readyz?verbose").text.splitlines()
        assert "[+]task-directory-watch ok" in ready and "[+]task-metric-poller ok" in ready
    assert "Traceback" not in serving.log()


def test_kind_as_a_list_or_map_does_not_stop_other_changes(serving: AdapterProcess, objects: Path) -> None:
    with serving.client() as client:
        (objects / "kinds.yaml").write_text("kind: [ScaledObject]\nmetadata: {name: a}\n---\n"
                                            "kind: {ScaledObject: 1}\nmetadata: {name: b}\n")
        (objects / "late.yaml").write_text(json.dumps(scaled_object("late")))
        eventually(answers(client, "late", 200))
        assert "kinds.yaml" in serving.log()


def test_duplicate_scaled_objects_name_both_files(serving: AdapterProcess, objects: Path) -> None:
    with serving.client() as client:
        (objects / "copy-of-good.yaml").write_text(json.dumps(scaled_object("good")))
        eventually(answers(client, "good", 500, "defined more than once: file:copy-of-good.yaml, file:good.yaml"))
        (objects / "copy-of-good.yaml").unlink()
        eventually(answers(client, "good", 200))


def test_billion_laughs_config_map_is_refused_without_stalling(serving: AdapterProcess, objects: Path) -> None:
    with serving.client() as client:
        (objects / "reads-laughs.yaml").write_text(f'{json.dumps(reading("bad", "a"))}\n---\n'
                                                   f'{json.dumps(auth("a", "ConfigMap", "laughs"))}')
        (objects / "laughs.yaml").write_text(laughs_config_map("laughs"))
        slowest = 0.0
        deadline = time.monotonic() + 15
        while "laughs.yaml" not in serving.log() and time.monotonic() < deadline:
            started = time.monotonic()
            assert metric(client, "good").status_code == 200
            slowest = max(slowest, time.monotonic() - started)
        assert "YAML aliases would add" in serving.log()
        assert slowest < 1.0, slowest
        eventually(answers(client, "bad", TRIGGER, "ConfigMap default/laughs not found"))


def test_unknown_kinds_and_fields_are_logged_by_file_and_counted(serving: AdapterProcess, objects: Path) -> None:
    with serving.client() as client:
        typo = scaled_object("typo") | {"kind": "ScaledObjekt"}
        job = scaled_object("nightly") | {"kind": "ScaledJob"}
        (objects / "mistakes.yaml").write_text(json.dumps(typo) + "\n---\n" + json.dumps(job))
        eventually(lambda: None if "problems=4" in serving.log() else serving.log()[-600:])
        log = serving.log()
        assert "kind ScaledObjekt of keda.sh/v1alpha1 is not served" in log
        assert "ScaledJob default/nightly" in log and "unknown fields: spec.scaleTargetRef" in log
        assert "mistakes.yaml" in log
        assert metric(client, "good").status_code == 200
