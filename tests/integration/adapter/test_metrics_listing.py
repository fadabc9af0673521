"""`python -m adapter metrics --local-dir DIR` on manifests with real Redis triggers.

The listing names each ScaledObject's triggers with the metric names the adapter serves and the
values a read gets from the real server; its `kubectl get --raw` line asks a running adapter
(through the kubeconfig of the certificate directory) for the same value. A trigger that cannot
read (a wrong password) is listed with its masked error and the exit status says so.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

from tests.harness.adapter_process import run_cli, running_adapter
from tests.harness.redis_servers import ACL_PASSWORD, ACL_USER, RedisServer

WRONG = "Not-The-Right-Pa55word"
Obj = dict[str, Any]


def manifests(redis: RedisServer, with_wrong_password: bool) -> list[Obj]:
    auth: Obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "redis-auth", "namespace": "shop"},
            "stringData": {"password": ACL_PASSWORD, "wrong": WRONG, "username": ACL_USER}}
    triggers: list[Obj] = [
        {"type": "redis", "authenticationRef": {"name": "redis"},
         "metadata": {"address": redis.address, "listName": "listing-jobs", "listLength": "10"}}]
    objects: list[Obj] = [auth, _trigger_auth("redis", "password")]
    if with_wrong_password:
        triggers.append({"type": "redis", "name": "bad", "authenticationRef": {"name": "redis-wrong"},
                         "metadata": {"address": redis.address, "listName": "other"}})
        objects.append(_trigger_auth("redis-wrong", "wrong"))
    objects.append({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                    "metadata": {"name": "listing", "namespace": "shop"},
                    "spec": {"scaleTargetRef": {"name": "consumer"}, "triggers": triggers}})
    return objects


def _trigger_auth(name: str, password_key: str) -> Obj:
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"secretTargetRef": [{"parameter": "password", "name": "redis-auth", "key": password_key},
                                         {"parameter": "username", "name": "redis-auth", "key": "username"}]}}


def write(directory: Path, objects: list[Obj]) -> Path:
    directory.mkdir()
    (directory / "objects.yaml").write_text("\n---\n".join(json.dumps(o) for o in objects))
    return directory


def test_lists_metric_names_values_and_the_kubectl_line_that_reads_them(redis_server: RedisServer,
                                                                        tmp_path: Path) -> None:
    redis_server.admin().delete("listing-jobs")
    redis_server.admin().rpush("listing-jobs", *range(7))
    objects = write(tmp_path / "objects", manifests(redis_server, with_wrong_password=False))
    listed = run_cli("metrics", "--local-dir", str(objects), "--cert-dir", str(tmp_path / "certs"))
    assert listed.returncode == 0, listed.stdout + listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["SCALEDOBJECT", "TRIGGER", "METRIC", "VALUE"]
    assert lines[1].split() == ["shop/listing", "0", "redis", "s0-redis-listing-jobs", "7"]
    command = shlex.split(lines[2])
    assert command[:5] == ["kubectl", "--kubeconfig", str(tmp_path / "certs" / "kubeconfig"), "get", "--raw"]
    assert lines[-1] == "0 problems, 0 triggers without a value"

    redis_server.admin().rpush("listing-jobs", 7, 8)
    with running_adapter(objects, tmp_path / "certs", tmp_path / "adapter.log") as adapter, \
            adapter.client() as client:  # the kubeconfig's admin identity, as kubectl would present
        response = client.get(command[5])
        assert response.status_code == 200, response.text
        assert response.json()["items"][0]["metricName"] == "s0-redis-listing-jobs"
        assert response.json()["items"][0]["value"] == "9"


def test_a_trigger_that_cannot_read_is_listed_with_its_masked_error(redis_server: RedisServer,
                                                                    tmp_path: Path) -> None:
    objects = write(tmp_path / "objects", manifests(redis_server, with_wrong_password=True))
    (objects / "typo.yaml").write_text("apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: typo}\n"
                                       "spec: {scaleTargetRef: {name: x}, pollingIntervall: 5, triggers: []}\n")
    listed = run_cli("metrics", "--local-dir", str(objects), "--cert-dir", str(tmp_path / "certs"))
    assert listed.returncode == 1
    bad = next(line for line in listed.stdout.splitlines() if "s1-redis-other" in line)
    assert re.match(r"shop/listing\s+1 redis\s+s1-redis-other\s+error: \S", bad), bad
    assert "problem: ScaledObject default/typo (file:typo.yaml): unknown fields: spec.pollingIntervall" \
        in listed.stdout
    assert listed.stdout.splitlines()[-1] == "1 problems, 1 triggers without a value"
    assert WRONG not in listed.stdout + listed.stderr and ACL_PASSWORD not in listed.stdout + listed.stderr
