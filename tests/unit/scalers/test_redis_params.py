"""Parsing of redis, redis-cluster and redis-sentinel triggers: every key, default, source and error.

Sources follow KEDA's redis scaler: list keys from metadata only; address(es) from metadata, auth
params, then env; host(s), port(s), username and password from metadata, env, then auth params;
sentinel keys from metadata, auth params, then env; TLS material from auth params only.
"""

from __future__ import annotations

import operator
from typing import Any

import pytest

from scalers.params import ParameterError, TriggerParams
from scalers.redis.lists import RedisScaler

SCALER = RedisScaler()
A = {"listName": "jobs", "address": "redis:6379"}


def parse(trigger_type: str, metadata: dict[str, str], auth: dict[str, str] | None = None,
          env: dict[str, str] | None = None) -> Any:
    return SCALER.parse(trigger_type, TriggerParams(metadata=metadata, auth=auth or {}, env=env or {}))


@pytest.mark.parametrize("trigger_type, metadata, auth, env, expected", [
    ("redis", A, {}, {}, {
        "list_name": "jobs", "list_length": 5, "activation_list_length": 0, "keyspace_notifications": "use",
        "connection.kind": "standalone", "connection.addresses": (("redis", 6379),),
        "connection.database_index": 0, "connection.username": None, "connection.password": None,
        "connection.tls": None, "connection.sentinel_master": None,
    }),
    ("redis", {**A, "listLength": "12", "activationListLength": "3", "databaseIndex": "4"}, {}, {},
     {"list_length": 12, "activation_list_length": 3, "connection.database_index": 4}),
    ("redis", {**A, "listName": "  padded  "}, {}, {}, {"list_name": "padded"}),
    ("redis", {**A, "keyspaceNotifications": "enable"}, {}, {}, {"keyspace_notifications": "enable"}),
    # address: metadata, then auth params, then env
    ("redis", {"listName": "q"}, {"address": "auth:1"}, {}, {"connection.addresses": (("auth", 1),)}),
    ("redis", {"listName": "q", "addressFromEnv": "R"}, {}, {"R": "env:2"},
     {"connection.addresses": (("env", 2),)}),
    ("redis", {"listName": "q", "address": "meta:3", "addressFromEnv": "R"}, {"address": "auth:1"},
     {"R": "env:2"}, {"connection.addresses": (("meta", 3),)}),
    ("redis", {"listName": "q", "addressFromEnv": "R"}, {"address": "auth:1"}, {"R": "env:2"},
     {"connection.addresses": (("auth", 1),)}),
    ("redis", {"listName": "q", "address": "[::1]:6380"}, {}, {}, {"connection.addresses": (("::1", 6380),)}),
    # host + port, hosts + ports
    ("redis", {"listName": "q", "host": "h", "port": "7"}, {}, {}, {"connection.addresses": (("h", 7),)}),
    ("redis", {"listName": "q", "hostFromEnv": "H", "portFromEnv": "P"}, {}, {"H": "eh", "P": "8"},
     {"connection.addresses": (("eh", 8),)}),
    ("redis", {"listName": "q"}, {"host": "ah", "port": "9"}, {}, {"connection.addresses": (("ah", 9),)}),
    ("redis-cluster", {"listName": "q", "hosts": "a, b,c", "ports": "1,2, 3"}, {}, {},
     {"connection.kind": "cluster", "connection.addresses": (("a", 1), ("b", 2), ("c", 3))}),
    ("redis-cluster", {"listName": "q", "addresses": "a:1, b:2"}, {}, {},
     {"connection.addresses": (("a", 1), ("b", 2))}),
    ("redis-cluster", {"listName": "q", "address": "a:1,b:2"}, {}, {},
     {"connection.addresses": (("a", 1), ("b", 2))}),
    ("redis-cluster", {"listName": "q", "addresses": "a:1", "databaseIndex": "3"}, {}, {},
     {"connection.database_index": 0}),
    # credentials: metadata, then env, then auth params
    ("redis", {**A, "username": "u", "password": "p"}, {}, {}, {"connection.username": "u",
                                                              "connection.password": "p"}),
    ("redis", A, {"username": "au", "password": "ap"}, {}, {"connection.username": "au",
                                                          "connection.password": "ap"}),
    ("redis", {**A, "passwordFromEnv": "PW", "usernameFromEnv": "US"}, {"password": "ap", "username": "au"},
     {"PW": "ep", "US": "eu"}, {"connection.password": "ep", "connection.username": "eu"}),
    # sentinel
    ("redis-sentinel", {"listName": "q", "addresses": "s1:26379,s2:26379", "sentinelMaster": "m"}, {}, {},
     {"connection.kind": "sentinel", "connection.sentinel_master": "m",
      "connection.addresses": (("s1", 26379), ("s2", 26379)), "connection.sentinel_password": None}),
    ("redis-sentinel", {"listName": "q", "addresses": "s:1", "databaseIndex": "2"},
     {"sentinelMaster": "am", "sentinelUsername": "su", "sentinelPassword": "sp"}, {},
     {"connection.sentinel_master": "am", "connection.sentinel_username": "su",
      "connection.sentinel_password": "sp", "connection.database_index": 2}),
    ("redis-sentinel", {"listName": "q", "addresses": "s:1", "sentinelMasterFromEnv": "M",
                        "sentinelPasswordFromEnv": "SP"}, {}, {"M": "em", "SP": "esp"},
     {"connection.sentinel_master": "em", "connection.sentinel_password": "esp"}),
    ("redis", {**A, "sentinelMaster": "m", "sentinelPassword": "x"}, {}, {},
     {"connection.sentinel_master": None, "connection.sentinel_password": None}),
    # TLS: enableTLS (metadata) or tls (auth params); material from auth params
    ("redis", {**A, "enableTLS": "true"}, {}, {},
     {"connection.tls.ca": None, "connection.tls.unsafe_ssl": False}),
    ("redis", {**A, "enableTLS": "false"}, {"ca": "CA"}, {}, {"connection.tls": None}),
    ("redis", A, {"tls": "enable", "ca": "CA", "cert": "C", "key": "K", "keyPassword": "KP"}, {},
     {"connection.tls.ca": "CA", "connection.tls.cert": "C", "connection.tls.key": "K",
      "connection.tls.key_password": "KP"}),
    ("redis", A, {"tls": "disable", "ca": "CA"}, {}, {"connection.tls": None}),
    ("redis", {**A, "enableTLS": "true", "unsafeSsl": "true"}, {}, {}, {"connection.tls.unsafe_ssl": True}),
    ("redis", {**A, "enableTLS": "true", "ca": "ignored"}, {}, {}, {"connection.tls.ca": None}),
])
def test_parse(trigger_type: str, metadata: dict[str, str], auth: dict[str, str], env: dict[str, str],
               expected: dict[str, Any]) -> None:
    config = parse(trigger_type, metadata, auth, env)
    for path, value in expected.items():
        assert operator.attrgetter(path)(config) == value, path


