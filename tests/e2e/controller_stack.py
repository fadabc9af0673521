"""Two eventscale pods' worth of processes on the e2e control plane, and what tests watch.

Each "pod" is an adapter in cluster mode (`cluster_adapter`, with its internal listener on) and
a controller pointed at that adapter's listener; both run as the shipped ServiceAccount, so the
RBAC in manifests/ is what is exercised. The APIService points at the first adapter; both
adapters poll the brokers, as two replicas of the Deployment would. Leases are short (3 s) so a
takeover fits a test.

`ReplicaLog` watches one Deployment and records every change of `spec.replicas` with its time:
flapping, premature scale-downs and double activations show up in it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster_adapter import NAMESPACE, cluster_adapter, install, register, token_kubeconfig, wait_available
from controlplane import ControlPlane, wait_for
from kubernetes import client, watch

from tests.harness.adapter_process import AdapterProcess
from tests.harness.controller_process import ControllerProcess
from tests.harness.ports import free_port

LEASE_SECONDS = 3.0
# the controller path: these stacks test it (test_native_scale_to_zero.py asks for the native one)
CONTROLLER_FLAGS = ("--lease-duration", str(LEASE_SECONDS), "--renew-deadline", "2", "--retry-period", "0.5",
                    "--native-scale-to-zero", "false")


@dataclass
class Pod:
    adapter: AdapterProcess
    controller: ControllerProcess


@dataclass
class Stack:
    cp: ControlPlane
    work: Path
    pods: list[Pod] = field(default_factory=list)

    def start(self, replicas: int = 2, *controller_flags: str, adapter_flags: Sequence[str] = ()) -> Stack:
        install(self.cp)
        kubeconfig = token_kubeconfig(self.cp, self.work / "controller.kubeconfig")
        for i in range(replicas):
            internal = free_port()
            adapter = cluster_adapter(self.cp, _fresh(self.work / f"pod-{i}"), "--internal-port", str(internal),
                                      *adapter_flags)
            adapter.start(timeout=60)
            controller = ControllerProcess(f"controller-{i}", kubeconfig, f"http://127.0.0.1:{internal}",
                                           self.work / f"controller-{i}.log", (*CONTROLLER_FLAGS, *controller_flags))
            self.pods.append(Pod(adapter, controller.start()))
            if i == 0:
                register(self.cp, adapter.port, (adapter.cert_dir / "ca.crt").read_bytes())
        wait_available(self.cp)
        self.leader(timeout=30)
        return self

    def stop(self) -> None:
        for pod in self.pods:
            pod.controller.stop()
            pod.adapter.stop()
        self.cp.kubectl("delete", "apiservice", "v1beta1.external.metrics.k8s.io", "--ignore-not-found", check=False)

    def holder(self) -> str | None:
        found = self.cp.kubectl("get", "lease", "eventscale-controller", "-n", NAMESPACE, "-o", "json", check=False)
        return json.loads(found.stdout)["spec"].get("holderIdentity") or None if found.returncode == 0 else None

    def leader(self, timeout: float = 15) -> ControllerProcess:
        def running_holder() -> ControllerProcess | None:
            identity = self.holder()
            return next((p.controller for p in self.pods if p.controller.identity == identity and
                         p.controller.running), None)

        leader: ControllerProcess = wait_for(running_holder, timeout=timeout,
                                             what="a running controller holding the Lease", interval=0.1)
        return leader

    def restart_stopped(self) -> None:
        for pod in self.pods:
            if not pod.controller.running:
                pod.controller.start()

    def logs(self) -> str:
        return "\n".join(f"--- {p.controller.identity}\n{p.controller.log()[-4000:]}" for p in self.pods)


STATS = re.compile(r"stats .*scaledjob_polls=(\d+) .*calls=(\S+)")


def controller_stats(stack: Stack) -> tuple[int, dict[str, int]]:
    """ScaledJob polls so far and API calls by kind ("PATCH:scaledjobs/status"), from the first
    controller's latest stats line (`--stats-interval` sets how often it logs one)."""
    found = STATS.findall(stack.pods[0].controller.log())
    assert found, "no stats line in the controller's log"
    polls, calls = found[-1]
    return int(polls), {} if calls == "-" else {k: int(v) for k, v in (c.rsplit("=", 1) for c in calls.split(","))}


def stats_after(stack: Stack, polls: int, timeout: float = 60) -> tuple[int, dict[str, int]]:
    """The first stats line that counts at least `polls` ScaledJob polls."""
    found: tuple[int, dict[str, int]] = wait_for(lambda: (s := controller_stats(stack))[0] >= polls and s,
                                                 timeout=timeout, what=f"{polls} ScaledJob polls", interval=0.2)
    return found


def _fresh(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- objects ------------------------------------------------------------------------------------

FAST_HPA = {"scaleDown": {"stabilizationWindowSeconds": 0,
                          "policies": [{"type": "Percent", "value": 100, "periodSeconds": 1}]},
            "scaleUp": {"stabilizationWindowSeconds": 0,
                        "policies": [{"type": "Pods", "value": 10, "periodSeconds": 1}]}}


def deployment(name: str, replicas: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    labels = {"app": name}
    container: dict[str, Any] = {"name": "worker", "image": "registry.invalid/worker:1"}
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}}


