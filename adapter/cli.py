"""Command line (`eventscale`, or `python -m adapter`): `certs` makes the PKI, `serve` runs the
adapter, `scaffold` writes a first workload's manifests, `manifests` registers our CA, `convert`
rewrites 2019 ScaledObjects, `install`/`uninstall`/`dev-cluster` set a cluster up
(adapter/install/install_command.py), `controller` runs the sidecar (adapter/controller/controller_command.py),
`interceptor` the HTTP proxy (adapter/interceptor/interceptor_command.py).

    python -m adapter certs --cert-dir certs
    python -m adapter serve --local-dir manifests/examples/local --cert-dir certs --secure-port 6443
    python -m adapter serve --kubeconfig ~/.kube/config --cert-dir certs     # cluster mode
    python -m adapter serve --self-signed-certs --cert-dir /certs --bind-address 0.0.0.0   # in a pod
    eventscale scaffold --name worker --image REGISTRY/worker:1 --trigger redis \
        --metadata address=redis:6379 --metadata listName=jobs --auth password=... > worker.yaml
    python -m adapter manifests --cert-dir certs --out manifests
    python -m adapter convert old-scaledobjects.yaml > scaledobjects.yaml
    python -m adapter metrics --local-dir manifests/examples/local   # metric names, values, kubectl lines
    eventscale install --namespace eventscale            # the bundled manifests, server-side applied
    eventscale uninstall                                 # users' ScaledObjects and the CRDs stay
    eventscale dev-cluster --advertise-address 127.0.0.1:6443 --cert-dir certs   # APIService -> local serve
    python -m adapter controller --kubeconfig ~/.kube/config --adapter-url http://127.0.0.1:9022
    python -m adapter interceptor --listen 0.0.0.0:8080                  # in a cluster

`serve` without `--local-dir` is cluster mode. `--log-level` and `--log-format` are accepted
before or after the command's name.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import uvloop

from adapter import certs, logs, metrics_command
from adapter.controller import controller_command as controller_command
from adapter.install import install_command
from adapter.interceptor import interceptor_command as interceptor_command
from adapter.version import describe

if TYPE_CHECKING:
    from adapter.api.delegation import DelegateConfig
    from adapter.server import ServeOptions

def _certs(args: argparse.Namespace) -> int:
    written = certs.generate(
        Path(args.cert_dir),
        service=args.service,
        namespace=args.namespace,
        extra_hosts=args.host,
        port=args.port,
        force=args.force,
    )
    if written:
        print(f"wrote {', '.join(written)} in {args.cert_dir}")
    else:
        print(f"certificates in {args.cert_dir} exist; reused (use --force to replace)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from adapter.auth.tls_server import HttpLimits
    from adapter.kube.client import pod_namespace
    from adapter.server import ServeOptions

    try:
        delegates = _delegates(args)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    options = ServeOptions(
        cert_dir=Path(args.cert_dir),
        local_dir=Path(args.local_dir) if args.local_dir else None,
        secure_port=args.secure_port,
        bind_address=args.bind_address,
        metric_max_age=args.metric_max_age,
        scaler_timeout=args.scaler_timeout,
        activation_probe_interval=args.activation_probe_interval,
        cluster_namespace=args.cluster_object_namespace or pod_namespace("eventscale"),
        kubeconfig=Path(args.kubeconfig) if args.kubeconfig else None,
        self_signed_certs=args.self_signed_certs,
        service_name=args.service_name,
        certs_secret=args.certs_secret,
        resync_period=args.resync_period,
        internal_port=args.internal_port,
        http_limits=HttpLimits(head_timeout=args.request_head_timeout, max_connections=args.max_connections),
        delegates=delegates,
    )
    if options.local_dir is not None and (options.self_signed_certs or options.kubeconfig):
        print("--local-dir (standalone mode) does not go with --kubeconfig or --self-signed-certs", file=sys.stderr)
        return 2
    if options.local_dir is not None and delegates is not None and delegates.services:
        print(f"--delegate-to {delegates.services[0]}: a delegate named as a Service needs cluster mode "
              "(it is found from the Service's EndpointSlices); with --local-dir give its https:// URL",
              file=sys.stderr)
        return 2
    if not options.self_signed_certs and not certs.CertLayout(options.cert_dir).exists("serving"):
        print(f"no certificates in {options.cert_dir}: run `python -m adapter certs --cert-dir {options.cert_dir}`"
              " (or, in a cluster, use --self-signed-certs)", file=sys.stderr)
        return 2
    uvloop.run(_serve_local(options) if options.local_dir is not None else _serve_cluster(options))
    return 0


def _delegates(args: argparse.Namespace) -> DelegateConfig | None:
    from adapter.api.delegation import Credentials, DelegateConfig, parse_delegate

    if not args.delegate_to:
        return None
    defaults = Credentials(
        ca_file=Path(args.delegate_ca_file) if args.delegate_ca_file else None,
        client_cert=Path(args.delegate_client_cert) if args.delegate_client_cert else None,
        client_key=Path(args.delegate_client_key) if args.delegate_client_key else None,
    )
    return DelegateConfig(tuple(parse_delegate(value, defaults) for value in args.delegate_to),
                          timeout=args.delegate_timeout)


async def _serve_local(options: ServeOptions) -> None:
    from adapter.server import build_local, local_auth_config, serve, tls_context

    adapter = build_local(options)
    context = tls_context(options, local_auth_config(certs.CertLayout(options.cert_dir),
                                                      options.requestheader_allowed_names))
    await serve(adapter, options, context)


async def _serve_cluster(options: ServeOptions) -> None:
    from adapter.server import build_cluster, serve

    adapter, context = await build_cluster(options)
    await serve(adapter, options, context)


def _manifests(args: argparse.Namespace) -> int:
    from adapter.manifests import write_ca_bundle

    path = write_ca_bundle(Path(args.cert_dir), Path(args.out))
    print(f"wrote the caBundle of {certs.CertLayout(Path(args.cert_dir)).paths('ca')[0]} into {path}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from .convert import run

    return run(args.files)


def _scaffold(args: argparse.Namespace) -> int:
    from adapter.scaffold import run

    return run(args)


def _logging_options(parser: argparse.ArgumentParser) -> None:
    """--log-level and --log-format, on the root and on every command (SUPPRESS: a command's
    parser leaves a value given before the command's name alone)."""
    group = parser.add_argument_group("logging (before or after the command's name)")
    group.add_argument("--log-level", type=str.upper, choices=logs.LEVELS, default=argparse.SUPPRESS,
                       help="least severity logged (default INFO); DEBUG also shows libraries' lines and tracebacks")
    group.add_argument("--log-format", choices=logs.FORMATS, default=argparse.SUPPRESS,
                       help="text: key=value lines (default); json: one JSON object per line")


def _certs_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    c = commands.add_parser("certs", help="generate the CA, serving, client and front-proxy certificates")
    c.add_argument("--cert-dir", default="certs", help="directory to write to (default: certs)")
    c.add_argument("--service", default="eventscale-adapter", help="in-cluster Service name for the serving SANs")
    c.add_argument("--namespace", default="eventscale", help="in-cluster namespace for the serving SANs")
    c.add_argument("--host", action="append", default=[], help="extra SAN (DNS name or IP); repeatable")
    c.add_argument("--port", type=int, default=6443, help="port written into the kubeconfig (rewritten when it "
                   "changes; default 6443)")
    c.add_argument("--force", action="store_true", help="replace existing material")
    c.set_defaults(func=_certs)


def _serve_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = commands.add_parser("serve", help="serve external.metrics.k8s.io over HTTPS")
    s.add_argument("--local-dir", help="standalone mode: read objects from YAML manifests in this directory")
    s.add_argument("--cert-dir", default="certs", help="certificate directory (from `certs`)")
    s.add_argument("--secure-port", type=int, default=6443, help="HTTPS port (default 6443)")
    s.add_argument("--bind-address", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--metric-max-age", type=float, default=2.0,
                   help="seconds a value is reused for triggers without useCachedMetrics (default 2)")
    s.add_argument("--scaler-timeout", type=float, default=5.0, help="seconds a scaler read may take (default 5)")
    s.add_argument("--activation-probe-interval", type=float, default=1.0,
                   help="seconds between reads of the triggers of ScaledObjects whose target is at zero, as the "
                   "controller reports them, batched per server (default 1; 0 turns probes off)")
    s.add_argument("--internal-port", type=int, default=9022,
                   help="plain-HTTP port on 127.0.0.1 where the controller sidecar reads activity (default 9022; "
                   "0 turns it off)")
    s.add_argument("--request-head-timeout", type=float, default=10.0,
                   help="seconds a client has to send a request's line and headers (default 10)")
    s.add_argument("--max-connections", type=int, default=2000,
                   help="open TLS connections at most; the next one is answered 503 and closed (default 2000)")
    d = s.add_argument_group("delegation: other external metrics adapters behind the same APIService")
    d.add_argument("--delegate-to", action="append", default=[],
                   metavar="URL|service:NAMESPACE/NAME[:PORT][,ca=FILE][,cert=FILE,key=FILE]",
                   help="https://host:port of an adapter asked, in order, for the metrics we do not serve; repeatable. "
                        "In cluster mode, service:NAMESPACE/NAME[:PORT] (port 443 by default) reaches it as "
                        "kube-apiserver reaches an APIService's Service: a ready endpoint of the Service, its "
                        "certificate checked for NAME.NAMESPACE.svc. ca=, cert= and key= give that delegate its own "
                        "CA bundle and client certificate (default: the --delegate-* files below)")
    d.add_argument("--delegate-ca-file", help="CA bundle the delegates' serving certificates are checked against "
                                              "(default for every --delegate-to without ca=)")
    d.add_argument("--delegate-client-cert", help="client certificate we present (one the delegates trust as a "
                                                  "front proxy: the caller is passed in X-Remote-* headers; "
                                                  "default for every --delegate-to without cert= and key=)")
    d.add_argument("--delegate-client-key", help="key of --delegate-client-cert")
    d.add_argument("--delegate-timeout", type=float, default=2.0,
                   help="seconds a delegate may take to answer; a failed delegate is skipped for 10 s (default 2)")
    k = s.add_argument_group("cluster mode (without --local-dir)")
    k.add_argument("--kubeconfig", help="kubeconfig to reach kube-apiserver (default: in-cluster service "
                   "account when in a pod, else $KUBECONFIG or ~/.kube/config)")
    k.add_argument("--cluster-object-namespace", help="namespace of ClusterTriggerAuthentication Secrets and "
                   "of the Service (default: the pod's namespace, else eventscale)")
    k.add_argument("--self-signed-certs", action="store_true", help="keep a CA and serving certificate in the "
                   "Secret --certs-secret (made by the first replica, shared by all), write them into --cert-dir "
                   "and register the CA in the APIService caBundle")
    k.add_argument("--certs-secret", default="eventscale-adapter-certs",
                   help="Secret in the adapter's namespace for --self-signed-certs (default eventscale-adapter-certs)")
    k.add_argument("--service-name", default="eventscale-adapter",
                   help="Service the APIService points at, for the serving certificate (default eventscale-adapter)")
    k.add_argument("--resync-period", type=float, default=1800.0,
                   help="seconds between full relists of every watched resource (default 1800)")
    s.set_defaults(func=_serve)


def _scaffold_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    f = commands.add_parser("scaffold", help="write a Deployment, ScaledObject and (with --auth) Secret and "
                            "TriggerAuthentication for one workload, checked as the adapter will resolve them")
    f.add_argument("--name", required=True, help="name of the Deployment and ScaledObject")
    f.add_argument("--image", required=True, help="container image of the workload")
    f.add_argument("--trigger", required=True, metavar="TYPE", help="trigger type, e.g. redis, rabbitmq, cron")
    f.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE",
                   help="a trigger metadata entry (repeatable), e.g. listName=jobs")
    f.add_argument("--auth", action="append", default=[], metavar="KEY=VALUE",
                   help="a credential (repeatable), e.g. password=...: written into a Secret that the "
                   "TriggerAuthentication hands to the trigger, never into the ScaledObject")
    f.add_argument("--namespace", default="default", help="namespace of the objects (default default)")
    f.add_argument("--min-replicas", type=int, default=0, help="minReplicaCount (default 0)")
    f.add_argument("--max-replicas", type=int, default=10, help="maxReplicaCount (default 10)")
    f.add_argument("--polling-interval", type=int, default=30, help="pollingInterval in seconds (default 30)")
    f.add_argument("--out", help="file to write (default: standard output)")
    f.set_defaults(func=_scaffold)


