"""A network namespace with one veth link to the host, for servers that must not be on loopback.

kube-apiserver refuses loopback addresses in EndpointSlices, so an end-to-end test that plays
the kubelet's part runs its "pod" inside a namespace of its own: `ip netns add`, a veth pair,
the host end at `198.18.N.1/30` and the namespace end at `198.18.N.2/30` (198.18.0.0/15 is the
range set aside for benchmarking, RFC 2544). Only this machine's kernel routes it; nothing
leaves the host. Needs root, as the suite's CI has.
"""

from __future__ import annotations

import random
import subprocess
import uuid


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


class NetworkNamespace:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.name = f"es-{tag}"
        self.host_link, self.inner_link = f"esh{tag}", f"esn{tag}"
        subnet = random.randrange(0, 256)
        self.host_address = f"198.18.{subnet}.1"
        self.address = f"198.18.{subnet}.2"  # where servers in the namespace listen
        self.created = False

    def create(self) -> NetworkNamespace:
        _ip("netns", "add", self.name)
        self.created = True
        _ip("link", "add", self.host_link, "type", "veth", "peer", "name", self.inner_link)
        _ip("link", "set", self.inner_link, "netns", self.name)
        _ip("addr", "add", f"{self.host_address}/30", "dev", self.host_link)
        _ip("link", "set", self.host_link, "up")
        _ip("-n", self.name, "addr", "add", f"{self.address}/30", "dev", self.inner_link)
        _ip("-n", self.name, "link", "set", self.inner_link, "up")
        _ip("-n", self.name, "link", "set", "lo", "up")
        return self

    def delete(self) -> None:
        if self.created:
            subprocess.run(["ip", "link", "del", self.host_link], capture_output=True, timeout=30)
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)
            self.created = False

    def __enter__(self) -> NetworkNamespace:
        try:
            return self.create()
        except BaseException:
            self.delete()
            raise

    def __exit__(self, *exc: object) -> None:
        self.delete()
