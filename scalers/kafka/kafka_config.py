"""kafka: the trigger's keys and KEDA's rules for them, and the cluster a config talks to.

Keys and sources as KEDA's `kafkaMetadata`: `bootstrapServers`, `consumerGroup` (required) and
`topic` from metadata or `<key>FromEnv`; `lagThreshold` (10, > 0), `activationLagThreshold` (0,
>= 0), `offsetResetPolicy` (latest | earliest), `allowIdleConsumers`, `excludePersistentLag`,
`scaleToZeroOnInvalidOffset`, `limitToPartitionsWithLag`, `ensureEvenDistributionOfPartitions`,
`partitionLimitation` (`1,2,5-7`, ignored without a topic), `version`, `fullMetadata` and
`unsafeSsl` from metadata; `sasl` (none | plaintext | scram_sha256 | scram_sha512) and `tls`
(enable | disable) from metadata, then auth params; `username`, `password`, `ca`, `cert`, `key`,
`keyPassword` from auth params only. Error messages are KEDA's.

Not supported, refused with a clear error: `sasl: oauthbearer` and `sasl: gssapi` (token
providers and Kerberos). Accepted without effect: `version` (validated as KEDA does; aiokafka
negotiates each request's version with the broker) and `fullMetadata` (we always ask the broker
for the metadata of the topics we read, never the whole cluster's).

Configs with equal `KafkaCluster`s (bootstrap servers, SASL, credentials, TLS) share one client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from scalers.params import ParameterError, TriggerParams, param, parse_params, secret_field
from scalers.sources import AUTH_ONLY, METADATA_ONLY, METADATA_OR_AUTH, METADATA_OR_ENV
from scalers.tls import TLSSettings, check_settings

SASL_MECHANISMS = {"plaintext": "PLAIN", "scram_sha256": "SCRAM-SHA-256", "scram_sha512": "SCRAM-SHA-512"}
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)|0\.(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True, kw_only=True)
class _RawParams:
    bootstrap_servers: str = param("bootstrapServers", required=True, sources=METADATA_OR_ENV)
    consumer_group: str = param("consumerGroup", required=True, sources=METADATA_OR_ENV)
    topic: str = param("topic", default="", sources=METADATA_OR_ENV)
    partition_limitation: str | None = param("partitionLimitation", sources=METADATA_ONLY)
    lag_threshold: int = param("lagThreshold", default=10, sources=METADATA_ONLY)
    activation_lag_threshold: int = param("activationLagThreshold", default=0, sources=METADATA_ONLY)
    offset_reset_policy: Literal["latest", "earliest"] = param("offsetResetPolicy", default="latest",
                                                               sources=METADATA_ONLY)
    allow_idle_consumers: bool = param("allowIdleConsumers", default=False, sources=METADATA_ONLY)
    exclude_persistent_lag: bool = param("excludePersistentLag", default=False, sources=METADATA_ONLY)
    scale_to_zero_on_invalid_offset: bool = param("scaleToZeroOnInvalidOffset", default=False,
                                                  sources=METADATA_ONLY)
    limit_to_partitions_with_lag: bool = param("limitToPartitionsWithLag", default=False, sources=METADATA_ONLY)
    ensure_even_distribution: bool = param("ensureEvenDistributionOfPartitions", default=False,
                                           sources=METADATA_ONLY)
    full_metadata: bool = param("fullMetadata", default=True, sources=METADATA_ONLY)
    version: str | None = param("version", sources=METADATA_ONLY)
    tls: Literal["enable", "disable"] = param("tls", default="disable", sources=METADATA_OR_AUTH)
    unsafe_ssl: bool = param("unsafeSsl", default=False, sources=METADATA_ONLY)
    ca: str | None = param("ca", sources=AUTH_ONLY)
    cert: str | None = param("cert", sources=AUTH_ONLY)
    key: str | None = param("key", sources=AUTH_ONLY, secret=True)
    key_password: str | None = param("keyPassword", sources=AUTH_ONLY, secret=True)
    sasl: Literal["none", "plaintext", "scram_sha256", "scram_sha512", "oauthbearer", "gssapi"] = param(
        "sasl", default="none", sources=METADATA_OR_AUTH)
    username: str | None = param("username", sources=AUTH_ONLY)
    password: str | None = param("password", sources=AUTH_ONLY, secret=True)


@dataclass(frozen=True, kw_only=True, slots=True)
class KafkaCluster:
    """Where a config connects and how it logs in: the server key. `str()` names it without secrets."""

    bootstrap_servers: tuple[str, ...]
    sasl_mechanism: str | None = None  # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    username: str | None = None
    password: str | None = secret_field(None)
    tls: TLSSettings | None = None

    def __str__(self) -> str:
        return f"kafka {','.join(self.bootstrap_servers)}"

    @property
    def security_protocol(self) -> str:
        if self.sasl_mechanism:
            return "SASL_SSL" if self.tls else "SASL_PLAINTEXT"
        return "SSL" if self.tls else "PLAINTEXT"


@dataclass(frozen=True, kw_only=True, slots=True)
class KafkaConfig:
    cluster: KafkaCluster
    consumer_group: str
    topic: str = ""  # empty: every topic the group has committed offsets for
    partition_limitation: tuple[int, ...] | None = None
    lag_threshold: int = 10
    activation_lag_threshold: int = 0
    offset_reset_policy: Literal["latest", "earliest"] = "latest"
    allow_idle_consumers: bool = False
    exclude_persistent_lag: bool = False
    scale_to_zero_on_invalid_offset: bool = False
    limit_to_partitions_with_lag: bool = False
    ensure_even_distribution: bool = False


def parse_config(params: TriggerParams) -> KafkaConfig:
    raw = parse_params(_RawParams, params)
    _check_rules(raw)
    limitation = parse_partition_limitation(raw.partition_limitation)
    return KafkaConfig(
        cluster=_cluster(raw),
        consumer_group=raw.consumer_group,
        topic=raw.topic,
        partition_limitation=limitation if raw.topic else None,
        lag_threshold=raw.lag_threshold,
        activation_lag_threshold=raw.activation_lag_threshold,
        offset_reset_policy=raw.offset_reset_policy,
        allow_idle_consumers=raw.allow_idle_consumers,
        exclude_persistent_lag=raw.exclude_persistent_lag,
        scale_to_zero_on_invalid_offset=raw.scale_to_zero_on_invalid_offset,
        limit_to_partitions_with_lag=raw.limit_to_partitions_with_lag,
        ensure_even_distribution=raw.ensure_even_distribution,
    )


def _check_rules(raw: _RawParams) -> None:
    if raw.lag_threshold <= 0:
        raise ParameterError('"lagThreshold" must be positive number')
    if raw.activation_lag_threshold < 0:
        raise ParameterError('"activationLagThreshold" must be a non-negative number')
    if raw.allow_idle_consumers and raw.limit_to_partitions_with_lag:
        raise ParameterError("allowIdleConsumers and limitToPartitionsWithLag cannot be set simultaneously")
    if not raw.topic and raw.limit_to_partitions_with_lag:
        raise ParameterError("topic must be specified when using limitToPartitionsWithLag")
    if raw.limit_to_partitions_with_lag and raw.ensure_even_distribution:
        raise ParameterError("limitToPartitionsWithLag and ensureEvenDistributionOfPartitions cannot be set "
                             "simultaneously")
    if not raw.topic and raw.ensure_even_distribution:
        raise ParameterError("topic must be specified when using ensureEvenDistributionOfPartitions")
    if not raw.full_metadata and not raw.topic:
        raise ParameterError("topic must be specified when fullMetadata is false")
    if raw.version is not None and _VERSION.fullmatch(raw.version) is None:
        raise ParameterError(f"error parsing kafka version: invalid version `{raw.version}`")


def parse_partition_limitation(text: str | None) -> tuple[int, ...] | None:
    """`1,2,5-7` as (1, 2, 5, 6, 7); None when empty or blank."""
    if text is None or not text.strip():
        return None
    found: list[int] = []
    for item in text.split(","):
        part = item.strip()
        if "-" in part:
            bounds = part.split("-")
            if len(bounds) != 2:
                raise ParameterError(f"invalid partition limitation range: {part}")
            start, end = (_int32(bound.strip(), part) for bound in bounds)
            found.extend(range(start, end + 1))
        else:
            found.append(_int32(part, part))
    return tuple(found)


def _int32(text: str, part: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", text) or not -(2**31) <= int(text) < 2**31:
        raise ParameterError(f"invalid partition limitation: {part}")
    return int(text)


def _cluster(raw: _RawParams) -> KafkaCluster:
    servers = tuple(sorted({s.strip() for s in raw.bootstrap_servers.split(",") if s.strip()}))
    return KafkaCluster(bootstrap_servers=servers, sasl_mechanism=_sasl(raw), username=raw.username,
                        password=raw.password, tls=_tls(raw))


def _sasl(raw: _RawParams) -> str | None:
    if raw.sasl == "none":
        return None
    if raw.sasl in ("oauthbearer", "gssapi"):
        raise ParameterError(f'sasl "{raw.sasl}" is not supported (plaintext, scram_sha256 and scram_sha512 are)')
    if not raw.username:
        raise ParameterError("no username given")
    if not raw.password:
        raise ParameterError("no password given")
    return SASL_MECHANISMS[raw.sasl]


def _tls(raw: _RawParams) -> TLSSettings | None:
    if raw.tls != "enable":
        return None
    if raw.cert and not raw.key:
        raise ParameterError("key must be provided with cert")
    if raw.key and not raw.cert:
        raise ParameterError("cert must be provided with key")
    settings = TLSSettings(ca=raw.ca, cert=raw.cert, key=raw.key, key_password=raw.key_password,
                           unsafe_ssl=raw.unsafe_ssl)
    check_settings(settings)
    return settings
