"""Standalone mode is as strict as cluster mode, and says everything at once (issue 15's list).

Each row is a directory a user could write; after one load of a `DirectorySource` the catalog
holds exactly the problems listed, each by object and file, the object's problems in one
message, one WARNING line per problem, and the reload summary counts the same problems.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from adapter.catalog.catalog import Catalog
from adapter.catalog.directory_source import DirectorySource
from scalers.registry import ScalerRegistry
from tests.unit.catalog.test_directory_source import SCALED_OBJECT

ORDERS = SCALED_OBJECT  # orders in shop, one cron trigger
GOOD = ORDERS.replace("orders", "fine")
ALL_AT_ONCE = ORDERS.replace("  triggers:", "  cooldownPeriod: soon\n  triggers:\n    - metadata: {}\n"
                             "    - type: cron\n      metricType: Most\n      metadata: {}")

Files = dict[str, str]
Expected = list[tuple[str, str, str]]  # (object, how the message begins, file)


@pytest.mark.parametrize("files, expected", [
    pytest.param({"a.yaml": ORDERS, "b.yaml": ORDERS}, [
        ("ScaledObject shop/orders", "defined more than once: file:a.yaml, file:b.yaml", "file:b.yaml")],
        id="the same namespace/name in two files is neither, reported by name and both files"),
    pytest.param({"a.yaml": ORDERS.replace("kind: ScaledObject", "kind: ScaledObjekt")}, [
        ("ScaledObjekt shop/orders", "kind ScaledObjekt of keda.sh/v1alpha1 is not served", "file:a.yaml")],
        id="an unknown kind of KEDA's groups"),
    pytest.param({"a.yaml": ORDERS.replace("  triggers:", "  pollingIntervall: 5\n  minReplicaCont: 1\n  triggers:")
                  .replace("      metadata:", "      metdata: {}\n      metadata:")}, [
        ("ScaledObject shop/orders",
         "unknown fields: spec.pollingIntervall, spec.minReplicaCont, spec.triggers[0].metdata", "file:a.yaml")],
        id="unknown spec keys, all named"),
    pytest.param({"a.yaml": ALL_AT_ONCE}, [
        ("ScaledObject shop/orders", "spec.triggers[0].type is required; "
         'spec.triggers[1].metricType "Most" must be one of [AverageValue, Value, Utilization]; '
         "spec.cooldownPeriod must be an integer, got 'soon'", "file:a.yaml")],
        id="every problem of an object at once"),
    pytest.param({"a.yaml": ORDERS.replace("  triggers:", "  minReplicaCount: 5\n  maxReplicaCount: 2\n"
                                           "  idleReplicaCount: 7\n  triggers:")}, [
        ("ScaledObject shop/orders", "minReplicaCount (5) must be less than or equal to maxReplicaCount (2); "
         "idleReplicaCount (7) must be less than minReplicaCount (5)", "file:a.yaml")],
        id="every check across fields at once"),
    pytest.param({"a.yaml": ORDERS.replace("kind: ScaledObject", "kind: ScaledObjekt"),
                  "b.yaml": ORDERS.replace("  triggers:", "  pollingIntervall: 5\n  triggers:"),
                  "c.yaml": "apiVersion: keda.sh/v1alpha1\nkind: TriggerAuthentication\nmetadata: {name: t}\n"
                            "spec: {secretTargetRef: [{parameter: p, name: s}]}\n"}, [
        ("ScaledObjekt shop/orders", "kind ScaledObjekt of keda.sh/v1alpha1 is not served", "file:a.yaml"),
        ("ScaledObject shop/orders", "unknown fields: spec.pollingIntervall", "file:b.yaml"),
        ("TriggerAuthentication default/t", "spec.secretTargetRef[0] needs key", "file:c.yaml")],
        id="problems of several objects, each with its file"),
    pytest.param({"a.yaml": "apiVersion: keda.sh/v1alpha1\nkind: TriggerAuthentication\nmetadata: {name: t}\n"
                            "spec: {secretTargetRef: [{parameter: p, name: s}, {name: s, key: k}], env: 5}\n"}, [
        ("TriggerAuthentication default/t", "spec.secretTargetRef[0] needs key; "
         "spec.secretTargetRef[1] needs parameter and name; spec.env must be a list", "file:a.yaml")],
        id="every problem of a TriggerAuthentication at once, while nothing reads it"),
    pytest.param({"a.yaml": "apiVersion: keda.sh/v1alpha1\nkind: ScaledJob\nmetadata: {name: j, namespace: shop}\n"
                            "spec: {rollout: {strategy: sideways}, pollingInterval: 0,"
                            " triggers: [{metadata: {}}]}\n"}, [
        ("ScaledJob shop/j", "spec.triggers[0].type is required; spec.jobTargetRef is required; "
         "spec.pollingInterval must be at least 1, got 0; "
         'spec.rollout.strategy "sideways" must be one of', "file:a.yaml")],
        id="every problem of a ScaledJob at once"),
])
def test_each_problem_named_with_its_file_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                      files: Files, expected: Expected) -> None:
    for name, text in {**files, "good.yaml": GOOD}.items():
        (tmp_path / name).write_text(text)
    catalog = Catalog(ScalerRegistry())
    with caplog.at_level(logging.INFO):
        DirectorySource(tmp_path, catalog).load()
    found = sorted((str(p.ref), p.source, p.message) for p in catalog.problems)
    assert [(ref, source) for ref, source, _ in found] == sorted((ref, source) for ref, _, source in expected)
    for (_, _, message), (_, wanted, _) in zip(found, sorted(expected, key=lambda e: (e[0], e[2])), strict=True):
        assert message.startswith(wanted), message
    assert catalog.scaled_object("shop", "fine") is not None  # the good object keeps serving
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and "problem=" in r.getMessage()]
    assert len(warned) == len(expected)
    (summary,) = [r.getMessage() for r in caplog.records if r.name == "eventscale.directory"]
    assert re.search(rf"objects=\d+ problems={len(expected)}$", summary), summary
