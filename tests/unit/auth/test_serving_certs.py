"""The shared serving-certificate Secret of --self-signed-certs: reuse, replacement and races."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import logging
import ssl
from pathlib import Path
from typing import Any

import pytest

from adapter.auth.serving_certs import (
    APISERVICE_PATH,
    RENEW_BEFORE,
    SECRET_NAME,
    ServingCerts,
    SharedServingCerts,
    serving_hosts,
)
from adapter.kube.client import ApiStatusError, Object

NAMESPACE = "eventscale"
SECRET_PATH = f"/api/v1/namespaces/{NAMESPACE}/secrets/{SECRET_NAME}"
HOSTS = serving_hosts("eventscale-adapter", NAMESPACE)


class FakeApi:
    """Secrets and the APIService in a dict, with kube-apiserver's 404 and 409 answers.

    `before_write` runs just before a write is applied: another replica writing first."""

    def __init__(self) -> None:
        self.objects: dict[str, Object] = {APISERVICE_PATH: {"spec": {}}}
        self.version = 0
        self.writes: list[tuple[str, str]] = []
        self.before_write: Any = None

    def _store(self, path: str, body: Object) -> Object:
        self.version += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.objects[path] = stored
        return copy.deepcopy(stored)

    async def get(self, path: str) -> Object:
        if path not in self.objects:
            raise ApiStatusError(404, "not found", "NotFound")
        return copy.deepcopy(self.objects[path])

    async def post(self, path: str, body: Object) -> Object:
        self._race()
        target = f"{path}/{body['metadata']['name']}"
        self.writes.append(("create", target))
        if target in self.objects:
            raise ApiStatusError(409, "already exists", "AlreadyExists")
        return self._store(target, body)

    async def put(self, path: str, body: Object) -> Object:
        self._race()
        self.writes.append(("update", path))
        if self.objects[path]["metadata"]["resourceVersion"] != body["metadata"]["resourceVersion"]:
            raise ApiStatusError(409, "the object has been modified", "Conflict")
        return self._store(path, body)

    async def merge_patch(self, path: str, body: Object) -> Object:
        self.writes.append(("patch", path))
        self.objects[path]["spec"].update(body["spec"])
        return self.objects[path]

    def _race(self) -> None:
        if self.before_write is not None:
            race, self.before_write = self.before_write, None
            race()

    def put_secret(self, serving: ServingCerts) -> None:
        self._store(SECRET_PATH, {"metadata": {"name": SECRET_NAME}, "type": "kubernetes.io/tls",
                                  "data": serving.secret_data()})

    def secret(self) -> ServingCerts:
        return ServingCerts.from_secret(self.objects[SECRET_PATH])


def shared(api: FakeApi, cert_dir: Path) -> SharedServingCerts:
    return SharedServingCerts(api, cert_dir, "eventscale-adapter", NAMESPACE)  # type: ignore[arg-type]


async def test_first_replica_creates_the_secret_and_registers_its_ca(tmp_path: Path) -> None:
    api = FakeApi()
    serving = await shared(api, tmp_path).load()
    assert api.writes == [("create", SECRET_PATH), ("patch", APISERVICE_PATH)]
    assert api.secret() == serving and serving.problem(HOSTS) is None
    assert api.objects[SECRET_PATH]["type"] == "kubernetes.io/tls"
    assert base64.b64decode(api.objects[APISERVICE_PATH]["spec"]["caBundle"]) == serving.ca_pem
    assert (tmp_path / "ca.crt").read_bytes() == serving.ca_pem
    assert (tmp_path / "serving.crt").read_bytes() == serving.cert_pem
    assert (tmp_path / "serving.key").stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "ca.key").exists()


async def test_a_valid_secret_is_reused_without_writes(tmp_path: Path) -> None:
    api = FakeApi()
    existing = ServingCerts.generate(HOSTS)
    api.put_secret(existing)
    api.objects[APISERVICE_PATH]["spec"]["caBundle"] = base64.b64encode(existing.ca_pem).decode()
    assert await shared(api, tmp_path).load() == existing
    assert api.writes == []


async def test_losing_the_create_race_uses_the_winners_secret(tmp_path: Path) -> None:
    api = FakeApi()
    winner = ServingCerts.generate(HOSTS)
    api.before_write = lambda: api.put_secret(winner)
    assert await shared(api, tmp_path).ensure_secret() == winner
    assert api.writes == [("create", SECRET_PATH)]  # the 409 AlreadyExists, then a read


@pytest.mark.parametrize("hosts, reason", [
    (serving_hosts("other-service", NAMESPACE), "not valid for eventscale-adapter.eventscale.svc"),
    (None, "malformed"),
])
async def test_an_unfit_secret_is_replaced_with_its_resource_version(tmp_path: Path, hosts: list[str] | None,
                                                                     reason: str,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "eventscale.apiservice")
    api = FakeApi()
    api.put_secret(ServingCerts.generate(hosts or HOSTS))
    if hosts is None:
        del api.objects[SECRET_PATH]["data"]["tls.key"]
    fresh = await shared(api, tmp_path).ensure_secret()
    assert api.writes == [("update", SECRET_PATH)]
    assert api.secret() == fresh and fresh.problem(HOSTS) is None
    assert reason in caplog.text


async def test_losing_the_update_race_uses_the_winners_secret(tmp_path: Path) -> None:
    api = FakeApi()
    api.put_secret(ServingCerts.generate(serving_hosts("old", NAMESPACE)))
    winner = ServingCerts.generate(HOSTS)
    api.before_write = lambda: api.put_secret(winner)
    assert await shared(api, tmp_path).ensure_secret() == winner
    assert api.writes == [("update", SECRET_PATH)]  # the 409 Conflict, then a read


def test_certificates_close_to_expiry_are_not_fit() -> None:
    serving = ServingCerts.generate(HOSTS)
    assert serving.problem(HOSTS) is None
    late = dt.datetime.now(dt.UTC) + dt.timedelta(days=3650) - RENEW_BEFORE + dt.timedelta(days=1)
    assert "valid" in (serving.problem(HOSTS, now=late) or "")
    other = ServingCerts.generate(HOSTS)
    mixed = ServingCerts(other.ca_pem, serving.cert_pem, serving.key_pem)
    assert "not signed by its CA" in (mixed.problem(HOSTS) or "")
    assert "does not belong" in (ServingCerts(serving.ca_pem, serving.cert_pem, other.key_pem).problem(HOSTS) or "")


async def test_the_periodic_check_follows_a_replaced_secret(tmp_path: Path) -> None:
    api = FakeApi()
    certs = shared(api, tmp_path)
    first = await certs.load()
    certs.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # serving: a replacement is loaded into it
    replaced = ServingCerts.generate(HOSTS)
    api.put_secret(replaced)  # another replica renewed it
    certs._use(await certs.ensure_secret())
    await certs.ensure_ca_bundle()
    assert certs.current == replaced != first
    assert (tmp_path / "ca.crt").read_bytes() == replaced.ca_pem
    assert base64.b64decode(api.objects[APISERVICE_PATH]["spec"]["caBundle"]) == replaced.ca_pem
