"""Discovery documents for external.metrics.k8s.io, rendered once, and content negotiation.

kube-apiserver's aggregator asks `GET /apis` for aggregated discovery (v2, or v2beta1 before
1.30) and falls back to the legacy documents on anything but a 200 with the exact Content-Type
it asked for, a 304 or a 503. We answer aggregated discovery only when the Accept header names
it, with that Content-Type, an ETag and `Vary: Accept`; the legacy APIGroupList for plain JSON,
`*/*` or no Accept; 406 otherwise.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from adapter.kube.wire import EXTERNAL_METRIC_VALUE_LIST as RESOURCE_KIND
from adapter.kube.wire import EXTERNAL_METRICS_GROUP as GROUP
from adapter.kube.wire import EXTERNAL_METRICS_GROUP_VERSION as GROUP_VERSION
from adapter.kube.wire import EXTERNAL_METRICS_VERSION as VERSION

JSON = "application/json"
DISCOVERY_GROUP = "apidiscovery.k8s.io"
DISCOVERY_VERSIONS = ("v2", "v2beta1")


def _dump(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


_GROUP_VERSION = {"groupVersion": GROUP_VERSION, "version": VERSION}
_GROUP = {"name": GROUP, "versions": [_GROUP_VERSION], "preferredVersion": _GROUP_VERSION}

API_GROUP_LIST = _dump({"kind": "APIGroupList", "apiVersion": "v1", "groups": [_GROUP]})
API_GROUP = _dump({"kind": "APIGroup", "apiVersion": "v1", **_GROUP})
API_RESOURCE_LIST = _dump({
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": GROUP_VERSION,
    "resources": [{
        "name": "externalmetrics", "singularName": "", "namespaced": True, "kind": RESOURCE_KIND, "verbs": ["get"],
    }],
})


def _aggregated(version: str) -> bytes:
    return _dump({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"{DISCOVERY_GROUP}/{version}",
        "metadata": {},
        "items": [{
            "metadata": {"name": GROUP},
            "versions": [{
                "version": VERSION,
                "resources": [{
                    "resource": "externalmetrics",
                    "responseKind": {"group": GROUP, "version": VERSION, "kind": RESOURCE_KIND},
                    "scope": "Namespaced",
                    "singularResource": "",
                    "verbs": ["get"],
                }],
                "freshness": "Current",
            }],
        }],
    })


def aggregated_content_type(version: str) -> str:
    return f"{JSON};g={DISCOVERY_GROUP};v={version};as=APIGroupDiscoveryList"


@dataclass(frozen=True)
class Document:
    content_type: str
    body: bytes

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"'


LEGACY = Document(JSON, API_GROUP_LIST)
AGGREGATED = {v: Document(aggregated_content_type(v), _aggregated(v)) for v in DISCOVERY_VERSIONS}


@dataclass(frozen=True)
class MediaRange:
    type: str
    params: dict[str, str]
    quality: float


def parse_accept(header: str) -> list[MediaRange]:
    """Media ranges in preference order (by q, then as written)."""
    ranges: list[tuple[float, int, MediaRange]] = []
    for position, part in enumerate(header.split(",")):
        pieces = [p.strip() for p in part.split(";")]
        if not pieces[0]:
            continue
        params: dict[str, str] = {}
        for piece in pieces[1:]:
            key, _, value = piece.partition("=")
            params[key.strip().lower()] = value.strip().strip('"')
        try:
            quality = float(params.pop("q", "1"))
        except ValueError:
            quality = 1.0
        if quality > 0:
            ranges.append((-quality, position, MediaRange(pieces[0].lower(), params, quality)))
    return [r for _, _, r in sorted(ranges, key=lambda t: (t[0], t[1]))]


def negotiate_apis(accept: str | None) -> Document | None:
    """The `/apis` document this Accept asks for, or None for 406."""
    if not accept or not accept.strip():
        return LEGACY
    for media in parse_accept(accept):
        if media.params.get("as") == "APIGroupDiscoveryList":
            if media.type == JSON and media.params.get("g") == DISCOVERY_GROUP:
                document = AGGREGATED.get(media.params.get("v", ""))
                if document is not None:
                    return document
            continue
        if media.type in (JSON, "application/*", "*/*") and not media.params.get("as"):
            return LEGACY
    return None

