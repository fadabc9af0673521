"""Session-wide real servers shared by every test folder that needs them.

Each starts on first use (pytest fixtures are lazy), on free loopback ports in a temporary
directory, installing its Debian package when missing, and stops at the end of the session.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.rabbitmq_server import OTHER_VHOST, RabbitMQServer
from tests.harness.redis_servers import RedisServer
from tests.harness.tls import TLSMaterial

pytest_plugins = ["tests.harness.session_servers"]


@pytest.fixture(scope="session")
def tls_material() -> TLSMaterial:
    return TLSMaterial.generate()


@pytest.fixture(scope="session")
def redis_server(tls_material: TLSMaterial) -> Iterator[RedisServer]:
    """One redis-server with a plain and a TLS port and an ACL user."""
    with RedisServer(tls=tls_material) as server:
        server.add_user()
        yield server


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitMQServer]:
    """One rabbitmq-server with the management plugin; vhosts `/` and `other`."""
    with RabbitMQServer() as server:
        server.create_vhost(OTHER_VHOST)
        yield server
