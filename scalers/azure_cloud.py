"""What every Azure scaler asks of `cloud` (KEDA's ParseEnvironmentProperty) and of a pod identity, once.

A trigger names its cloud in `cloud` (AzurePublicCloud when absent) or says `Private` and gives
the suffix itself in `endpointSuffix`. Each service has its own table of suffixes (storage,
Service Bus, Event Hubs), so the table is the caller's; the rule and KEDA's messages are here.
Only connection strings are supported: a TriggerAuthentication's pod identity is refused.
"""

from __future__ import annotations

from collections.abc import Mapping

from scalers.params import ParameterError, TriggerParams
from scalers.sources import METADATA_ONLY

PUBLIC_CLOUD = "azurepubliccloud"
WORKLOAD_IDENTITY_PROVIDERS = ("azure-workload", "azure")


def cloud_suffix(params: TriggerParams, suffixes: Mapping[str, str]) -> str:
    """The endpoint suffix of the trigger's cloud in `suffixes` (keyed by lower-case cloud name),
    or `endpointSuffix` for a Private cloud; an unknown cloud is a ParameterError."""
    cloud = params.get("cloud", METADATA_ONLY)
    if cloud is None:
        return suffixes[PUBLIC_CLOUD]
    if cloud.lower() == "private":
        suffix = params.get("endpointSuffix", METADATA_ONLY)
        if suffix is None:
            raise ParameterError("endpointSuffix must be provided for Private cloud type")
        return suffix
    if cloud.lower() not in suffixes:
        raise ParameterError(f"invalid cloud environment {cloud}")
    return suffixes[cloud.lower()]


def refuse_pod_identity(params: TriggerParams, workload_identity: str, other: str) -> None:
    """Refuse the trigger's pod identity, if it has one: workload identity with the message
    `workload_identity` (naming what it was asked for), any other provider with `other`."""
    provider = params.pod_identity.lower()
    if provider in WORKLOAD_IDENTITY_PROVIDERS:
        raise ParameterError(workload_identity)
    if provider not in ("", "none"):
        raise ParameterError(other)
