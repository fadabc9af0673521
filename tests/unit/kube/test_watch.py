"""The list+watch loop against a small stand-in kube-apiserver that says what we want it to say.

kube-apiserver cannot be made to answer 410 Gone on demand (its watch cache replays any old
resourceVersion until its buffer wraps), so this server scripts the answers: paginated lists,
watch streams with bookmarks, and an ERROR event with a 410 Status as the apiserver sends it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from adapter.catalog.kubernetes_source import strip_data
from adapter.kube.client import KubeApi, Object
from adapter.kube.credentials import Credentials
from adapter.kube.resources import Resource
from adapter.kube.watch import Reflector
from tests.harness.ports import free_port

RESOURCE = Resource("", "v1", "configmaps", "ConfigMap", namespace="demo")


def configmap(name: str, rv: int, **data: str) -> Object:
    return {"kind": "ConfigMap", "apiVersion": "v1", "data": data,
            "metadata": {"name": name, "namespace": "demo", "resourceVersion": str(rv), "managedFields": [{}]}}


class StandIn:
    """Lists in pages of one; the first watch says 410 Gone, the next one streams events."""

    def __init__(self) -> None:
        self.objects = [configmap("a", 10, x="1"), configmap("b", 11, x="2")]
        self.requests: list[dict[str, str]] = []
        self.watches = 0
        self.closing = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.query))
        if request.query.get("watch") == "true":
            return await self.watch(request)
        index = int(request.query.get("continue") or 0)
        page: Object = {"kind": "ConfigMapList", "items": [dict(self.objects[index])],
                        "metadata": {"resourceVersion": "20"}}
        for item in page["items"]:  # list items of built-in kinds carry no kind/apiVersion
            item.pop("kind"), item.pop("apiVersion")
        if index + 1 < len(self.objects):
            page["metadata"]["continue"] = str(index + 1)
        return web.json_response(page)

    async def watch(self, request: web.Request) -> web.StreamResponse:
        self.watches += 1
        response = web.StreamResponse()
        await response.prepare(request)
        if self.watches == 1:
            events: list[Object] = [{"type": "ERROR", "object": {
                "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410, "reason": "Expired",
                "message": "too old resource version: 5 (20)"}}]
        else:
            events = [{"type": "BOOKMARK", "object": {"kind": "ConfigMap", "metadata": {"resourceVersion": "21"}}},
                      {"type": "MODIFIED", "object": configmap("a", 22, x="changed")},
                      {"type": "DELETED", "object": configmap("b", 23, x="2")}]
        for event in events:
            await response.write(json.dumps(event).encode() + b"\n")
        if self.watches > 1:  # hold the stream open like a real watch, until the test ends
            await self.closing.wait()
        return response


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def listed(self, resource: Resource, objects: list[Object]) -> None:
        self.calls.append(("listed", objects))

    def changed(self, resource: Resource, obj: Object, deleted: bool) -> None:
        self.calls.append(("deleted" if deleted else "changed", obj))


async def serve(server: StandIn, port: int = 0) -> web.AppRunner:
    app = web.Application()
    app.router.add_get(RESOURCE.path, server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def api_for(port: int) -> KubeApi:
    return KubeApi(Credentials(f"http://127.0.0.1:{port}"))


@pytest.fixture
async def stand_in() -> AsyncIterator[tuple[StandIn, KubeApi]]:
    server = StandIn()
    runner = await serve(server)
    api = api_for(runner.addresses[0][1])
    yield server, api
    server.closing.set()
    await api.aclose()
    await runner.cleanup()


async def test_410_gone_lists_again_then_watches_from_the_new_version(stand_in: tuple[StandIn, KubeApi]) -> None:
    server, api = stand_in
    recorder = Recorder()
    reflector = Reflector(api, RESOURCE, recorder, strip_data, resume_from="5", page_size=1)
    task = asyncio.create_task(reflector.run())
    try:
        async with asyncio.timeout(10):
            while len(recorder.calls) < 3:
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    kinds = [kind for kind, _ in recorder.calls]
    assert kinds == ["listed", "changed", "deleted"]
    listed = recorder.calls[0][1]
    assert [o["metadata"] for o in listed] == [{"name": "a", "namespace": "demo"}, {"name": "b", "namespace": "demo"}]
    assert listed[0] == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "demo"},
                         "data": {"x": "1"}}  # kind filled in, resourceVersion and managedFields stripped
    assert recorder.calls[1][1]["data"] == {"x": "changed"}
    watches = [q for q in server.requests if q.get("watch") == "true"]
    assert [w["resourceVersion"] for w in watches] == ["5", "20"]  # resumed, then from the relist
    assert all(w["allowWatchBookmarks"] == "true" for w in watches)
    pages = [q for q in server.requests if "watch" not in q]
    assert [p.get("continue") for p in pages] == [None, "1"] and pages[0]["limit"] == "1"
    assert reflector.resource_version == "23" and reflector.lists == 1


async def test_an_unreachable_server_is_retried_with_backoff_until_it_answers() -> None:
    port = free_port()
    api, server, recorder = api_for(port), StandIn(), Recorder()
    reflector = Reflector(api, RESOURCE, recorder, strip_data)
    task = asyncio.create_task(reflector.run())
    runner = None
    try:
        await asyncio.sleep(1.2)  # connection refused: retried after about 0.5 s, then 1 s
        assert not reflector.listed.is_set() and server.requests == []
        runner = await serve(server, port)
        await asyncio.wait_for(reflector.listed.wait(), 10)
        assert [o["metadata"]["name"] for o in recorder.calls[0][1]] == ["a", "b"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        server.closing.set()
        await api.aclose()
        if runner is not None:
            await runner.cleanup()
