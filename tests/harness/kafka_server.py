"""A real Apache Kafka broker (KRaft: broker and controller in one JVM) for the Kafka scaler's tests.

Kafka has no Debian package, so its jars come from Maven Central: `kafka_jars` runs
`mvn dependency:copy-dependencies` on a generated pom naming `kafka_2.13`, `kafka-tools` and an
slf4j binding, and keeps the result in `~/.cache/eventscale/kafka-<version>/lib` with a stamp
(the pom's digest), under a file lock so parallel sessions resolve once. Java and Maven come from
Debian when missing. Maven downloads into a throw-away local repository: the cache is just `lib`.

`KafkaServer` formats a storage directory in a temporary folder (SCRAM users are written into
the bootstrap metadata at format time) and runs `kafka.Kafka` with five client listeners on free
127.0.0.1 ports, described by `KafkaListeners`: PLAINTEXT; SASL_PLAINTEXT and SASL_SSL taking
PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, one user per mechanism so a client that picks the wrong
mechanism is refused; SSL, which requests a client certificate; MTLS, an SSL listener that
requires one. Certificates come from the test CA (`TLSMaterial`). The start is over when a
metadata request is answered; stopping removes the folder.

The async helpers (aiokafka, over PLAINTEXT) set up what a scaler then reads: topics with N
partitions, N messages in a partition, a consumer group's committed offsets (committed by a
consumer that assigns partitions by hand and leaves, so no member stays in the group), and the
deletion of a group.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import shutil
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient, CoordinationType
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.admin import DeleteGroupsRequest
from aiokafka.protocol.commit import OffsetCommitRequest

from tests.cluster.build import cache_root, locked
from tests.harness.packages import ensure_packages
from tests.harness.ports import free_port
from tests.harness.server_process import ServerContext, ServerProcess
from tests.harness.tls_material import TLSMaterial

KAFKA_VERSION = "4.4.0"
SLF4J_VERSION = "1.7.36"  # the slf4j-api Kafka's jars depend on; a 2.x binding would not bind to it
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
JRE_PACKAGE = "openjdk-17-jre-headless"
HEAP = "-Xmx512m"
# The client JIT only and a one-thread collector: a test broker carries little traffic, and on a
# busy two-core machine these start it in about two thirds of the time.
FAST_START = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
RESOLVE_TIMEOUT = 600.0
START_TIMEOUT = 120.0
SETUP_TIMEOUT = 30.0  # for a topic's partitions to get leaders

PLAIN, SCRAM_SHA_256, SCRAM_SHA_512 = "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"
SASL_MECHANISMS = (PLAIN, SCRAM_SHA_256, SCRAM_SHA_512)
#: every way into the broker: (listener, SASL mechanism or None, whether a client certificate is shown)
WAYS_IN: tuple[tuple[str, str | None, bool], ...] = (
    ("plaintext", None, False),
    *(("sasl_plaintext", mechanism, False) for mechanism in SASL_MECHANISMS),
    ("ssl", None, False),
    ("ssl", None, True),
    *(("sasl_ssl", mechanism, False) for mechanism in SASL_MECHANISMS),
    ("mtls", None, True),
)


@dataclass(frozen=True)
class SaslUser:
    """A user the SASL listeners accept, with this mechanism only."""

    mechanism: str
    username: str
    password: str


SASL_USERS: Mapping[str, SaslUser] = {
    user.mechanism: user
    for user in (
        SaslUser(PLAIN, "scaler-plain", "Plain-Pa55word-s3cret"),
        SaslUser(SCRAM_SHA_256, "scaler-scram256", "Scram256-Pa55word-s3cret"),
        SaslUser(SCRAM_SHA_512, "scaler-scram512", "Scram512-Pa55word-s3cret"),
    )
}


@dataclass(frozen=True)
class KafkaListeners:
    """Bootstrap addresses (`127.0.0.1:port`) of the broker's client listeners."""

    plaintext: str
    sasl_plaintext: str
    ssl: str  # TLS; a client certificate is requested and verified when given, not required
    sasl_ssl: str
    mtls: str  # TLS that requires a client certificate from the test CA


