"""The scaler interface's shared machinery: secrets found from declarations, masking, the registry."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest

from scalers import REGISTRY, ParameterError, TriggerParams, mask, param, parse_params, secret_values
from scalers.params import secret_field
from scalers.registry import ENTRIES, Entry
from scalers.sources import SECRET_SOURCES


@dataclass(frozen=True, kw_only=True)
class Server:
    host: str
    password: str | None = secret_field(None)


@dataclass(frozen=True, kw_only=True)
class Config:
    name: str = param("name", required=True)
    port: int = param("port", default=1)
    token: str | None = param("token", sources=SECRET_SOURCES, secret=True)
    url: str | None = param("url", secret=True)
    server: Server


@pytest.mark.parametrize("config, expected", [
    (Config(name="q", token="s3cr3t", server=Server(host="h")), ("s3cr3t",)),
    (Config(name="q", server=Server(host="h", password="hunter2")), ("hunter2",)),
    # a URL is masked by its password, so the message still names the server
    (Config(name="q", url="amqp://user:p%40ss@broker:5672/vh", server=Server(host="h")), ("p%40ss", "p@ss")),
    (Config(name="q", url="http://broker:15672", server=Server(host="h")), ()),
    # connection strings: the whole string and each secret-looking value
    (Config(name="q", token="Endpoint=sb://ns/;SharedAccessKeyName=root;SharedAccessKey=abc123=",
            server=Server(host="h")),
     ("Endpoint=sb://ns/;SharedAccessKeyName=root;SharedAccessKey=abc123=", "abc123=")),
    (Config(name="q", token="host=db port=5432 password='pw-9' dbname=x", server=Server(host="h")),
     ("host=db port=5432 password='pw-9' dbname=x", "pw-9")),
])
def test_secret_values_come_from_declarations(config: Config, expected: tuple[str, ...]) -> None:
    assert set(secret_values(config)) == set(expected)
    assert list(secret_values(config)) == sorted(secret_values(config), key=len, reverse=True)


def test_mask_replaces_longest_first() -> None:
    secrets = secret_values(Config(name="q", token="key=abcdef;", server=Server(host="h", password="abc")))
    assert mask("failed with key=abcdef; and abc", secrets) == "failed with *** and ***"


def test_a_bad_secret_parameter_is_not_echoed() -> None:
    @dataclass(frozen=True, kw_only=True)
    class Numeric:
        pin: int = param("pin", secret=True)
        count: int = param("count", default=0)

    with pytest.raises(ParameterError) as failed:
        parse_params(Numeric, TriggerParams(metadata={"pin": "12ab34"}))
    assert "12ab34" not in str(failed.value) and '"pin"' in str(failed.value)
    with pytest.raises(ParameterError, match='parameter "count" value "x"'):
        parse_params(Numeric, TriggerParams(metadata={"pin": "1", "count": "x"}))


def test_importing_scalers_loads_no_broker_sdk() -> None:
    code = ("import sys, scalers; "
            "loaded = [m for m in ('pika', 'redis', 'azure', 'croniter', 'httpx') if m in sys.modules]; "
            "print(','.join(loaded))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_every_entry_loads_a_scaler_serving_its_types(entry: Entry) -> None:
    for trigger_type in entry.types:
        scaler = REGISTRY.get(trigger_type)
        assert scaler is not None and set(scaler.types) == set(entry.types)
    assert REGISTRY.get("no-such-trigger") is None
