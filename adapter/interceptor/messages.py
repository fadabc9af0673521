"""HTTP messages as the interceptor forwards them: one request head, header rules, local answers.

Whatever the client spoke (HTTP/1.1, or HTTP/2 over h2c or TLS), a request reaches the upstream
as HTTP/1.1, framed by the interceptor: hop-by-hop headers (RFC 9110 7.6.1, and those named in
`Connection`) are dropped, `X-Forwarded-For` and `X-Forwarded-Proto` are added, and the body is
sent with its `Content-Length` when the client gave one, chunked otherwise. Responses are
framed again for the client the same way. Bodies are never collected whole: each piece read on
one side is written on the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"te", b"trailer", b"upgrade",
    b"http2-settings", b"proxy-authorization", b"proxy-authenticate",
})
NO_BODY_STATUSES = frozenset({204, 304})

Headers = list[tuple[bytes, bytes]]


@dataclass
class RequestHead:
    """A request as it will be sent upstream; `headers` are already rewritten."""

    method: bytes
    target: bytes  # origin-form: path and query
    host: str  # lower-cased, without a port: what routing matches
    path: str  # the target's path, percent-decoding left to the upstream
    headers: Headers
    content_length: int | None  # None: a body of unknown length (chunked), or none (`has_body`)
    has_body: bool
    upgrade: bytes | None = None  # the protocol of an Upgrade request (websocket)
    expect_continue: bool = False
    client: str = ""  # the peer address, for X-Forwarded-For and logs

    @property
    def is_head(self) -> bool:
        return self.method == b"HEAD"

    def encode(self) -> bytes:
        """The request line and header block, HTTP/1.1, with the framing this head implies."""
        lines = [self.method, b" ", self.target, b" HTTP/1.1\r\n"]
        for name, value in self.headers:
            lines += [name, b": ", value, b"\r\n"]
        if self.upgrade is not None:
            lines += [b"connection: upgrade\r\nupgrade: ", self.upgrade, b"\r\n"]
        if self.content_length is not None:
            lines += [b"content-length: ", str(self.content_length).encode(), b"\r\n"]
        elif self.has_body:
            lines.append(b"transfer-encoding: chunked\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)


@dataclass
class ResponseHead:
    status: int
    reason: bytes
    headers: Headers  # without hop-by-hop headers and without content-length
    content_length: int | None  # None: streamed (or no body, see `has_body`)
    has_body: bool
    upgrade: bytes | None = None


def connection_tokens(headers: Headers) -> set[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    return tokens


def end_to_end(headers: Headers) -> Headers:
    """`headers` (names lower-cased) without hop-by-hop headers, content-length or host."""
    named = connection_tokens(headers)
    return [(n, v) for n, v in headers
            if n not in HOP_BY_HOP and n not in named and n != b"content-length" and n != b"host"]


def forwarded_for(headers: Headers, client: str, scheme: bytes) -> Headers:
    """X-Forwarded-For extended with `client`, X-Forwarded-Proto set."""
    previous = [v for n, v in headers if n == b"x-forwarded-for"]
    rest = [(n, v) for n, v in headers if n not in (b"x-forwarded-for", b"x-forwarded-proto")]
    chain = b", ".join([*previous, client.encode()]) if client else b", ".join(previous)
    return [*rest, *([(b"x-forwarded-for", chain)] if chain else []), (b"x-forwarded-proto", scheme)]


def split_host(authority: bytes) -> str:
    """The host of a Host header or :authority, lower-cased, without port or trailing dot."""
    text = authority.decode("latin-1").strip().lower()
    if text.startswith("["):  # [::1]:8080
        return text[: text.find("]") + 1]
    return text.rsplit(":", 1)[0].rstrip(".") if ":" in text else text.rstrip(".")


def path_of(target: bytes) -> str:
    text = target.decode("latin-1")
    for stop in "?#":
        index = text.find(stop)
        if index >= 0:
            text = text[:index]
    return text or "/"


@dataclass(frozen=True)
class LocalAnswer(Exception):
    """An answer the interceptor gives itself (no route, queue full, target never ready, upstream down)."""

    status: int
    message: str
    headers: tuple[tuple[bytes, bytes], ...] = field(default=())

    @property
    def body(self) -> bytes:
        return (self.message + "\n").encode()


REASONS = {400: b"Bad Request", 404: b"Not Found", 413: b"Content Too Large", 431: b"Request Header Fields Too Large",
           502: b"Bad Gateway", 503: b"Service Unavailable", 504: b"Gateway Timeout"}
