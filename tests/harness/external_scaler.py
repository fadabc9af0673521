"""A real gRPC external scaler for the external and external-push triggers' tests and benchmark.

It serves KEDA's `externalscaler.ExternalScaler` service with grpc.aio on a free loopback port,
from the same `externalscaler.proto` the scaler uses (so a field number that drifted would show
as wrong values here only if both sides drifted alike; the wire test in the unit tests pins the
numbers against KEDA's). Plain, TLS, or mutual TLS with the harness's `TLSMaterial`.

Each ScaledObject (namespace, name) has a `Target`: the metric name and target size that
GetMetricSpec answers, the value GetMetrics answers and the activity IsActive answers. A test
changes them with `set`; an activity change is also sent on every open StreamIsActive stream of
that object. Every request is counted per method and its ScaledObjectRef kept, so a test can
assert what the scaler sent and how often.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from scalers.external import grpc_protocol
from tests.harness.ports import free_port
from tests.harness.tls_material import TLSMaterial

HOST = "127.0.0.1"


@dataclass
class Target:
    metric_name: str = "queue-length"
    target_size: float = 5.0
    value: float = 0.0
    active: bool = False
    streams: list[asyncio.Queue[bool | None]] = field(default_factory=list)


class ExternalScalerServer:
    """grpc.aio server of the external scaler service; `async with` starts and stops it."""

    def __init__(self, *, tls: TLSMaterial | None = None, require_client_cert: bool = False,
                 integer_sizes: bool = False) -> None:
        self.port = free_port()
        self.tls = tls
        self.require_client_cert = require_client_cert
        self.integer_sizes = integer_sizes  # answer targetSize/metricValue (int64) instead of the float fields
        self.targets: dict[tuple[str, str], Target] = collections.defaultdict(Target)
        self.calls: collections.Counter[str] = collections.Counter()
        self.refs: list[Any] = []  # every ScaledObjectRef received, in order
        self.fail: dict[str, grpc.StatusCode] = {}  # method -> status to abort with
        self.delay: float = 0.0  # before each unary answer
        self._server: grpc.aio.Server | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def target(self, namespace: str, name: str) -> Target:
        return self.targets[(namespace, name)]

    def set(self, namespace: str, name: str, *, value: float | None = None, active: bool | None = None,
            metric_name: str | None = None, target_size: float | None = None) -> None:
        """Change what one ScaledObject's calls answer; a new activity is pushed on its streams."""
        target = self.targets[(namespace, name)]
        if value is not None:
            target.value = value
        if metric_name is not None:
            target.metric_name = metric_name
        if target_size is not None:
            target.target_size = target_size
        if active is not None:
            target.active = active
            for queue in target.streams:
                queue.put_nowait(active)

    def end_streams(self) -> None:
        """End every open StreamIsActive stream cleanly (as a restarting scaler would)."""
        for target in self.targets.values():
            for queue in target.streams:
                queue.put_nowait(None)

    def open_streams(self, namespace: str, name: str) -> int:
        return len(self.targets[(namespace, name)].streams)

    async def __aenter__(self) -> ExternalScalerServer:
        server = grpc.aio.server()
        grpc_protocol.add_servicer(_Servicer(self), server)
        address = f"{HOST}:{self.port}"
        if self.tls is None:
            server.add_insecure_port(address)
        else:
            credentials = grpc.ssl_server_credentials(
                [(self.tls.server_key_pem.encode(), self.tls.server_cert_pem.encode())],
                root_certificates=self.tls.ca_pem.encode() if self.require_client_cert else None,
                require_client_auth=self.require_client_cert)
            server.add_secure_port(address, credentials)
        await server.start()
        self._server = server
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            await self._server.stop(grace=0)
            self._server = None


class _Servicer(grpc_protocol.ExternalScalerServicer):  # type: ignore[misc]
    def __init__(self, server: ExternalScalerServer) -> None:
        self.server = server

    async def _enter(self, method: str, ref: Any, context: grpc.aio.ServicerContext) -> Target:
        self.server.calls[method] += 1
        self.server.refs.append(ref)
        status = self.server.fail.get(method)
        if status is not None:
            await context.abort(status, f"{method} refused by the test scaler")
        if self.server.delay:
            await asyncio.sleep(self.server.delay)
        return self.server.target(ref.namespace, ref.name)

    async def IsActive(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        target = await self._enter("IsActive", request, context)
        return grpc_protocol.IsActiveResponse(result=target.active)

    async def GetMetricSpec(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        target = await self._enter("GetMetricSpec", request, context)
        if self.server.integer_sizes:
            spec = grpc_protocol.MetricSpec(metricName=target.metric_name, targetSize=int(target.target_size))
        else:
            spec = grpc_protocol.MetricSpec(metricName=target.metric_name, targetSizeFloat=target.target_size)
        return grpc_protocol.GetMetricSpecResponse(metricSpecs=[spec])

    async def GetMetrics(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        target = await self._enter("GetMetrics", request.scaledObjectRef, context)
        if request.metricName != target.metric_name:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no metric {request.metricName}")
        if self.server.integer_sizes:
            value = grpc_protocol.MetricValue(metricName=target.metric_name, metricValue=int(target.value))
        else:
            value = grpc_protocol.MetricValue(metricName=target.metric_name, metricValueFloat=target.value)
        return grpc_protocol.GetMetricsResponse(metricValues=[value])

    async def StreamIsActive(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        target = await self._enter("StreamIsActive", request, context)
        queue: asyncio.Queue[bool | None] = asyncio.Queue()
        target.streams.append(queue)
        try:
            while True:
                active = await queue.get()
                if active is None:
                    return
                yield grpc_protocol.IsActiveResponse(result=active)
        finally:
            target.streams.remove(queue)
