"""One interceptor process (standalone mode, plain and TLS listeners) in front of a real upstream.

Routes (ScaledObjects in the interceptor's --local-dir):

    default/web     any host, "/"                 -> the aiohttp upstream
    default/api     api.example.com, "/v1"        -> the same upstream
    default/held    held.example.com              -> a port nobody listens on: requests are held
                                                     (holdTimeout 1s, holdLimit 3)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.http_upstream import UpstreamProcess
from tests.harness.interceptor_process import InterceptorProcess, http_scaled_object, write_objects
from tests.harness.ports import free_port
from tests.harness.tls_material import TLSMaterial


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpstreamProcess]:
    with UpstreamProcess("127.0.0.1", free_port(), tmp_path_factory.mktemp("upstream") / "upstream.log") as server:
        yield server


@pytest.fixture(scope="module")
def tls_files(tls_material: TLSMaterial, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    files = tls_material.write_server_files(tmp_path_factory.mktemp("interceptor-tls"))
    return files.ca, files.cert, files.key


@pytest.fixture(scope="module")
def interceptor(upstream: UpstreamProcess, tls_files: tuple[Path, Path, Path],
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[InterceptorProcess]:
    work = tmp_path_factory.mktemp("interceptor")
    objects = write_objects(work / "objects",
                            http_scaled_object("web"),
                            http_scaled_object("api", hosts="api.example.com", pathPrefixes="/v1"),
                            http_scaled_object("held", hosts="held.example.com", holdTimeout="1s", holdLimit="3"))
    _, cert, key = tls_files
    address = f"{upstream.host}:{upstream.port}"
    args = ("--local-dir", str(objects), "--upstream", f"default/web={address}", "--upstream", f"default/api={address}",
            "--upstream", f"default/held=127.0.0.1:{free_port()}", "--tls-cert", str(cert), "--tls-key", str(key))
    with InterceptorProcess(args, work / "interceptor.log", tls_port=free_port()) as running:
        yield running
