"""`eventscale metrics --local-dir DIR` or `--cluster`: what the adapter serves, per trigger.

After an edit a user wants the metric names KEDA's naming gives each trigger (`s0-redis-jobs`),
whether the trigger reads, and the command that asks a running adapter for the same number as
the HPA does. `--local-dir` reads the directory as `serve --local-dir` does (same catalog, same
problems) and every trigger once through the metric store; `--cluster` lists the cluster's
objects as `serve` does and asks kube-apiserver for each metric, so the value is what the HPA
gets (or kube-apiserver's error, e.g. while the APIService is not Available). One row per
trigger with the exact `kubectl get --raw` line under it, then the problems. Exit status 1 when
there are problems or a trigger has no value, so scripts and CI can use it as a check.

    SCALEDOBJECT     TRIGGER   METRIC          VALUE
    default/worker   0 redis   s0-redis-jobs   5
      kubectl --kubeconfig certs/kubeconfig get --raw '/apis/external.metrics.k8s.io/v1beta1/...'
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapter.kube.client import ApiStatusError, KubeApi

if TYPE_CHECKING:  # imported when the command runs: the other commands' processes never load the server
    from adapter.catalog.catalog import Catalog
    from adapter.catalog.resolve import MetricKey, ResolvedScaledObject, ResolvedTrigger
    from adapter.store.store import MetricEntry, MetricStore

HEADER = ("SCALEDOBJECT", "TRIGGER", "METRIC", "VALUE")
GROUP_VERSION = "external.metrics.k8s.io/v1beta1"


def add_parser(commands: Any) -> None:
    m = commands.add_parser("metrics", help="list ScaledObjects with trigger, metric name, current value and the "
                            "kubectl command that reads it, from --local-dir or from --cluster")
    where = m.add_mutually_exclusive_group(required=True)
    where.add_argument("--local-dir", help="directory of YAML manifests, as `serve --local-dir` reads it; values "
                       "are read from the scalers once")
    where.add_argument("--cluster", action="store_true", help="the ScaledObjects of the cluster; values are what "
                       "kube-apiserver answers the HPA (through the APIService)")
    m.add_argument("--cert-dir", default="certs", help="--local-dir: certificate directory of `serve` (its "
                   "kubeconfig is the one the kubectl lines use; default certs)")
    m.add_argument("--scaler-timeout", type=float, default=5.0, help="seconds a scaler read may take (default 5)")
    m.add_argument("--kubeconfig", help="--cluster: kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
    m.add_argument("--context", help="--cluster: kubeconfig context (default: the current one)")
    m.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.cluster:
        catalog, rows = asyncio.run(_cluster(args))
    else:
        catalog, rows = _local(args)
    print(_table(rows), flush=True)
    for problem in catalog.problems:
        print(f"problem: {problem.ref} ({problem.source}): {problem.message}")
    failed = sum(1 for row in rows if row.failed)
    print(f"{len(catalog.problems)} problems, {failed} triggers without a value")
    return 1 if catalog.problems or failed else 0


def _local(args: argparse.Namespace) -> tuple[Catalog, list[Row]]:
    from adapter.server import ServeOptions, load_directory

    options = ServeOptions(cert_dir=Path(args.cert_dir), local_dir=Path(args.local_dir),
                           scaler_timeout=args.scaler_timeout, activation_probe_interval=0)
    catalog, store = load_directory(options)
    asyncio.run(_read_once(store, options.scaler_timeout))
    values = {t.key: _value(store.entry(t.key)) for _, t in _served(catalog)}
    return catalog, list(_rows(catalog, values, options.cert_dir / "kubeconfig"))


async def _cluster(args: argparse.Namespace) -> tuple[Catalog, list[Row]]:
    from adapter.server import ServeOptions, load_cluster

    kubeconfig = Path(args.kubeconfig) if args.kubeconfig else None
    api = KubeApi.connect(kubeconfig, args.context)
    try:
        catalog = await load_cluster(api, ServeOptions(cert_dir=Path(args.cert_dir)))
        values = {trigger.key: await _served_value(api, resolved, trigger) for resolved, trigger in _served(catalog)}
    finally:
        await api.aclose()
    return catalog, list(_rows(catalog, values, kubeconfig, args.context))


async def _read_once(store: MetricStore, timeout: float) -> None:
    """Read every served trigger once (batched per server, as serving does), within `timeout`."""
    try:
        async with asyncio.timeout(timeout + 1):
            await store.refresh(e for e in store.entries() if e.trigger.scaler is not None)
    except TimeoutError:
        pass  # the entries not read yet say so in their rows
    finally:
        await store.aclose()


async def _served_value(api: KubeApi, resolved: ResolvedScaledObject, trigger: ResolvedTrigger) -> Value:
    """What kube-apiserver answers for the trigger's metric, as the HPA asks it."""
    label, value = resolved.so.route
    path = f"/apis/{GROUP_VERSION}/namespaces/{trigger.namespace}/{trigger.metric_name}"
    try:
        answer = await api.get(path, {"labelSelector": f"{label}={value}"})
    except ApiStatusError as exc:
        return f"error: {exc}", True
    items = answer.get("items") or []
    return (str(items[0]["value"]), False) if items else ("no value", True)


@dataclass(frozen=True)
class Row:
    cells: tuple[str, str, str, str]
    kubectl: str = ""
    failed: bool = False


Value = tuple[str, bool]  # what the VALUE column says, and whether it is a failure


def _served(catalog: Catalog) -> Iterator[tuple[ResolvedScaledObject, ResolvedTrigger]]:
    for resolved in catalog.scaled_objects():
        if resolved.error is None:
            yield from ((resolved, t) for t in resolved.triggers if t.error is None)


def _rows(catalog: Catalog, values: Mapping[MetricKey, Value], kubeconfig: Path | None,
          context: str | None = None) -> Iterator[Row]:
    from adapter.server import kubectl_get_raw

    for resolved in sorted(catalog.scaled_objects(), key=lambda r: (r.so.namespace, r.so.name)):
        name = f"{resolved.so.namespace}/{resolved.so.name}"
        if resolved.error is not None:
            yield Row((name, "-", "-", f"not served: {resolved.error}"), failed=True)
            continue
        for trigger in resolved.triggers:
            cells = (name, f"{trigger.spec.index} {trigger.spec.type}", trigger.metric_name)
            if trigger.error is not None:
                yield Row((*cells, f"not served: {trigger.error}"), failed=True)
                continue
            value, failed = values[trigger.key]
            yield Row((*cells, value), kubectl_get_raw(resolved, trigger, kubeconfig, context), failed)


def _value(entry: MetricEntry | None) -> Value:
    if entry is None or (entry.value is None and entry.error is None):
        return "not read", True
    if entry.error is not None:
        return f"error: {entry.error}", True
    return f"{entry.value:g}", False


def _table(rows: Sequence[Row]) -> str:
    widths = [max(len(cells[i]) for cells in (HEADER, *(r.cells for r in rows))) for i in range(len(HEADER) - 1)]

    def line(cells: Sequence[str]) -> str:
        return "   ".join([*(c.ljust(w) for c, w in zip(cells, widths, strict=False)), cells[-1]]).rstrip()

    out = [line(HEADER)]
    for row in rows:
        out.append(line(row.cells))
        if row.kubectl:
            out.append(f"  {row.kubectl}")
    return "\n".join(out)
