"""The rabbitmq scaler's AMQP client: ready-message counts from passive queue declares.

pika is synchronous, so each broker gets one worker thread holding ONE connection and ONE
channel; a batch is one passive declare per distinct queue on that channel. A missing queue
closes the channel (404): its slot gets an error and a new channel carries on with the rest.
A reused connection that has gone stale gets one retry on a fresh connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pika
import pika.exceptions

from scalers.base import ScalerClient, ScalerError
from scalers.rabbitmq.queue_config import CONNECTION_NAME, Broker, QueueStats, RabbitMQConfig, describe, metric_value
from scalers.tls import client_context

AMQP_HEARTBEAT = 30

# Anything else pika or the socket raises outside a queue's own channel close ends the connection.
_CONNECTION_ERRORS = (pika.exceptions.AMQPError, OSError)


class AmqpClient(ScalerClient[RabbitMQConfig]):
    """One pika connection and channel per broker, used only from this client's worker thread."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rabbitmq-amqp")
        self._connection: pika.BlockingConnection | None = None
        self._channel: Any = None
        self._closed = False

    async def read(self, configs: Sequence[RabbitMQConfig]) -> list[float | ScalerError]:
        if self._closed:
            raise ScalerError(f"rabbitmq {self._broker}: client is closed")
        names = list(dict.fromkeys(c.queue_name for c in configs))
        counts = await asyncio.get_running_loop().run_in_executor(self._executor, self._declare_all, names)
        return [_amqp_value(c, counts[c.queue_name]) for c in configs]

    def _declare_all(self, names: list[str]) -> dict[str, int | ScalerError]:
        """Runs in the worker thread. A reused connection may have gone stale (idle past its
        heartbeat, closed by the broker): then one fresh connection gets a second try."""
        may_retry = self._connection is not None
        while True:
            try:
                return self._declare_batch(names)
            except _CONNECTION_ERRORS as exc:
                self._close_connection()
                if not may_retry:
                    raise self._broker.error(_amqp_failure(exc)) from None
                may_retry = False

    def _declare_batch(self, names: list[str]) -> dict[str, int | ScalerError]:
        if self._connection is None:
            self._connection = pika.BlockingConnection(self._parameters())
        if self._channel is None:
            self._channel = self._connection.channel()
        counts: dict[str, int | ScalerError] = {}
        for name in names:
            try:
                counts[name] = int(self._channel.queue_declare(name, passive=True).method.message_count)
            except pika.exceptions.ChannelClosedByBroker as exc:
                counts[name] = self._queue_error(name, exc)
                self._channel = self._connection.channel()
        return counts

    def _queue_error(self, name: str, exc: pika.exceptions.ChannelClosedByBroker) -> ScalerError:
        if exc.reply_code == 404:
            return self._broker.error(f'queue "{name}" not found in vhost "{self._broker.vhost}"')
        return self._broker.error(f'queue "{name}": broker refused ({exc.reply_code}) {exc.reply_text}')

    def _parameters(self) -> pika.ConnectionParameters:
        b = self._broker
        ssl_options = pika.SSLOptions(client_context(b.tls), server_hostname=b.host) if b.tls else None
        return pika.ConnectionParameters(
            host=b.host, port=b.port, virtual_host=b.vhost or "/",
            credentials=pika.PlainCredentials(b.username or "guest", b.password or "guest"),
            ssl_options=ssl_options, connection_attempts=1, retry_delay=0,
            socket_timeout=b.timeout, stack_timeout=2 * b.timeout, blocked_connection_timeout=2 * b.timeout,
            heartbeat=AMQP_HEARTBEAT, client_properties={"connection_name": CONNECTION_NAME},
        )

    def _close_connection(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                connection.close()

    async def aclose(self) -> None:
        """Close in the worker thread, but never wait on it longer than a connect could take."""
        if self._closed:
            return
        self._closed = True
        closing = asyncio.get_running_loop().run_in_executor(self._executor, self._close_connection)
        try:
            await asyncio.wait_for(asyncio.shield(closing), timeout=2 * self._broker.timeout)
        except TimeoutError:
            pass
        finally:
            self._executor.shutdown(wait=False)


def _amqp_value(config: RabbitMQConfig, count: int | ScalerError) -> float | ScalerError:
    return count if isinstance(count, ScalerError) else metric_value(config, QueueStats(count, count))


def _amqp_failure(exc: BaseException) -> str:
    if isinstance(exc, pika.exceptions.ProbableAuthenticationError | pika.exceptions.AuthenticationError):
        return "login refused (check username and password)"
    if isinstance(exc, pika.exceptions.ProbableAccessDeniedError):
        return "access to the vhost refused"
    return f"cannot connect: {describe(exc)}"
