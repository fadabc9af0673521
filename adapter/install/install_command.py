"""The `install`, `uninstall` and `dev-cluster` commands (see adapter/install/cluster_install.py and
adapter/install/dev_cluster.py for what they do to a cluster).

    eventscale install [--namespace eventscale] [--context NAME] [--kubeconfig FILE] [--image REF]
    eventscale uninstall [--delete-crds]
    eventscale dev-cluster --advertise-address 127.0.0.1:6443 --cert-dir certs

Each prints one line per object and exits 0 when the APIService is Available (or not waited
for), 1 when it is not within --wait-timeout (with why) or kube-apiserver refused something.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from adapter.install import cluster_install, dev_cluster
from adapter.install.bundle import BUNDLED_NAMESPACE, BundleError, bundled, in_namespace, with_image
from adapter.kube.client import ApiStatusError, KubeApi
from adapter.kube.credentials import KubeconfigError


def _say(line: str) -> None:
    print(line, flush=True)


def _cluster_options(parser: argparse.ArgumentParser, wait_default: float | None) -> None:
    parser.add_argument("--namespace", default=BUNDLED_NAMESPACE,
                        help=f"namespace of the adapter's objects (default {BUNDLED_NAMESPACE})")
    parser.add_argument("--context", help="kubeconfig context to use (default: the current context)")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
    if wait_default is None:
        return
    parser.add_argument("--wait-timeout", type=float, default=wait_default,
                        help="seconds to wait for the APIService to be Available; 0 does not wait "
                        f"(default {wait_default:g})")


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    i = commands.add_parser("install", help="apply the bundled manifests (what `kubectl apply -k manifests/` "
                            "applies) with server-side apply and wait for the APIService")
    _cluster_options(i, 180.0)
    i.add_argument("--image", help="image of the adapter, controller and interceptor containers, e.g. "
                   "REGISTRY/eventscale:0.1.0 (default: the bundled eventscale:<version>)")
    i.set_defaults(func=lambda args: _run(args, _install))
    u = commands.add_parser("uninstall", help="delete what `install` made; users' ScaledObjects, ScaledJobs, "
                            "TriggerAuthentications and their CRDs stay")
    _cluster_options(u, None)
    u.add_argument("--delete-crds", action="store_true",
                   help="also delete the CRDs, and with them every ScaledObject, ScaledJob and TriggerAuthentication")
    u.set_defaults(func=lambda args: _run(args, _uninstall))
    d = commands.add_parser("dev-cluster", help="point the cluster's APIService at an adapter running outside it "
                            "(`serve` in cluster mode on this machine)")
    d.add_argument("--advertise-address", required=True, metavar="HOST:PORT",
                   help="where the cluster reaches the local adapter: 127.0.0.1:PORT when kube-apiserver runs "
                   "on this machine, else an address of this machine its nodes reach")
    d.add_argument("--cert-dir", default="certs", help="certificate directory (from `certs`) whose CA the "
                   "APIService trusts (default certs)")
    _cluster_options(d, 30.0)
    d.set_defaults(func=lambda args: _run(args, _dev_cluster))


def _run(args: argparse.Namespace, command: Callable[[KubeApi, argparse.Namespace], Awaitable[int]]) -> int:
    try:
        api = KubeApi.connect(Path(args.kubeconfig) if args.kubeconfig else None, args.context)
    except (KubeconfigError, OSError) as exc:
        print(f"cannot load the kubeconfig: {exc}", file=sys.stderr)
        return 1

    async def run() -> int:
        try:
            return await command(api, args)
        finally:
            await api.aclose()

    try:
        return asyncio.run(run())
    except ApiStatusError as exc:
        print(f"kube-apiserver refused: {exc}", file=sys.stderr)
    except httpx.HTTPError as exc:
        print(f"cannot reach kube-apiserver at {api.host}: {type(exc).__name__}: {exc}", file=sys.stderr)
    except (BundleError, ValueError, FileNotFoundError) as exc:
        print(exc, file=sys.stderr)
    return 1


async def _install(api: KubeApi, args: argparse.Namespace) -> int:
    _say(f"installing eventscale into namespace {args.namespace} of {api.host}")
    manifests = in_namespace(bundled(), args.namespace)
    await cluster_install.remove_local_endpoints(api, args.namespace, _say)
    counts = await cluster_install.apply_all(api, with_image(manifests, args.image) if args.image else manifests,
                                             _say)
    _say(", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())))
    return await _await_apiservice(api, args.wait_timeout, args.namespace)


async def _uninstall(api: KubeApi, args: argparse.Namespace) -> int:
    _say(f"uninstalling eventscale from namespace {args.namespace} of {api.host}")
    await cluster_install.uninstall(api, in_namespace(bundled(), args.namespace), args.namespace,
                                    args.delete_crds, _say)
    return 0


async def _dev_cluster(api: KubeApi, args: argparse.Namespace) -> int:
    host, port = dev_cluster.parse_address(args.advertise_address)
    apiservice = dev_cluster.local_apiservice(port, args.namespace, Path(args.cert_dir))
    service = dev_cluster.local_service(host, port, args.namespace)
    _say(f"pointing {api.host} at an adapter on {args.advertise_address}")
    replaced = await dev_cluster.replace_other_service(api, service[0])
    if replaced:
        _say(replaced)
    bundle = dev_cluster.without_workloads(in_namespace(bundled(), args.namespace))
    await cluster_install.apply_all(api, [*bundle, *service, apiservice], _say)
    bind = "" if dev_cluster.is_local(host) else f" --bind-address {host}"
    _say(f"run the adapter: eventscale serve --cert-dir {args.cert_dir} --secure-port {port}{bind}"
         + (f" --kubeconfig {args.kubeconfig}" if args.kubeconfig else "")
         + (f" --cluster-object-namespace {args.namespace}" if args.namespace != BUNDLED_NAMESPACE else ""))
    return await _await_apiservice(api, args.wait_timeout, None)


async def _await_apiservice(api: KubeApi, timeout: float, namespace: str | None) -> int:
    if timeout <= 0:
        return 0
    _say(f"waiting up to {timeout:g}s for apiservice/{cluster_install.APISERVICE} to be Available")
    if await cluster_install.wait_available(api, timeout):
        _say(f"apiservice/{cluster_install.APISERVICE} Available; try: "
             "kubectl get --raw /apis/external.metrics.k8s.io/v1beta1")
        return 0
    _say(f"apiservice/{cluster_install.APISERVICE} is not Available after {timeout:g}s:")
    for line in await cluster_install.why_unavailable(api, namespace):
        _say(f"  {line}")
    return 1
