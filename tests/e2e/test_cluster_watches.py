"""The cluster-mode building blocks, in-process, against the real kube-apiserver.

A resource the server does not serve, the authentication ConfigMap followed as it changes, and
the 10-second review caches counted by the reviews really sent. (410 Gone cannot be provoked on
demand for a watch here: kube-apiserver's watch cache replays any old resourceVersion until its
buffer wraps, so tests/unit/kube/test_watch.py covers it with a stand-in. A list's continue
token does expire on demand, for a resource read from etcd (the control plane keeps PodTemplates
out of the watch cache): etcd compacted past it.)
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import pytest
from controlplane import ControlPlane

from adapter.auth.authentication import Authenticator, UserInfo
from adapter.auth.authorization import NonResourceAttributes, ResourceAttributes
from adapter.auth.delegated_authentication import AuthConfigWatch, TokenReviewer
from adapter.auth.delegated_authorization import SubjectAccessReviewAuthorizer
from adapter.catalog.kubernetes_source import strip_data
from adapter.certs import issue, new_ca
from adapter.kube.client import KubeApi, Object
from adapter.kube.resources import Resource
from adapter.kube.watch import Reflector
from adapter.kube.wire import ApiError

pytestmark = pytest.mark.e2e


class Recorder:
    """A Sink that remembers what it was told."""

    def __init__(self) -> None:
        self.lists: list[list[str]] = []
        self.events: list[tuple[str, bool]] = []

    def listed(self, resource: Resource, objects: list[Object]) -> None:
        self.lists.append(sorted(o["metadata"]["name"] for o in objects))

    def changed(self, resource: Resource, obj: Object, deleted: bool) -> None:
        self.events.append((obj["metadata"]["name"], deleted))


@pytest.fixture
async def api(control_plane: ControlPlane) -> AsyncIterator[KubeApi]:
    client = KubeApi.connect(control_plane.kubeconfig)
    yield client
    await client.aclose()


async def eventually(check: Callable[[], bool], what: str, timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)
    assert check(), what


async def running(work: Callable[[], Coroutine[Any, Any, None]], body: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.create_task(work())
    try:
        await body()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def configmap(cp: ControlPlane, namespace: str, name: str, data: dict[str, str]) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": data}
    cp.kubectl("apply", "-f", "-", input=json.dumps(body))


def pod_template(namespace: str, name: str) -> Object:
    return {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": name, "namespace": namespace},
            "template": {"spec": {"containers": [{"name": "c", "image": "example.invalid/c"}]}}}


def compact_etcd(cp: ControlPlane) -> None:
    """etcd compacted up to its newest revision: every older continue token has expired."""
    def post(path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(cp.etcd_url + path, json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    revision = post("/v3/kv/range", {"key": "Lw=="})["header"]["revision"]  # key "/"
    try:
        post("/v3/kv/compaction", {"revision": revision, "physical": True})
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"compaction at {revision}: {exc.read()!r}") from None


async def test_a_list_whose_continuation_expired_is_listed_whole(control_plane: ControlPlane, namespace: str,
                                                                 api: KubeApi) -> None:
    """At 100,000 objects on a busy server, listing page by page outlasted etcd's compaction
    window: each continuation expired and the list began again, without end. Here every page
    read compacts etcd past the list's version; the list is then made whole in one request."""
    names = [f"page-{i}" for i in range(4)]
    for name in names:
        control_plane.kubectl("apply", "-f", "-", input=json.dumps(pod_template(namespace, name)))
    recorder, reads = Recorder(), 0

    def compacting(raw: Object) -> Object:
        nonlocal reads
        reads += 1
        configmap(control_plane, namespace, "newer", {"read": str(reads)})  # a newer revision
        compact_etcd(control_plane)
        return raw

    reflector = Reflector(api, Resource("", "v1", "podtemplates", "PodTemplate", namespace=namespace), recorder,
                          compacting, page_size=1)

    async def body() -> None:
        await asyncio.wait_for(reflector.listed.wait(), 60)
        assert set(names) <= set(recorder.lists[0])

    await running(reflector.run, body)
    assert reflector.lists == 1


async def test_missing_resource_counts_as_listed_and_empty(api: KubeApi) -> None:
    recorder = Recorder()
    resource = Resource("nothing.example.com", "v1", "widgets", "Widget")
    reflector = Reflector(api, resource, recorder, strip_data, absent_retry=60)

    async def body() -> None:
        await asyncio.wait_for(reflector.listed.wait(), 10)
        assert recorder.lists == [[]]

    await running(reflector.run, body)


async def test_authentication_configmap_changes_are_followed(control_plane: ControlPlane, namespace: str,
                                                             api: KubeApi) -> None:
    real = control_plane.kubectl_json("get", "configmap", "extension-apiserver-authentication",
                                      "-n", "kube-system")["data"]
    configmap(control_plane, namespace, "auth", real)
    watch = AuthConfigWatch(api, namespace=namespace, name="auth")
    authenticator = Authenticator(await watch.load())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    watch.follow(authenticator, context)
    cas_before = context.cert_store_stats()["x509_ca"]
    rotated = new_ca("rotated-front-proxy-ca")
    proxy = issue(rotated, "other-proxy", client=True)
    scope = {"headers": [(b"x-remote-user", b"carol")],
             "extensions": {"tls": {"client_cert_chain": [proxy.cert_pem.decode()]}}}

    async def body() -> None:
        with pytest.raises(ApiError):  # not trusted yet
            await authenticator.authenticate(scope)
        configmap(control_plane, namespace, "auth", {
            **real, "requestheader-client-ca-file": rotated.cert_pem.decode(),
            "requestheader-allowed-names": json.dumps(["other-proxy"])})
        await eventually(lambda: watch.updates == 1, "the update")
        assert (await authenticator.authenticate(scope)).name == "carol"
        assert context.cert_store_stats()["x509_ca"] == cas_before + 1

    await running(watch.run, body)


async def test_subject_access_reviews_are_cached_and_shared(control_plane: ControlPlane, api: KubeApi) -> None:
    authorizer = SubjectAccessReviewAuthorizer(api)
    admin_like = UserInfo("admin-like", groups=("system:authenticated",))
    discovery = NonResourceAttributes("/apis/external.metrics.k8s.io/v1beta1")
    await asyncio.gather(*(authorizer.authorize(admin_like, discovery) for _ in range(20)))
    assert authorizer.cache.reviews == 1  # system:discovery allows it; 20 concurrent requests, one review
    metric = ResourceAttributes("default", "s0-redis-jobs")
    for _ in range(3):
        with pytest.raises(ApiError) as denied:
            await authorizer.authorize(admin_like, metric)
        assert denied.value.code == 403
    assert authorizer.cache.reviews == 2  # the denial is cached too
    await authorizer.authorize(UserInfo("root", groups=("system:masters",)), metric)
    assert authorizer.cache.reviews == 2  # system:masters is never reviewed


async def test_token_reviews_are_cached(control_plane: ControlPlane, namespace: str, api: KubeApi) -> None:
    control_plane.kubectl("create", "serviceaccount", "robot", "-n", namespace)
    token = control_plane.kubectl("create", "token", "robot", "-n", namespace).stdout.strip()
    reviewer = TokenReviewer(api)
    users: list[Any] = await asyncio.gather(*(reviewer.review(token) for _ in range(10)))
    assert {u.name for u in users} == {f"system:serviceaccount:{namespace}:robot"}
    assert "system:serviceaccounts" in users[0].groups
    assert await reviewer.review("not-a-token") is None
    assert await reviewer.review("not-a-token") is None
    assert reviewer.cache.reviews == 2
