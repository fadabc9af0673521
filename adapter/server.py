"""Wiring: build the catalog, store, authentication and app, and serve them over TLS.

The one place that knows every part. Background work (directory polling or Kubernetes watches,
metric polling) is started here and cancelled on shutdown; clients are closed through the store
and the adapter's `cleanup` list. Each background task has a `/readyz` check of its own
(`task-<name>`): a task that ended (it never should) is logged and makes the adapter unready,
so a dead watcher is seen by a probe instead of serving a catalog that no longer changes.

Standalone mode (`build_local`) reads objects from a directory and trusts the certificate
directory's CAs. Cluster mode (`build_cluster`) watches objects in the cluster and delegates
authentication and authorization to kube-apiserver (see
`adapter.auth.delegated_authentication` and `adapter.auth.delegated_authorization`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import uvicorn

from adapter.api.activity_feed import ActivityFeed, InternalListener
from adapter.api.app import AdapterApp
from adapter.api.delegation import DelegateConfig, Delegates
from adapter.api.health import Health
from adapter.api.interceptor_counts import CountsReceiver
from adapter.api.metrics_endpoint import Exposition
from adapter.api.routes import build_routes
from adapter.auth.authentication import AuthConfig, Authenticator, RequestHeaderConfig
from adapter.auth.authorization import AllowAuthenticated, Authorizer
from adapter.auth.delegated_authentication import AuthConfigWatch, TokenReviewer
from adapter.auth.delegated_authorization import SubjectAccessReviewAuthorizer
from adapter.auth.serving_certs import SECRET_NAME, SharedServingCerts
from adapter.auth.tls_server import HttpLimits, PeerCertificateProtocol, server_context
from adapter.catalog.catalog import Catalog, raised_at
from adapter.catalog.directory_source import DirectorySource
from adapter.catalog.kubernetes_source import KubernetesSource
from adapter.catalog.resolve import ResolvedScaledObject, ResolvedTrigger
from adapter.certs import FRONT_PROXY_CLIENT_CN, CertLayout
from adapter.kube.client import KubeApi
from adapter.kube.glibc import GLIBC
from adapter.store.store import MetricStore
from scalers.http.http_scaler import HttpScaler
from scalers.http.table import CountsTable
from scalers.registry import ScalerRegistry

log = logging.getLogger("eventscale.server")


@dataclass
class ServeOptions:
    cert_dir: Path
    local_dir: Path | None = None
    secure_port: int = 6443
    bind_address: str = "127.0.0.1"
    metric_max_age: float = 2.0
    scaler_timeout: float = 5.0
    activation_probe_interval: float = 1.0  # triggers of objects at zero are read this often; 0: off
    poll_tick: float = 1.0
    reload_interval: float = 1.0
    cluster_namespace: str = "eventscale"
    requestheader_allowed_names: tuple[str, ...] = (FRONT_PROXY_CLIENT_CN,)
    kubeconfig: Path | None = None  # cluster mode: None means in-cluster (or $KUBECONFIG)
    self_signed_certs: bool = False
    service_name: str = "eventscale-adapter"
    certs_secret: str = SECRET_NAME  # --self-signed-certs: the Secret every replica shares
    resync_period: float = 1800.0
    internal_port: int = 9022  # the controller sidecar's loopback listener (activity); 0 turns it off
    http_limits: HttpLimits = field(default_factory=HttpLimits)
    delegates: DelegateConfig | None = None  # --delegate-to: adapters serving what we do not
    extra: dict[str, Any] = field(default_factory=dict)


Background = dict[str, Callable[[], Coroutine[Any, Any, None]]]  # task name: the work it runs


@dataclass
class Adapter:
    """Everything a running adapter is made of; tests and benchmarks build it in-process."""

    catalog: Catalog
    store: MetricStore
    health: Health
    app: AdapterApp
    background: Background
    cleanup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def local_auth_config(layout: CertLayout, allowed_names: tuple[str, ...]) -> AuthConfig:
    client_ca = layout.paths("ca")[0].read_bytes()
    proxy_ca = layout.paths("front_proxy_ca")[0].read_bytes()
    return AuthConfig(client_ca=client_ca, requestheader=RequestHeaderConfig(proxy_ca, allowed_names))


def build_local(options: ServeOptions) -> Adapter:
    """Standalone mode: objects from a directory, identities from the certificate directory."""
    if options.local_dir is None or not options.local_dir.is_dir():
        raise SystemExit(f"--local-dir {options.local_dir}: not a directory")
    if options.delegates is not None and options.delegates.services:
        raise SystemExit(f"--delegate-to {options.delegates.services[0]}: a Service delegate needs cluster mode")
    catalog, store = _catalog_and_store(options)
    source = DirectorySource(options.local_dir, catalog, options.reload_interval)
    catalog.subscribe(_served_metrics_logger(catalog, options.cert_dir / "kubeconfig"))
    source.load()
    health = Health(ready={"catalog-loaded": lambda: catalog.generation > 0})
    auth = local_auth_config(CertLayout(options.cert_dir), options.requestheader_allowed_names)
    app = _app(health, catalog, store, Authenticator(auth), AllowAuthenticated(), _delegates(options))
    return Adapter(catalog, store, health, app, {"directory-watch": source.run, "metric-poller": store.poll_forever},
                   cleanup=_delegates_cleanup(app))


def load_directory(options: ServeOptions) -> tuple[Catalog, MetricStore]:
    """Standalone mode's catalog, the directory read once, and a store following it (`metrics`)."""
    if options.local_dir is None or not options.local_dir.is_dir():
        raise SystemExit(f"--local-dir {options.local_dir}: not a directory")
    catalog, store = _catalog_and_store(options)
    DirectorySource(options.local_dir, catalog, options.reload_interval).load()
    return catalog, store


