"""Where the interceptor learns its routes and endpoints: its own watches, or a directory.

Cluster mode watches ScaledObjects (`keda.sh`), Services and EndpointSlices itself, with the
shared `Reflector`, rather than asking the adapter for routes. The data path then depends on
kube-apiserver only: with the adapter down (or restarting, or being upgraded) requests keep
flowing to workloads that are up, and an interceptor restarted meanwhile still learns every
route. Only scaling needs the adapter. The price is one more set of watches, each stripped to
the few fields routing reads. HTTPScaledObjects need no watch here: the controller turns each
into a ScaledObject, which this source sees like any other.

Standalone mode reads ScaledObjects and HTTPScaledObjects from the adapter's `--local-dir`, and
each Service's endpoint is a configured upstream address (see `ProbedUpstreams`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from adapter.interceptor.routing import HoldBounds, Route, routes_of
from adapter.keda.http_scaled_object import HTTP_SCALED_OBJECT_KIND, scaled_object_for
from adapter.keda.names import SCALED_OBJECTS
from adapter.keda.objects import InvalidObject
from adapter.kube.client import KubeApi, Object
from adapter.kube.endpoints import EndpointIndex, strip_service, strip_slice
from adapter.kube.manifest_files import Stamp, documents, manifest_files, stamp
from adapter.kube.resources import ENDPOINT_SLICES, SERVICES, Resource
from adapter.kube.watch import Reflector, all_listed, run_reflectors

log = logging.getLogger("eventscale.interceptor.sources")

RoutesSink = Callable[[Iterable[Route]], None]


def strip_scaled_object(obj: Object) -> Object:
    """What routing reads: identity, creation time, target and triggers."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    return {"apiVersion": obj.get("apiVersion"), "kind": "ScaledObject",
            "metadata": {k: meta[k] for k in ("name", "namespace", "creationTimestamp") if k in meta},
            "spec": {"scaleTargetRef": spec.get("scaleTargetRef"), "triggers": spec.get("triggers")}}


def has_http_trigger(obj: Mapping[str, Any]) -> bool:
    triggers = (obj.get("spec") or {}).get("triggers")
    return isinstance(triggers, list) and any(isinstance(t, Mapping) and t.get("type") == "http" for t in triggers)


class RouteBook:
    """The routes of every ScaledObject with an `http` trigger; tells `sink` the whole set on change."""

    def __init__(self, sink: RoutesSink, defaults: HoldBounds) -> None:
        self.sink, self.defaults = sink, defaults
        self._routes: dict[tuple[str, str], list[Route]] = {}

    def replace(self, objects: Iterable[Mapping[str, Any]]) -> None:
        self._routes = {}
        for obj in objects:
            self._put(obj)
        self._publish()

    def put(self, obj: Mapping[str, Any], deleted: bool = False) -> None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace") or "default"), str(meta.get("name")))
        had = self._routes.pop(key, None)
        if not deleted:
            self._put(obj)
        if had is not None or key in self._routes:
            self._publish()

    def _put(self, obj: Mapping[str, Any]) -> None:
        if not has_http_trigger(obj):
            return
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace") or "default"), str(meta.get("name")))
        try:
            self._routes[key] = routes_of(obj, self.defaults)
        except ValueError as exc:
            log.warning("scaledobject=%s/%s not routed: %s", key[0], key[1], exc)

    def _publish(self) -> None:
        routes = [route for found in self._routes.values() for route in found]
        self.sink(routes)


class _ScaledObjectSink:
    def __init__(self, book: RouteBook) -> None:
        self.book = book

    def listed(self, resource: Resource, objects: list[Object]) -> None:
        self.book.replace(objects)

    def changed(self, resource: Resource, obj: Object, deleted: bool) -> None:
        self.book.put(obj, deleted)


class ClusterSources:
    """The watches of cluster mode; `synced` once each has listed."""

    def __init__(self, api: KubeApi, book: RouteBook, endpoints: EndpointIndex, resync: float = 1800.0) -> None:
        self.reflectors = [
            Reflector(api, SCALED_OBJECTS, _ScaledObjectSink(book), strip_scaled_object, resync=resync),
            Reflector(api, SERVICES, endpoints, strip_service, resync=resync),
            Reflector(api, ENDPOINT_SLICES, endpoints, strip_slice, resync=resync),
        ]

    @property
    def synced(self) -> bool:
        return all_listed(self.reflectors)

    async def run(self) -> None:
        await run_reflectors(self.reflectors)


def read_scaled_objects(directory: Path) -> list[Mapping[str, Any]]:
    """ScaledObjects of the directory, HTTPScaledObjects turned into theirs; bad files are logged."""
    found: list[Mapping[str, Any]] = []
    for path in manifest_files(directory):
        try:
            docs = list(documents(path))
        except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
            log.warning("file=%s not read: %s", path, " ".join(str(exc).split()))
            continue
        for doc in docs:
            if not isinstance(doc, Mapping) or not isinstance(doc.get("metadata"), Mapping):
                continue
            if doc.get("kind") == "ScaledObject":
                found.append(doc)
            elif doc.get("kind") == HTTP_SCALED_OBJECT_KIND:
                try:
                    found.append(scaled_object_for(doc))
                except InvalidObject as exc:
                    log.warning("file=%s httpscaledobject=%s not routed: %s", path, doc["metadata"].get("name"), exc)
    return found


class DirectorySource:
    """Standalone mode's routes, re-read when the directory's files change."""

    def __init__(self, directory: Path, book: RouteBook, interval: float = 1.0) -> None:
        self.directory, self.book, self.interval = directory, book, interval
        self._stamp: Stamp | None = None
        self.synced = False

    def load(self) -> None:
        current = stamp(self.directory)
        if current != self._stamp:
            self._stamp = current
            self.book.replace(read_scaled_objects(self.directory))
        self.synced = True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                current = await asyncio.to_thread(stamp, self.directory)
                if current != self._stamp:
                    self._stamp = current
                    self.book.replace(await asyncio.to_thread(read_scaled_objects, self.directory))
            except Exception:  # a transient filesystem error must not stop watching
                log.exception("directory=%s reload failed", self.directory)
