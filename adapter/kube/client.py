"""One async HTTP client for everything the adapter asks kube-apiserver.

Why an async client (httpx) and not the official `kubernetes` client in worker threads:

* Nine watches stay open for the life of the process. In threads each pins a thread of a
  pool (asyncio's default pool has 6 threads on 2 cores, shared with `to_thread` users), and
  a thread blocked in a socket read cannot be cancelled: shutdown would wait for the watch's
  server-side timeout. A cancelled task closes its stream at once.
* The official client turns every object into generated model classes (typed APIs) before we
  could strip it; at 10,000 Secrets and ConfigMaps that is CPU and memory for fields we drop.
  Here each event is a plain dict, stripped to what the catalog reads as soon as it arrives.
* TokenReviews and SubjectAccessReviews are made on the request path; awaiting them keeps the
  event loop free without a thread hop per request.

Credentials (a kubeconfig or the in-cluster service account) come from credentials.py, which
hands only exec plugins and auth-providers to the official package. Every call has a timeout;
list answers are decoded an item at a time, each handed to the caller's transform at once
(json_walk.py), so a page never exists whole as dicts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from adapter.kube import credentials
from adapter.kube.credentials import SERVICE_ACCOUNT_DIR, Credentials
from adapter.kube.json_walk import Entry, decode_members

log = logging.getLogger("eventscale.kube")

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"  # server-side apply; JSON is YAML
Object = dict[str, Any]


class ApiStatusError(Exception):
    """kube-apiserver answered with an error status (the metav1.Status message is kept)."""

    def __init__(self, code: int, message: str, reason: str = "") -> None:
        super().__init__(f"{code} {reason}: {message}" if reason else f"{code}: {message}")
        self.code = code
        self.reason = reason
        self.message = message


def pod_namespace(default: str) -> str:
    """The namespace this pod runs in, from the service account mount (or `default` outside)."""
    try:
        return (SERVICE_ACCOUNT_DIR / "namespace").read_text().strip() or default
    except OSError:
        return default


def _status_error(response: httpx.Response) -> ApiStatusError:
    try:
        status = response.json()
        return ApiStatusError(response.status_code, str(status.get("message", "")), str(status.get("reason", "")))
    except ValueError:
        return ApiStatusError(response.status_code, response.text[:200])


class KubeApi:
    """GET, POST, PUT, merge-PATCH, server-side apply, DELETE and watch against kube-apiserver, with the
    loaded credentials."""

    def __init__(self, credentials: Credentials, *, timeout: float = 30.0) -> None:
        self.credentials = credentials
        self.host = credentials.host.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.host, verify=credentials.ssl_context(),
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
            headers={"Accept": JSON, "User-Agent": "eventscale-adapter"},
        )

    @classmethod
    def connect(cls, kubeconfig: Path | None = None, context: str | None = None) -> KubeApi:
        return cls(credentials.load(kubeconfig, context))

    def _headers(self) -> dict[str, str]:
        authorization = self.credentials.authorization()
        return {"Authorization": authorization} if authorization else {}

    async def _send(self, method: str, path: str, params: Mapping[str, str] | None, *, body: Object | None = None,
                    content_type: str = JSON, read_timeout: float | None = None) -> httpx.Response:
        """The answer to one call, or its error status raised. `read_timeout` replaces the
        client's for a call whose answer may take long (a list of 100,000 objects at once)."""
        headers = self._headers()
        content = None
        if body is not None:
            headers["Content-Type"] = content_type
            content = json.dumps(body, separators=(",", ":")).encode()
        timeout = self._client.timeout if read_timeout is None else httpx.Timeout(read_timeout, connect=10.0)
        response = await self._client.request(method, path, params=params, content=content, headers=headers,
                                              timeout=timeout)
        if response.status_code >= 400:
            raise _status_error(response)
        return response

    async def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                      body: Object | None = None, content_type: str = JSON) -> Object:
        response = await self._send(method, path, params, body=body, content_type=content_type)
        return dict(response.json())

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Object:
        return await self.request("GET", path, params=params)

    async def get_list(self, path: str, params: Mapping[str, str], item: Entry,
                       read_timeout: float | None = None) -> Object:
        """A list (or one page of it): each of its `items` handed to `item` as it is decoded
        (adapter.kube.json_walk), the rest of the answer (`metadata`: continue,
        resourceVersion) returned."""
        response = await self._send("GET", path, params, read_timeout=read_timeout)
        return decode_members(response.content, {"items": item})

    async def post(self, path: str, body: Object) -> Object:
        return await self.request("POST", path, body=body)

    async def put(self, path: str, body: Object) -> Object:
        return await self.request("PUT", path, body=body)

    async def merge_patch(self, path: str, body: Object) -> Object:
        return await self.request("PATCH", path, body=body, content_type=MERGE_PATCH)

    async def apply(self, path: str, body: Object, field_manager: str) -> Object:
        """Server-side apply of `body` at `path` (the object's own path), taking over fields that
        another manager set (`force`), as `kubectl apply --server-side --force-conflicts` does."""
        return await self.request("PATCH", path, params={"fieldManager": field_manager, "force": "true"},
                                  body=body, content_type=APPLY_PATCH)

    async def delete(self, path: str) -> Object:
        return await self.request("DELETE", path)

    async def watch(self, path: str, params: Mapping[str, str], timeout: float) -> AsyncIterator[Object]:
        """The events of one watch request, until the server ends it (after `timeoutSeconds`)."""
        request_timeout = httpx.Timeout(10.0, read=timeout + 30.0)
        async with self._client.stream("GET", path, params={**params, "watch": "true"}, headers=self._headers(),
                                       timeout=request_timeout) as response:
            if response.status_code >= 400:
                await response.aread()
                raise _status_error(response)
            async for line in response.aiter_lines():
                if line.strip():
                    yield json.loads(line)

    async def aclose(self) -> None:
        await self._client.aclose()
