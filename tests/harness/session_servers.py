"""Session fixtures for the data and messaging servers the later scalers are tested against.

PostgreSQL, MariaDB, NATS JetStream (one server and a 3-node cluster), Azurite and the AWS
stand-in each start on first use (pytest fixtures are lazy), on free loopback ports in temporary
directories, and stop at the end of the session. tests/conftest.py registers this module as a
plugin, so every test folder can ask for them by name.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.aws_standin import AwsStandIn
from tests.harness.azurite_server import AzuriteServer
from tests.harness.mariadb_server import MariaDBServer
from tests.harness.nats_server import NatsCluster, NatsServer
from tests.harness.postgres_server import PostgresServer
from tests.harness.tls import TLSMaterial


@pytest.fixture(scope="session")
def postgres_server(tls_material: TLSMaterial) -> Iterator[PostgresServer]:
    """PostgreSQL with TLS; user `scaler` owns database `eventscale`."""
    with PostgresServer(tls_material) as server:
        yield server


@pytest.fixture(scope="session")
def mariadb_server(tls_material: TLSMaterial) -> Iterator[MariaDBServer]:
    """MariaDB with TLS offered; user `scaler` has every privilege on database `eventscale`."""
    with MariaDBServer(tls_material) as server:
        yield server


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    """One nats-server with JetStream and a monitoring port."""
    with NatsServer() as server:
        yield server


@pytest.fixture(scope="session")
def nats_cluster() -> Iterator[NatsCluster]:
    """Three nats-servers in one JetStream cluster, each with a monitoring port."""
    with NatsCluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteServer]:
    """Azurite (blob, queue, table) with the development account devstoreaccount1."""
    with AzuriteServer() as server:
        yield server


@pytest.fixture(scope="session")
def aws_standin() -> Iterator[AwsStandIn]:
    """moto's server as an AWS stand-in (SQS, CloudWatch, ...), with IAM authentication on."""
    with AwsStandIn() as server:
        yield server
