"""The floor for the API benchmark: a bare uvicorn app that answers every GET with fixed bytes.

Same TLS settings as the adapter (its serving certificate, an optional client certificate
verified against its CA), same protocol implementation (httptools), no routing, no auth, no
cache: whatever the adapter costs beyond this is ours.

    python -m tests.bench.floor --cert-dir DIR --port PORT --body FILE
"""

from __future__ import annotations

import argparse
import ssl
from pathlib import Path
from typing import Any

import uvicorn


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", required=True)
    args = parser.parse_args()
    body = Path(args.body).read_bytes()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    start = {"type": "http.response.start", "status": 200, "headers": headers}
    message = {"type": "http.response.body", "body": body}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(start)
        await send(message)

    certs = Path(args.cert_dir)
    uvicorn.run(app, host="127.0.0.1", port=args.port, http="httptools", lifespan="off", access_log=False,
                log_level="warning", ssl_certfile=str(certs / "serving.crt"), ssl_keyfile=str(certs / "serving.key"),
                ssl_ca_certs=str(certs / "ca.crt"), ssl_cert_reqs=ssl.CERT_OPTIONAL, timeout_keep_alive=60)


if __name__ == "__main__":
    main()
