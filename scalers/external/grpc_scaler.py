"""external and external-push: scale on what a KEDA external scaler (a gRPC server) answers.

KEDA's keys: `scalerAddress` (required, host:port or any gRPC target), `enableTLS`, `unsafeSsl`;
from the TriggerAuthentication `caCert`, `tlsClientCert`, `tlsClientKey`; and KEDA's older
`tlsCertFile` (a CA file on the adapter's disk). TLS is used when `enableTLS` is true or any of
the certificates is given. The whole metadata map goes to the scaler in every call as
`ScaledObjectRef.scalerMetadata`, with each `<key>FromEnv` holding the resolved value (and left
out when it does not resolve), beside the ScaledObject's name and namespace.

Per trigger, as KEDA: the metric name and HPA target come from `GetMetricSpec` (the first spec;
`targetSizeFloat` when above 0, else `targetSize`), the value from `GetMetrics` (the sum of the
values returned, as the HPA sums the items KEDA serves), and the activity from `IsActive`, not
from a threshold. `external-push` also keeps one `StreamIsActive` stream per trigger open (KEDA's
retry: 2 s doubling to a minute, reset when the scaler ends a stream cleanly); each message wakes
the store, which reads that trigger at once with the pushed activity, so the controller hears of
it within milliseconds instead of a pollingInterval.

Every trigger of one address and TLS material shares one gRPC channel (`channels`), whichever
of the two types it is; a poll reads at most `MAX_READS_IN_FLIGHT` triggers at once on it. The
protocol asks per ScaledObject, so a poll costs two calls per trigger (KEDA: three, with
GetMetricSpec on every metric request); only identical triggers are asked once.

Unlike KEDA, `unsafeSsl: true` is refused: Python's gRPC has no way to skip certificate
verification; give the scaler's CA as `caCert` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from scalers.base import MetricSpec, Reading, Scaler, ScalerClient, ScalerError, ask_once, masked_error
from scalers.external import grpc_protocol
from scalers.external.channels import ChannelKey, Channels, read_ca_file
from scalers.external.specs import FIRST_RETRY, LAST_RETRY, SpecCache, SpecError
from scalers.params import ParameterError, TriggerParams, mask, param, parse_params, secret_field, secret_values
from scalers.sources import AUTH_ONLY, METADATA_ONLY

log = logging.getLogger("eventscale.scalers.external")
MAX_READS_IN_FLIGHT = 16  # triggers read at once on one channel: bounded load on the scaler


@dataclass(frozen=True, kw_only=True)
class _Keys:
    """The trigger's connection parameters as KEDA names them, before they become a `ChannelKey`."""

    scaler_address: str = param("scalerAddress", required=True, sources=METADATA_ONLY)
    enable_tls: bool = param("enableTLS", default=False, sources=METADATA_ONLY)
    unsafe_ssl: bool = param("unsafeSsl", default=False, sources=METADATA_ONLY)
    tls_cert_file: str | None = param("tlsCertFile", sources=METADATA_ONLY)
    ca_cert: str | None = param("caCert", sources=AUTH_ONLY, secret=True)  # public, but long
    tls_client_cert: str | None = param("tlsClientCert", sources=AUTH_ONLY, secret=True)
    tls_client_key: str | None = param("tlsClientKey", sources=AUTH_ONLY, secret=True)


@dataclass(frozen=True, kw_only=True)
class ExternalConfig:
    """One trigger: the channel it is read on (equal channels share one client), and what the
    ScaledObjectRef sent with every call carries (name, namespace, the scaler metadata)."""

    channel: ChannelKey
    push: bool
    name: str
    namespace: str
    metadata: tuple[tuple[str, str], ...] = field(repr=False)
    env_values: tuple[str, ...] = secret_field(())  # the resolved <key>FromEnv values: masked in errors

    def ref(self) -> Any:
        return grpc_protocol.ScaledObjectRef(name=self.name, namespace=self.namespace,
                                             scalerMetadata=dict(self.metadata))

    def __str__(self) -> str:
        return f"external scaler at {self.channel.address}"