def scaled_object(name: str, triggers: list[dict[str, Any]], *, target: str | None = None,
                  annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    body = {"scaleTargetRef": {"name": target or name}, "pollingInterval": 1, "cooldownPeriod": 6,
            "maxReplicaCount": 10, "advanced": {"horizontalPodAutoscalerConfig": {"behavior": FAST_HPA}},
            "triggers": triggers}
    body.update(spec)
    metadata: dict[str, Any] = {"name": name}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": metadata, "spec": body}


# -- reading the cluster -----------------------------------------------------------------------

def get(cp: ControlPlane, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    found = cp.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    return json.loads(found.stdout) if found.returncode == 0 else None


def status(cp: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    return (get(cp, "scaledobject.keda.sh", namespace, name) or {}).get("status") or {}


def condition(found: dict[str, Any], kind: str) -> tuple[str, str]:
    for cond in found.get("conditions") or []:
        if cond["type"] == kind:
            return cond["status"], cond.get("reason", "")
    return "", ""


def wait_condition(cp: ControlPlane, namespace: str, name: str, kind: str, expected: tuple[str, str],
                   timeout: float = 20, resource: str = "scaledobject.keda.sh") -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        found = (get(cp, resource, namespace, name) or {}).get("status") or {}
        return found if condition(found, kind) == expected else None

    status: dict[str, Any] = wait_for(reached, timeout=timeout, what=f"{name} {kind}={expected}", interval=0.2)
    return status


def events(cp: ControlPlane, namespace: str, name: str, kind: str = "ScaledObject") -> list[tuple[str, str, str, int]]:
    """(type, reason, message, count) of the Events on a ScaledObject (or a `kind`), oldest first."""
    found = cp.kubectl_json("get", "events", "-n", namespace, "--field-selector",
                            f"involvedObject.kind={kind},involvedObject.name={name}")["items"]
    found.sort(key=lambda e: e.get("firstTimestamp") or "")
    return [(e["type"], e["reason"], e["message"], int(e.get("count") or 1)) for e in found]


def reasons(cp: ControlPlane, namespace: str, name: str, kind: str = "ScaledObject") -> list[str]:
    return [reason for _, reason, _, count in events(cp, namespace, name, kind) for _ in range(count)]


def replicas(cp: ControlPlane, namespace: str, name: str) -> int:
    return int((get(cp, "deployment", namespace, name) or {})["spec"]["replicas"])


def wait_replicas(cp: ControlPlane, namespace: str, name: str, count: int, timeout: float = 20) -> float:
    """Wait until the Deployment's spec.replicas is `count`; the wall time it was seen."""
    wait_for(lambda: replicas(cp, namespace, name) == count, timeout=timeout,
             what=f"deployment {name} at {count} replicas", interval=0.1)
    return time.time()


class ReplicaLog:
    """Every change of one Deployment's spec.replicas, with the wall time it was seen."""

    def __init__(self, cp: ControlPlane, namespace: str, name: str) -> None:
        self.cp, self.namespace, self.name = cp, namespace, name
        self.changes: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        wait_for(lambda: self.changes, timeout=20, what=f"the watch of deployment {name} started", interval=0.05)

    def _run(self) -> None:
        with self.cp.api_client() as api:
            apps = client.AppsV1Api(api)
            version = None
            while not self._stop.is_set():
                stream = watch.Watch()  # type: ignore[no-untyped-call]  # kubernetes.watch is unannotated
                kwargs: dict[str, Any] = {"field_selector": f"metadata.name={self.name}", "timeout_seconds": 2}
                if version:
                    kwargs["resource_version"] = version
                try:
                    events = stream.stream(apps.list_namespaced_deployment, self.namespace, **kwargs)  # type: ignore[no-untyped-call]  # kubernetes.watch is unannotated
                    for event in events:
                        version = event["object"].metadata.resource_version
                        self._note(int(event["object"].spec.replicas or 0))
                        if self._stop.is_set():
                            stream.stop()  # type: ignore[no-untyped-call]  # kubernetes.watch is unannotated
                except Exception:  # kube-apiserver down (a fault test) or the watch expired: watch again
                    version = None
                    self._stop.wait(0.2)

    def _note(self, count: int) -> None:
        if not self.changes or self.changes[-1][1] != count:
            self.changes.append((time.time(), count))

    @property
    def values(self) -> list[int]:
        return [count for _, count in self.changes]

    def seen(self, count: int, after: float = 0.0, timeout: float = 20) -> float:
        """Wait until spec.replicas was `count` at some moment after `after`; that moment."""
        def found() -> float | None:
            return next((at for at, seen in self.changes if seen == count and at >= after), None)

        at: float = wait_for(found, timeout=timeout, what=f"deployment {self.name} at {count} replicas", interval=0.05)
        return at

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
