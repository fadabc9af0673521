"""`eventscale metrics --local-dir DIR`: what a directory of manifests serves, without serving it.

After an edit a user wants the metric names KEDA's naming gives each trigger (`s0-redis-jobs`),
whether the trigger reads, and the command that asks a running adapter for the same number as
the HPA does. This reads the directory as `serve --local-dir` does (same catalog, same problems),
reads every trigger once through the metric store, prints one row per trigger and the exact
`kubectl get --raw` line under it, then the directory's problems. Exit status 1 when there are
problems or a read failed, so scripts and CI can use it as a check.

    SCALEDOBJECT     TRIGGER   METRIC          VALUE
    default/worker   0 redis   s0-redis-jobs   5
      kubectl --kubeconfig certs/kubeconfig get --raw '/apis/external.metrics.k8s.io/v1beta1/...'
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapter.catalog.catalog import Catalog
from adapter.server import ServeOptions, kubectl_get_raw, load_directory
from adapter.store.store import MetricEntry, MetricStore

HEADER = ("SCALEDOBJECT", "TRIGGER", "METRIC", "VALUE")


def add_parser(commands: Any) -> None:
    m = commands.add_parser("metrics", help="list the ScaledObjects of --local-dir: trigger, metric name, current "
                            "value and the kubectl command that reads it from `serve`")
    m.add_argument("--local-dir", required=True, help="directory of YAML manifests, as `serve --local-dir` reads it")
    m.add_argument("--cert-dir", default="certs", help="certificate directory of `serve` (its kubeconfig is the "
                   "one the kubectl lines use; default certs)")
    m.add_argument("--scaler-timeout", type=float, default=5.0, help="seconds a scaler read may take (default 5)")
    m.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    options = ServeOptions(cert_dir=Path(args.cert_dir), local_dir=Path(args.local_dir),
                           scaler_timeout=args.scaler_timeout, activation_probe_interval=0)
    catalog, store = load_directory(options)
    asyncio.run(_read_once(store, options.scaler_timeout))
    rows = list(_rows(catalog, store, options.cert_dir / "kubeconfig"))
    print(_table(rows), flush=True)
    for problem in catalog.problems:
        print(f"problem: {problem.ref} ({problem.source}): {problem.message}")
    failed = sum(1 for row in rows if row.failed)
    print(f"{len(catalog.problems)} problems, {failed} triggers without a value")
    return 1 if catalog.problems or failed else 0


async def _read_once(store: MetricStore, timeout: float) -> None:
    """Read every served trigger once (batched per server, as serving does), within `timeout`."""
    try:
        async with asyncio.timeout(timeout + 1):
            await store.refresh(e for e in store.entries() if e.trigger.scaler is not None)
    except TimeoutError:
        pass  # the entries not read yet say so in their rows
    finally:
        await store.aclose()


@dataclass(frozen=True)
class Row:
    cells: tuple[str, str, str, str]
    kubectl: str = ""
    failed: bool = False


def _rows(catalog: Catalog, store: MetricStore, kubeconfig: Path) -> Iterator[Row]:
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
            value, failed = _value(store.entry(trigger.key))
            yield Row((*cells, value), kubectl_get_raw(resolved, trigger, kubeconfig), failed)


def _value(entry: MetricEntry | None) -> tuple[str, bool]:
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
