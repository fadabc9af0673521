"""Session fixtures for the data and messaging servers the later scalers are tested against.

PostgreSQL, MariaDB, NATS JetStream (one server and a 3-node cluster), Azurite and the AWS
stand-in each start on first use (pytest fixtures are lazy), on free loopback ports in temporary
directories, and stop at the end of the session. tests/conftest.py registers this module as a
plugin, so every test folder can ask for them by name. Each fixture imports its server module
(and so its client library) only when a test asks for it, which keeps every pytest start quick.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.harness.tls_material import TLSMaterial

if TYPE_CHECKING:
    from tests.harness.aws_standin import AwsStandIn
    from tests.harness.azurite_server import AzuriteServer
    from tests.harness.mariadb_server import MariaDBServer
    from tests.harness.nats_server import NatsCluster, NatsServer
    from tests.harness.postgres_server import PostgresServer


@pytest.fixture(scope="session")
def postgres_server(tls_material: TLSMaterial) -> Iterator[PostgresServer]:
    """PostgreSQL with TLS; user `scaler` owns database `eventscale`."""
    from tests.harness.postgres_server import PostgresServer

    with PostgresServer(tls_material) as server:
        yield server


@pytest.fixture(scope="session")
def mariadb_server(tls_material: TLSMaterial) -> Iterator[MariaDBServer]:
    """MariaDB with TLS offered; user `scaler` has every privilege on database `eventscale`."""
    from tests.harness.mariadb_server import MariaDBServer

    with MariaDBServer(tls_material) as server:
        yield server


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    """One nats-server with JetStream and a monitoring port."""
    from tests.harness.nats_server import NatsServer

    with NatsServer() as server:
        yield server


@pytest.fixture(scope="session")
def nats_cluster() -> Iterator[NatsCluster]:
    """Three nats-servers in one JetStream cluster, each with a monitoring port."""
    from tests.harness.nats_server import NatsCluster

    with NatsCluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteServer]:
    """Azurite (blob, queue, table) with the development account devstoreaccount1."""
    from tests.harness.azurite_server import AzuriteServer

    with AzuriteServer() as server:
        yield server


@pytest.fixture(scope="session")
def aws_standin() -> Iterator[AwsStandIn]:
    """moto's server as an AWS stand-in (SQS, CloudWatch, ...), with IAM authentication on."""
    from tests.harness.aws_standin import AwsStandIn

    with AwsStandIn() as server:
        yield server
