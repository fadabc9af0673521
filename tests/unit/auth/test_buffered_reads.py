"""The server's TLS connections are read into the one shared buffer, on the loop `serve` runs on.

uvloop's TLS layer reads into a protocol's buffer only when the protocol is not an
asyncio.Protocol; uvicorn's is one, so `BufferedReads` stands between them. Read as a plain
Protocol, every read took a fresh 256 KiB chunk (an mmap, an mremap and an munmap each).
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import uvloop

from adapter.auth.tls_server import READ_BUFFER, BufferedReads
from tests.harness.tls_material import TLSMaterial


class _Recording(asyncio.Protocol):
    """A plain Protocol, as uvicorn's is: what arrived, and in which buffer it was decrypted."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, bool]] = []
        self.arrived = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.received.append((data, bytes(READ_BUFFER[:len(data)]) == data))
        self.arrived.set()


async def _send_through_tls(tls_material: TLSMaterial, tmp_path: Path, wrap: bool,
                            payload: bytes) -> list[tuple[bytes, bool]]:
    files = tls_material.write_server_files(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    recording = _Recording()
    server = await asyncio.get_running_loop().create_server(
        lambda: BufferedReads(recording) if wrap else recording, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    READ_BUFFER[:len(payload)] = bytes(len(payload))
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls_material.client_context())
    writer.write(payload)
    await writer.drain()
    await asyncio.wait_for(recording.arrived.wait(), 10)
    writer.close()
    server.close()
    await server.wait_closed()
    return recording.received


def test_a_wrapped_protocol_is_read_into_the_shared_buffer(tls_material: TLSMaterial, tmp_path: Path) -> None:
    payload = b"GET /readyz HTTP/1.1\r\nHost: a\r\n\r\n"
    received = uvloop.run(_send_through_tls(tls_material, tmp_path, True, payload))
    assert received == [(payload, True)]


def test_a_plain_protocol_is_not_read_into_it(tls_material: TLSMaterial, tmp_path: Path) -> None:
    """The reason for the wrapper: the same protocol given as it is gets bytes from elsewhere."""
    payload = b"GET /livez HTTP/1.1\r\nHost: b\r\n\r\n"
    received = uvloop.run(_send_through_tls(tls_material, tmp_path, False, payload))
    assert received == [(payload, False)]