async def load_cluster(api: KubeApi, options: ServeOptions, timeout: float = 60.0) -> Catalog:
    """Cluster mode's catalog, every watched resource listed once (`metrics --cluster`)."""
    catalog, store = _catalog_and_store(options)
    source = KubernetesSource(api, catalog, resync=options.resync_period)
    watching = asyncio.create_task(source.run())
    try:
        async with asyncio.timeout(timeout):
            while not source.synced and not watching.done():
                await asyncio.sleep(0.05)
        if not source.synced:
            watching.result()  # the list failed: its error
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await store.aclose()
    return catalog


def kubectl_get_raw(resolved: ResolvedScaledObject, trigger: ResolvedTrigger, kubeconfig: Path | None,
                    context: str | None = None) -> str:
    """The kubectl command that reads `trigger`'s metric as the HPA does (with the object's selector:
    `scaledobject.keda.sh/name`, or `deploymentName` for a 2019-format object)."""
    label, value = resolved.so.route
    selector = quote(f"{label}={value}", safe="")
    path = f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{trigger.namespace}/{trigger.metric_name}"
    config = (f" --kubeconfig {kubeconfig}" if kubeconfig is not None else "") + (
        f" --context {context}" if context else "")
    return f"kubectl{config} get --raw '{path}?labelSelector={selector}'"


def _served_metrics_logger(catalog: Catalog, kubeconfig: Path) -> Callable[[set[tuple[str, str]]], None]:
    """Standalone mode: after each reload, one line per metric of each changed ScaledObject, with
    the kubectl command that reads it (so an edit shows the metric names it serves)."""
    def served(keys: set[tuple[str, str]]) -> None:
        for namespace, name in sorted(keys):
            resolved = catalog.scaled_object(namespace, name)
            if resolved is None or resolved.error is not None:
                continue
            for trigger in resolved.triggers:
                if trigger.error is None:
                    log.info("scaledobject=%s/%s trigger=%d metric=%s try=%s", namespace, name, trigger.spec.index,
                             trigger.metric_name, kubectl_get_raw(resolved, trigger, kubeconfig))
    return served


def _app(health: Health, catalog: Catalog, store: MetricStore, authenticator: Authenticator,
         authorizer: Authorizer, delegates: Delegates | None) -> AdapterApp:
    routes = build_routes(health, Exposition(store), CountsReceiver(_http_table(catalog), store))
    return AdapterApp(routes, catalog, store, authenticator, authorizer, delegates)


def _delegates(options: ServeOptions, api: KubeApi | None = None) -> Delegates | None:
    """--delegate-to's delegates; those named as Services are watched through `api` (cluster mode)."""
    config = options.delegates
    if config is None or not config.delegates:
        return None
    return Delegates(config, api, resync=options.resync_period)


def _delegates_cleanup(app: AdapterApp) -> list[Callable[[], Awaitable[None]]]:
    return [app.delegates.aclose] if app.delegates is not None else []


def _catalog_and_store(options: ServeOptions) -> tuple[Catalog, MetricStore]:
    # each adapter has its own table of interceptor counts (see _http_table)
    catalog = Catalog(ScalerRegistry(scalers=[HttpScaler()]), options.cluster_namespace)
    store = MetricStore(max_age=options.metric_max_age, timeout=options.scaler_timeout, tick=options.poll_tick,
                        probe_interval=options.activation_probe_interval)
    store.follow(catalog)
    return catalog, store


def _http_table(catalog: Catalog) -> CountsTable:
    """The table the `http` scaler of this catalog reads, which POST /interceptor/counts fills."""
    scaler = catalog.registry.get("http")
    assert isinstance(scaler, HttpScaler)
    return scaler.table


