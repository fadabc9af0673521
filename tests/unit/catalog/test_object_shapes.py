"""Objects of every wrong shape: each is one problem on that object, and the others keep serving.

A table of the shapes found by probing (wrong types in metadata, in a target's pod template, in a
Secret, a trigger parameter no parser expected), then a hypothesis fuzz that puts arbitrary JSON
values anywhere in a ScaledObject and the objects it reads. The catalog must never raise, must
report the object by name, and must keep resolving `good`.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.catalog.catalog import Catalog
from adapter.keda.objects import InvalidObject, parse_scaled_object, parse_trigger_authentication
from scalers.registry import REGISTRY

CRON = {"timezone": "UTC", "start": "0 6 * * *", "end": "0 20 * * *", "desiredReplicas": "2"}
SECRET_VALUE = "Sup3r-Secret-Value"


def scaled_object(name: str, target: str = "web", auth: str | None = None) -> dict[str, Any]:
    trigger: dict[str, Any] = {"type": "cron", "metadata": dict(CRON)}
    if auth:
        trigger["authenticationRef"] = {"name": auth}
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"name": target}, "triggers": [trigger]}}


GOOD = scaled_object("good", target="good-target")


def with_change(base: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    changed = copy.deepcopy(base)
    change(changed)
    return changed


def deployment(spec: Any, name: str = "web") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def containers(items: Any) -> dict[str, Any]:
    return deployment({"template": {"spec": {"containers": items}}})


def env_auth(secret: dict[str, Any]) -> list[dict[str, Any]]:
    """A ScaledObject reading desiredReplicas from `secret` through a TriggerAuthentication."""
    return [
        with_change(scaled_object("bad", auth="a"),
                    lambda o: o["spec"]["triggers"][0]["metadata"].pop("desiredReplicas")),
        {"kind": "TriggerAuthentication", "metadata": {"name": "a"},
         "spec": {"secretTargetRef": [{"parameter": "desiredReplicas", "name": "s", "key": "n"}]}},
        {"kind": "Secret", "metadata": {"name": "s"}, **secret},
    ]


def set_meta(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda o: o["metadata"].__setitem__(key, value)


def set_cron(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda o: o["spec"]["triggers"][0]["metadata"].__setitem__(key, value)


BAD = scaled_object("bad")
SHAPES: list[tuple[str, list[dict[str, Any]], str]] = [
    ("generation abc", [with_change(BAD, set_meta("generation", "abc"))], "metadata.generation"),
    ("generation [1]", [with_change(BAD, set_meta("generation", [1]))], "metadata.generation"),
    ("uid a map", [with_change(BAD, set_meta("uid", {"a": 1}))], "metadata.uid must be a string"),
    ("labels a list", [with_change(BAD, set_meta("labels", ["a"]))], "metadata.labels must be an object"),
    ("spec oops", [with_change(BAD, lambda o: o.__setitem__("spec", "oops"))], "spec must be an object"),
    ("target name a list", [with_change(BAD, lambda o: o["spec"]["scaleTargetRef"].__setitem__("name", ["w"]))],
     "spec.scaleTargetRef.name must be a string"),
    ("useCachedMetrics a string", [with_change(BAD, lambda o: o["spec"]["triggers"][0].__setitem__(
        "useCachedMetrics", "false"))], "useCachedMetrics must be true or false"),
    ("authenticationRef name a map", [with_change(BAD, lambda o: o["spec"]["triggers"][0].__setitem__(
        "authenticationRef", {"name": {"x": 1}}))], "authenticationRef.name must be a string"),
    ("deployment spec oops", [BAD, deployment("oops")], "spec of Deployment default/web must be an object"),
    ("containers [c1]", [BAD, containers(["c1"])], "containers of Deployment default/web must be a list"),
    ("containers a map", [BAD, containers({"name": "c"})], "containers of Deployment default/web must be a list"),
    ("env [A=1]", [BAD, containers([{"name": "c", "env": ["A=1"]}])], 'env of container "c"'),
    ("env value a list", [BAD, containers([{"name": "c", "env": [{"name": "A", "value": [1]}]}])],
     "an env value of"),
    ("envFrom a string", [BAD, containers([{"name": "c", "envFrom": "cm"}])], "envFrom of"),
    ("stringData a list", env_auth({"stringData": ["n"]}), "stringData of Secret default/s must be an object"),
    ("stringData a string", env_auth({"stringData": SECRET_VALUE}), "stringData of Secret default/s"),
    ("data value a map", env_auth({"data": {"n": {"x": SECRET_VALUE}}}), 'key "n" of Secret default/s'),
    ("data not base64", env_auth({"data": {"n": SECRET_VALUE}}), "is not valid base64"),
    ("timezone of 10,000 characters", [with_change(BAD, set_cron("timezone", "x" * 10_000))],
     "is not an IANA time zone"),
    ("desiredReplicas a list", [with_change(BAD, set_cron("desiredReplicas", ["2"]))],
     "metadata.desiredReplicas must be a string"),
]


@pytest.mark.parametrize("objects, problem", [pytest.param(o, p, id=name) for name, o, p in SHAPES])
def test_a_bad_shape_is_one_problem_on_that_object(objects: list[dict[str, Any]], problem: str) -> None:
    catalog = Catalog(REGISTRY)
    catalog.replace_all([(GOOD, "file:good.yaml"), *((o, "file:bad.yaml") for o in objects)])
    messages = {str(p.ref): p.message for p in catalog.problems}
    assert list(messages) == ["ScaledObject default/bad"], messages
    assert problem in messages["ScaledObject default/bad"]
    assert SECRET_VALUE not in messages["ScaledObject default/bad"]
    assert len(messages["ScaledObject default/bad"]) < 400
    good = catalog.scaled_object("default", "good")
    assert good is not None and not good.trigger_errors


def test_a_trigger_whose_scaler_raises_fails_alone() -> None:
    """A scaler parser raising something unforeseen fails its trigger; the object's other triggers serve."""
    two = with_change(BAD, lambda o: o["spec"]["triggers"].append({"type": "cron", "metadata": dict(CRON)}))
    two["spec"]["triggers"][1]["metadata"]["start"] = "0 7 * * *"
    two["spec"]["triggers"][0]["metadata"]["timezone"] = "x" * 10_000
    catalog = Catalog(REGISTRY)
    catalog.replace_all([(two, "t")])
    resolved = catalog.scaled_object("default", "bad")
    assert resolved is not None
    assert [t.error is None for t in resolved.triggers] == [False, True]


