"""One gRPC channel per external scaler address and TLS settings, shared by everything that calls it.

KEDA keeps a process-wide pool of `grpc.ClientConn` keyed by address and TLS material; so does
this module, for the metric-spec lookups made while triggers resolve and for the store's client
that polls and streams. A channel is HTTP/2: every call of every trigger is a stream on its one
connection. A channel nobody holds is closed after `IDLE_CLOSE` seconds, so a spec lookup
followed by the first poll does not connect twice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from scalers.params import ParameterError, secret_field

IDLE_CLOSE = 30.0
SERVICE_CONFIG = '{"loadBalancingConfig": [{"round_robin": {}}]}'  # as KEDA dials: every resolved address


@dataclass(frozen=True)
class ChannelKey:
    """Where the scaler is and how to reach it: equal keys share one channel."""

    address: str
    tls: bool = False
    ca: str | None = field(default=None, repr=False)
    cert: str | None = field(default=None, repr=False)
    key: str | None = secret_field(None)

    def credentials(self) -> grpc.ChannelCredentials:
        """TLS trusting `ca` (else the system roots), presenting `cert` and `key` when both given."""
        with_client = bool(self.cert and self.key)
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.encode() if self.ca else None,
            private_key=self.key.encode() if with_client and self.key else None,
            certificate_chain=self.cert.encode() if with_client and self.cert else None,
        )


def read_ca_file(path: str) -> str:
    """The PEM text of `tlsCertFile` (KEDA's older key: a CA file on the adapter's disk)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ParameterError(f'parameter "tlsCertFile": cannot read {path} ({exc.strerror})') from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ParameterError(f'parameter "tlsCertFile": {path} holds no PEM certificate')
    return text


@dataclass
class _Held:
    channel: grpc.aio.Channel
    users: int = 0
    closing: asyncio.TimerHandle | None = None


class Channels:
    """The channels of one scaler type, counted by their users."""

    def __init__(self, idle_close: float = IDLE_CLOSE) -> None:
        self._held: dict[ChannelKey, _Held] = {}
        self._idle_close = idle_close
        self._closing: set[asyncio.Task[None]] = set()

    def acquire(self, key: ChannelKey) -> grpc.aio.Channel:
        """The channel for `key`, made (without I/O) if there is none; `release` it after use."""
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = _Held(_open(key))
        if held.closing is not None:
            held.closing.cancel()
            held.closing = None
        held.users += 1
        return held.channel

    def release(self, key: ChannelKey) -> None:
        held = self._held.get(key)
        if held is None:
            return
        held.users -= 1
        if held.users <= 0:
            held.closing = asyncio.get_running_loop().call_later(self._idle_close, self._close, key, held)

    def open_count(self) -> int:
        return len(self._held)

    def _close(self, key: ChannelKey, held: _Held) -> None:
        if self._held.get(key) is held and held.users <= 0:
            del self._held[key]
            task = asyncio.get_running_loop().create_task(held.channel.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)


def _open(key: ChannelKey) -> grpc.aio.Channel:
    options = [("grpc.service_config", SERVICE_CONFIG), ("grpc.enable_retries", 0)]
    if key.tls:
        return grpc.aio.secure_channel(key.address, key.credentials(), options=options)
    return grpc.aio.insecure_channel(key.address, options=options)