async def build_cluster(options: ServeOptions) -> tuple[Adapter, ssl.SSLContext]:
    """Cluster mode: objects from watches; authentication and authorization by kube-apiserver.

    Serving starts before the watches have listed everything; /readyz says "informers-synced"
    only then, so a pod takes traffic once it knows every object.
    """
    api = KubeApi.connect(options.kubeconfig)
    background: Background = {}
    shared_certs = None
    if options.self_signed_certs:
        shared_certs = SharedServingCerts(api, options.cert_dir, options.service_name, options.cluster_namespace,
                                          options.certs_secret)
        await shared_certs.load()
        background["serving-certs"] = shared_certs.run
    auth_watch = AuthConfigWatch(api)
    auth = await auth_watch.load()
    catalog, store = _catalog_and_store(options)
    source = KubernetesSource(api, catalog, resync=options.resync_period)
    delegates = _delegates(options, api)
    health = Health(ready={"informers-synced": lambda: source.synced and (delegates is None or delegates.synced)})
    authenticator = Authenticator(auth, TokenReviewer(api))
    context = tls_context(options, auth)
    if shared_certs is not None:
        shared_certs.context = context
    auth_watch.follow(authenticator, context)
    app = _app(health, catalog, store, authenticator, SubjectAccessReviewAuthorizer(api), delegates)
    background.update({"kubernetes-watches": source.run, "auth-config-watch": auth_watch.run,
                       "metric-poller": store.poll_forever})
    if delegates is not None and delegates.reflectors:
        background["delegate-watches"] = delegates.run
    return Adapter(catalog, store, health, app, background, cleanup=[api.aclose, *_delegates_cleanup(app)]), context


def tls_context(options: ServeOptions, auth: AuthConfig) -> ssl.SSLContext:
    cert, key = CertLayout(options.cert_dir).paths("serving")
    return server_context(cert, key, auth.trusted_cas())


async def serve(adapter: Adapter, options: ServeOptions, context: ssl.SSLContext) -> None:
    GLIBC.keep_large_buffers_apart()
    config = uvicorn.Config(
        adapter.app,
        host=options.bind_address,
        port=options.secure_port,
        http=PeerCertificateProtocol.serving(options.http_limits),  # type: ignore[arg-type]  # uvicorn calls it as a class
        lifespan="off",
        access_log=False,
        log_config=None,
        ssl_context_factory=lambda _config, _default: context,
        timeout_keep_alive=60,
        proxy_headers=False,  # callers are kube-apiserver and kubectl, never behind a proxy that says X-Forwarded-For
        ws="none",  # no websocket upgrades: an Upgrade request is served as plain (authenticated) HTTP
    )
    server = uvicorn.Server(config)
    owned = _OwnedTasks(adapter.health)
    for name, work in adapter.background.items():
        owned.start(name, work())
    announce = asyncio.create_task(_announce(server, adapter, options))
    internal = InternalListener(ActivityFeed(adapter.catalog, adapter.store), options.internal_port)
    if options.internal_port:
        internal.start()
        if internal.task is not None:
            owned.watch("internal-listener", internal.task)
    try:
        await server.serve()
    finally:
        owned.stopping = True
        await internal.stop()
        for task in [*owned.tasks, announce]:
            task.cancel()
        await asyncio.gather(*owned.tasks, announce, return_exceptions=True)  # a task's end was logged
        await adapter.store.aclose()
        for close in adapter.cleanup:
            await close()


class _OwnedTasks:
    """The tasks `serve` owns: each has a `/readyz` check `task-<name>`, failing once it ended."""

    def __init__(self, health: Health) -> None:
        self.health = health
        self.tasks: list[asyncio.Task[None]] = []
        self.stopping = False

    def start(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        self.watch(name, asyncio.create_task(work, name=name))

    def watch(self, name: str, task: asyncio.Task[None]) -> None:
        self.tasks.append(task)
        self.health.ready[f"task-{name}"] = lambda: not task.done()
        task.add_done_callback(lambda done: self._ended(name, done))

    def _ended(self, name: str, task: asyncio.Task[None]) -> None:
        if self.stopping or task.cancelled():
            return
        error = task.exception()
        reason = f"{type(error).__name__} at {raised_at(error)}" if error is not None else "returned"
        log.error("task=%s ended: %s; /readyz fails task-%s from now on", name, reason, name)


async def _announce(server: uvicorn.Server, adapter: Adapter, options: ServeOptions) -> None:
    """Once listening, say where, and print a kubectl command for the first metric served."""
    while not server.started:
        await asyncio.sleep(0.05)
    log.info("serving=https://%s:%d", options.bind_address, options.secure_port)
    for resolved in adapter.catalog.scaled_objects():
        for trigger in resolved.triggers:
            print(f"try: {kubectl_get_raw(resolved, trigger, options.cert_dir / 'kubeconfig')}", flush=True)
            return
