"""The HTTP path on the e2e control plane: the interceptor in cluster mode, and a played kubelet.

There is no kubelet, so pods never run. `PlayedKubelet` does its part for one Deployment: when
`spec.replicas` rises above 0 it starts the workload (the aiohttp upstream, inside a network
namespace, optionally after a start delay) and, once it listens, publishes an EndpointSlice of
the workload's Service with that address ready (`publish_endpoints`); when replicas fall to 0 it
empties the slice and stops the process. With `prestarted` the process runs from the start and a scale-up only waits
`start_delay` before publishing (a workload ready at once, or after exactly that long, without
the cost of starting Python). Every change is timed, so a benchmark can split a cold start.

`cluster_interceptor` runs `python -m adapter interceptor` as the shipped ServiceAccount
`eventscale-interceptor` (a TokenRequest token), pushing to the given adapters.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from cluster_adapter import NAMESPACE, token_kubeconfig
from controlplane import ControlPlane
from kubernetes import client, watch

from tests.harness.adapter_process import AdapterProcess
from tests.harness.http_upstream import UpstreamProcess
from tests.harness.interceptor_process import InterceptorProcess
from tests.harness.netns import NetworkNamespace

UPSTREAM_PORT = 8080


def service(name: str) -> dict[str, Any]:
    """A Service without selector (its EndpointSlices are the played kubelet's)."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": UPSTREAM_PORT, "protocol": "TCP"}]}}


def cluster_interceptor(cp: ControlPlane, work: Path, adapters: list[AdapterProcess],
                        *extra: str) -> InterceptorProcess:
    kubeconfig = token_kubeconfig(cp, work / "interceptor.kubeconfig", account="eventscale-interceptor",
                                  namespace=NAMESPACE)
    bundle = work / "adapters-ca.crt"
    bundle.write_bytes(b"".join((a.cert_dir / "ca.crt").read_bytes() for a in adapters))
    urls = [arg for a in adapters for arg in ("--adapter-url", a.base_url)]
    return InterceptorProcess(("--kubeconfig", str(kubeconfig), *urls, "--adapter-ca", str(bundle), *extra),
                              work / "interceptor.log")


def publish_endpoints(api: client.ApiClient, namespace: str, name: str, addresses: list[str]) -> None:
    """The kubelet's part for Service `name`: its one EndpointSlice, with `addresses` ready on UPSTREAM_PORT."""
    body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-played", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": name,
                                    "endpointslice.kubernetes.io/managed-by": "e2e-played-kubelet"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": UPSTREAM_PORT, "protocol": "TCP"}],
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses]}
    discovery = client.DiscoveryV1Api(api)  # its annotations want a V1EndpointSlice; it sends a dict as is
    try:
        discovery.replace_namespaced_endpoint_slice(f"{name}-played", namespace, body)  # type: ignore[arg-type]
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        discovery.create_namespaced_endpoint_slice(namespace, body)  # type: ignore[arg-type]


class PlayedKubelet:
    def __init__(self, cp: ControlPlane, namespace: str, name: str, netns: NetworkNamespace, log: Path,
                 start_delay: float = 0.0, prestarted: bool = False) -> None:
        self.cp, self.namespace, self.name, self.netns, self.log = cp, namespace, name, netns, log
        self.start_delay = start_delay
        self.prestarted = prestarted  # the process runs from the start; `start_delay` is then waited before
        self.process: UpstreamProcess | None = None  # the prestarted one
        self.upstream: UpstreamProcess | None = None
        self.events: list[tuple[float, str]] = []  # (time.time(), what)
        self._stop = threading.Event()
        self._api = cp.api_client()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"kubelet-{name}")

    def start(self) -> PlayedKubelet:
        self._publish([])
        if self.prestarted:
            self.process = UpstreamProcess(self.netns.address, UPSTREAM_PORT, self.log, name=self.name,
                                           netns=self.netns.name).start()
            self.process.wait_listening()
        self._thread.start()
        return self

    def seen(self, what: str, after: float = 0.0) -> float | None:
        return next((at for at, event in self.events if event == what and at >= after), None)

    def _run(self) -> None:
        apps = client.AppsV1Api(self._api)
        version = None
        while not self._stop.is_set():
            kwargs: dict[str, Any] = {"field_selector": f"metadata.name={self.name}", "timeout_seconds": 2}
            if version:
                kwargs["resource_version"] = version
            try:
                events = watch.Watch().stream(apps.list_namespaced_deployment, self.namespace, **kwargs)  # type: ignore[no-untyped-call]  # kubernetes.watch is unannotated
                for event in events:
                    version = event["object"].metadata.resource_version
                    self._follow(int(event["object"].spec.replicas or 0))
                    if self._stop.is_set():
                        break
            except Exception as exc:  # noted, and the watch goes on: a test reads `events` when it fails
                self.events.append((time.time(), f"error: {exc!r}"))
                if isinstance(exc, client.ApiException) and exc.status == 410:
                    version = None

    def _follow(self, replicas: int) -> None:
        if replicas > 0 and self.upstream is None:
            self.events.append((time.time(), "replicas>0"))
            if self.process is not None:
                time.sleep(self.start_delay)
                self.upstream = self.process
            else:
                self.upstream = UpstreamProcess(self.netns.address, UPSTREAM_PORT, self.log, name=self.name,
                                                start_delay=self.start_delay, netns=self.netns.name).start()
                self.upstream.wait_listening(timeout=30 + self.start_delay)
            self.events.append((time.time(), "listening"))
            self._publish([self.netns.address])
            self.events.append((time.time(), "published"))
        elif replicas == 0 and self.upstream is not None:
            self.events.append((time.time(), "replicas=0"))
            self._publish([])
            if self.upstream is not self.process:
                self.upstream.stop()
            self.upstream = None
            self.events.append((time.time(), "stopped"))

    def _publish(self, addresses: list[str]) -> None:
        publish_endpoints(self._api, self.namespace, self.name, addresses)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for process in {self.upstream, self.process} - {None}:
            assert process is not None
            process.stop()
        self.upstream = self.process = None
        self._api.close()