def scaler_metadata(params: TriggerParams) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """The metadata map as KEDA passes it (`<key>FromEnv` replaced by its resolved value, or
    dropped), and the values so resolved."""
    found: dict[str, str] = {}
    resolved: list[str] = []
    for key, value in params.metadata.items():
        if key.endswith("FromEnv"):
            env_value = params.env.get(value)
            if env_value:
                found[key] = env_value
                resolved.append(env_value)
        else:
            found[key] = value
    return tuple(sorted(found.items())), tuple(resolved)


def parse_config(trigger_type: str, params: TriggerParams) -> ExternalConfig:
    keys = parse_params(_Keys, params)
    if keys.unsafe_ssl:
        raise ParameterError("unsafeSsl is not supported for external scalers: the gRPC client always verifies "
                             "the certificate; give the scaler's CA as caCert in the TriggerAuthentication")
    ca = keys.ca_cert or (read_ca_file(keys.tls_cert_file) if keys.tls_cert_file else None)
    tls = keys.enable_tls or bool(ca) or bool(keys.tls_client_cert and keys.tls_client_key)
    channel = ChannelKey(keys.scaler_address, tls, ca, keys.tls_client_cert, keys.tls_client_key)
    metadata, env_values = scaler_metadata(params)
    return ExternalConfig(channel=channel, push=trigger_type == "external-push", name=params.scaled_object,
                          namespace=params.namespace, metadata=metadata, env_values=env_values)


def describe_rpc(method: str, exc: BaseException) -> str:
    """How a failed call reads: the method, gRPC's status code and its details."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{method} failed: {exc.code().name}: {exc.details() or ''}".rstrip(": ")
    if isinstance(exc, TimeoutError):
        return f"{method} did not answer in time"
    return f"{method} failed: {type(exc).__name__}: {exc}"


def spec_of(response: Any) -> MetricSpec:
    """The first metric spec of a GetMetricSpec answer, as KEDA turns it into an HPA target."""
    if not response.metricSpecs:
        raise SpecError("GetMetricSpec returned no metric spec")
    first = response.metricSpecs[0]
    if not first.metricName:
        raise SpecError("GetMetricSpec returned a metric spec without metricName")
    target = first.targetSizeFloat if first.targetSizeFloat > 0 else float(first.targetSize)
    return MetricSpec(name=first.metricName, target=target)


def value_of(response: Any) -> float:
    """GetMetrics' values summed, each `metricValueFloat` when above 0, else `metricValue`."""
    return float(sum(v.metricValueFloat if v.metricValueFloat > 0 else v.metricValue for v in response.metricValues))


