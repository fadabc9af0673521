"""`python -m adapter interceptor`: the HTTP proxy that holds requests while a workload wakes.

    # in a cluster (every flag has a working default in a pod)
    python -m adapter interceptor --listen 0.0.0.0:8080 --adapter-service eventscale/eventscale-adapter

    # standalone, beside `serve --local-dir DIR`
    python -m adapter interceptor --local-dir DIR --upstream 127.0.0.1:9000 \\
        --adapter-url https://127.0.0.1:6443 --adapter-ca certs/ca.crt \\
        --adapter-cert certs/admin.crt --adapter-key certs/admin.key

Cluster mode (no `--local-dir`) watches ScaledObjects, Services and EndpointSlices and pushes
counts to every ready endpoint of `--adapter-service` (or to the `--adapter-url`s), with the
ServiceAccount token; the adapter's CA is `--adapter-ca`, else the caBundle of the
external-metrics APIService. Standalone mode routes the ScaledObjects of `--local-dir` to the
`--upstream` addresses. SIGTERM stops accepting, lets requests in flight finish for
`--drain-seconds`, then exits.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import logging
import os
import signal
import socket
import ssl
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapter.interceptor.admin import AdminListener
from adapter.interceptor.endpoints import ClusterEndpoints, ProbedUpstreams
from adapter.interceptor.proxy import Proxy, server_context
from adapter.interceptor.push import CountsPusher, PushTarget, Token, token_file
from adapter.interceptor.routing import HoldBounds
from adapter.interceptor.sources import ClusterSources, DirectorySource, RouteBook
from adapter.interceptor.upstream import UpstreamPool
from adapter.kube.client import KubeApi
from adapter.kube.endpoints import ServiceKey

log = logging.getLogger("eventscale.interceptor")

APISERVICE = "/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.external.metrics.k8s.io"


@dataclass(frozen=True)
class InterceptorOptions:
    listen: tuple[str, int] = ("0.0.0.0", 8080)
    tls_listen: tuple[str, int] | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    admin_listen: tuple[str, int] | None = ("0.0.0.0", 9090)
    local_dir: Path | None = None  # standalone mode
    upstreams: tuple[tuple[ServiceKey | None, tuple[str, int]], ...] = ()
    kubeconfig: Path | None = None
    adapter_urls: tuple[str, ...] = ()
    adapter_service: ServiceKey | None = None
    adapter_port: str = "443"
    adapter_ca: Path | None = None
    adapter_cert: Path | None = None
    adapter_key: Path | None = None
    token_file: Path | None = None
    identity: str = field(default_factory=lambda: os.environ.get("POD_NAME") or
                          f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}")
    hold: HoldBounds = field(default_factory=HoldBounds)
    push_interval: float = 1.0
    keep_alive_timeout: float = 75.0
    connect_timeout: float = 5.0
    drain_seconds: float = 10.0


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not host:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def _upstream(text: str) -> tuple[ServiceKey | None, tuple[str, int]]:
    service, sep, address = text.rpartition("=")
    if not sep:
        return None, _address(text)
    namespace, slash, name = service.rpartition("/")
    if not slash:
        raise argparse.ArgumentTypeError(f"{text!r}: expected [NAMESPACE/SERVICE=]HOST:PORT")
    return (namespace, name), _address(address)


def _service(text: str) -> ServiceKey:
    namespace, slash, name = text.partition("/")
    if not slash or not namespace or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAMESPACE/NAME")
    return namespace, name


def add_parser(commands: Any) -> None:
    c = commands.add_parser("interceptor", help="run the HTTP interceptor (holds requests while a workload wakes)")
    c.add_argument("--listen", type=_address, default=("0.0.0.0", 8080), help="plain HTTP/1.1 and h2c (default "
                   "0.0.0.0:8080)")
    c.add_argument("--tls-listen", type=_address, help="HTTPS with h2 and http/1.1 by ALPN, e.g. 0.0.0.0:8443")
    c.add_argument("--tls-cert", type=Path, help="certificate chain for --tls-listen (PEM)")
    c.add_argument("--tls-key", type=Path, help="key for --tls-listen (PEM)")
    c.add_argument("--admin-listen", type=_address, default=("0.0.0.0", 9090),
                   help="/healthz, /readyz and /metrics (default 0.0.0.0:9090)")
    c.add_argument("--local-dir", type=Path, help="standalone mode: routes from the ScaledObjects in this directory")
    c.add_argument("--upstream", type=_upstream, action="append", default=[], metavar="[NS/SERVICE=]HOST:PORT",
                   help="standalone mode: where a Service's requests go (without NS/SERVICE: every Service's)")
    c.add_argument("--kubeconfig", type=Path, help="cluster mode credentials (default: in-cluster, else $KUBECONFIG)")
    c.add_argument("--adapter-url", action="append", default=[], help="an adapter to push counts to (repeatable)")
    c.add_argument("--adapter-service", type=_service, help="push counts to every ready endpoint of this Service "
                   "(cluster mode; default eventscale/eventscale-adapter when no --adapter-url)")
    c.add_argument("--adapter-port", default="443", help="port (number or name) of --adapter-service (default 443)")
    c.add_argument("--adapter-ca", type=Path, help="CA of the adapter's serving certificate (default: the "
                   "external-metrics APIService's caBundle)")
    c.add_argument("--adapter-cert", type=Path, help="client certificate for the pushes (standalone mode)")
    c.add_argument("--adapter-key", type=Path, help="its key")
    c.add_argument("--token-file", type=Path, help="bearer token for the pushes (default: the ServiceAccount's in a "
                   "pod, else the kubeconfig's)")
    c.add_argument("--identity", help="this replica's name in its reports (default $POD_NAME, else host-random)")
    c.add_argument("--hold-timeout", type=float, default=30.0, help="seconds a request may wait for an endpoint "
                   "before 504 (default 30; a trigger's holdTimeout overrides)")
    c.add_argument("--hold-limit", type=int, default=1000, help="requests of one route held at once before 503 "
                   "(default 1000; a trigger's holdLimit overrides)")
    c.add_argument("--push-interval", type=float, default=1.0, help="seconds between count reports (default 1)")
    c.add_argument("--keep-alive-timeout", type=float, default=75.0, help="idle client connections close after "
                   "this many seconds (default 75)")
    c.add_argument("--connect-timeout", type=float, default=5.0, help="seconds to connect to an upstream (default 5)")
    c.add_argument("--drain-seconds", type=float, default=10.0, help="on SIGTERM, how long requests in flight may "
                   "finish (default 10)")
    c.set_defaults(func=run)


def options_from(args: argparse.Namespace) -> InterceptorOptions:
    if args.local_dir is None and args.upstream:
        raise SystemExit("--upstream is for standalone mode (with --local-dir)")
    if args.local_dir is not None and not args.upstream:
        raise SystemExit("--local-dir needs at least one --upstream")
    if args.tls_listen and not (args.tls_cert and args.tls_key):
        raise SystemExit("--tls-listen needs --tls-cert and --tls-key")
    adapter_service = args.adapter_service
    if adapter_service is None and not args.adapter_url and args.local_dir is None:
        adapter_service = ("eventscale", "eventscale-adapter")
    extra: dict[str, Any] = {"identity": args.identity} if args.identity else {}
    return InterceptorOptions(
        listen=args.listen, tls_listen=args.tls_listen, tls_cert=args.tls_cert, tls_key=args.tls_key,
        admin_listen=args.admin_listen, local_dir=args.local_dir, upstreams=tuple(args.upstream),
        kubeconfig=args.kubeconfig, adapter_urls=tuple(args.adapter_url), adapter_service=adapter_service,
        adapter_port=args.adapter_port, adapter_ca=args.adapter_ca, adapter_cert=args.adapter_cert,
        adapter_key=args.adapter_key, token_file=args.token_file, hold=HoldBounds(args.hold_limit, args.hold_timeout),
        push_interval=args.push_interval, keep_alive_timeout=args.keep_alive_timeout,
        connect_timeout=args.connect_timeout, drain_seconds=args.drain_seconds, **extra)


def run(args: argparse.Namespace) -> int:
    options = options_from(args)
    try:
        import uvloop
    except ImportError:  # the proxy runs on the standard loop too, slower
        asyncio.run(main(options))
    else:
        uvloop.run(main(options))
    return 0


async def main(options: InterceptorOptions) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    interceptor = await Interceptor.build(options)
    await interceptor.serve(stop)


class Interceptor:
    """A running interceptor: its proxy, sources, pusher and listeners."""

    def __init__(self, options: InterceptorOptions, proxy: Proxy, pusher: CountsPusher,
                 work: list[Callable[[], Coroutine[Any, Any, None]]], ready: Callable[[], bool],
                 cleanup: list[Callable[[], Coroutine[Any, Any, None]]]) -> None:
        self.options, self.proxy, self.pusher = options, proxy, pusher
        self.work, self.ready, self.cleanup = work, ready, cleanup
        self.servers: list[asyncio.Server] = []

    @classmethod
    async def build(cls, options: InterceptorOptions) -> Interceptor:
        pool = UpstreamPool(connect_timeout=options.connect_timeout)
        if options.local_dir is not None:
            return cls._standalone(options, pool)
        return await cls._cluster(options, pool)

    @classmethod
    def _standalone(cls, options: InterceptorOptions, pool: UpstreamPool) -> Interceptor:
        assert options.local_dir is not None
        upstreams = ProbedUpstreams(dict(options.upstreams))
        proxy = Proxy(upstreams, keep_alive_timeout=options.keep_alive_timeout, pool=pool)
        source = DirectorySource(options.local_dir, RouteBook(proxy.set_routes, options.hold))
        source.load()
        context = _client_context(options, None)
        targets = [PushTarget(url.rstrip("/")) for url in options.adapter_urls]
        pusher = cls._pusher(options, proxy, lambda: targets, context, cls._token(options, None))
        return cls(options, proxy, pusher, [source.run, pusher.run], lambda: source.synced,
                   [pusher.aclose, upstreams.aclose])

    @classmethod
    async def _cluster(cls, options: InterceptorOptions, pool: UpstreamPool) -> Interceptor:
        api = KubeApi.connect(options.kubeconfig)
        index = ClusterEndpoints()
        proxy = Proxy(index, keep_alive_timeout=options.keep_alive_timeout, pool=pool)
        sources = ClusterSources(api, RouteBook(proxy.set_routes, options.hold), index)
        ca = options.adapter_ca.read_bytes() if options.adapter_ca else await _apiservice_ca(api)
        context = _client_context(options, ca)
        static = [PushTarget(url.rstrip("/")) for url in options.adapter_urls]
        service = options.adapter_service

        def targets() -> list[PushTarget]:
            if service is None:
                return static
            name = f"{service[1]}.{service[0]}.svc"
            return static + [PushTarget(f"https://{_host(address)}:{port}", name)
                             for address, port in index.addresses(service, options.adapter_port)]

        token = cls._token(options, api)
        pusher = cls._pusher(options, proxy, targets, context, token)
        return cls(options, proxy, pusher, [sources.run, pusher.run], lambda: sources.synced,
                   [pusher.aclose, api.aclose])

    @staticmethod
    def _pusher(options: InterceptorOptions, proxy: Proxy, targets: Callable[[], list[PushTarget]],
                context: ssl.SSLContext, token: Token | None) -> CountsPusher:
        pusher = CountsPusher(proxy.counters, targets, options.identity, context=context, token=token,
                              interval=options.push_interval)
        proxy.held_listeners.append(lambda route: pusher.push_now())
        return pusher

    @staticmethod
    def _token(options: InterceptorOptions, api: KubeApi | None) -> Token | None:
        """`--token-file`, else the token we reach kube-apiserver with (the service account's)."""
        if options.token_file is not None:
            return token_file(options.token_file)
        return api.credentials.bearer if api is not None else None

    async def serve(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def start(self) -> None:
        options = self.options
        self.tasks = [asyncio.create_task(work(), name=work.__qualname__) for work in self.work]
        self.servers.append(await self.proxy.listen(*options.listen))
        if options.tls_listen is not None:
            assert options.tls_cert is not None and options.tls_key is not None
            context = server_context(str(options.tls_cert), str(options.tls_key))
            self.servers.append(await self.proxy.listen(*options.tls_listen, context=context))
        if options.admin_listen is not None:
            self.servers.append(await AdminListener(self.proxy, self.pusher, self.ready).listen(*options.admin_listen))
        for server in self.servers:
            for sock in server.sockets:
                log.info("listening=%s:%d", *sock.getsockname()[:2])

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        await self._drain()
        self.proxy.close()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for close in self.cleanup:
            await close()

    async def _drain(self) -> None:
        """Let requests in flight finish (idle keep-alive connections are closed at once)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.drain_seconds
        while loop.time() < deadline and any(c.pending for c in self.proxy.counters.counters()):
            await asyncio.sleep(0.05)


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _client_context(options: InterceptorOptions, ca: bytes | None) -> ssl.SSLContext:
    if options.adapter_ca is not None:
        context = ssl.create_default_context(cafile=str(options.adapter_ca))
    elif ca is not None:
        context = ssl.create_default_context(cadata=ca.decode())
    else:
        context = ssl.create_default_context()
    if options.adapter_cert is not None and options.adapter_key is not None:
        context.load_cert_chain(str(options.adapter_cert), str(options.adapter_key))
    return context


async def _apiservice_ca(api: KubeApi) -> bytes | None:
    """The CA kube-apiserver trusts for the adapter: the external-metrics APIService's caBundle."""
    try:
        found = await api.get(APISERVICE)
    except Exception as exc:  # no rights or no APIService: pushes then fail verification, and say so
        log.warning("apiservice caBundle not read (%s); pass --adapter-ca", exc)
        return None
    bundle = (found.get("spec") or {}).get("caBundle")
    return base64.b64decode(bundle) if bundle else None


def parse(argv: Sequence[str]) -> InterceptorOptions:
    """Options from a command line, as `python -m adapter interceptor` reads them (for tests)."""
    parser = argparse.ArgumentParser(prog="interceptor")
    add_parser(parser.add_subparsers(dest="command"))
    return options_from(parser.parse_args(["interceptor", *argv]))