# -- the jars ------------------------------------------------------------------------------------


def _pom(version: str) -> str:
    dependencies = [("org.apache.kafka", "kafka_2.13", version), ("org.apache.kafka", "kafka-tools", version),
                    ("org.slf4j", "slf4j-simple", SLF4J_VERSION)]
    listed = "\n".join(
        f"    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
        f"<version>{release}</version></dependency>"
        for group, artifact, release in dependencies
    )
    return f"""\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>eventscale.tests</groupId>
  <artifactId>kafka-server</artifactId>
  <version>1</version>
  <dependencies>
{listed}
  </dependencies>
</project>
"""


def kafka_jars(version: str = KAFKA_VERSION) -> Path:
    """The folder of Kafka's jars (a Java class path `folder/*`), resolved unless cached."""
    home = cache_root() / f"kafka-{version}"
    lib, stamp = home / "lib", home / ".stamp"
    pom = _pom(version)
    digest = hashlib.sha256(pom.encode()).hexdigest()
    if _stamped(stamp, digest) and lib.is_dir():
        return lib
    with locked(home.parent / f"kafka-{version}.lock"):
        if _stamped(stamp, digest) and lib.is_dir():
            return lib
        ensure_packages("mvn", ["maven"])
        stamp.unlink(missing_ok=True)
        _resolve(pom, lib)
        stamp.write_text(digest)
    return lib


def _stamped(stamp: Path, digest: str) -> bool:
    return stamp.exists() and stamp.read_text() == digest


def _resolve(pom: str, lib: Path) -> None:
    """Copy the pom's runtime dependencies into `lib`, replacing what was there."""
    with tempfile.TemporaryDirectory(prefix="kafka-resolve-") as work:
        project = Path(work)
        (project / "pom.xml").write_text(pom)
        landing = project / "lib"
        command = ["mvn", "-B", "--no-transfer-progress", f"-Dmaven.repo.local={project / 'repository'}",
                   f"{DEPENDENCY_PLUGIN}:copy-dependencies", f"-DoutputDirectory={landing}",
                   "-DincludeScope=runtime"]
        try:
            result = subprocess.run(command, cwd=project, capture_output=True, text=True,
                                    timeout=RESOLVE_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"resolving Kafka's jars with Maven took over {RESOLVE_TIMEOUT}s") from None
        if result.returncode != 0 or not any(landing.glob("kafka_2.13-*.jar")):
            raise RuntimeError(f"resolving Kafka's jars with Maven failed (exit {result.returncode}):\n"
                               f"{result.stdout[-3000:]}{result.stderr[-1000:]}")
        shutil.rmtree(lib, ignore_errors=True)
        lib.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(landing, lib)


# -- the broker ----------------------------------------------------------------------------------