class ExternalClient(ScalerClient[ExternalConfig]):
    """The calls of every trigger of one channel, and external-push's streams."""

    def __init__(self, key: ChannelKey, channels: Channels, specs: SpecCache, *, timeout: float) -> None:
        self._key = key
        self._channels = channels
        self._stub = grpc_protocol.ExternalScalerStub(channels.acquire(key))
        self._specs = specs
        self._timeout = timeout
        self._streams: dict[ExternalConfig, asyncio.Task[None]] = {}
        self._pushed: dict[ExternalConfig, bool] = {}  # activity streamed since the last read
        self._closed = False

    async def read(self, configs: Sequence[ExternalConfig]) -> list[Reading | ScalerError]:
        gate = asyncio.Semaphore(MAX_READS_IN_FLIGHT)

        async def bounded(config: ExternalConfig) -> Reading | ScalerError:
            async with gate:
                return await self._read_one(config)
        found = await ask_once(configs, bounded)
        return [found[c] for c in configs]

    async def _read_one(self, config: ExternalConfig) -> Reading | ScalerError:
        try:
            spec = self._specs.spec(config)
        except SpecError as exc:
            return self._error(config, str(exc))
        if spec is None:
            return self._error(config, "the metric spec is not known yet (GetMetricSpec)")
        ref = config.ref()
        pushed = self._pushed.pop(config, None)
        calls = [self._call("GetMetrics", self._stub.GetMetrics(
            grpc_protocol.GetMetricsRequest(scaledObjectRef=ref, metricName=spec.name), timeout=self._timeout))]
        if pushed is None:
            calls.append(self._call("IsActive", self._stub.IsActive(ref, timeout=self._timeout)))
        answers: list[Any] = await asyncio.gather(*calls, return_exceptions=True)
        for answer in answers:
            if isinstance(answer, _CallFailed):
                return self._error(config, str(answer))
            if isinstance(answer, BaseException):
                raise answer
        active = pushed if pushed is not None else bool(answers[1].result)
        return Reading(value_of(answers[0]), active)

    @staticmethod
    async def _call(method: str, call: Any) -> Any:
        try:
            return await call
        except (grpc.aio.AioRpcError, TimeoutError) as exc:
            raise _CallFailed(describe_rpc(method, exc)) from None

    def _error(self, config: ExternalConfig, what: str) -> ScalerError:
        return masked_error(f"{config}: {what}", config)

    # -- external-push -----------------------------------------------------------------------

    def watch(self, configs: Sequence[ExternalConfig], wake: Callable[[Sequence[ExternalConfig]], None]) -> None:
        wanted = {c for c in configs if c.push}
        for config in [c for c in self._streams if c not in wanted]:
            self._streams.pop(config).cancel()
            self._pushed.pop(config, None)
        if self._closed:
            return
        for config in wanted - self._streams.keys():
            self._streams[config] = asyncio.get_running_loop().create_task(
                self._stream_forever(config, wake), name=f"external-push-{config.namespace}-{config.name}")

    async def _stream_forever(self, config: ExternalConfig, wake: Callable[[Sequence[ExternalConfig]], None]) -> None:
        retry = FIRST_RETRY
        while True:
            try:
                async for response in self._stub.StreamIsActive(config.ref()):
                    self._pushed[config] = bool(response.result)
                    wake([config])
                retry = FIRST_RETRY  # the scaler ended the stream cleanly
            except grpc.aio.AioRpcError as exc:
                error = mask(describe_rpc("StreamIsActive", exc), secret_values(config))
                log.warning("scaler=external-push address=%s object=%s/%s error=%r", self._key.address,
                            config.namespace, config.name, error)
            await asyncio.sleep(retry)
            retry = min(retry * 2, LAST_RETRY)

    async def aclose(self) -> None:
        self._closed = True
        streams, self._streams = list(self._streams.values()), {}
        for task in streams:
            task.cancel()
        for task in streams:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._channels.release(self._key)


class _CallFailed(Exception):
    """One call of a read failed; the message is `describe_rpc`'s."""


class ExternalScaler(Scaler[ExternalConfig]):
    types = ("external", "external-push")

    def __init__(self, *, timeout: float = 4.0, channels: Channels | None = None) -> None:
        self._timeout = timeout
        self.channels = channels or Channels()
        self.specs = SpecCache(self._fetch_spec)

    def parse(self, trigger_type: str, params: TriggerParams) -> ExternalConfig:
        config = parse_config(trigger_type, params)
        self.specs.want(config, params.resolve_again)
        return config

    def metric(self, config: ExternalConfig) -> MetricSpec:
        try:
            spec = self.specs.spec(config)
        except SpecError as exc:
            raise ParameterError(f"{config}: {exc}") from None
        if spec is None:
            raise ParameterError(f"{config}: waiting for the metric spec (GetMetricSpec)")
        return spec

    def server_key(self, config: ExternalConfig) -> ChannelKey:
        return config.channel

    def open_client(self, config: ExternalConfig) -> ExternalClient:
        return ExternalClient(config.channel, self.channels, self.specs, timeout=self._timeout)

    async def _fetch_spec(self, config: ExternalConfig) -> MetricSpec:
        stub = grpc_protocol.ExternalScalerStub(self.channels.acquire(config.channel))
        try:
            return spec_of(await stub.GetMetricSpec(config.ref(), timeout=self._timeout))
        except (grpc.aio.AioRpcError, TimeoutError) as exc:
            raise SpecError(mask(describe_rpc("GetMetricSpec", exc), secret_values(config))) from None
        finally:
            self.channels.release(config.channel)
