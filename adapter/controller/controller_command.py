"""`python -m adapter controller`: run the controller sidecar.

    python -m adapter controller --kubeconfig admin.kubeconfig --adapter-url http://127.0.0.1:9022 \\
        --lease-namespace eventscale --identity controller-a

In a pod every flag has a working default: in-cluster credentials, the adapter on loopback,
the pod's namespace for the Lease, and `<hostname>_<random>` as identity (as client-go).
SIGTERM releases the Lease, so the other replica takes over at once.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import uuid
from pathlib import Path
from typing import Any


def add_parser(commands: Any) -> None:
    c = commands.add_parser("controller", help="run the controller sidecar (HPAs, 0 <-> 1 activation, status)")
    c.add_argument("--kubeconfig", help="kubeconfig (default: in-cluster service account when in a pod, else "
                   "$KUBECONFIG or ~/.kube/config)")
    c.add_argument("--adapter-url", default="http://127.0.0.1:9022",
                   help="the adapter's internal listener (default http://127.0.0.1:9022)")
    c.add_argument("--lease-namespace", help="namespace of the leader-election Lease (default: the pod's, else "
                   "eventscale)")
    c.add_argument("--lease-name", default="eventscale-controller",
                   help="name of the leader-election Lease (default eventscale-controller)")
    c.add_argument("--identity", help="this replica's name in the Lease (default <hostname>_<random>)")
    c.add_argument("--lease-duration", type=float, default=15.0,
                   help="seconds a Lease stays held without renewal (default 15)")
    c.add_argument("--renew-deadline", type=float, default=10.0,
                   help="seconds the leader keeps trying to renew before it steps down (default 10)")
    c.add_argument("--retry-period", type=float, default=2.0,
                   help="seconds between tries to take or renew the Lease (default 2)")
    c.add_argument("--qps", type=float, default=50.0, help="kube-apiserver calls per second (default 50)")
    c.add_argument("--burst", type=int, default=100, help="calls allowed at once above --qps (default 100)")
    c.add_argument("--workers", type=int, default=4, help="ScaledObjects reconciled at once (default 4)")
    c.add_argument("--resync-period", type=float, default=1800.0,
                   help="seconds between full relists of ScaledObjects and HPAs (default 1800)")
    c.add_argument("--stats-interval", type=float, default=30.0,
                   help="seconds between the log lines of what the controller holds and did (default 30)")
    c.add_argument("--native-scale-to-zero", choices=("auto", "true", "false"), default="auto",
                   help="let the HPA itself take minReplicaCount-0 workloads 0 <-> N (HPAScaleToZero, Kubernetes "
                   "1.37+): auto probes the cluster with a dry-run HPA at start (default auto)")
    c.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from adapter.controller.controller import ControllerOptions
    from adapter.kube.client import pod_namespace

    options = ControllerOptions(
        identity=args.identity or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}",
        adapter_url=args.adapter_url,
        lease_namespace=args.lease_namespace or pod_namespace("eventscale"),
        lease_name=args.lease_name,
        lease_duration=args.lease_duration, renew_deadline=args.renew_deadline, retry_period=args.retry_period,
        qps=args.qps, burst=args.burst, workers=args.workers, resync_period=args.resync_period,
        stats_interval=args.stats_interval,
        native_scale_to_zero=args.native_scale_to_zero,
    )
    asyncio.run(_main(Path(args.kubeconfig) if args.kubeconfig else None, options))
    return 0


async def _main(kubeconfig: Path | None, options: Any) -> None:
    from adapter.controller.controller import run_controller
    from adapter.kube.client import KubeApi

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_controller(KubeApi.connect(kubeconfig), options, stop)