def test_duplicates_across_files_are_reported_with_both_files() -> None:
    reads_secret = env_auth({"stringData": {"n": "3"}})
    catalog = Catalog(REGISTRY)
    catalog.replace_all([(GOOD, "file:a.yaml"), (GOOD, "file:b.yaml"), *((o, "file:c.yaml") for o in reads_secret),
                         (reads_secret[-1], "file:d.yaml")])
    messages = {str(p.ref): p.message for p in catalog.problems}
    assert messages["ScaledObject default/good"] == "defined more than once: file:a.yaml, file:b.yaml"
    assert messages["Secret default/s"] == "defined more than once: file:c.yaml, file:d.yaml"
    reader = messages["ScaledObject default/bad"]
    assert "Secret default/s is defined more than once: file:c.yaml, file:d.yaml" in reader
    assert catalog.scaled_object("default", "good") is None


@pytest.mark.parametrize("parse", [parse_scaled_object, parse_trigger_authentication])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_parsers_raise_only_invalid_object(parse: Callable[[Any], object], data: st.DataObject) -> None:
    raw = data.draw(_mutated(scaled_object("fuzz", auth="a") if parse is parse_scaled_object else _auth()))
    with contextlib.suppress(InvalidObject):  # anything else fails the test
        parse(raw)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)


def _auth() -> dict[str, Any]:
    return {"kind": "TriggerAuthentication", "metadata": {"name": "a"},
            "spec": {"secretTargetRef": [{"parameter": "desiredReplicas", "name": "s", "key": "n"}],
                     "env": [{"parameter": "timezone", "name": "TZ", "containerName": "c"}]}}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value where another value could go."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def _mutated(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """`base` with one to three places replaced by arbitrary JSON values (the root excepted)."""
    changed = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(changed) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = changed
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = draw(JSON)
    return changed


def _world() -> list[dict[str, Any]]:
    """A ScaledObject and everything it reads: TriggerAuthentication, Secret, ConfigMap, Deployment."""
    so = scaled_object("fuzz", auth="a")
    so["spec"]["triggers"][0]["metadata"].pop("desiredReplicas")
    so["spec"]["triggers"][0]["metadata"]["timezoneFromEnv"] = "TZ"
    auth = _auth()
    auth["spec"]["configMapTargetRef"] = [{"parameter": "start", "name": "cm", "key": "start"}]
    return [
        so, auth,
        {"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"n": "4"}, "data": {"m": "NA=="}},
        {"kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"start": "0 6 * * *"}},
        deployment({"template": {"spec": {"containers": [{
            "name": "c", "env": [{"name": "TZ", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "tz"}}}],
            "envFrom": [{"secretRef": {"name": "s"}, "prefix": "S_"}]}]}}}),
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_objects_never_escape_the_per_object_path(data: st.DataObject) -> None:
    world = [data.draw(_mutated(o)) if data.draw(st.booleans()) else o for o in _world()]
    catalog = Catalog(REGISTRY)
    catalog.replace_all([(GOOD, "file:good.yaml"), *((o, "file:fuzz.yaml") for o in world)])
    good = catalog.scaled_object("default", "good")
    assert good is not None and not good.trigger_errors
    for obj in world:  # the catalog still takes single events for every object, whatever its shape
        catalog.apply(obj)
    assert catalog.scaled_object("default", "good") is not None
    assert all(p.ref.name != "good" for p in catalog.problems)
