"""Where a trigger parameter may be read from, and the orders of precedence the scalers use.

KEDA reads a parameter from the trigger's metadata, from its TriggerAuthentication
(`authParams`) or from the target container's environment (`...FromEnv`), in that fixed order;
each scaler field names the sources it accepts with one of these tuples (`param(sources=...)`).
Credentials never come from plain metadata (`SECRET_SOURCES`).
"""

from __future__ import annotations

from enum import Enum


class Source(Enum):
    """Where a parameter may come from, in KEDA's fixed order of precedence."""

    METADATA = "metadata"
    AUTH = "authParams"
    ENV = "env"


# In order of precedence: the first source that has the key gives the value.
ALL_SOURCES = (Source.METADATA, Source.AUTH, Source.ENV)
SECRET_SOURCES = (Source.AUTH, Source.ENV)  # credentials: never from plain metadata
METADATA_ONLY = (Source.METADATA,)
AUTH_ONLY = (Source.AUTH,)
METADATA_OR_AUTH = (Source.METADATA, Source.AUTH)
AUTH_OR_METADATA = (Source.AUTH, Source.METADATA)
METADATA_OR_ENV = (Source.METADATA, Source.ENV)
