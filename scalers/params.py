"""Trigger parameters to typed configs: where a value may come from, how it converts, which are secret.

Every scaler declares its config as a frozen, kw_only dataclass of `param(...)` fields and builds it
with `parse_params(ConfigType, params)`: the key, its sources in KEDA's order of precedence (the
tuples below), the type that drives conversion and whether it is required. The catalog has already
resolved TriggerAuthentications, Secrets and container env into one `TriggerParams`.

Secrets are declared once, with `param(secret=True)` or `secret_field()`: `secret_values(config)`
finds them (nested configs included), `mask(text, secrets)` hides them, and the metric store masks
every error with them.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from scalers.cluster import ClusterView
from scalers.sources import ALL_SOURCES, Source


class ParameterError(ValueError):
    """Trigger metadata that cannot be turned into a config; the message names the key."""


@dataclass(frozen=True)
class TriggerParams:
    """Everything a scaler may read for one trigger, already resolved by the catalog.

    `env` is the scale target container's environment with `valueFrom` references resolved;
    `<key>FromEnv` in the metadata names a variable there. `namespace` and `scaled_object` name
    the ScaledObject the trigger belongs to (KEDA's ScalableObjectNamespace and -Name), for the
    scalers whose data is kept per object rather than on a server (`http`). `cluster` is what the
    catalog knows of the cluster's pods and endpoints, for the scalers that count or call them; it
    is never queried over the network by a scaler.
    """

    metadata: Mapping[str, str] = field(default_factory=dict)
    auth: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    namespace: str = ""  # the ScaledObject's namespace
    scaled_object: str = ""
    # Resolve this trigger again: for scalers whose metric spec comes from their server (external),
    # called once the spec asked for in `metric` is known, or has changed.
    resolve_again: Callable[[], None] | None = field(default=None, compare=False, repr=False)
    pod_identity: str = ""  # the TriggerAuthentication's podIdentity.provider ("aws", "azure-workload", ...)
    metric_type: str | None = None  # the trigger's `metricType` as written; None when not set
    cluster: ClusterView | None = None  # pods and service endpoints the catalog watches

    def get(self, key: str, sources: Sequence[Source] = ALL_SOURCES) -> str | None:
        """The first non-empty, trimmed value of `key` from `sources`, or None."""
        for source in sources:
            if source is Source.METADATA:
                value = self.metadata.get(key)
            elif source is Source.AUTH:
                value = self.auth.get(key)
            else:
                env_name = (self.metadata.get(f"{key}FromEnv") or "").strip()
                value = self.env.get(env_name) if env_name else None
            if value is not None and str(value).strip():
                return str(value).strip()
        return None


_MISSING: Any = dataclasses.MISSING


@dataclass(frozen=True)
class ParamSpec:
    key: str
    sources: tuple[Source, ...]
    required: bool
    secret: bool = False


def param(
    key: str,
    *,
    default: Any = _MISSING,
    required: bool = False,
    sources: Sequence[Source] = ALL_SOURCES,
    secret: bool = False,
) -> Any:
    """Declare a config field read from trigger parameter `key`.

    Without a default and not required, an absent parameter leaves the field None (so its type
    should be `X | None`). Field types drive conversion: str, int, float, bool, Literal[...].
    A `secret` field (password, key, connection string) is left out of the config's repr, and its
    value is masked in every error the store keeps (`secret_values`).
    """
    meta = {"param": ParamSpec(key, tuple(sources), required, secret)}
    if default is _MISSING and not required:
        default = None
    if default is _MISSING:
        return field(metadata=meta, repr=not secret)
    return field(default=default, metadata=meta, repr=not secret)


C = TypeVar("C")


def parse_params(config_type: type[C], params: TriggerParams, **overrides: Any) -> C:
    """Build `config_type` (a kw_only dataclass of `param` fields) from `params`.

    `overrides` set fields that are not trigger parameters (or replace parsed ones).
    """
    values: dict[str, Any] = {}
    for name, spec, hint in _param_fields(config_type):  # type: ignore[arg-type]
        if name in overrides:
            continue
        raw = params.get(spec.key, spec.sources)
        if raw is None:
            if spec.required:
                raise ParameterError(f'missing required parameter "{spec.key}"')
            continue
        try:
            values[name] = convert(spec.key, raw, hint)
        except ParameterError:
            if spec.secret:
                raise ParameterError(f'parameter "{spec.key}" is not valid (value not shown: it is a secret)') from None
            raise
    values.update(overrides)
    return config_type(**values)


@functools.cache
def _param_fields(config_type: type[Any]) -> tuple[tuple[str, ParamSpec, Any], ...]:
    """(field name, spec, type) of the `param` fields; resolving type hints is slow, so once per type."""
    hints = typing.get_type_hints(config_type)
    return tuple(
        (f.name, f.metadata["param"], hints[f.name])
        for f in dataclasses.fields(config_type)
        if "param" in f.metadata
    )


def convert(key: str, raw: str, hint: Any) -> Any:
    """Convert one raw parameter to the field type, with KEDA-style errors naming the key."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        hint = args[0]
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        for choice in choices:
            if raw.lower() == str(choice).lower():
                return choice
        listed = ", ".join(str(c) for c in choices)
        raise ParameterError(f'parameter "{key}" value "{raw}" must be one of [{listed}]')
    if hint is bool:
        return parse_bool(key, raw)
    if hint is int:
        try:
            return int(raw)
        except ValueError:
            raise ParameterError(f'parameter "{key}" value "{raw}" must be an integer') from None
    if hint is float:
        try:
            value = float(raw)
        except ValueError:
            raise ParameterError(f'parameter "{key}" value "{raw}" must be a number') from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ParameterError(f'parameter "{key}" value "{raw}" must be a finite number')
        return value
    return raw


_TRUE = {"1", "t", "true", "yes", "y"}
_FALSE = {"0", "f", "false", "no", "n"}


def parse_bool(key: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ParameterError(f'parameter "{key}" value "{raw}" must be a boolean')


def secret_field(default: Any = _MISSING) -> Any:
    """A config field that is not a trigger parameter but holds a secret (left out of repr, masked)."""
    if default is _MISSING:
        return field(repr=False, metadata={"secret": True})
    return field(default=default, repr=False, metadata={"secret": True})


def secret_values(config: Any) -> tuple[str, ...]:
    """Every secret a config holds, longest first, for masking.

    A field is secret when declared `param(..., secret=True)` or `secret_field()`; nested dataclasses
    (a connection, a broker) are searched too. A secret that is a URL with a password yields the
    password (in its raw and percent-encoded spellings) and not the whole URL, so a masked message
    still says which server it is about.
    """
    found: set[str] = set()
    _collect_secrets(config, found, depth=0)
    return tuple(sorted((s for s in found if len(s) >= 3), key=len, reverse=True))


def _collect_secrets(value: Any, found: set[str], depth: int) -> None:
    if depth > 4 or not dataclasses.is_dataclass(value) or isinstance(value, type):
        return
    for f in dataclasses.fields(value):
        item = getattr(value, f.name, None)
        spec = f.metadata.get("param")
        if (spec is not None and spec.secret) or f.metadata.get("secret"):
            _add_secret(item, found)
        elif dataclasses.is_dataclass(item):
            _collect_secrets(item, found, depth + 1)


def _add_secret(value: Any, found: set[str]) -> None:
    if isinstance(value, (tuple, list)):
        for item in value:
            _add_secret(item, found)
        return
    if not isinstance(value, str) or not value:
        return
    password = _url_password(value)
    if password is None:
        found.add(value)
        found.update(_connection_string_secrets(value))
    elif password:
        found.update({password, urllib.parse.quote(password, safe=""), urllib.parse.quote_plus(password)})


_SECRET_KEY_WORDS = ("key", "password", "pwd", "secret", "signature", "token")


def _connection_string_secrets(text: str) -> set[str]:
    """Values of secret-looking `Name=value` pairs of a `;`- or space-separated connection string
    (Azure's `SharedAccessKey=`, `AccountKey=`; libpq's `password=`), so each is masked on its own."""
    found = set()
    for part in text.replace(";", " ").split():
        name, sep, value = part.partition("=")
        lowered = name.lower()
        if sep and value and not lowered.endswith("name") and any(word in lowered for word in _SECRET_KEY_WORDS):
            found.add(value.strip("'\""))
    return found


def _url_password(text: str) -> str | None:
    """The password of a URL (`scheme://user:password@host`), "" for a URL without one, None otherwise."""
    if "://" not in text or any(c.isspace() for c in text):
        return None
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    return urllib.parse.unquote(parts.password) if parts.password else ""


def mask(text: str, secrets: Sequence[str]) -> str:
    """`text` with every one of `secrets` (longest first) replaced by `***`."""
    for value in secrets:
        if value in text:
            text = text.replace(value, "***")
    return text
