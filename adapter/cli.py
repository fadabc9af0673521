"""Command line: `certs` makes the PKI, `serve` runs the adapter.

    python -m adapter certs --cert-dir certs
    python -m adapter serve --local-dir manifests/examples/local --cert-dir certs --secure-port 6443
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from . import certs

LOG_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


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
    from .server import ServeOptions, build_local, local_auth_config, serve, tls_context

    options = ServeOptions(
        cert_dir=Path(args.cert_dir),
        local_dir=Path(args.local_dir) if args.local_dir else None,
        secure_port=args.secure_port,
        bind_address=args.bind_address,
        metric_max_age=args.metric_max_age,
        scaler_timeout=args.scaler_timeout,
    )
    if not certs.CertLayout(options.cert_dir).exists("serving"):
        print(f"no certificates in {options.cert_dir}: run `python -m adapter certs --cert-dir {options.cert_dir}`",
              file=sys.stderr)
        return 2

    async def main() -> None:
        adapter = build_local(options)
        context = tls_context(options, local_auth_config(certs.CertLayout(options.cert_dir),
                                                          options.requestheader_allowed_names))
        await serve(adapter, options, context)

    asyncio.run(main())
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m adapter", description="eventscale: external metrics for KEDA "
                                   "ScaledObjects, served to the Kubernetes HPA")
    root.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = root.add_subparsers(dest="command", required=True)

    c = commands.add_parser("certs", help="generate the CA, serving, client and front-proxy certificates")
    c.add_argument("--cert-dir", default="certs", help="directory to write to (default: certs)")
    c.add_argument("--service", default="eventscale-adapter", help="in-cluster Service name for the serving SANs")
    c.add_argument("--namespace", default="eventscale", help="in-cluster namespace for the serving SANs")
    c.add_argument("--host", action="append", default=[], help="extra SAN (DNS name or IP); repeatable")
    c.add_argument("--port", type=int, default=6443, help="port written into the kubeconfig")
    c.add_argument("--force", action="store_true", help="replace existing material")
    c.set_defaults(func=_certs)

    s = commands.add_parser("serve", help="serve external.metrics.k8s.io over HTTPS")
    s.add_argument("--local-dir", help="standalone mode: read objects from YAML manifests in this directory")
    s.add_argument("--cert-dir", default="certs", help="certificate directory (from `certs`)")
    s.add_argument("--secure-port", type=int, default=6443)
    s.add_argument("--bind-address", default="127.0.0.1")
    s.add_argument("--metric-max-age", type=float, default=2.0,
                   help="seconds a value is reused for triggers without useCachedMetrics (default 2)")
    s.add_argument("--scaler-timeout", type=float, default=5.0, help="seconds a scaler read may take (default 5)")
    s.set_defaults(func=_serve)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format=LOG_FORMAT, stream=sys.stderr)
    result: int = args.func(args)
    return result
