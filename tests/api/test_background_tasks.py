"""A background task of `serve` that ends makes `/readyz` fail its check, over real HTTPS.

The adapter is built and served in this process (as benchmarks do) so that a task can be given
that dies; everything else is the real server: TLS listener, routes, health checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from pathlib import Path

import httpx

from adapter.certs import CertLayout
from adapter.server import ServeOptions, build_local, local_auth_config, serve, tls_context
from tests.harness.adapter_process import run_cli
from tests.harness.ports import free_port


async def test_a_dead_task_fails_its_readyz_check(tmp_path: Path) -> None:
    certs, objects = tmp_path / "certs", tmp_path / "objects"
    objects.mkdir()
    (objects / "none.yaml").write_text(json.dumps({"kind": "ConfigMap", "metadata": {"name": "x"}}))
    assert run_cli("certs", "--cert-dir", str(certs)).returncode == 0
    options = ServeOptions(cert_dir=certs, local_dir=objects, secure_port=free_port(), internal_port=0)
    adapter = build_local(options)
    dies = asyncio.Event()

    async def doomed() -> None:
        await dies.wait()
        raise RuntimeError("the watch broke")

    adapter.background["doomed"] = doomed
    context = tls_context(options, local_auth_config(CertLayout(certs), options.requestheader_allowed_names))
    serving = asyncio.create_task(serve(adapter, options, context))
    url = f"https://127.0.0.1:{options.secure_port}/readyz"
    try:
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=certs / "ca.crt"), timeout=5) as client:
            await _until(client, url, 200)
            verbose = (await client.get(url + "?verbose")).text
            assert "[+]task-doomed ok" in verbose and "[+]task-directory-watch ok" in verbose
            dies.set()
            await _until(client, url, 500)
            verbose = (await client.get(url + "?verbose")).text
            assert "[-]task-doomed failed: reason withheld" in verbose
            assert "[+]task-metric-poller ok" in verbose
            assert (await client.get(url + "/task-doomed")).status_code == 500
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving


async def _until(client: httpx.AsyncClient, url: str, status: int, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            if (await client.get(url)).status_code == status:
                return
        except httpx.HTTPError:
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{url} did not answer {status} within {timeout}s")
        await asyncio.sleep(0.05)