def _other_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    m = commands.add_parser("manifests", help="write the CA of --cert-dir into the APIService manifest")
    m.add_argument("--cert-dir", default="certs", help="certificate directory (from `certs`)")
    m.add_argument("--out", default="manifests", help="manifests directory (default: manifests)")
    m.set_defaults(func=_manifests)
    v = commands.add_parser("convert", help="rewrite 2019 keda.k8s.io ScaledObjects as keda.sh/v1alpha1 YAML "
                            "on stdout; other objects pass through")
    v.add_argument("files", nargs="+", metavar="FILE", help="YAML file to read; - for standard input")
    v.set_defaults(func=_convert)


def _program() -> str:
    return "python -m adapter" if Path(sys.argv[0]).name == "__main__.py" else "eventscale"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog=_program(), description="eventscale: event-driven autoscaling for KEDA "
                                   "ScaledObjects, served to the Kubernetes HPA as external metrics")
    root.add_argument("--version", action="version", version=describe(), help="print the version and exit")
    _logging_options(root)
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _certs_parser(commands)
    _serve_parser(commands)
    _scaffold_parser(commands)
    _other_parsers(commands)
    install_command.add_parsers(commands)
    metrics_command.add_parser(commands)
    controller_command.add_parser(commands)
    interceptor_command.add_parser(commands)
    for command in commands.choices.values():
        _logging_options(command)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logs.configure(getattr(args, "log_level", "INFO"), getattr(args, "log_format", "text"))
    result: int = args.func(args)
    return result