@pytest.mark.parametrize("trigger_type, metadata, auth, error", [
    ("redis", {"address": "r:1"}, {}, 'missing required parameter "listName"'),
    ("redis", {"address": "r:1", "listNameFromEnv": "L"}, {}, 'missing required parameter "listName"'),
    ("redis", {"listName": "q"}, {}, "no addresses or hosts given"),
    ("redis", {"listName": "q", "host": "h"}, {}, "no addresses or hosts given"),
    ("redis-cluster", {"listName": "q", "hosts": "a,b", "ports": "1"}, {}, "not enough hosts or ports given"),
    ("redis", {"listName": "q", "address": "nohost"}, {}, 'parameter "address" value "nohost" must be'),
    ("redis", {"listName": "q", "address": "h:port"}, {}, 'parameter "address" value "h:port" must be'),
    ("redis", {"listName": "q", "host": "h", "port": "70000"}, {}, 'parameter "port" value "70000"'),
    ("redis", {**A, "listLength": "AA"}, {}, 'parameter "listLength" value "AA" must be an integer'),
    ("redis", {**A, "activationListLength": "1.5"}, {}, 'parameter "activationListLength"'),
    ("redis", {**A, "databaseIndex": "x"}, {}, 'parameter "databaseIndex" value "x" must be an integer'),
    ("redis", {**A, "databaseIndex": "-1"}, {}, 'parameter "databaseIndex" must not be negative'),
    ("redis", {**A, "enableTLS": "maybe"}, {}, 'parameter "enableTLS" value "maybe" must be a boolean'),
    ("redis", {**A, "unsafeSsl": "maybe"}, {}, 'parameter "unsafeSsl" value "maybe" must be a boolean'),
    ("redis", A, {"tls": "on"}, 'parameter "tls" value "on" must be one of [enable, disable]'),
    ("redis", {**A, "enableTLS": "true"}, {"tls": "enable"}, "unable to set `tls` in both"),
    ("redis", {**A, "enableTLS": "true"}, {"cert": "C"}, 'parameters "cert" and "key" must be given'),
    ("redis-sentinel", {"listName": "q", "addresses": "s:1"}, {}, 'missing required parameter "sentinel'),
    ("redis", {**A, "keyspaceNotifications": "on"}, {}, 'parameter "keyspaceNotifications" value "on" must be one of'),
])
def test_parse_errors(trigger_type: str, metadata: dict[str, str], auth: dict[str, str], error: str) -> None:
    with pytest.raises(ParameterError) as raised:
        parse(trigger_type, metadata, auth)
    assert error in str(raised.value)


@pytest.mark.parametrize("metadata, name, target, activation", [
    (A, "redis-jobs", 5.0, 0.0),
    ({**A, "listName": "my.list", "listLength": "10", "activationListLength": "2"},
     "redis-my.list", 10.0, 2.0),
])
def test_metric(metadata: dict[str, str], name: str, target: float, activation: float) -> None:
    spec = SCALER.metric(parse("redis", metadata))
    assert (spec.name, spec.target, spec.activation) == (name, target, activation)


def test_server_key_shares_one_server_and_separates_credentials_and_databases() -> None:
    key = SCALER.server_key
    first = parse("redis", {**A, "password": "p"})
    second = parse("redis", {**A, "listName": "other", "password": "p"})
    assert key(first) == key(second) and hash(key(first)) == hash(key(second))
    assert key(first) != key(parse("redis", {**A, "password": "q"}))
    assert key(first) != key(parse("redis", {**A, "password": "p", "databaseIndex": "1"}))
    assert key(first) != key(parse("redis", {**A, "password": "p", "enableTLS": "true"}))
    assert key(first) != key(parse("redis-cluster", {**A, "password": "p"}))


def test_repr_holds_no_secret() -> None:
    config = parse("redis-sentinel", {"listName": "q", "addresses": "s:1", "sentinelMaster": "m"},
                   {"password": "pw-secret-1", "sentinelPassword": "pw-secret-2", "tls": "enable",
                    "cert": "C", "key": "key-secret-3", "keyPassword": "pw-secret-4"})
    text = f"{config!r} {config!s} {SCALER.server_key(config)!r}"
    assert "secret" not in text
    assert "m" in config.connection.describe() and "secret" not in config.connection.describe()