def _cluster_id() -> str:
    """A random id in Kafka's form (what `StorageTool random-uuid` prints, without a JVM start)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka never makes an id that reads like a command-line option
            return text


def _java(lib: Path, directory: Path, *options: str) -> list[str]:
    """The java command line up to the main class, its temporary files kept in `directory`."""
    return ["java", *FAST_START, *options, f"-Djava.io.tmpdir={directory}", "-cp", f"{lib}/*"]


class KafkaServer(ServerContext):
    """One KRaft broker+controller; use as a context manager. Users are in `users`, by mechanism."""

    def __init__(self, tls: TLSMaterial, version: str = KAFKA_VERSION) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="kafka-"))
        self.version = version
        self.tls = tls
        self.users = SASL_USERS
        self.listeners = KafkaListeners(*(f"127.0.0.1:{free_port()}" for _ in range(5)))
        self._controller = f"127.0.0.1:{free_port()}"
        self._server = ServerProcess("kafka", self.directory)

    @property
    def bootstrap(self) -> str:
        """The PLAINTEXT listener's address."""
        return self.listeners.plaintext

    def ssl_context(self, *, client_certificate: bool = False) -> ssl.SSLContext:
        """A client context for the TLS listeners, trusting the test CA."""
        return self.tls.client_context(certificate=client_certificate)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        ensure_packages("java", [JRE_PACKAGE])
        lib = kafka_jars(self.version)
        config = self._write_config()
        self._format(lib, config)
        command = [*_java(lib, self.directory, HEAP), "kafka.Kafka", str(config)]
        self._server.start(command, cwd=self.directory)
        self._server.wait_ready(self._answers, timeout=START_TIMEOUT, interval=0.25)

    def _write_config(self) -> Path:
        files = self.tls.write_server_files(self.directory)
        keystore = self.directory / "keystore.pem"  # Kafka's PEM key store: the key, then the chain
        keystore.write_text(self.tls.server_key_pem + self.tls.server_cert_pem)
        keystore.chmod(0o600)
        listeners = self.listeners
        client = {"PLAINTEXT": listeners.plaintext, "SASL_PLAINTEXT": listeners.sasl_plaintext,
                  "SSL": listeners.ssl, "SASL_SSL": listeners.sasl_ssl, "MTLS": listeners.mtls}
        advertised = ",".join(f"{name}://{address}" for name, address in client.items())
        plain_users = " ".join(
            f'user_{user.username}="{user.password}"' for user in self.users.values() if user.mechanism == PLAIN
        )
        jaas = {
            "plain": f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};",
            "scram-sha-256": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "scram-sha-512": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        }
        sasl = "\n".join(f"listener.name.{listener}.{mechanism}.sasl.jaas.config={module}"
                         for listener in ("sasl_plaintext", "sasl_ssl") for mechanism, module in jaas.items())
        config = self.directory / "server.properties"
        config.write_text(f"""\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{self._controller}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listeners=CONTROLLER://{self._controller},{advertised}
advertised.listeners={advertised}
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,\
SASL_SSL:SASL_SSL,MTLS:SSL
log.dirs={self.directory / "data"}
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
sasl.enabled.mechanisms={",".join(SASL_MECHANISMS)}
{sasl}
ssl.keystore.type=PEM
ssl.keystore.location={keystore}
ssl.truststore.type=PEM
ssl.truststore.location={files.ca}
ssl.client.auth=requested
listener.name.mtls.ssl.client.auth=required
""")
        return config

    def _format(self, lib: Path, config: Path) -> None:
        """Format the storage with a new cluster id and the SCRAM users (a short-lived JVM)."""
        scram = [
            argument
            for user in self.users.values() if user.mechanism != PLAIN
            for argument in ("--add-scram", f"{user.mechanism}=[name={user.username},password={user.password}]")
        ]
        command = [*_java(lib, self.directory), "kafka.tools.StorageTool", "format", "-t", _cluster_id(),
                   "-c", str(config), *scram]
        result = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT, check=False)
        if result.returncode != 0:  # the output names no password; the command line would
            raise RuntimeError(f"formatting Kafka's storage failed (exit {result.returncode}):\n"
                               f"{result.stdout[-2000:]}{result.stderr[-2000:]}")

    def _answers(self) -> bool:
        """A metadata request over PLAINTEXT lists the broker (run on a loop of its own thread)."""
        with ThreadPoolExecutor(max_workers=1) as thread:
            return thread.submit(asyncio.run, self._metadata_lists_broker()).result()

    async def _metadata_lists_broker(self) -> bool:
        client = AIOKafkaClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
        try:
            await client.bootstrap()
            return bool(client.cluster.brokers())
        except KafkaError:
            return False
        finally:
            await client.close()

    def stop(self) -> None:
        self._server.stop(grace=30)
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- setting up what a scaler reads (over PLAINTEXT) -------------------------------------

    @asynccontextmanager
    async def admin(self) -> AsyncIterator[AIOKafkaAdminClient]:
        """An aiokafka admin client, closed on leaving."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            yield admin
        finally:
            await admin.close()

    async def create_topic(self, name: str, partitions: int = 1) -> None:
        """Create the topic and wait until every partition has a leader."""
        async with self.admin() as admin:
            response = await admin.create_topics([NewTopic(name, partitions, 1)])
        for topic, code, message in response.topic_errors:
            if code:
                raise for_code(code)(f"creating topic {topic}: {message}")
        await self._wait_for_leaders(name, partitions)

    async def _wait_for_leaders(self, topic: str, partitions: int) -> None:
        client = AIOKafkaClient(bootstrap_servers=self.bootstrap)
        await client.bootstrap()
        try:
            deadline = time.monotonic() + SETUP_TIMEOUT
            while True:
                cluster = await client.fetch_all_metadata()
                led = cluster.available_partitions_for_topic(topic) or set()
                if len(led) == partitions:
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"topic {topic}: {len(led)} of {partitions} partitions have a leader")
                await asyncio.sleep(0.1)
        finally:
            await client.close()

    async def produce(self, topic: str, count: int, partition: int = 0) -> None:
        """Append `count` messages to one partition of the topic, acknowledged by the broker."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
        await producer.start()
        try:
            sent = [await producer.send(topic, str(i).encode(), partition=partition) for i in range(count)]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()

    async def produce_many(self, counts: Mapping[tuple[str, int], int]) -> None:
        """Append `count` messages to each (topic, partition), through one producer."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        await producer.start()
        try:
            sent = [await producer.send(topic, str(i).encode(), partition=partition)
                    for (topic, partition), count in counts.items() for i in range(count)]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()

    async def commit_offsets(self, group: str, topic: str, offsets: Mapping[int, int]) -> None:
        """Commit `offsets` (partition -> next offset the group would read) for `group`.

        The committing consumer assigns the partitions itself (it joins no group) and leaves, so
        the group holds the offsets and no member: the state a scaler sees for a stopped consumer.
        """
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            committed = {TopicPartition(topic, partition): offset for partition, offset in offsets.items()}
            consumer.assign(list(committed))
            await consumer.commit(committed)
        finally:
            await consumer.stop()

    async def commit_many(self, commits: Mapping[str, tuple[str, Mapping[int, int]]]) -> None:
        """Commit offsets for many groups at once ({group: (topic, {partition: offset})}), as a
        simple consumer with no membership does: one OffsetCommit per group, sent concurrently."""
        client = AIOKafkaClient(bootstrap_servers=self.bootstrap)
        await client.bootstrap()
        try:
            async def commit(group: str, topic: str, offsets: Mapping[int, int]) -> None:
                deadline = time.monotonic() + SETUP_TIMEOUT
                request = OffsetCommitRequest(group, -1, "", -1, [(topic, [(p, o, "") for p, o in offsets.items()])])
                while True:  # until the offsets topic is ready and its leader loaded the group
                    try:
                        node = await client.coordinator_lookup(CoordinationType.GROUP, group)
                        response = await client.send(node, request)
                        codes = {code for _, partitions in response.topics for _, code in partitions} - {0}
                        if not codes:
                            return
                        error: KafkaError = for_code(max(codes))(f"committing offsets of group {group}")
                    except KafkaError as exc:
                        error = exc
                    if not getattr(error, "retriable", False) or time.monotonic() > deadline:
                        raise error
                    await asyncio.sleep(0.2)

            await asyncio.gather(*(commit(g, t, o) for g, (t, o) in commits.items()))
        finally:
            await client.close()

    async def delete_group(self, group: str) -> None:
        """Delete the consumer group and its committed offsets (it must have no members)."""
        client = AIOKafkaClient(bootstrap_servers=self.bootstrap)
        await client.bootstrap()
        try:
            coordinator = await client.coordinator_lookup(CoordinationType.GROUP, group)
            response = await client.send(coordinator, DeleteGroupsRequest([group]))
        finally:
            await client.close()
        for name, code in response.results:
            if code:
                raise for_code(code)(f"deleting group {name}")
